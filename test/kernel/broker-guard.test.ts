// The broker with the guard (issue 16, plan §6): the broker registers each
// tenant with the guard it starts, so the kernel enforces the tenant's broker
// policy when the tenant calls bpf() itself with its token, as any C tool in
// the container could. Two tenants (each a process in its own user namespace
// and cgroup, helpers/broker.ts); what the tenant "does itself" runs in
// another process joined to its cgroup and user namespace
// (helpers/tenant-process.ts) that makes raw bpf() calls with the tenant's
// token. The token delegates more than the broker's policy allows: only the
// guard stands between the two. The guard is pinned in the test's private
// bpffs, acts only on the test's tenants, and is stopped (links detached,
// pins removed) before the file ends.
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfProgram, features, Guard, ids } from '../../lib/index.js'
import { startBroker, type Broker } from '../../lib/broker/server.js'
import type { BrokerConfig, TenantConfig } from '../../lib/broker/config.js'
import { Policy, type PolicyDocument } from '../../lib/policy/index.js'
import type { Fd } from '../../lib/sys/index.js'
import type { GuardTenantAnswer, GuardTenantRequest } from '../fixtures/tenant/guard-tenant-loads.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'
import { eventsDuring } from './helpers/guard-events.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { cgroup2Root } from './helpers/scratch.js'
import { joinTenant, type TenantProcess } from './helpers/tenant-process.js'
import { userNamespacesMissing } from './helpers/tenant.js'

const why = requireFeature(features.haveGuardHooks) ?? requireFeature(features.haveBpfLsm)
  ?? requireFeature(features.havePeerPidfd) ?? requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

// The tenants' broker policies: socket filters that may look maps up; b may read the clock too.
const capabilities: PolicyDocument['capabilities'] = { count: { helpers: ['map_lookup_elem'], maps: ['hash', 'array'] }, time: { helpers: ['ktime_get_ns'] } }
const basePolicy = { cmds: ['map_create', 'prog_load'], maps: ['hash', 'array'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'], capabilities } satisfies PolicyDocument
const noClock: PolicyDocument = { ...basePolicy, contexts: [{ progs: ['socket_filter'], grant: ['count'] }] }
const withClock: PolicyDocument = { ...basePolicy, contexts: [{ progs: ['socket_filter'], grant: ['count', 'time'] }] }
// What the tenants' tokens delegate (the default testPolicy of helpers/broker.ts): ringbuf maps and cgroup_skb programs too.
const refused = { ok: false, name: 'BpfError', code: 'EPERM' }
const ok = { ok: true }

const refusals = {
  clock: (t: string) => `guard refused prog 'clock' of tenant '${t}': helper ktime_get_ns at insn 0 is not granted in context socket_filter`,
  cgroupSkb: (t: string) => `guard refused prog 'skb' of tenant '${t}': program type cgroup_skb is not delegated`,
  ringbuf: (t: string) => `guard refused map 'ring' of tenant '${t}': map type ringbuf is not delegated`,
}

/** The refusals `guard` reports while `during` runs: until `count` have come, or two seconds pass after it. */
const refusalsDuring = (guard: Guard, count: number, during: () => Promise<void>) => eventsDuring(guard, count, during, 2000)

/** The ids of the links pinned in the guard's directory (one per hook). */
function pinnedLinkIds(pinPath: string): number[] {
  return readdirSync(pinPath).filter((f) => f.endsWith('_link')).map((f) => {
    const link = BpfLink.fromPin(join(pinPath, f))
    try {
      return link.id
    } finally {
      link.close()
    }
  }).sort((x, y) => x - y)
}

/** The live programs of guards (their hooks are all named guard_*). */
const guardProgIds = () => new Set([...ids.programs()].filter((p) => p.name.startsWith('guard_')).map((p) => p.id))

/**
 * Waits (10 s at most) until none of `progIds` is live. A guard's links go
 * when their pins do, but the kernel frees an unpinned link from a work
 * queue after an RCU grace period: its id goes first, then the hook is
 * detached, then its program goes. So a gone program is a detached hook.
 */
async function programsGone(progIds: () => Iterable<number>): Promise<number[]> {
  const left = () => {
    const live = new Set([...ids.programs()].map((p) => p.id))
    return [...progIds()].filter((id) => live.has(id))
  }
  for (let i = 0; i < 200 && left().length > 0; i++) await new Promise((r) => setTimeout(r, 50))
  return left()
}

describe('broker with the guard: the kernel enforces each tenant\'s broker policy', () => {
  skipAllIf(why)
  let tb: TestBroker
  let broker: Broker | undefined
  let config: BrokerConfig
  let pinPath: string
  let linkIds: number[]
  let progIds: number[]
  const procs: Record<string, TenantProcess> = {}
  const tokens: Record<string, Fd> = {}
  const guard = () => broker!.state.guard!
  /** Tenant `name`'s own process makes `requests` with the tenant's token. */
  const itself = async (name: string, requests: GuardTenantRequest[]) => (await procs[name].ask<GuardTenantAnswer>({ requests }, [tokens[name]])).outcomes
  const tenantConfig = (name: string, extra: Partial<TenantConfig>): TenantConfig => {
    const t = tb.tenant(name)
    return { name, match: { cgroup: t.cgroupPath, userns: t.usernsIno }, policy: noClock, ...extra }
  }

  beforeAll(async () => {
    if (why) return
    // The helper makes the tenants, the private bpffs and the state dir, with a
    // broker that runs no guard; a broker with the guard takes its place on the
    // same socket and state, its guard pinned in the same bpffs.
    tb = await startTestBroker({ tenants: ['a', 'b'] })
    await tb.broker.close()
    pinPath = join(tb.bpffs, 'guard')
    config = {
      socket: tb.socketPath, socketMode: 0o666, stateDir: tb.stateDir, pinRoot: tb.pinRoot, tenantPinRoot: tb.tenantPinRoot,
      cgroupRoot: cgroup2Root(), guard: { pinPath },
      tenants: [tenantConfig('a', { policy: noClock, quota: { maps: 8 } }), tenantConfig('b', { policy: withClock })],
    }
    broker = await startBroker(config)
    for (const name of ['a', 'b']) {
      // Made in the tenant's user namespace while the guard runs, from a delegation wider than the policy.
      tokens[name] = await tb.tenant(name).token()
      procs[name] = await joinTenant(tb.tenant(name), 'guard-tenant-loads')
    }
  })

  afterAll(async () => {
    if (why) return
    for (const p of Object.values(procs)) await p.stop()
    for (const t of Object.values(tokens)) t.close()
    await broker?.close()
    // Whatever a failed test left: the guard must not outlive the file.
    if (pinPath !== undefined && existsSync(join(pinPath, 'records'))) (await Guard.open(pinPath)).stop()
    await tb?.close()
  })

  test('the broker started the guard and registered both tenants with their policies and quotas', () => {
    linkIds = pinnedLinkIds(pinPath)
    expect(linkIds).toHaveLength(8)
    const live = new Map([...ids.links()].map((l) => [l.id, l]))
    expect(linkIds.every((id) => live.get(id)?.attachType === 'lsm_mac')).toBe(true)
    progIds = linkIds.map((id) => live.get(id)!.progId)
    expect([...guardProgIds()]).toEqual(expect.arrayContaining(progIds))
    expect(guard().tenants()).toMatchObject([
      { name: 'a', match: { cgroup: tb.tenant('a').cgroupDir, userns: tb.tenant('a').usernsIno }, policy: Policy.from(noClock).toJSON(), quota: { maps: 8 } },
      { name: 'b', match: { cgroup: tb.tenant('b').cgroupDir, userns: tb.tenant('b').usernsIno }, policy: Policy.from(withClock).toJSON(), quota: {} },
    ])
  })

  test('a tenant calling bpf() itself with its token is refused by the kernel what its policy does not allow; what it allows loads', async () => {
    const before = guard().stats().refused
    let a: GuardTenantAnswer['outcomes'] = {}
    const events = await refusalsDuring(guard(), 3, async () => {
      a = await itself('a', ['plain', 'hash', 'clock', 'cgroupSkb', 'ringbuf'])
    })
    // The token delegates all five: the refusals are the guard's (EPERM at prog_load and map_create).
    expect(a).toMatchObject({
      plain: ok, hash: ok,
      clock: { ...refused, command: 'prog_load' }, cgroupSkb: { ...refused, command: 'prog_load' }, ringbuf: { ...refused, command: 'map_create' },
    })
    expect(events.map((e) => e.message).sort()).toEqual([refusals.clock('a'), refusals.cgroupSkb('a'), refusals.ringbuf('a')].sort())
    expect(events.every((e) => e.tenant === 'a' && e.pid === procs.a.pid)).toBe(true)
    expect(events.find((e) => e.kind === 'helper')).toMatchObject({ object: 'prog', name: 'clock', helper: 'ktime_get_ns', progType: 'socket_filter', insn: 0 })
    expect(guard().stats().refused - before).toBe(3n)
  })

  test('the other tenant is held to its own policy only, and the host (this process) to none', async () => {
    const before = guard().stats().refused
    let b: GuardTenantAnswer['outcomes'] = {}
    const events = await refusalsDuring(guard(), 1, async () => {
      b = await itself('b', ['clock', 'ringbuf'])
    })
    // b's policy grants the clock: what a was refused loads for b; ringbuf is outside b's policy too.
    expect(b).toMatchObject({ clock: ok, ringbuf: { ...refused, command: 'map_create' } })
    expect(events.map((e) => e.message)).toEqual([refusals.ringbuf('b')])
    // This process is no tenant: the clock, a ringbuf, a cgroup_skb program, all without a token.
    BpfProgram.loadSync({ type: 'socket_filter', name: 'clock', license: 'GPL', insns: [asm.call('ktime_get_ns'), asm.mov64Imm(asm.R0, 0), asm.exit()] }).close()
    BpfProgram.loadSync({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', name: 'skb', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()] }).close()
    expect(guard().stats().refused - before).toBe(1n)
    // Through the broker, a's allowed program loads (the broker loads it, as no tenant of the guard).
    using client = await tb.tenant('a').client()
    const prog = await client.loadProgram({ type: 'socket_filter', name: 'viabroker', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] })
    prog.close()
  })

  test('removeTenant and setTenant at run time unregister and update the tenant in the guard', async () => {
    broker!.removeTenant('a')
    expect(guard().tenants().map((t) => t.name)).toEqual(['b'])
    // Unregistered: the kernel checks only the token's masks, which delegate all of it.
    expect(await itself('a', ['clock', 'cgroupSkb', 'ringbuf'])).toMatchObject({ clock: ok, cgroupSkb: ok, ringbuf: ok })

    broker!.setTenant(tenantConfig('a', { policy: withClock }))
    expect(guard().tenants().find((t) => t.name === 'a')).toMatchObject({ policy: Policy.from(withClock).toJSON(), match: { userns: tb.tenant('a').usernsIno } })
    let a: GuardTenantAnswer['outcomes'] = {}
    const events = await refusalsDuring(guard(), 1, async () => {
      a = await itself('a', ['clock', 'ringbuf'])
    })
    expect(a).toMatchObject({ clock: ok, ringbuf: { ...refused, command: 'map_create' } })
    expect(events.map((e) => e.message)).toEqual([refusals.ringbuf('a')])

    // A tenant the guard refuses to take (a match with nothing to key on) changes nothing, in the broker or the guard.
    const registered = guard().tenants()
    expect(() => broker!.setTenant({ name: 'c', match: { uid: [12345] }, policy: noClock })).toThrow('tenant c: guard is on but its match has neither a cgroup nor a user namespace inode')
    expect(guard().tenants()).toEqual(registered)
    expect(broker!.state.config.tenants.map((t) => t.name)).toEqual(['b', 'a'])
  })

  test('a broker restart reopens the pinned guard, which enforced meanwhile, and re-syncs the tenants from its config', async () => {
    await broker!.close()
    broker = undefined
    // No broker runs: the pinned guard still holds a to the policy set at run time.
    {
      using pinned = await Guard.open(pinPath)
      let a: GuardTenantAnswer['outcomes'] = {}
      const events = await refusalsDuring(pinned, 1, async () => {
        a = await itself('a', ['clock', 'ringbuf'])
      })
      expect(a).toMatchObject({ clock: ok, ringbuf: refused })
      expect(events.map((e) => e.message)).toEqual([refusals.ringbuf('a')])
    }

    // The config on restart: a as at first (no clock), b no longer guarded.
    broker = await startBroker({ ...config, tenants: [tenantConfig('a', { policy: noClock, quota: { maps: 8 } }), tenantConfig('b', { policy: withClock, guard: false })] })
    // Reopened, not started again: the same links, no new ones.
    expect(pinnedLinkIds(pinPath)).toEqual(linkIds)
    expect(guard().tenants()).toMatchObject([{ name: 'a', policy: Policy.from(noClock).toJSON(), quota: { maps: 8 } }])
    let a: GuardTenantAnswer['outcomes'] = {}
    let b: GuardTenantAnswer['outcomes'] = {}
    const events = await refusalsDuring(guard(), 1, async () => {
      a = await itself('a', ['clock'])
      b = await itself('b', ['ringbuf'])
    })
    expect(a).toMatchObject({ clock: refused })
    expect(b).toMatchObject({ ringbuf: ok })
    expect(events.map((e) => e.message)).toEqual([refusals.clock('a')])
  })

  test('a broker that fails to start stops the guard it started: nothing stays pinned or attached', async () => {
    const failedPin = join(tb.bpffs, 'guard-failed')
    const notASocket = join(tb.dir, 'not-a-socket')
    writeFileSync(notASocket, '')
    const before = guardProgIds()
    // The guard starts and the tenants are registered with it before listen() meets the regular file.
    await expect(startBroker({
      ...config, socket: notASocket, stateDir: join(tb.dir, 'state-failed'), pinRoot: join(tb.bpffs, 'broker-failed'),
      tenantPinRoot: join(tb.bpffs, 'tenants-failed'), guard: { pinPath: failedPin },
    })).rejects.toMatchObject({ code: 'EEXIST' })
    expect(existsSync(failedPin)).toBe(false)
    // Its hooks are detached: no guard program but those from before stays.
    expect(await programsGone(() => [...guardProgIds()].filter((id) => !before.has(id)))).toEqual([])
    // The running broker's guard is untouched.
    expect(pinnedLinkIds(pinPath)).toEqual(linkIds)
    expect(guard().tenants().map((t) => t.name)).toEqual(['a'])
  })

  test('stopping the guard detaches every hook and removes its pins', async () => {
    await broker?.close()
    broker = undefined
    // The broker leaves its guard pinned and running; stopping it is the manager's word.
    expect(pinnedLinkIds(pinPath)).toEqual(linkIds)
    ;(await Guard.open(pinPath)).stop()
    expect(existsSync(pinPath)).toBe(false)
    expect(await programsGone(() => progIds)).toEqual([])
    const live = new Set([...ids.links()].map((l) => l.id))
    expect(linkIds.filter((id) => live.has(id))).toEqual([])
    // Nothing checks a now: the token's masks alone.
    expect(await itself('a', ['clock', 'ringbuf'])).toMatchObject({ clock: ok, ringbuf: ok })
  })
})
