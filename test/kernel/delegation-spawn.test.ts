// spawnDelegated: a program run like systemd's PrivateBPF= sees a delegated
// bpffs at /sys/fs/bpf and LIBBPF_BPF_TOKEN_PATH, and its exit status and
// signals pass through the helper.
import { describe, expect, test } from 'vitest'
import { delegationFailedStatus, spawnDelegated, type DelegatedProcess, features } from '../../lib/index.js'
import type { TokenFromEnvReport } from '../fixtures/tenant/token-from-env.js'
import { tenantFixture, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Why these tests cannot run here (no BPF tokens, or no user namespaces), or undefined.
const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

function finished(child: DelegatedProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d) => { stdout += d })
  child.stderr?.on('data', (d) => { stderr += d })
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
}

describe('spawnDelegated', () => {
  skipAllIf(missing)
  test('the program finds its token as libbpf would, and the mount says what it delegates', async () => {
    const child = spawnDelegated(process.execPath, [tenantFixture('token-from-env')], {
      policy: { cmds: ['map_create'], maps: ['array'] },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const done = finished(child)
    expect(String(await child.delegated)).toBe('delegate_cmds=map_create,delegate_maps=array')
    const r = await done
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout) as TokenFromEnvReport).toEqual({
      env: '/sys/fs/bpf',
      uid: 0,
      mount: { cmds: ['map_create'], maps: ['array'], progs: [], attachs: [] },
      value: '42',
      refused: "token does not delegate map type 'hash'; it delegates map types: array",
    })
  })

  test('exit status and signals pass through', async () => {
    const policy = { cmds: ['map_create'] } as const
    const exits = spawnDelegated('sh', ['-c', 'exit 7'], { policy, stdio: 'ignore' })
    expect((await finished(exits)).code).toBe(7)

    const sleeper = spawnDelegated('sleep', ['30'], { policy, stdio: 'ignore' })
    await sleeper.delegated
    // Let the helper start the program before it is signalled.
    await new Promise((r) => setTimeout(r, 200))
    sleeper.kill('SIGTERM')
    expect(await finished(sleeper)).toMatchObject({ code: null, signal: 'SIGTERM' })

    const missing = spawnDelegated('/no/such/program', [], { policy, stdio: ['ignore', 'ignore', 'pipe'] })
    const r = await finished(missing)
    expect(r.code).toBe(127)
    expect(r.stderr).toMatch(/cannot run \/no\/such\/program/)
  })

  test('a failed delegation stops before the program runs, with status 125 and the reason', async () => {
    const child = spawnDelegated('sh', ['-c', 'echo ran'], {
      policy: { cmds: ['map_create'] },
      mountAt: '/no/such/dir',
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const r = await finished(child)
    expect(r.code).toBe(delegationFailedStatus)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^bpfkit: delegation failed: move_mount: ENOENT: attaching the bpffs at \/no\/such\/dir: \/no\/such\/dir does not exist/)
  })

  test('a helper that cannot start: delegated rejects with the spawn error, nothing crashes', async () => {
    const child = spawnDelegated('true', [], { policy: { cmds: ['map_create'] }, unshare: '/no/such/unshare', stdio: 'ignore' })
    await expect(child.delegated).rejects.toMatchObject({ code: 'ENOENT', syscall: 'spawn /no/such/unshare' })
  })

  test('bad arguments are TypeErrors before anything starts', () => {
    expect(() => spawnDelegated('true', [], { policy: { cmd: [] } as never })).toThrow("policy: unknown key 'cmd'")
    expect(() => spawnDelegated('true', [], { policy: {}, mountPoint: '/x' } as never)).toThrow("spawnDelegated: unknown option 'mountPoint'")
    expect(() => spawnDelegated('', [], { policy: {} })).toThrow(TypeError)
  })
})
