// Waits and sockets whose fds go away under them (issue 11 #5, #7, #12).
// The cases that used to abort the process run in a child process
// (test/fixtures/native-async/waits-closed.cjs); the rest run here.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { FdSocket } from '../../lib/ipc/index.js'
import { native } from '../../lib/sys/index.js'

const fixture = join(__dirname, '..', 'fixtures', 'native-async', 'waits-closed.cjs')

test('fd numbers closed under a pending FdSocket receive or ring buffer wait never reach libuv', () => {
  const r = spawnSync(process.execPath, [fixture], { encoding: 'utf8', timeout: 60_000 })
  // Before: SIGABRT from libuv (epoll_ctl EBADF) for the socket and the ring
  // buffer, and the receive on an FdSocket made from an Fd failed with EPIPE
  // once the caller closed that Fd.
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  expect(out.socketNumberClosed.result).toEqual({
    error: { name: 'BpfError', code: 'EBADF', syscall: 'close', message: 'receive cancelled: fd socket already closed' },
  })
  expect(out.socketNumberClosed.closeError).toMatchObject({ code: 'EBADF' })
  expect(out.fromFdThenCloseIt).toEqual({ result: 'still here', mineClosed: true })
  expect(out.ringNumberClosed).toEqual({ result: { value: false } })
})

test('closing an FdSocket cancels its pending receive and send first, then rejects them', async () => {
  const [a, peerOfA] = FdSocket.pair()
  const [b, peerOfB] = FdSocket.pair()
  const receiving = a.receive() // nobody sends to a
  const sending = b.send(Buffer.alloc(8 << 20)) // more than the socket buffers hold, nobody reading
  await new Promise((r) => setTimeout(r, 20))
  a.close()
  b.close()
  peerOfA.close()
  peerOfB.close()
  await expect(receiving).rejects.toMatchObject({ code: 'EBADF', message: 'receive cancelled: fd socket already closed' })
  await expect(sending).rejects.toMatchObject({ code: 'EBADF', message: 'send cancelled: fd socket already closed' })
})

test('receive limits are validated before anything is read; NaN never lifts a limit', async () => {
  const [a, b] = FdSocket.pair()
  try {
    const bad: Array<[object, RegExp, string]> = [
      [{ maxBytes: Number.NaN }, /maxBytes must be an integer from 1 to 4294967295 \(a frame's 32-bit length\), got NaN/, 'RangeError'],
      [{ maxBytes: Infinity }, /maxBytes must be an integer from 1 to 4294967295/, 'RangeError'],
      [{ maxBytes: 0 }, /maxBytes must be an integer from 1/, 'RangeError'],
      [{ maxBytes: 2 ** 32 }, /maxBytes must be an integer from 1 to 4294967295/, 'RangeError'],
      [{ maxBytes: 1.5 }, /maxBytes must be an integer/, 'RangeError'],
      [{ maxBytes: '10' }, /receive: option 'maxBytes' must be a number, got/, 'TypeError'],
      [{ fds: Number.NaN }, /fds must be an integer from 0 to 253/, 'RangeError'],
      [{ maxFds: -1 }, /maxFds must be an integer from 0 to 253/, 'RangeError'],
      [{ maxbytes: 10 }, /unknown option 'maxbytes'/, 'TypeError'],
    ]
    for (const [options, message, name] of bad) {
      await expect(a.receive(options as never), JSON.stringify(options)).rejects.toThrow(expect.objectContaining({ name, message: expect.stringMatching(message) }))
    }
    // The socket is untouched: the limit still holds for the next message.
    await b.send(Buffer.alloc(100))
    await expect(a.receive({ maxBytes: 99 })).rejects.toThrow(/message of 100 bytes is over the limit of 99/)
  } finally {
    a.close()
    b.close()
  }
})

test('sendWithFds reads the fds array before the data: a getter that detaches the data cannot send freed bytes', () => {
  const [x, y] = native.unixSocketpair()
  try {
    const data = new Uint8Array([1, 2, 3, 4, 5])
    const fds: number[] = []
    Object.defineProperty(fds, 0, {
      enumerable: true,
      get() {
        structuredClone(data.buffer, { transfer: [data.buffer] }) // detaches (frees) data's memory
        return x
      },
    })
    // Before: the data pointer was taken first, and the 5 bytes of the
    // detached buffer went to the peer.
    expect(() => native.sendWithFds(x, data, fds)).toThrow(new RangeError('fds need at least one byte of data to travel with'))
    expect(native.recvWithFds(y, new Uint8Array(8), 1)).toBeNull()
  } finally {
    native.closeFd(x)
    native.closeFd(y)
  }
})
