// A flow dissector on the test's own network namespace: packets the test
// sends into it from the peer namespace are dissected by the program (its
// counter moves). Receive packet steering on veth0 makes the kernel hash
// (and so dissect) every packet veth0 receives.
import { statSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { ids, type BpfMap, type BpfProgram, type Collection } from '../../lib/index.js'
import { haveNetnsLinks } from '../../lib/features/attach-sockets.js'
import { attachNetns } from '../../lib/link/netns.js'
import { fixtureSpec } from './helpers/collection.js'
import { bpftool } from './helpers/bpftool.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateNetns } from './helpers/scratch.js'

// Slots of `counts` (attach-sockets.bpf.c).
const DISSECTED = 2
const DISSECTED_OTHER = 3

let coll: Collection
// Not the object's netfilter program: it needs 6.4.
beforeEach(async () => {
  coll = await fixtureSpec('attach-sockets').load({ programs: ['count_flows', 'count_flows_other'] })
})
afterEach(() => coll?.close())

const count = (slot: number): bigint => (coll.maps.counts as BpfMap<number, bigint>).get(slot) as bigint
const prog = (name: string) => coll.programs[name] as BpfProgram
const linked = (p: BpfProgram) => [...ids.links()].filter((l) => l.progId === p.id)

// Three UDP datagrams from the peer (10.77.0.2) to veth0's address.
const SEND = `const s = require('dgram').createSocket('udp4'); let n = 0
const go = () => s.send('x', 9, '10.77.0.1', () => (++n < 3 ? go() : s.close())); go()`

/** Receive steering hands packets to another CPU's backlog: give it time to finish. */
const drained = () => new Promise((resolve) => setTimeout(resolve, 200))

/** The test's namespaces, with RPS on veth0 so that every packet it receives is dissected. */
function dissectingNetns() {
  const ns = privateNetns()
  ns.run('sh', ['-c', 'echo 1 > /sys/class/net/veth0/queues/rx-0/rps_cpus'])
  return ns
}

describe('attachNetns: flow_dissector', () => {
  skipAllIf(requireFeature(haveNetnsLinks))

  test('dissects the namespace\'s packets; update swaps the program; detach ends it', async (ctx) => {
    using ns = dissectingNetns()
    const sendIn = () => ns.runPeer(process.execPath, ['-e', SEND])
    using link = attachNetns(prog('count_flows'), ns.path)
    const info = link.info()
    expect(info).toMatchObject({ type: 'netns', progId: prog('count_flows').id, attachType: 'flow_dissector', netnsIno: statSync(ns.path).ino })
    expect(linked(prog('count_flows')).map((l) => l.id)).toEqual([info.id])
    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, type: 'netns', prog_id: info.progId, netns_ino: info.netnsIno, attach_type: 'flow_dissector' })

    sendIn()
    const seen = count(DISSECTED)
    expect(seen).toBeGreaterThanOrEqual(3n)

    // One dissector per namespace: a second link is refused, the first stays.
    expect(() => attachNetns(prog('count_flows_other'), ns.path)).toThrow(expect.objectContaining({ code: 'E2BIG', message: expect.stringMatching(/already has a flow dissector/) }))
    link.update(prog('count_flows_other'))
    expect(link.info()).toMatchObject({ id: info.id, progId: prog('count_flows_other').id })
    // A packet (the peer's ARP, say) already being dissected when update
    // returned may still count for the old program: read after it is done.
    await drained()
    const before = count(DISSECTED)
    sendIn()
    await drained()
    expect(count(DISSECTED)).toBe(before)
    expect(count(DISSECTED_OTHER)).toBeGreaterThanOrEqual(3n)

    link.detach()
    expect(link.info()).toMatchObject({ id: info.id, netnsIno: 0 })
    await drained()
    const other = count(DISSECTED_OTHER)
    sendIn()
    await drained()
    expect([count(DISSECTED), count(DISSECTED_OTHER)]).toEqual([before, other])
    link.close()
    expect(linked(prog('count_flows_other'))).toEqual([])
  })

  test('a flow dissector on one namespace does not see another\'s packets', () => {
    using ns = dissectingNetns()
    using peer = attachNetns(prog('count_flows'), `/run/netns/${ns.peerName}`)
    expect(peer.info().netnsIno).toBe(statSync(`/run/netns/${ns.peerName}`).ino)
    // The peer only sends: nothing it receives needs hashing there.
    ns.runPeer(process.execPath, ['-e', SEND])
    expect(count(DISSECTED)).toBe(0n)
    using main = attachNetns(prog('count_flows_other'), ns.path)
    ns.runPeer(process.execPath, ['-e', SEND])
    expect(count(DISSECTED_OTHER)).toBeGreaterThanOrEqual(3n)
  })
})
