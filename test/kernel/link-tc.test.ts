// tc programs on the test's own veth pair (privateNetns): tcx links where the
// kernel has them (6.6+), and the classic clsact qdisc + bpf filter over
// netlink on every kernel (forced with mode 'netlink' where tcx exists). The
// fixture's programs count the UDP datagrams the test sends in a map.
import { describe, expect, test } from 'vitest'
import { ids, type Collection } from '../../lib/index.js'
import { haveNetkit, haveTcClassic, haveTcx } from '../../lib/features/attach-net.js'
import { attachNetkit, queryNetkit } from '../../lib/link/netkit.js'
import { attachTc, queryTc } from '../../lib/link/tc.js'
import { native } from '../../lib/sys/index.js'
import { inNetns } from '../../lib/sys/netns.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateNetns } from './helpers/scratch.js'
import { receiveWhile, sendArgs } from './helpers/udp.js'

type Net = ReturnType<typeof privateNetns>

const loadNet = (): Promise<Collection> => fixtureSpec('attach-net').load()
const count = (coll: Collection, key: number): bigint => coll.maps.counts.get(key) as bigint
// Datagrams into veth0 (its ingress) and out of it (its egress).
const sendIn = (net: Net, n: number) => net.runPeer(process.execPath, sendArgs(n, '10.77.0.1'))
const sendOut = (net: Net, n: number) => net.run(process.execPath, sendArgs(n, '10.77.0.2'))
const linkIds = () => [...ids.links()].map((l) => l.id)
const qdiscs = (net: Net) => net.run('tc', ['qdisc', 'show', 'dev', 'veth0'])
const hasClsact = (net: Net) => /qdisc clsact/.test(qdiscs(net))

describe('tcx links', () => {
  skipAllIf(requireFeature(haveTcx))

  test('ingress and egress counters; info, queryTc, bpftool and ids agree; detach removes it', async (ctx) => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    using ingress = attachTc(coll.programs.tc_ingress, 'veth0', { direction: 'ingress', netns })
    using egress = attachTc(coll.programs.tc_egress, net.ifindex(), { direction: 'egress', netns })
    expect([ingress.kind, egress.kind]).toEqual(['link', 'link'])
    sendIn(net, 5)
    sendOut(net, 3)
    expect([count(coll, 2), count(coll, 3)]).toEqual([5n, 3n])
    const info = ingress.info()
    expect(info).toMatchObject({ type: 'tcx', progId: coll.programs.tc_ingress.id, attachType: 'tcx_ingress', ifindex: net.ifindex() })
    expect(egress.info()).toMatchObject({ type: 'tcx', attachType: 'tcx_egress', ifindex: net.ifindex() })
    const q = queryTc('veth0', 'ingress', { netns })
    expect(q.tcx.programs).toEqual([{ programId: coll.programs.tc_ingress.id, linkId: info.id }])
    expect(q.filters).toEqual([])
    expect(hasClsact(net)).toBe(false)
    expect(linkIds()).toContain(info.id)
    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, prog_id: coll.programs.tc_ingress.id })
    // bpftool before 7.3 prints the link type of tcx as its number.
    expect(['tcx', info.typeId]).toContain(shown.type)
    ingress.detach()
    expect(queryTc('veth0', 'ingress', { netns }).tcx.programs).toEqual([])
    sendIn(net, 2)
    expect(count(coll, 2)).toBe(5n)
    ingress.close()
    expect(linkIds()).not.toContain(info.id)
  })

  test('before/after by link, program, id and "all": queryTc shows the order, and packets follow it', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const p = coll.programs
    const direction = 'ingress'
    using other = attachTc(p.tc_other, 'veth0', { direction, netns })
    using drop = attachTc(p.tc_drop, 'veth0', { direction, netns, before: other })
    using counter = attachTc(p.tc_ingress, 'veth0', { direction, netns, before: 'all' })
    const order = () => queryTc('veth0', direction, { netns }).tcx.programs.map((e) => e.programId)
    expect(order()).toEqual([p.tc_ingress.id, p.tc_drop.id, p.tc_other.id])
    // tc_drop runs before tc_other: tc_other never sees the datagrams.
    expect(await receiveWhile(net.name, '10.77.0.1', () => sendIn(net, 3))).toBe(0)
    expect([count(coll, 2), count(coll, 4), count(coll, 5)]).toEqual([3n, 3n, 0n])
    drop.close()
    sendIn(net, 2)
    expect([count(coll, 2), count(coll, 5)]).toEqual([5n, 2n])
    expect(order()).toEqual([p.tc_ingress.id, p.tc_other.id])
    // By program id and by link id; the egress program is just another program here.
    using last = attachTc(p.tc_egress, 'veth0', { direction, netns, after: { linkId: other.id } })
    expect(order()).toEqual([p.tc_ingress.id, p.tc_other.id, p.tc_egress.id])
    last.close()
    using mid = attachTc(p.tc_egress, 'veth0', { direction, netns, after: { programId: p.tc_ingress.id } })
    expect(order()).toEqual([p.tc_ingress.id, p.tc_egress.id, p.tc_other.id])
    mid.close()
    using byProgram = attachTc(p.tc_egress, 'veth0', { direction, netns, before: p.tc_other })
    expect(order()).toEqual([p.tc_ingress.id, p.tc_egress.id, p.tc_other.id])
    byProgram.close()
    // A revision that is not the hook's: ESTALE, nothing attached; the current one works.
    const { revision } = queryTc('veth0', direction, { netns }).tcx
    expect(() => attachTc(p.tc_drop, 'veth0', { direction, netns, after: 'all', expectedRevision: revision - 1n })).toThrow(expect.objectContaining({ code: 'ESTALE' }))
    using tail = attachTc(p.tc_drop, 'veth0', { direction, netns, after: 'all', expectedRevision: revision })
    expect(order()).toEqual([p.tc_ingress.id, p.tc_other.id, p.tc_drop.id])
    tail.close()
    // Relative to something not attached there: ENOENT.
    expect(() => attachTc(p.tc_drop, 'veth0', { direction: 'egress', netns, before: counter })).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    // The same program twice on one hook: EEXIST.
    expect(() => attachTc(p.tc_other, 'veth0', { direction, netns })).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    expect(order()).toEqual([p.tc_ingress.id, p.tc_other.id])
  })

  test('update swaps the program of a tcx link in place', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    using link = attachTc(coll.programs.tc_ingress, 'veth0', { direction: 'ingress', netns: net.path })
    const id = link.id
    link.update(coll.programs.tc_other)
    expect(link.info()).toMatchObject({ id, progId: coll.programs.tc_other.id })
    sendIn(net, 2)
    expect([count(coll, 2), count(coll, 5)]).toEqual([0n, 2n])
  })
})

describe('classic tc filters over netlink', () => {
  skipAllIf(requireFeature(haveTcClassic))

  test('a filter counts; info, tc and queryTc agree; closing removes the filter and the qdisc bpfkit made', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    expect(hasClsact(net)).toBe(false)
    const link = attachTc(coll.programs.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns })
    expect(link.kind).toBe('netlink')
    expect(hasClsact(net)).toBe(true)
    sendIn(net, 4)
    expect(count(coll, 2)).toBe(4n)
    const info = link.info()
    expect(info).toMatchObject({ id: 0, type: 'tc_filter', progId: coll.programs.tc_ingress.id, ifindex: net.ifindex(), direction: 'ingress' })
    const { priority, handle } = info as unknown as { priority: number; handle: number }
    expect(priority).toBeGreaterThan(0)
    expect(handle).toBeGreaterThan(0)
    expect(queryTc('veth0', 'ingress', { netns }).filters).toEqual([
      { priority, handle, protocol: 3, chain: 0, kind: 'bpf', progId: coll.programs.tc_ingress.id, name: 'tc_ingress', directAction: true },
    ])
    expect(queryTc('veth0', 'egress', { netns }).filters).toEqual([])
    const shown = net.run('tc', ['filter', 'show', 'dev', 'veth0', 'ingress'])
    expect(shown).toContain('direct-action')
    expect(shown).toContain(`id ${coll.programs.tc_ingress.id}`)
    expect(shown).toContain(`pref ${priority}`)
    link.close()
    expect(hasClsact(net)).toBe(false)
    sendIn(net, 2)
    expect(count(coll, 2)).toBe(4n)
    expect(() => link.info()).toThrow(/already closed/)
    link.close()
  })

  test('a dropping filter on egress: the peer receives nothing until it is detached', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    using link = attachTc(coll.programs.tc_drop, 'veth0', { direction: 'egress', mode: 'netlink', netns: net.path, priority: 7, handle: 9 })
    expect(link.info()).toMatchObject({ priority: 7, handle: 9, direction: 'egress' })
    expect(await receiveWhile(net.peerName, '10.77.0.2', () => sendOut(net, 3))).toBe(0)
    expect(count(coll, 4)).toBe(3n)
    link.detach()
    expect(await receiveWhile(net.peerName, '10.77.0.2', () => sendOut(net, 3))).toBe(3)
    expect(() => link.info()).toThrow(/detached/)
  })

  test("a qdisc the test made stays, and so do other filters; bpfkit's own qdisc goes with its last filter", async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const p = coll.programs
    // The test's own qdisc: bpfkit must leave it.
    net.run('tc', ['qdisc', 'add', 'dev', 'veth0', 'clsact'])
    attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns }).close()
    expect(hasClsact(net)).toBe(true)
    net.run('tc', ['qdisc', 'del', 'dev', 'veth0', 'clsact'])
    // bpfkit's qdisc, shared by two of its filters: the last one out removes it.
    const a = attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns })
    const b = attachTc(p.tc_egress, 'veth0', { direction: 'egress', mode: 'netlink', netns })
    a.close()
    expect(hasClsact(net)).toBe(true)
    expect(queryTc('veth0', 'egress', { netns }).filters.map((f) => f.progId)).toEqual([p.tc_egress.id])
    b.close()
    expect(hasClsact(net)).toBe(false)
    // bpfkit's qdisc with someone else's filter added later: both stay.
    const c = attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns })
    net.run('tc', ['filter', 'add', 'dev', 'veth0', 'ingress', 'prio', '100', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0'])
    c.close()
    expect(hasClsact(net)).toBe(true)
    // (u32 lists its hash table and its filter: two entries.)
    expect(new Set(queryTc('veth0', 'ingress', { netns }).filters.map((f) => `${f.kind} ${f.priority}`))).toEqual(new Set(['u32 100']))
  })

  test('update replaces the program in place; a filter removed behind bpfkit is not touched again', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const p = coll.programs
    using link = attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns, priority: 3 })
    const { handle } = link.info() as unknown as { handle: number }
    expect(() => link.update(p.tc_other, { expected: p.tc_drop })).toThrow(/expected program/)
    link.update(p.tc_other, { expected: p.tc_ingress })
    expect(link.info()).toMatchObject({ progId: p.tc_other.id, priority: 3, handle })
    sendIn(net, 2)
    expect([count(coll, 2), count(coll, 5)]).toEqual([0n, 2n])
    expect(() => link.update(coll.programs.xdp_count)).toThrow(/this hook runs sched_cls programs/)
    // Someone deletes the filter and puts their own at the same place.
    net.run('tc', ['filter', 'del', 'dev', 'veth0', 'ingress', 'prio', '3', 'handle', String(handle), 'bpf'])
    inNetns(netns, () => native.tcFilterAdd({ ifindex: net.ifindex(), egress: false, priority: 3, handle, progFd: p.tc_drop.fd, name: 'theirs' }))
    link.close()
    expect(queryTc('veth0', 'ingress', { netns }).filters.map((f) => f.name)).toEqual(['theirs'])
  })

  test('bad input gives clear errors and leaves nothing attached, no qdisc either', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const p = coll.programs
    const before = linkIds()
    const nothing = () => {
      expect(hasClsact(net)).toBe(false)
      expect(linkIds()).toEqual(before)
    }
    for (const mode of ['netlink', 'auto'] as const) {
      expect(() => attachTc(p.tc_ingress, 'nosuchif0', { direction: 'ingress', mode, netns })).toThrow(expect.objectContaining({ code: 'ENODEV', message: expect.stringContaining("'nosuchif0'") }))
      expect(() => attachTc(p.tc_ingress, 0, { direction: 'ingress', mode, netns })).toThrow(RangeError)
      expect(() => attachTc(p.xdp_count, 'veth0', { direction: 'ingress', mode, netns })).toThrow(/the program is a xdp program; this hook runs sched_cls programs/)
    }
    expect(() => attachTc(p.tc_ingress, 'veth0', { netns } as never)).toThrow(/direction must be 'ingress' or 'egress'/)
    expect(() => attachTc(p.tc_ingress, 'veth0', undefined as never)).toThrow(TypeError)
    expect(() => attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns, before: 'all' })).toThrow(/need mode 'tcx'/)
    expect(() => attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'tcx', netns, priority: 1 })).toThrow(/need mode 'netlink'/)
    expect(() => attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns, priority: 70000 })).toThrow(RangeError)
    expect(() => attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'bpf' as never, netns })).toThrow(/mode must be/)
    expect(() => attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', netns, before: 42 as never })).toThrow(/before must be/)
    nothing()
    // A filter already at that priority and handle: the kernel's refusal, nothing else made or removed.
    using first = attachTc(p.tc_ingress, 'veth0', { direction: 'ingress', mode: 'netlink', netns, priority: 5, handle: 1 })
    expect(() => attachTc(p.tc_other, 'veth0', { direction: 'ingress', mode: 'netlink', netns, priority: 5, handle: 1 })).toThrow(expect.objectContaining({ syscall: 'RTM_NEWTFILTER', code: 'EEXIST' }))
    expect(queryTc('veth0', 'ingress', { netns }).filters.map((f) => f.progId)).toEqual([p.tc_ingress.id])
    first.close()
    nothing()
    const spec = await loadNet()
    const closed = spec.programs.tc_ingress
    spec.close()
    expect(() => attachTc(closed, 'veth0', { direction: 'ingress', mode: 'netlink', netns })).toThrow(/already closed/)
    expect(() => attachTc(closed, 'veth0', { direction: 'ingress', netns })).toThrow(/already closed/)
    nothing()
  })
})

describe('netkit links', () => {
  skipAllIf(requireFeature(haveNetkit))

  test('primary and peer programs on a netkit pair the test made: each counts what its side sends', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const p = coll.programs
    // An L2 pair (the programs parse Ethernet headers): nk0 here, nk1 in the peer namespace.
    inNetns(netns, () => native.netkitCreate('nk0', 'nk1', true))
    net.run('ip', ['link', 'set', 'nk1', 'netns', net.peerName])
    net.run('ip', ['addr', 'add', '10.78.0.1/24', 'dev', 'nk0'])
    net.runPeer('ip', ['addr', 'add', '10.78.0.2/24', 'dev', 'nk1'])
    net.run('ip', ['link', 'set', 'nk0', 'up'])
    net.runPeer('ip', ['link', 'set', 'nk1', 'up'])
    using primary = attachNetkit(p.tc_ingress, 'nk0', { netns })
    using peer = attachNetkit(p.tc_egress, 'nk0', { side: 'peer', netns })
    expect(primary.info()).toMatchObject({ type: 'netkit', attachType: 'netkit_primary', progId: p.tc_ingress.id, ifindex: net.ifindex('nk0') })
    expect(peer.info()).toMatchObject({ type: 'netkit', attachType: 'netkit_peer', progId: p.tc_egress.id })
    net.run(process.execPath, sendArgs(3, '10.78.0.2'))
    net.runPeer(process.execPath, sendArgs(2, '10.78.0.1'))
    expect([count(coll, 2), count(coll, 3)]).toEqual([3n, 2n])
    using first = attachNetkit(p.tc_other, 'nk0', { netns, before: primary })
    expect(queryNetkit('nk0', { netns }).programs.map((e) => e.programId)).toEqual([p.tc_other.id, p.tc_ingress.id])
    expect(queryNetkit('nk0', { netns, side: 'peer' }).programs.map((e) => e.programId)).toEqual([p.tc_egress.id])
    first.close()
    expect(linkIds()).toContain(primary.id)
    // Programs go through the primary device: the peer itself is refused, and so is a device that is no netkit.
    expect(() => attachNetkit(p.tc_drop, 'nk1', { netns: `/run/netns/${net.peerName}` })).toThrow(expect.objectContaining({ code: 'EACCES' }))
    expect(() => attachNetkit(p.tc_drop, 'veth0', { netns })).toThrow(expect.objectContaining({ code: 'ENXIO' }))
  })
})
