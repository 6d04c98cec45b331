// Socket filters on sockets the test owns, with real traffic on loopback:
// the filter's return value decides what the receiving socket gets.
import * as dgram from 'node:dgram'
import * as net from 'node:net'
import { once } from 'node:events'
import { openSync, closeSync } from 'node:fs'
import { afterEach, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfMap, BpfProgram } from '../../lib/index.js'

const returning = (v: number) => BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, v), asm.exit()], license: 'GPL', name: `ret_${v & 0xffff}` })

const sockets: dgram.Socket[] = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.close()
})

async function udpPair(): Promise<{ rx: dgram.Socket; send: (msg: string) => Promise<void>; next: (ms: number) => Promise<string | undefined> }> {
  const rx = dgram.createSocket('udp4')
  const tx = dgram.createSocket('udp4')
  sockets.push(rx, tx)
  rx.bind(0, '127.0.0.1')
  await once(rx, 'listening')
  const { port } = rx.address()
  const inbox: string[] = []
  const waiters: Array<(m: string) => void> = []
  rx.on('message', (m) => {
    const w = waiters.shift()
    if (w) w(m.toString())
    else inbox.push(m.toString())
  })
  return {
    rx,
    send: (msg) => new Promise((resolve, reject) => tx.send(msg, port, '127.0.0.1', (e) => (e ? reject(e) : resolve()))),
    next: (ms) => {
      const queued = inbox.shift()
      if (queued !== undefined) return Promise.resolve(queued)
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1)
          resolve(undefined)
        }, ms)
        const w = (m: string) => {
          clearTimeout(t)
          resolve(m)
        }
        waiters.push(w)
      })
    },
  }
}

describe('attachSocketFilter', () => {
  test('a filter returning 0 drops every packet; after detach the socket receives again', async () => {
    const { rx, send, next } = await udpPair()
    using drop = await returning(0)
    using link = BpfLink.attachSocketFilter(rx, drop)
    expect(link.kind).toBe('socket')
    await send('dropped')
    expect(await next(300)).toBeUndefined()
    link.detach()
    await send('delivered')
    // The first datagram never comes: it was dropped, not delayed.
    expect(await next(2000)).toBe('delivered')
    link.detach() // twice is a no-op
  })

  // A UDP socket's filter sees the packet from the 8-byte UDP header on, and
  // the kernel never trims below that header (sk_filter_trim_cap).
  test('the return value is the number of bytes kept', async () => {
    const { rx, send, next } = await udpPair()
    using four = await returning(8 + 4)
    using headerOnly = await returning(1)
    using keepAll = await returning(-1)
    {
      using _l = BpfLink.attachSocketFilter(rx, four)
      await send('hello world')
      expect(await next(2000)).toBe('hell')
    }
    {
      using _l = BpfLink.attachSocketFilter(rx, headerOnly)
      await send('hello world')
      expect(await next(2000)).toBe('')
    }
    // close() detached it; a filter keeping everything replaces nothing now.
    using _l2 = BpfLink.attachSocketFilter(rx, keepAll)
    await send('hello world')
    expect(await next(2000)).toBe('hello world')
  })

  test('attaching again replaces the filter', async () => {
    const { rx, send, next } = await udpPair()
    using drop = await returning(0)
    using two = await returning(8 + 2)
    using a = BpfLink.attachSocketFilter(rx, drop)
    using b = BpfLink.attachSocketFilter(rx, two)
    await send('abcdef')
    expect(await next(2000)).toBe('ab')
    expect(a.info().progId).toBe(drop.id)
    expect(b.info().progId).toBe(two.id)
  })

  test('closing the link detaches the filter', async () => {
    const { rx, send, next } = await udpPair()
    using drop = await returning(0)
    const link = BpfLink.attachSocketFilter(rx, drop)
    link.close()
    link.close()
    expect(link.closed).toBe(true)
    await send('after close')
    expect(await next(2000)).toBe('after close')
    expect(() => link.info()).toThrow(/link \(a socket filter\) already closed/)
  })

  test('a raw fd number and a TCP net.Socket work too', async () => {
    const { rx, send, next } = await udpPair()
    using drop = await returning(0)
    const fd = (rx as unknown as Record<symbol, { handle: { fd: number } }>)[
      Object.getOwnPropertySymbols(rx).find((s) => s.description === 'state symbol')!
    ].handle.fd
    {
      using _l = BpfLink.attachSocketFilter(fd, drop)
      await send('x')
      expect(await next(300)).toBeUndefined()
    }
    await send('y')
    expect(await next(2000)).toBe('y')

    const server = net.createServer((c) => c.end('over tcp'))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    await once(client, 'connect')
    using keepAll = await returning(-1)
    using tcp = BpfLink.attachSocketFilter(client, keepAll)
    expect(tcp.info()).toEqual({ id: 0, type: 'socket_filter', typeId: 0, progId: keepAll.id })
    const chunks: Buffer[] = []
    client.on('data', (d) => chunks.push(d))
    await once(client, 'end')
    expect(Buffer.concat(chunks).toString()).toBe('over tcp')
    client.destroy()
    server.close()
  })

  test('a socket filter attachment is not a kernel link', async () => {
    const { rx } = await udpPair()
    using keepAll = await returning(-1)
    using link = BpfLink.attachSocketFilter(rx, keepAll)
    expect(link.kind).toBe('socket')
    expect(() => link.fd).toThrow(/no link fd/)
    expect(() => link.pin('/sys/fs/bpf/x')).toThrow(/no link fd/)
    expect(link.info().id).toBe(0)
  })

  test('errors: not a socket, wrong program type, unbound socket', async () => {
    using keepAll = await returning(-1)
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    const devNull = openSync('/dev/null', 'r')
    try {
      expect(() => BpfLink.attachSocketFilter(devNull, keepAll)).toThrow(expect.objectContaining({ code: 'ENOTSOCK', command: 'so_attach_bpf', message: expect.stringMatching(/not a socket/) }))
    } finally {
      closeSync(devNull)
    }
    const { rx } = await udpPair()
    using skb = await BpfProgram.load({ type: 'cgroup_skb', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL' })
    expect(() => BpfLink.attachSocketFilter(rx, skb)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
    expect(() => BpfLink.attachSocketFilter(rx, m)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
    const unbound = dgram.createSocket('udp4')
    sockets.push(unbound)
    expect(() => BpfLink.attachSocketFilter(unbound, keepAll)).toThrow(/cannot find the socket's fd/)
    expect(() => BpfLink.attachSocketFilter(-1, keepAll)).toThrow(RangeError)
    expect(() => BpfLink.attachSocketFilter('3' as never, keepAll)).toThrow(TypeError)
  })

  test('the README example: a filter counts the datagrams a socket receives in a map', async () => {
    const { R0, R1, R2, R10 } = asm
    const { rx, send, next } = await udpPair()
    using counts = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 1 })
    const insns = [
      asm.stW(R10, -4, 0),
      asm.mov64Reg(R2, R10), asm.add64Imm(R2, -4),
      asm.ldMapFd(R1, counts),
      asm.call('map_lookup_elem'),
      asm.jeqImm(R0, 0, 'out'),
      asm.mov64Imm(R1, 1), asm.atomic('add', 64, R0, R1, 0),
      asm.label('out'),
      asm.mov64Imm(R0, -1),
      asm.exit(),
    ]
    using prog = await BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL', name: 'count' })
    using _link = BpfLink.attachSocketFilter(rx, prog)
    for (const m of ['a', 'b', 'c']) {
      await send(m)
      expect(await next(2000)).toBe(m)
    }
    expect(counts.get(0)).toBe(3n)
  })

  test('closing a link never touches another socket that reuses the fd number', async () => {
    using drop = await returning(0)
    const fdOf = (s: dgram.Socket) => (s as unknown as Record<symbol, { handle: { fd: number } }>)[
      Object.getOwnPropertySymbols(s).find((sym) => sym.description === 'state symbol')!
    ].handle.fd
    const first = dgram.createSocket('udp4')
    first.bind(0, '127.0.0.1')
    await once(first, 'listening')
    const n = fdOf(first)
    const stale = BpfLink.attachSocketFilter(n, drop)
    first.close()
    await once(first, 'close')
    // The next socket gets the lowest free fd number: the one just freed.
    const { rx, send, next } = await udpPair()
    expect(fdOf(rx)).toBe(n)
    using _own = BpfLink.attachSocketFilter(rx, drop)
    stale.close() // detaches the first socket (through its own reference), not rx
    await send('still filtered')
    expect(await next(300)).toBeUndefined()
  })
})
