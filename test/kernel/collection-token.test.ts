// Tokens as libbpf finds them, end to end: a program spawned like systemd's
// PrivateBPF= (spawnDelegated: a delegated bpffs at /sys/fs/bpf and
// LIBBPF_BPF_TOKEN_PATH) loads a clang-built object without naming a token.
import { describe, expect, test } from 'vitest'
import { features, spawnDelegated } from '../../lib/index.js'
import type { CollectionFromEnvReport } from '../fixtures/tenant/collection-from-env.js'
import { fixture } from './helpers/collection.js'
import { tenantFixture, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

describe('CollectionSpec.load finds its token', () => {
  skipAllIf(missing)
  test('from LIBBPF_BPF_TOKEN_PATH; empty means none, a path that is no bpffs is an error naming it', async () => {
    const child = spawnDelegated(process.execPath, [tenantFixture('collection-from-env'), fixture('counter.bpf.o')], {
      // Programs without an expected attach type ask the token for attach type 0 (cgroup_inet_ingress).
      policy: { cmds: ['map_create', 'prog_load', 'btf_load'], maps: ['array'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'] },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout?.on('data', (d) => { stdout += d })
    child.stderr?.on('data', (d) => { stderr += d })
    const code = await new Promise((resolve) => child.on('close', resolve))
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const r = JSON.parse(stdout.trim().split('\n').pop()!) as CollectionFromEnvReport
    expect(r.env).toBe('/sys/fs/bpf')
    // threshold 1: the first packet passes (64 bytes less the Ethernet header), the second is dropped.
    expect(r.retvals).toEqual([50, 0])
    expect(r.packets).toBe('2')
    expect(r.withoutToken).toEqual({ name: 'BpfError', code: 'EPERM' })
    expect(r.badPath).toMatch(/^LIBBPF_BPF_TOKEN_PATH=\/nonexistent-bpffs: /)
  }, 60_000)
})
