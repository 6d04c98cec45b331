// `bpfkit guard` with a kernel: where the guard cannot run (this host
// refuses trampolines), `guard start` says which feature is missing; where
// it can (the VMs), one start/tenant/status/stop round is made on a bpffs
// and a cgroup of the test's own.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { defaultGuardPin } from '../../lib/cli/guard.js'
import { haveBpfLsm, haveGuardHooks } from '../../lib/features/index.js'
import { NotSupportedError } from '../../lib/sys/index.js'
import { runCli as run } from './helpers/cli.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-guard-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const policyFile = join(dir, 'tenant.json')
writeFileSync(policyFile, JSON.stringify({ cmds: ['map_create', 'prog_load'], maps: ['hash'], progs: ['socket_filter'], attachs: 'any' }))

// Why the guard cannot run here, as Guard.start's own probes say it; undefined where it can.
function guardMissing(): Error | undefined {
  try {
    haveGuardHooks()
    haveBpfLsm()
    return undefined
  } catch (e) {
    return e as Error
  }
}

describe('bpfkit guard on a kernel', () => {
  const missing = guardMissing()

  test('start where the guard cannot run: exit 1 naming the missing feature, nothing pinned', async (ctx) => {
    if (missing === undefined) ctx.skip('the guard can run here: the next test starts and stops it')
    const pinnedBefore = existsSync(defaultGuardPin)
    const r = await run('guard', 'start')
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
    expect(r.err).toBe(`bpfkit: ${missing!.message}\n`)
    // Root on this host: the probe's NotSupportedError (trampolines refused, or no bpf LSM); else the refused probe's own error.
    if (missing instanceof NotSupportedError) expect(r.err).toMatch(/trampoline|LSM|Linux 6\.9/)
    expect(existsSync(defaultGuardPin)).toBe(pinnedBefore)
    expect((await run('guard', 'start', '--pin', join(dir, 'pins'))).code).toBe(1)
    expect(existsSync(join(dir, 'pins'))).toBe(false)
  })

  // Where the bpf LSM runs (the VMs, as root): one round on a bpffs and a cgroup of the test's own.
  test('start, tenant set, status, a second start, tenant remove, stop: one round on its own pin directory', async (ctx) => {
    if (missing !== undefined) ctx.skip(`the guard cannot run here: ${missing.message}`)
    using fs = privateBpffs()
    using cg = childCgroup()
    const pin = join(fs.path, 'guard')
    try {
      const started = await run('guard', 'start', '--pin', pin)
      expect(started.err).toBe('')
      expect(started.code).toBe(0)
      expect(started.out).toBe(`guard started, pinned at ${pin} (it runs until 'bpfkit guard stop --pin ${pin}')\n`)
      const set = await run('guard', 'tenant', 'set', 'web', '--policy', policyFile, '--cgroup', cg.path, '--max-maps', '4', '--pin', pin, '--json')
      expect(set.err).toBe('')
      expect(JSON.parse(set.out)).toMatchObject({ name: 'web', id: 1, match: { cgroup: cg.path }, quota: { maps: 4 }, usage: { maps: 0, bytes: '0' } })
      const status = await run('guard', 'status', '--pin', pin, '--json')
      expect(status.code).toBe(0)
      expect(JSON.parse(status.out)).toMatchObject({ pinPath: pin, tenants: [{ name: 'web', id: 1 }], stats: { refused: '0', lost: '0' } })
      expect((await run('guard', 'status', '--pin', pin)).out).toMatch(new RegExp(
        `^guard pinned at ${pin}: 0 refused, \\d+ allowed, 0 refusal events lost\n1: tenant web\n\tmatch cgroup ${cg.path}\n\tquota 4 maps  usage 0 maps, 0 bytes\n$`))
      const again = await run('guard', 'start', '--pin', pin)
      expect(again.code).toBe(1)
      expect(again.err).toContain(`a guard is already pinned at ${pin}`)
      expect(await run('guard', 'tenant', 'remove', 'web', '--pin', pin)).toMatchObject({ code: 0, out: 'tenant web removed\n' })
      const removed = await run('guard', 'tenant', 'remove', 'web', '--pin', pin)
      expect(removed.code).toBe(1)
      expect(removed.err).toContain("no tenant 'web' is registered")
      expect((await run('guard', 'status', '--pin', pin)).out).toContain('\nno tenants\n')
      const stopped = await run('guard', 'stop', '--pin', pin)
      expect(stopped.code).toBe(0)
      expect(existsSync(pin)).toBe(false)
    } finally {
      // A failed step must not leave the guard attached.
      if (existsSync(join(pin, 'records'))) await run('guard', 'stop', '--pin', pin)
    }
  })
})
