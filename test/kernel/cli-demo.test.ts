// `bpfkit demo`: the delegation story end to end, as a person reads it.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import { repoRoot } from './helpers/raw.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature } from './helpers/requires.js'

const cli = join(repoRoot, 'dist/cli/main.js')

describe('bpfkit demo', () => {
  test('a tenant gets a token, uses it, meets both kinds of refusal; the manager finds its objects', (ctx) => {
    const why = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()
    if (why !== undefined) ctx.skip(why)
    const r = spawnSync(process.execPath, [cli, 'demo'], { encoding: 'utf8', timeout: 30_000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    const out = r.stdout
    expect(out).toContain('mount options: delegate_cmds=map_create:prog_load,delegate_maps=hash:array,delegate_progs=socket_filter,delegate_attachs=cgroup_inet_ingress')
    expect(out).toMatch(/tenant  │ made a token from the delegated bpffs; the kernel says it delegates/)
    const mapId = /created hash map "demo_counts" with the token: id (\d+)/.exec(out)?.[1]
    const progId = /loaded socket_filter "demo_len" with the token: id (\d+)/.exec(out)?.[1]
    expect(mapId).toBeDefined()
    expect(progId).toBeDefined()
    expect(out).toContain('returned 50 (skb->len')
    expect(out).toContain('counted 100 runs in demo_counts[0]')
    expect(out).toContain("PolicyError: token does not delegate map type 'ringbuf'; it delegates map types: hash, array")
    expect(out).toMatch(/refused by the kernel\n\s+│\s+BpfError: map_create: EPERM/)
    expect(out).toContain(`map  ${mapId}  hash  "demo_counts"  key 4B  value 8B  max_entries 16`)
    expect(out).toMatch(new RegExp(`prog ${progId}  socket_filter  "demo_len"  tag [0-9a-f]{16}  uses maps ${mapId}`))
    expect(out).toContain('exited (status 0)')
  })

  test('without root it says why and exits 1', () => {
    // The user is nobody, with one capability: CAP_DAC_READ_SEARCH (ambient,
    // so it survives the exec into node), which lets it read the checkout
    // wherever it lives (a clone under root's mode-700 home, another user's
    // directory) and grants nothing else: no BPF, no mounts, no uid changes,
    // so the demo still meets a user without root. Copying the package to a
    // world-readable directory instead would hang on the package's file
    // layout (dist/, the addon, node-gyp-build) and on TMPDIR being readable
    // by nobody.
    const nobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps', '+dac_read_search', '--ambient-caps', '+dac_read_search']
    const r = spawnSync('setpriv', [...nobody, '--', process.execPath, cli, 'demo'], { encoding: 'utf8' })
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/^bpfkit: the demo needs root: the manager sets delegate_\* options/)
  })

  test('extra arguments are a usage error', () => {
    const r = spawnSync(process.execPath, [cli, 'demo', 'now'], { encoding: 'utf8' })
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/demo takes no arguments/)
  })
})
