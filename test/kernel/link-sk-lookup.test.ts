// sk_lookup on the test's own network namespace: a connection made inside it
// to a port nothing listens on reaches the listening socket the program
// finds in a sockmap. The client and its listener run in a child inside the
// namespace (test/fixtures/tenant/sk-lookup-client.ts); the test attaches by
// the namespace's path and reads the program's counters.
import { spawnSync } from 'node:child_process'
import { closeSync, openSync, statSync } from 'node:fs'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { ids, type BpfMap, type BpfProgram, type Collection } from '../../lib/index.js'
import { haveSkLookup } from '../../lib/features/attach-sockets.js'
import { attachNetns } from '../../lib/link/netns.js'
import { fixtureSpec } from './helpers/collection.js'
import { bpftool } from './helpers/bpftool.js'
import { fdTable, opened } from './helpers/fds.js'
import { tenantFixture } from './helpers/raw.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateNetns } from './helpers/scratch.js'

// Slots of `counts` (attach-sockets.bpf.c) and the port its programs answer.
const STEERED = 0
const REFUSED = 1
const PORT = 7007

let coll: Collection
// Not the object's netfilter program: it needs 6.4.
beforeEach(async () => {
  coll = await fixtureSpec('attach-sockets').load({ programs: ['steer_to_socket', 'refuse_port', 'count_msgs'] })
})
afterEach(() => coll?.close())

const count = (slot: number): bigint => (coll.maps.counts as BpfMap<number, bigint>).get(slot) as bigint
const prog = (name: string) => coll.programs[name] as BpfProgram
const linked = (p: BpfProgram) => [...ids.links()].filter((l) => l.progId === p.id)

/** Connects to PORT from inside the namespace; 'steered' when the child's own listener answered, else the error code. */
function connectInside(ns: ReturnType<typeof privateNetns>): string {
  const out = ns.run(process.execPath, [tenantFixture('sk-lookup-client'), String((coll.maps.lookup_socks as BpfMap).id), String(PORT)])
  return (JSON.parse(out.trim()) as { result: string }).result
}

describe('attachNetns: sk_lookup', () => {
  skipAllIf(requireFeature(haveSkLookup))

  test('steers the namespace\'s connection to the socket in the sockmap; update swaps the program; detach ends it', async (ctx) => {
    using ns = privateNetns()
    expect(connectInside(ns)).toBe('ECONNREFUSED')
    using link = attachNetns(prog('steer_to_socket'), ns.path)
    expect(link.kind).toBe('link')
    const info = link.info()
    expect(info).toMatchObject({ type: 'netns', progId: prog('steer_to_socket').id, attachType: 'sk_lookup', netnsIno: statSync(ns.path).ino })
    expect(linked(prog('steer_to_socket')).map((l) => l.id)).toEqual([info.id])

    expect(connectInside(ns)).toBe('steered')
    expect(connectInside(ns)).toBe('steered')
    expect(count(STEERED)).toBe(2n)

    link.update(prog('refuse_port'))
    expect(link.info()).toMatchObject({ id: info.id, progId: prog('refuse_port').id, attachType: 'sk_lookup' })
    expect(connectInside(ns)).toBe('ECONNREFUSED')
    expect([count(STEERED), count(REFUSED)]).toEqual([2n, 1n])
    // The host's own namespace is not the link's: a connection there is not looked at.
    spawnSync(process.execPath, ['-e', `require('net').connect(${PORT}, '127.0.0.1').on('error', () => {}).on('connect', function () { this.end() })`], { timeout: 60_000 })
    expect(count(REFUSED)).toBe(1n)

    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, type: 'netns', prog_id: prog('refuse_port').id, netns_ino: statSync(ns.path).ino, attach_type: 'sk_lookup' })

    link.detach()
    // Detached: the link object stays (its ID, no namespace) until closed.
    expect(link.info()).toMatchObject({ id: info.id, netnsIno: 0 })
    expect(connectInside(ns)).toBe('ECONNREFUSED')
    expect([count(STEERED), count(REFUSED)]).toEqual([2n, 1n])
    link.close()
    expect(linked(prog('refuse_port'))).toEqual([])
  })

  test('by namespace fd; sk_lookup programs chain; closing each link detaches it', () => {
    using ns = privateNetns()
    const fd = openSync(ns.path, 'r')
    try {
      using a = attachNetns(prog('steer_to_socket'), fd)
      using b = attachNetns(prog('refuse_port'), `/proc/self/fd/${fd}`)
      expect(a.info().netnsIno).toBe(b.info().netnsIno)
      // Every program in the chain runs; a socket one of them selected wins over another's drop.
      expect(connectInside(ns)).toBe('steered')
      expect([count(STEERED), count(REFUSED)]).toEqual([1n, 1n])
      a.close()
      expect(connectInside(ns)).toBe('ECONNREFUSED')
      expect([count(STEERED), count(REFUSED)]).toEqual([1n, 2n])
    } finally {
      closeSync(fd)
    }
    expect([...linked(prog('steer_to_socket')), ...linked(prog('refuse_port'))]).toEqual([])
  })

  test('bad input: named errors, nothing attached, nothing left open', () => {
    using ns = privateNetns()
    const before = fdTable()
    expect(() => attachNetns(prog('steer_to_socket'), '/tmp')).toThrow(/\/tmp is not a network namespace/)
    expect(() => attachNetns(prog('steer_to_socket'), `/run/netns/${ns.name}-missing`)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => attachNetns(prog('steer_to_socket'), '/proc/self/ns/mnt')).toThrow(/is not a network namespace \(it is mnt:/)
    expect(() => attachNetns(prog('steer_to_socket'), 0x7ffffff0)).toThrow(/fd 2147483632 is not an open file descriptor/)
    expect(() => attachNetns(prog('steer_to_socket'), -1)).toThrow(RangeError)
    expect(() => attachNetns(prog('steer_to_socket'), {} as never)).toThrow(/netns must be a path or a namespace fd/)
    expect(() => attachNetns(prog('count_msgs'), ns.path)).toThrow(/a sk_msg program does not attach to a network namespace/)
    expect(() => attachNetns(null as never, ns.path)).toThrow(TypeError)
    expect(linked(prog('steer_to_socket'))).toEqual([])
    expect(opened(before, fdTable())).toEqual([])
  })
})
