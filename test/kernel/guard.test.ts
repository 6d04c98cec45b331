// The guard (lib/guard): BPF LSM programs make the kernel refuse what a
// tenant's policy does not allow, even when the tenant calls bpf() itself.
// Tenants here are only the test's own: a user namespace it started, or
// cgroups it made; everyone else (this test process included) is allowed at
// once. Each test stops its guard, so nothing stays attached. The command
// line's guard (bpfkit guard) is tested here too: one guard at a time.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { asm, BpfProgram, features, Guard, ids, serveDelegation, spawnDelegated } from '../../lib/index.js'
import { defaultGuardPin } from '../../lib/cli/guard.js'
import type { PolicyDocument } from '../../lib/policy/index.js'
import { native, NotSupportedError } from '../../lib/sys/index.js'
import type { GuardRequestsReport } from '../fixtures/tenant/guard-requests.js'
import { runCli as run } from './helpers/cli.js'
import { eventsDuring } from './helpers/guard-events.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'
import { startTenantFixture, tenantFixture, userNamespacesMissing } from './helpers/tenant.js'

const missing = requireFeature(features.haveGuardHooks) ?? requireFeature(features.haveBpfLsm)

let running: Guard | undefined
afterEach(() => {
  running?.stop()
  running = undefined
})
async function start(options?: Parameters<typeof Guard.start>[0]): Promise<Guard> {
  running = await Guard.start(options)
  return running
}

/** Events until `count` have come or a second passes. */
const eventsOf = (guard: Guard, count: number, during: () => Promise<void> | void) => eventsDuring(guard, count, during, 1000)

/** Runs the fixture as root in cgroup `cg` (it moves itself there before node starts). */
function inCgroup(cg: string, fixture: string, args: string[]): any {
  const r = spawnSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg, process.execPath, tenantFixture(fixture), ...args], { encoding: 'utf8', timeout: 20_000 })
  if (r.status !== 0) throw new Error(`${fixture} failed (${r.status}): ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!)
}

const kprobeHelper = (helper: 'ktime_get_ns' | 'get_prandom_u32') =>
  BpfProgram.loadSync({ type: 'kprobe', insns: [asm.call(helper), asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })

// The token delegates more (hash maps, socket filters) than the guard's policy allows.
const delegated: PolicyDocument = { cmds: ['prog_load', 'map_create'], progs: ['kprobe', 'socket_filter'], attachs: 'any', maps: ['array', 'hash'] }
const webPolicy = (grantKfuncs: boolean): PolicyDocument => ({
  ...delegated,
  maps: ['array'],
  capabilities: { time: { helpers: ['ktime_get_ns'] }, rcu: { kfuncs: ['bpf_rcu_read_lock', 'bpf_rcu_read_unlock'] } },
  contexts: [{ progs: ['kprobe'], grant: grantKfuncs ? ['time', 'rcu'] : ['time'] }],
})

describe('Guard', () => {
  skipAllIf(missing)

  test('start attaches and pins; open takes a pinned guard over; stop detaches and unpins', async () => {
    using fs = privateBpffs()
    using cg = childCgroup()
    const pinPath = join(fs.path, 'guard')
    const before = new Set([...ids.links()].map((l) => l.id))
    const guard = await start({ pinPath })
    // Other test files attach links meanwhile: count only those of guard_* programs.
    const guardProgs = () => new Set([...ids.programs()].filter((p) => p.name.startsWith('guard_')).map((p) => p.id))
    const added = () => {
      const progs = guardProgs()
      return [...ids.links()].filter((l) => !before.has(l.id) && progs.has(l.progId))
    }
    expect(added()).toHaveLength(8)
    expect(added().every((l) => l.type === 'tracing' && l.attachType === 'lsm_mac')).toBe(true)
    await expect(Guard.start({ pinPath })).rejects.toMatchObject({ code: 'EEXIST' })
    const outside = join(tmpdir(), `bpfkit-guard-${process.pid}`, 'pins')
    await expect(Guard.start({ pinPath: outside })).rejects.toThrow(`pinPath ${outside} is not in a bpffs`)
    expect(existsSync(dirname(outside))).toBe(false)
    guard.setTenant('a', { match: { cgroup: cg.path }, policy: { maps: ['array'] }, quota: { maps: 3 } })
    // A closed handle leaves a pinned guard running.
    guard.close()
    running = undefined
    expect(added()).toHaveLength(8)
    const again = await Guard.open(pinPath)
    running = again
    expect(again.tenants()).toMatchObject([{ name: 'a', id: 1, quota: { maps: 3 }, policy: { maps: ['array'] }, usage: { maps: 0, bytes: 0n } }])
    again.stop()
    running = undefined
    expect(added()).toEqual([])
    expect(readdirSync(fs.path)).toEqual([])
    await expect(Guard.open(pinPath)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  test('a tenant with a token is refused by the kernel what its policy does not grant, and the events say why', async (ctx) => {
    const noNs = userNamespacesMissing() ?? requireFeature(features.haveBpfToken)
    if (noNs) ctx.skip(noNs)
    const guard = await start()
    const run = async (grantKfuncs: boolean) => {
      const tenant = startTenantFixture<GuardRequestsReport>('guard-requests')
      await serveDelegation(tenant.socket, delegated)
      await tenant.socket.receive()
      guard.setTenant('web', { match: { userns: `/proc/${tenant.pid}/ns/user` }, policy: webPolicy(grantKfuncs), quota: { maps: 2, bytes: 1000 } })
      let report: GuardRequestsReport | undefined
      const events = await eventsOf(guard, grantKfuncs ? 5 : 6, async () => {
        await tenant.socket.send(Buffer.from('go'))
        report = await tenant.result
      })
      return { report: report!, events }
    }

    const { report: r, events } = await run(false)
    const refused = { ok: false, name: 'BpfError', code: 'EPERM' }
    expect(r.allowedHelper).toEqual({ ok: true })
    expect(r.refusedHelper).toMatchObject({ ...refused, command: 'prog_load' })
    expect(r.kfunc).toMatchObject({ ...refused, command: 'prog_load' })
    expect(r.socketFilter).toMatchObject({ ...refused, command: 'prog_load' })
    expect(r.maps).toMatchObject([{ ok: true }, { ok: true }, { ...refused, command: 'map_create' }])
    expect(r.bigMap).toMatchObject({ ...refused, command: 'map_create' })
    expect(r.hashMap).toMatchObject({ ...refused, command: 'map_create' })
    expect(events.map((e) => e.message).sort()).toEqual([
      "guard refused map 'quota' of tenant 'web': 4198400 bytes more would pass its quota of 1000 bytes (it holds 96)",
      "guard refused map 'quota' of tenant 'web': its quota of 2 maps is reached",
      "guard refused map 'quota' of tenant 'web': map type hash is not delegated",
      "guard refused prog 'probe' of tenant 'web': helper get_prandom_u32 at insn 0 is not granted in context kprobe",
      "guard refused prog 'probe' of tenant 'web': kfunc bpf_rcu_read_lock at insn 0 is not granted in context kprobe",
      "guard refused prog 'probe' of tenant 'web': no policy context matches program type socket_filter",
    ])
    expect(events.find((e) => e.kind === 'helper')).toMatchObject({ tenant: 'web', object: 'prog', name: 'probe', insn: 0, helper: 'get_prandom_u32', progType: 'kprobe', contexts: [0] })
    expect(guard.stats().refused).toBeGreaterThanOrEqual(6n)

    // Outside the tenant (this process), the same program loads.
    kprobeHelper('get_prandom_u32').close()

    // setTenant replaces the policy: the kfuncs are granted now.
    const second = await run(true)
    expect(second.report.kfunc).toEqual({ ok: true })
    expect(second.report.refusedHelper).toMatchObject(refused)
    expect(guard.tenants().map((t) => t.name)).toEqual(['web'])
  })

  test('a tenant known by its bpffs: tokens made from it are the tenant\'s, whatever their user namespace', async (ctx) => {
    const noNs = userNamespacesMissing() ?? requireFeature(features.haveBpfToken)
    if (noNs) ctx.skip(noNs)
    const guard = await start()
    const child = spawnDelegated(process.execPath, [tenantFixture('guard-token-env')], {
      policy: { cmds: ['prog_load'], progs: ['kprobe'], attachs: 'any' },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => { stdout += d })
    child.stderr!.on('data', (d) => { stderr += d })
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await child.delegated
    // Once the program runs, its bpffs is in place: seen through its mount namespace.
    await new Promise<void>((resolve) => {
      const ready = () => stdout.startsWith('ready\n') && resolve()
      if (!ready()) child.stdout!.on('data', ready)
    })
    expect(statSync(`/proc/${child.pid}/root/sys/fs/bpf`).dev).not.toBe(statSync('/sys/fs/bpf').dev)
    guard.setTenant('box', {
      match: { token: `/proc/${child.pid}/root/sys/fs/bpf` },
      policy: { progs: ['kprobe'], attachs: 'any', capabilities: { time: { helpers: ['ktime_get_ns'] } }, contexts: [{ progs: ['kprobe'], grant: ['time'] }] },
    })
    child.stdin!.end('go\n')
    expect(await closed, stderr).toBe(0)
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toMatchObject({ allowed: { ok: true }, refused: { ok: false, code: 'EPERM', command: 'prog_load' } })
  })

  test('tenants by cgroup: another tenant cannot open a tenant\'s pinned map; the host and the owner can', async () => {
    using fs = privateBpffs()
    using a = childCgroup()
    using b = childCgroup()
    const guard = await start()
    const policy: PolicyDocument = { maps: ['array'] }
    guard.setTenant('a', { match: { cgroup: a.path }, policy })
    guard.setTenant('b', { match: { cgroup: b.path }, policy })
    const pin = join(fs.path, 'owned')
    expect(inCgroup(a.path, 'guard-owner', ['pin', pin])).toEqual({ ok: true })
    let fromB: unknown
    const events = await eventsOf(guard, 1, () => { fromB = inCgroup(b.path, 'guard-owner', ['get', pin]) })
    expect(fromB).toMatchObject({ ok: false, code: 'EPERM' })
    expect(events.map((e) => e.message)).toEqual(["guard refused tenant 'b' map 'owned': it belongs to tenant 'a'"])
    expect(inCgroup(a.path, 'guard-owner', ['get', pin])).toEqual({ ok: true })
    native.closeFd(native.objGet(pin))
    expect(guard.tenants().find((t) => t.name === 'a')?.usage).toEqual({ maps: 1, bytes: 12n })

    // A removed tenant is nobody: its requests are not checked.
    expect(guard.removeTenant('b')).toBe(true)
    expect(guard.removeTenant('b')).toBe(false)
    expect(inCgroup(b.path, 'guard-owner', ['get', pin])).toEqual({ ok: true })

    // The map's last reference goes with its pin: its quota comes back (freed asynchronously).
    unlinkSync(pin)
    for (let i = 0; i < 50 && guard.tenants()[0].usage.maps !== 0; i++) await new Promise((r) => setTimeout(r, 100))
    expect(guard.tenants()[0].usage).toEqual({ maps: 0, bytes: 0n })
  })

  test('bad tenants are refused before anything changes', async () => {
    using a = childCgroup()
    const guard = await start()
    guard.setTenant('a', { match: { cgroup: a.path }, policy: {} })
    const before = guard.tenants()
    expect(() => guard.setTenant('b', { match: { cgroup: a.path }, policy: {} })).toThrow("guard.setTenant: tenant 'a' already matches cgroup")
    expect(() => guard.setTenant('bad name', { match: { cgroup: a.path }, policy: {} })).toThrow(TypeError)
    expect(() => guard.setTenant('b', { match: {}, policy: {} })).toThrow('match names nothing')
    expect(() => guard.setTenant('b', { match: { userns: '/etc/passwd' }, policy: {} })).toThrow('is not a namespace file')
    expect(() => guard.setTenant('b', { match: { cgroup: '/tmp' }, policy: {} })).toThrow('is not a cgroup v2 directory')
    expect(() => guard.setTenant('b', { match: { token: '/tmp' }, policy: {} })).toThrow('is not a bpffs')
    expect(() => guard.setTenant('b', { match: { cgroup: '/no/such' }, policy: {} })).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => guard.setTenant('b', { match: { cgroup: a.path }, policy: {}, quota: { maps: -1 } })).toThrow('quota.maps must be a non-negative integer')
    expect(() => guard.setTenant('b', { match: { userns: 1 }, policy: { maps: ['nope' as never] } })).toThrow(TypeError)
    expect(() => guard.setTenant('b', { match: { userns: 1 }, policy: {}, extra: 1 } as never)).toThrow("unknown option 'extra'")
    expect(guard.tenants()).toEqual(before)
  })
})

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-guard-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const policyFile = join(dir, 'tenant.json')
writeFileSync(policyFile, JSON.stringify({ cmds: ['map_create', 'prog_load'], maps: ['hash'], progs: ['socket_filter'], attachs: 'any' }))

// Why the guard cannot run here, as Guard.start's own probes say it; undefined where it can.
function guardMissing(): Error | undefined {
  try {
    features.haveGuardHooks()
    features.haveBpfLsm()
    return undefined
  } catch (e) {
    return e as Error
  }
}

describe('bpfkit guard (the command line)', () => {
  const missing = guardMissing()

  test('start where the guard cannot run: exit 1 naming the missing feature, nothing pinned', async (ctx) => {
    if (missing === undefined) ctx.skip('features.haveGuardHooks and haveBpfLsm pass here: the guard runs, so the next test starts and stops it instead')
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
