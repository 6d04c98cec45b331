// xdp links on the test's own veth pair (privateNetns): veth0 in the test's
// namespace receives the UDP datagrams a node child sends from the peer, and
// the fixture's programs count them (or drop them) in a map.
import { describe, expect, test } from 'vitest'
import { BpfLink, ids, type Collection } from '../../lib/index.js'
import { haveXdpLink } from '../../lib/features/attach-net.js'
import { attachXdp } from '../../lib/link/xdp.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateNetns } from './helpers/scratch.js'
import { receiveWhile, sendArgs } from './helpers/udp.js'

type Net = ReturnType<typeof privateNetns>

const loadNet = (): Promise<Collection> => fixtureSpec('attach-net').load()

const count = (coll: Collection, key: number): bigint => coll.maps.counts.get(key) as bigint
const sendFromPeer = (net: Net, n: number) => net.runPeer(process.execPath, sendArgs(n, '10.77.0.1'))
const linkIds = () => [...ids.links()].map((l) => l.id)
// What `bpftool net show` sees on veth0, from inside the test's namespace.
const xdpSeen = (net: Net) => (JSON.parse(net.run('bpftool', ['net', 'show', 'dev', 'veth0', '--json']))[0]?.xdp ?? []) as Array<{ devname: string; ifindex: number; mode: string; id: number }>

describe('attachXdp', () => {
  skipAllIf(requireFeature(haveXdpLink))

  test('counts the datagrams veth0 receives until detached; info, bpftool and ids agree', async (ctx) => {
    using net = privateNetns()
    using coll = await loadNet()
    const prog = coll.programs.xdp_count
    using link = attachXdp(prog, 'veth0', { netns: net.path })
    expect(link.kind).toBe('link')
    sendFromPeer(net, 5)
    expect(count(coll, 0)).toBe(5n)
    const info = link.info()
    expect(info).toMatchObject({ type: 'xdp', progId: prog.id, ifindex: net.ifindex() })
    expect(linkIds()).toContain(info.id)
    const tool = bpftool(ctx)
    // bpftool 7.1 shows no ifindex for xdp links; its net view (inside the namespace) does.
    expect(tool.json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'xdp', prog_id: prog.id })
    expect(xdpSeen(net)).toEqual([expect.objectContaining({ devname: 'veth0', ifindex: net.ifindex(), id: prog.id })])
    link.detach()
    expect(xdpSeen(net)).toEqual([])
    // A detached xdp link keeps its id and program but has no interface.
    expect(link.info()).toMatchObject({ id: info.id, ifindex: 0 })
    sendFromPeer(net, 3)
    expect(count(coll, 0)).toBe(5n)
    link.close()
    expect(linkIds()).not.toContain(info.id)
  })

  test('a dropping program: the receiver sees nothing until the link is closed', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const link = attachXdp(coll.programs.xdp_drop, net.ifindex(), { netns: net.path })
    try {
      expect(await receiveWhile(net.name, '10.77.0.1', () => sendFromPeer(net, 4))).toBe(0)
      expect(count(coll, 1)).toBe(4n)
    } finally {
      link.close()
    }
    expect(await receiveWhile(net.name, '10.77.0.1', () => sendFromPeer(net, 4))).toBe(4)
    expect(count(coll, 1)).toBe(4n)
  })

  test('update swaps the program in place: same link, the new program runs', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    using link = attachXdp(coll.programs.xdp_count, 'veth0', { netns: net.path })
    const id = link.id
    sendFromPeer(net, 2)
    link.update(coll.programs.xdp_drop, { expected: coll.programs.xdp_count })
    expect(link.info()).toMatchObject({ id, progId: coll.programs.xdp_drop.id })
    expect(await receiveWhile(net.name, '10.77.0.1', () => sendFromPeer(net, 3))).toBe(0)
    expect([count(coll, 0), count(coll, 1)]).toEqual([2n, 3n])
    // The expected program is no longer there: refused, nothing changes.
    expect(() => link.update(coll.programs.xdp_count, { expected: coll.programs.xdp_count })).toThrow(expect.objectContaining({ code: 'EPERM' }))
    expect(link.info().progId).toBe(coll.programs.xdp_drop.id)
  })

  test('generic and driver modes on a veth; one program per mode', async (ctx) => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    {
      using generic = attachXdp(coll.programs.xdp_count, 'veth0', { mode: 'generic', netns })
      sendFromPeer(net, 2)
      expect(count(coll, 0)).toBe(2n)
      expect(generic.info().type).toBe('xdp')
      bpftool(ctx)
      expect(xdpSeen(net)).toEqual([expect.objectContaining({ mode: 'generic', id: coll.programs.xdp_count.id })])
      // The slot is the link's: a second link on it is refused.
      expect(() => attachXdp(coll.programs.xdp_drop, 'veth0', { mode: 'generic', netns })).toThrow(expect.objectContaining({ code: 'EBUSY' }))
    }
    using driver = attachXdp(coll.programs.xdp_count, 'veth0', { mode: 'driver', netns })
    sendFromPeer(net, 2)
    expect(count(coll, 0)).toBe(4n)
    expect(xdpSeen(net)).toEqual([expect.objectContaining({ mode: 'driver', id: coll.programs.xdp_count.id })])
    driver.close()
    expect(xdpSeen(net)).toEqual([])
  })

  test('a netns by fd, and BpfLink.fromId / pin work on the xdp link', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const { openSync, closeSync } = await import('node:fs')
    const nsFd = openSync(net.path, 'r')
    try {
      using link = attachXdp(coll.programs.xdp_count, 'veth0', { netns: nsFd })
      using same = BpfLink.fromId(link.id)
      expect(same.info()).toEqual(link.info())
      sendFromPeer(net, 1)
      expect(count(coll, 0)).toBe(1n)
    } finally {
      closeSync(nsFd)
    }
  })

  test('bad input is refused with clear errors and leaves nothing attached', async () => {
    using net = privateNetns()
    using coll = await loadNet()
    const netns = net.path
    const before = linkIds()
    const xdp = coll.programs.xdp_count
    expect(() => attachXdp(xdp, 'nosuchif0', { netns })).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'if_nametoindex', message: expect.stringContaining("'nosuchif0'") }))
    // veth0 is not in the test runner's own namespace.
    expect(() => attachXdp(xdp, 'veth0', { netns: '/proc/self/ns/net' })).toThrow(/no interface of that name/)
    expect(() => attachXdp(xdp, 0, { netns })).toThrow(RangeError)
    expect(() => attachXdp(xdp, 99999, { netns })).toThrow(expect.objectContaining({ syscall: 'if_indextoname', message: expect.stringContaining('99999') }))
    expect(() => attachXdp(xdp, {} as never, { netns })).toThrow(TypeError)
    expect(() => attachXdp(coll.programs.tc_ingress, 'veth0', { netns })).toThrow(/the program is a sched_cls program; this hook runs xdp programs/)
    expect(() => attachXdp(xdp, 'veth0', { netns, mode: 'fast' as never })).toThrow(/mode must be/)
    expect(() => attachXdp(xdp, 'veth0', { netns, ifname: 'x' } as never)).toThrow(/unknown option 'ifname'/)
    expect(() => attachXdp(xdp, 'veth0', { netns: '/nonexistent/netns' })).toThrow(/cannot open the network namespace/)
    expect(() => attachXdp(xdp, 'veth0', { netns: '/proc/self/status' })).toThrow(expect.objectContaining({ syscall: 'setns', code: 'EINVAL' }))
    expect(() => attachXdp(null as never, 'veth0', { netns })).toThrow(/program must be a BpfProgram/)
    expect(linkIds()).toEqual(before)
    expect(xdpSeen(net)).toEqual([])
    // A closed program: the closed-object error, nothing made.
    const spec = await fixtureSpec('attach-net').load()
    const closed = spec.programs.xdp_count
    spec.close()
    expect(() => attachXdp(closed, 'veth0', { netns })).toThrow(/already closed/)
    expect(linkIds()).toEqual(before)
  })
})
