// sk_msg and sk_skb programs on sockmaps the test made, over TCP connections
// on loopback between sockets the test owns: the programs see the test's own
// messages (counters in the fixture's `counts` move), as a kernel link
// (sockmap links, 6.10+) and through PROG_ATTACH to the map (every kernel).
import { once } from 'node:events'
import * as net from 'node:net'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { BpfLink, ids, type BpfMap, type BpfProgram, type Collection } from '../../lib/index.js'
import { haveSockmapLinks, supportsSockmapLinks } from '../../lib/features/attach-sockets.js'
import { attachSockmap } from '../../lib/link/sockmap.js'
import { kernel, native } from '../../lib/sys/index.js'
import { fixtureSpec } from './helpers/collection.js'
import { bpftool } from './helpers/bpftool.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature } from './helpers/requires.js'

// Slots of `counts` (the enum in attach-sockets.bpf.c).
const MSGS = 4
const MSG_BYTES = 5
const MSGS_OTHER = 6
const PARSED = 7
const VERDICTS = 8
const SKB_VERDICTS = 9

let coll: Collection
const sockets: net.Socket[] = []
const servers: net.Server[] = []

// Only the programs this kernel can load: the object's netfilter program needs
// 6.4, and sk_skb verdicts without a parser (5.13) are only used with links (6.10).
beforeEach(async () => {
  const programs = ['count_msgs', 'count_msgs_other', 'parse_all', 'redirect_stream', 'steer_to_socket']
  coll = await fixtureSpec('attach-sockets').load({ programs: supportsSockmapLinks() ? [...programs, 'pass_skb'] : programs })
})

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
  for (const s of servers.splice(0)) s.close()
  coll?.close()
})

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)
const count = (slot: number): bigint => (coll.maps.counts as BpfMap<number, bigint>).get(slot) as bigint
const fdOf = (s: net.Socket): number => (s as unknown as { _handle: { fd: number } })._handle.fd

/** Puts a socket into a sockmap/sockhash the test made (value: the fd as a u64). */
function insert(map: BpfMap, key: number, socket: net.Socket): void {
  const value = new Uint8Array(8)
  new DataView(value.buffer).setUint32(0, fdOf(socket), true)
  map.update(u32(key), value)
}

/** A TCP connection on loopback: the client end and the end the server accepted. */
async function tcpPair(): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const server = net.createServer()
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepting = once(server, 'connection')
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  sockets.push(client)
  await once(client, 'connect')
  const [accepted] = (await accepting) as [net.Socket]
  sockets.push(accepted)
  return { client, accepted }
}

/** Writes `text` on `from` and waits until `to` has read all of it. */
async function roundTrip(from: net.Socket, to: net.Socket, text: string): Promise<string> {
  let got = ''
  const done = new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      got += d.toString()
      if (got.length >= text.length) {
        to.off('data', onData)
        resolve()
      }
    }
    to.on('data', onData)
  })
  from.write(text)
  await done
  return got
}

const prog = (name: string) => coll.programs[name] as BpfProgram
const sockmap = (name: string) => coll.maps[name] as BpfMap
const linked = (p: BpfProgram) => [...ids.links()].filter((l) => l.progId === p.id)

// PROG_QUERY on a sockmap came in 5.19; where the kernel answers, it must name the program.
function queried(map: BpfMap, attachType: keyof typeof kernel.attachTypes): number[] | undefined {
  try {
    return native.progQuery({ targetFd: map.fd, attachType: kernel.attachTypes[attachType] }).progIds
  } catch (e) {
    if ((e as { code?: string }).code === 'EINVAL') return undefined
    throw e
  }
}

describe.each([
  ['PROG_ATTACH to the map', false],
  ['a sockmap link', true],
] as const)('attachSockmap through %s', (_, link) => {
  const skipWhy = link ? requireFeature(haveSockmapLinks) : undefined

  test('sk_msg verdict counts the messages sockets in the map send; update swaps it; detach ends it', async (ctx) => {
    if (skipWhy) ctx.skip(skipWhy)
    const a = attachSockmap(prog('count_msgs'), sockmap('msg_socks'), undefined, { link })
    expect(a.kind).toBe(link ? 'link' : 'prog_attach')
    const info = a.info()
    expect(info).toMatchObject({ type: 'sockmap', progId: prog('count_msgs').id, attachType: 'sk_msg_verdict', mapId: sockmap('msg_socks').id })
    if (link) {
      expect(info.id).toBeGreaterThan(0)
      expect(linked(prog('count_msgs')).map((l) => l.id)).toEqual([info.id])
    } else {
      expect(info.id).toBe(0)
      expect(linked(prog('count_msgs'))).toEqual([])
    }
    const q = queried(sockmap('msg_socks'), 'sk_msg_verdict')
    if (q) expect(q).toEqual([prog('count_msgs').id])

    // The programs a socket gets are the map's when it is added.
    const { client, accepted } = await tcpPair()
    insert(sockmap('msg_socks'), 0, client)
    for (const word of ['one', 'three', 'seven']) expect(await roundTrip(client, accepted, word)).toBe(word)
    expect(count(MSGS)).toBe(3n)
    expect(count(MSG_BYTES)).toBe(BigInt('onethreeseven'.length))

    a.update(prog('count_msgs_other'))
    expect(a.info().progId).toBe(prog('count_msgs_other').id)
    const second = await tcpPair()
    insert(sockmap('msg_socks'), 1, second.client)
    expect(await roundTrip(second.client, second.accepted, 'hi')).toBe('hi')
    expect(count(MSGS_OTHER)).toBe(1n)
    expect(count(MSGS)).toBe(3n)
    // update with `expected`: only while that program is the one attached.
    expect(() => a.update(prog('count_msgs'), { expected: prog('count_msgs') })).toThrow(expect.objectContaining({ code: 'EPERM' }))
    expect(a.info().progId).toBe(prog('count_msgs_other').id)

    a.detach()
    if (link) expect(a.info()).toMatchObject({ id: info.id, mapId: 0 })
    else expect(() => a.info()).toThrow(/detached/)
    const q2 = queried(sockmap('msg_socks'), 'sk_msg_verdict')
    if (q2) expect(q2).toEqual([])
    const third = await tcpPair()
    insert(sockmap('msg_socks'), 2, third.client)
    expect(await roundTrip(third.client, third.accepted, 'quiet')).toBe('quiet')
    expect([count(MSGS), count(MSGS_OTHER)]).toEqual([3n, 1n])
    a.detach()
    a.close()
    expect(a.closed).toBe(true)
    expect(linked(prog('count_msgs_other'))).toEqual([])
  })

  test('stream parser + stream verdict on what a socket in a sockhash receives: redirected out of another socket', async (ctx) => {
    if (skipWhy) ctx.skip(skipWhy)
    using parser = attachSockmap(prog('parse_all'), sockmap('stream_socks'), 'sk_skb_stream_parser', { link })
    using verdict = attachSockmap(prog('redirect_stream'), sockmap('stream_socks'), 'sk_skb_stream_verdict', { link })
    expect(parser.info()).toMatchObject({ attachType: 'sk_skb_stream_parser', progId: prog('parse_all').id })
    expect(verdict.info()).toMatchObject({ attachType: 'sk_skb_stream_verdict', progId: prog('redirect_stream').id })
    // in.client -> in.accepted (parsed, judged) -> out.client -> out.accepted
    const inbound = await tcpPair()
    const outbound = await tcpPair()
    insert(sockmap('msg_socks'), 1, outbound.client)
    insert(sockmap('stream_socks'), 7, inbound.accepted)
    expect(await roundTrip(inbound.client, outbound.accepted, 'ping')).toBe('ping')
    expect(await roundTrip(inbound.client, outbound.accepted, 'pong')).toBe('pong')
    expect(count(PARSED)).toBeGreaterThanOrEqual(2n)
    expect(count(VERDICTS)).toBeGreaterThanOrEqual(2n)
    parser.close()
    verdict.close()
    expect([...linked(prog('parse_all')), ...linked(prog('redirect_stream'))]).toEqual([])
  })
})

describe('sockmap links', () => {
  const skipWhy = requireFeature(haveSockmapLinks)

  test('sk_skb verdict without a parser; bpftool sees the link; pin and fromId; one link per slot', async (ctx) => {
    if (skipWhy) ctx.skip(skipWhy)
    using a = attachSockmap(prog('pass_skb'), sockmap('stream_socks'), 'sk_skb_verdict')
    const info = a.info()
    expect(info).toMatchObject({ type: 'sockmap', attachType: 'sk_skb_verdict', mapId: sockmap('stream_socks').id })
    // The slot is the link's: neither another link nor PROG_ATTACH may take it.
    expect(() => attachSockmap(prog('pass_skb'), sockmap('stream_socks'), 'sk_skb_verdict')).toThrow(expect.objectContaining({ code: 'EBUSY' }))
    expect(() => attachSockmap(prog('pass_skb'), sockmap('stream_socks'), 'sk_skb_verdict', { link: false })).toThrow(expect.objectContaining({ code: 'EBUSY' }))
    {
      using same = BpfLink.fromId(info.id)
      expect(same.info()).toEqual(info)
    }
    const { client, accepted } = await tcpPair()
    insert(sockmap('stream_socks'), 1, accepted)
    expect(await roundTrip(client, accepted, 'hello')).toBe('hello')
    expect(count(SKB_VERDICTS)).toBeGreaterThanOrEqual(1n)
    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, prog_id: info.progId })
    a.close()
    expect(linked(prog('pass_skb'))).toEqual([])
  })
})

describe('attachSockmap errors', () => {
  test('bad input throws named errors and leaves nothing attached or open', () => {
    const before = fdTable()
    const skb = { fd: prog('parse_all').fd }
    // A map that is not a sockmap, a program that does not go on one.
    expect(() => attachSockmap(prog('count_msgs'), coll.maps.counts as BpfMap)).toThrow(/must be a sockmap or sockhash, got a array map/)
    expect(() => attachSockmap(prog('steer_to_socket'), sockmap('msg_socks'))).toThrow(/a sk_lookup program does not attach to a sockmap/)
    // An sk_skb program without a section to read: the attach type must be said.
    expect(() => attachSockmap(skb, sockmap('stream_socks'))).toThrow(/say where the sk_skb program goes/)
    expect(() => attachSockmap(prog('count_msgs'), sockmap('msg_socks'), 'sk_skb_stream_parser')).toThrow(/sk_skb_stream_parser takes an sk_skb program, got a sk_msg program/)
    expect(() => attachSockmap(prog('count_msgs'), sockmap('msg_socks'), 'msg_verdict' as never)).toThrow(TypeError)
    expect(() => attachSockmap(prog('count_msgs'), sockmap('msg_socks'), undefined, { link: 1 } as never)).toThrow(/'link' must be a boolean/)
    expect(() => attachSockmap(prog('count_msgs'), sockmap('msg_socks'), undefined, { lnk: true } as never)).toThrow(/unknown option 'lnk'/)
    expect(() => attachSockmap({} as never, sockmap('msg_socks'))).toThrow(TypeError)
    expect(() => attachSockmap(prog('count_msgs'), null as never)).toThrow(TypeError)
    for (const name of ['count_msgs', 'parse_all', 'steer_to_socket']) expect(linked(prog(name))).toEqual([])
    expect(queried(sockmap('msg_socks'), 'sk_msg_verdict') ?? []).toEqual([])
    expect(opened(before, fdTable())).toEqual([])
  })

  test('a PROG_ATTACH attachment outlives the objects it was given until closed', async () => {
    const p = prog('count_msgs')
    const a = attachSockmap(p, sockmap('msg_socks'), undefined, { link: false })
    expect(() => a.fd).toThrow(/has no link fd/)
    expect(() => a.pin('/nonexistent')).toThrow(/has no link fd/)
    const { client, accepted } = await tcpPair()
    insert(sockmap('msg_socks'), 0, client)
    expect(await roundTrip(client, accepted, 'x')).toBe('x')
    expect(count(MSGS)).toBe(1n)
    a.close()
    a.close()
    expect(() => a.info()).toThrow(/already closed/)
    const q = queried(sockmap('msg_socks'), 'sk_msg_verdict')
    if (q) expect(q).toEqual([])
  })
})
