// Passing fds over unix sockets (SCM_RIGHTS): framing, ownership, Node
// net sockets, child processes, and protocol violations that must leak
// nothing.
import { spawn } from 'node:child_process'
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { FdSocket, ProtocolError } from '../../lib/ipc/index.js'
import { BpfError, Fd, native } from '../../lib/sys/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { tenantFixture } from './helpers/raw.js'

function sameFile(a: number, b: number): boolean {
  const x = fstatSync(a)
  const y = fstatSync(b)
  return x.dev === y.dev && x.ino === y.ino
}

// A raw frame: header claiming `length` bytes, then `body` (maybe shorter).
function rawFrame(length: number, body: Uint8Array = new Uint8Array()): Buffer {
  const b = Buffer.alloc(4 + body.length)
  b.writeUInt32LE(length, 0)
  b.set(body, 4)
  return b
}

describe('socket pairs', () => {
  test('a reply written just before the peer reset the connection is still read, then the end is an error', async () => {
    // The peer closes with our bytes unread, so the kernel resets the
    // connection; a receive already waiting must get the queued reply first.
    const [a, b] = FdSocket.pair()
    try {
      await a.send(Buffer.from('request'))
      const pending = a.receive()
      await new Promise((r) => setTimeout(r, 50))
      await b.send(Buffer.from('reply'))
      b.close()
      expect((await pending)?.data.toString()).toBe('reply')
      await expect(a.receive()).rejects.toMatchObject({ code: 'ECONNRESET' })
    } finally {
      a.close()
      b.close()
    }
  })

  test('a message carries its data and fds; received fds are owned duplicates', async () => {
    const [a, b] = FdSocket.pair()
    const file = openSync('/dev/null', 'r')
    try {
      await a.send(Buffer.from('hello'), [file, file])
      const m = await b.receive({ fds: 2 })
      expect(m?.data.toString()).toBe('hello')
      expect(m?.fds).toHaveLength(2)
      for (const f of m!.fds) {
        expect(f).toBeInstanceOf(Fd)
        expect(f.fd).toBeGreaterThan(2)
        expect(f.fd).not.toBe(file)
        expect(sameFile(f.fd, file)).toBe(true)
        expect(/^flags:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${f.fd}`, 'utf8'))?.[1]).toMatch(/2\d{6}$/) // O_CLOEXEC
        f.close()
      }
    } finally {
      closeSync(file)
      a.close()
      b.close()
    }
  })

  test('empty payloads, messages in order, and a receive that waits', async () => {
    using pair = disposablePair()
    const [a, b] = pair.sockets
    const pending = b.receive({ fds: 1 })
    await new Promise((r) => setTimeout(r, 20))
    const file = openSync('/dev/null', 'r')
    try {
      await a.send(new Uint8Array(), [file])
      await Promise.all([a.send(Buffer.from('one')), a.send(Buffer.from('two')), a.send(Buffer.from('three'))])
    } finally {
      closeSync(file)
    }
    const first = await pending
    expect(first?.data.length).toBe(0)
    first?.fds[0].close()
    const rest = await Promise.all([b.receive(), b.receive(), b.receive()])
    expect(rest.map((m) => m?.data.toString())).toEqual(['one', 'two', 'three'])
  })

  test('a payload larger than the socket buffer arrives whole', async () => {
    using pair = disposablePair()
    const [a, b] = pair.sockets
    const big = Buffer.alloc(6 << 20)
    for (let i = 0; i < big.length; i += 4096) big[i] = (i >> 12) & 0xff
    const [, m] = await Promise.all([a.send(big), b.receive({ maxBytes: big.length })])
    expect(m?.data.equals(big)).toBe(true)
  })

  test('the peer closing between messages ends the stream', async () => {
    const [a, b] = FdSocket.pair()
    a.close()
    expect(await b.receive()).toBeUndefined()
    b.close()
  })

  test('sending to a closed peer is EPIPE; too many fds a RangeError', async () => {
    using pair = disposablePair()
    const [a, b] = pair.sockets
    b.close()
    await expect(a.send(Buffer.from('x'))).rejects.toMatchObject({ code: 'EPIPE', syscall: 'sendmsg', message: expect.stringContaining('the peer closed') })
    await expect(a.send(Buffer.from('x'), new Array(254).fill(0))).rejects.toThrow(RangeError)
  })

  test('an aborted receive leaves the socket usable; close fails a pending receive', async () => {
    using pair = disposablePair()
    const [a, b] = pair.sockets
    const ac = new AbortController()
    const waiting = b.receive({ signal: ac.signal })
    setTimeout(() => ac.abort(), 10)
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
    await a.send(Buffer.from('still here'))
    expect((await b.receive())?.data.toString()).toBe('still here')
    const pending = b.receive()
    b.close()
    await expect(pending).rejects.toMatchObject({ code: 'EBADF' })
    expect(b.closed).toBe(true)
  })

  test('an abort in the middle of a message closes the socket', async () => {
    using pair = disposablePair()
    const [a, b] = pair.sockets
    native.sendWithFds(a.fd, rawFrame(10, Buffer.from('abc')))
    const ac = new AbortController()
    const waiting = b.receive({ signal: ac.signal })
    setTimeout(() => ac.abort(), 10)
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
    expect(b.closed).toBe(true)
  })
})

describe('protocol violations are errors that leak nothing', () => {
  async function refused(send: (raw: number) => void, options: Parameters<FdSocket['receive']>[0], message: RegExp) {
    const [a, b] = FdSocket.pair()
    const file = openSync('/dev/null', 'r')
    const before = fdTable()
    try {
      send(a.fd)
      // the fds sent ride in the socket; only what the receiver opens counts
      const err = await b.receive(options).catch((e) => e)
      expect(err).toBeInstanceOf(ProtocolError)
      expect(err.code).toBe('EPROTO')
      expect(err.message).toMatch(message)
      expect(b.closed).toBe(true) // a stream in an unknown state is not reused
      expect(opened(before, fdTable()).filter((e) => !e.includes('socket:'))).toEqual([])
    } finally {
      a.close()
      b.close()
      closeSync(file)
    }
    return file
  }

  test('truncated control data: more fds than expected', async () => {
    const fdsBefore = fdTable()
    await refused((raw) => native.sendWithFds(raw, rawFrame(0), [0, 1, 2]), { fds: 1 }, /control data truncated: the peer sent more fds than the 1 expected/)
    expect(opened(fdsBefore, fdTable())).toEqual([])
  })

  test('unexpected fds where none are expected', async () => {
    await refused((raw) => native.sendWithFds(raw, rawFrame(0), [1]), {}, /unexpected fds: the peer sent 1 with a message that expects 0/)
  })

  test('fewer fds than expected', async () => {
    await refused((raw) => native.sendWithFds(raw, rawFrame(0), [1]), { fds: 2 }, /expected 2 fds with the message, got 1/)
  })

  test('fds in the middle of a message', async () => {
    await refused((raw) => {
      native.sendWithFds(raw, rawFrame(8, Buffer.from('abcd')))
      native.sendWithFds(raw, Buffer.from('efgh'), [1])
    }, { maxFds: 4 }, /fds arrived in the middle of a message/)
  })

  test('a message over the size limit', async () => {
    await refused((raw) => native.sendWithFds(raw, rawFrame(100, Buffer.alloc(100)), [1]), { fds: 1, maxBytes: 99 }, /message of 100 bytes is over the limit of 99/)
  })

  test('the peer closing in the middle of a message', async () => {
    const [a, b] = FdSocket.pair()
    native.sendWithFds(a.fd, rawFrame(10, Buffer.from('abc')))
    a.close()
    await expect(b.receive()).rejects.toThrow(/closed the socket in the middle of a message \(3 of 10 bytes\)/)
    b.close()
  })

  test('options are checked', async () => {
    using pair = disposablePair()
    await expect(pair.sockets[1].receive({ fds: 1, maxFds: 2 })).rejects.toThrow(TypeError)
    await expect(pair.sockets[1].receive({ fds: 254 })).rejects.toThrow(RangeError)
  })
})

describe('Node net sockets', () => {
  test('both ends of a unix socket connection are taken over and pass fds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-sock-'))
    const path = join(dir, 's')
    const server = createServer()
    try {
      const accepted = new Promise<FdSocket>((resolve) => server.once('connection', (s) => resolve(FdSocket.from(s))))
      await new Promise<void>((r) => server.listen(path, r))
      const client = connect(path)
      const mine = await new Promise<FdSocket>((resolve) => client.once('connect', () => resolve(FdSocket.from(client))))
      const theirs = await accepted
      expect(client.destroyed).toBe(true)
      const file = openSync('/dev/null', 'r')
      try {
        await mine.send(Buffer.from('over net'), [file])
        const m = await theirs.receive({ fds: 1 })
        expect(m?.data.toString()).toBe('over net')
        expect(sameFile(m!.fds[0].fd, file)).toBe(true)
        m!.fds[0].close()
        await theirs.send(Buffer.from('and back'))
        expect((await mine.receive())?.data.toString()).toBe('and back')
      } finally {
        closeSync(file)
        mine.close()
        theirs.close()
      }
    } finally {
      server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a socket that is connecting, destroyed or already read is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-sock-'))
    const path = join(dir, 's')
    const server = createServer((s) => s.end('early bytes'))
    try {
      await new Promise<void>((r) => server.listen(path, r))
      const client = connect(path)
      expect(() => FdSocket.from(client)).toThrow(/still connecting/)
      await new Promise((r) => client.once('connect', r))
      await new Promise((r) => client.once('readable', r))
      expect(() => FdSocket.from(client)).toThrow(/already read 11 bytes/)
      client.destroy()
      expect(() => FdSocket.from(client as Socket)).toThrow(/no open file descriptor/)
    } finally {
      server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('across processes', () => {
  test('a child receives an fd on its socket, uses it, sends one back, and keeps nothing', async () => {
    const [mine, theirs] = FdSocket.pair()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-fdpass-'))
    const out = join(dir, 'written')
    const child = spawn(process.execPath, [tenantFixture('fd-peer')], { stdio: ['ignore', 'pipe', 'pipe', theirs.fd] })
    theirs.close()
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (d) => { stdout += d })
    child.stderr!.on('data', (d) => { stderr += d })
    const before = fdTable()
    const file = openSync(out, 'w')
    try {
      await mine.send(Buffer.from('write here'), [file])
    } finally {
      closeSync(file)
    }
    const back = await mine.receive({ fds: 1 })
    const code = await new Promise((r) => child.on('exit', r))
    expect(stderr).toBe('')
    expect(code).toBe(0)
    expect(back?.data.toString()).toBe('yours')
    expect(readFileSync(out, 'utf8')).toBe('written by the child')
    const counts = JSON.parse(stdout.trim())
    expect(counts.after).toBe(counts.before)
    back!.fds[0].close()
    mine.close()
    expect(opened(before, fdTable())).toEqual([])
    rmSync(dir, { recursive: true, force: true })
  })
})

test("a Node 'pipe' stdio entry is a unix socket pair too, taken over right after spawn", async () => {
  const child = spawn(process.execPath, [tenantFixture('fd-peer-pipe')], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'] })
  const socket = FdSocket.from(child.stdio[3] as Socket)
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-fdpass-'))
  try {
    const file = openSync(join(dir, 'out'), 'w')
    try {
      await socket.send(Buffer.from('here'), [file])
    } finally {
      closeSync(file)
    }
    expect((await socket.receive())?.data.toString()).toBe('done')
    expect(await new Promise((r) => child.on('exit', r))).toBe(0)
    expect(readFileSync(join(dir, 'out'), 'utf8')).toBe('via a pipe entry')
  } finally {
    socket.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

function disposablePair(): { sockets: [FdSocket, FdSocket]; [Symbol.dispose](): void } {
  const sockets = FdSocket.pair()
  return {
    sockets,
    [Symbol.dispose]() {
      sockets[0].close()
      sockets[1].close()
    },
  }
}

test('SyscallError shape for socket failures', () => {
  expect(() => native.recvWithFds(0x7ffffff0, Buffer.alloc(1), 0)).toThrow(expect.objectContaining({ name: 'SyscallError', syscall: 'recvmsg', code: 'EBADF' }))
  expect(() => native.recvWithFds(3, Buffer.alloc(0), 0)).toThrow(RangeError)
  expect(() => native.recvWithFds(3, Buffer.alloc(1), 254)).toThrow(RangeError)
})
