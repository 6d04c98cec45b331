// Unix stream sockets that carry file descriptors with their messages
// (SCM_RIGHTS): the channel between a manager and its tenants, as seed 004
// asks (authority handed over as fds, not ambient capabilities).
//
// Messages are framed (4-byte little-endian length, then the payload) and a
// message's fds ride on its header. The socket is read natively, never by
// libuv: bytes that libuv read from a socket lose the fds sent with them, so
// a Node `net.Socket` is taken over (its fd duplicated, the stream
// destroyed) before anything is read from it.
import type { Socket } from 'node:net'
import { BpfError, Fd, native, type FdWaitHandle } from '../sys/index.js'
import { ProtocolError, reword } from './errors.js'

const headerBytes = 4
/** SCM_MAX_FD: the kernel's limit per message. */
export const maxFdsPerMessage = 253

export interface ReceiveOptions {
  /** Exactly this many fds must come with the message; others are an error. Default: 0. */
  fds?: number
  /** Instead of an exact count: at most this many fds. */
  maxFds?: number
  /** Largest payload accepted; a bigger one is a ProtocolError. Default: 1 MiB. */
  maxBytes?: number
  signal?: AbortSignal
}

export interface SendOptions {
  signal?: AbortSignal
}

export interface Message {
  data: Buffer
  /** Owned fds (O_CLOEXEC, >= 3): close them when done. */
  fds: Fd[]
}

type Pending = { handle: FdWaitHandle; reject: (e: unknown) => void }

/**
 * A unix stream socket that sends and receives messages with fds.
 * Sends and receives are each queued, so concurrent calls never interleave.
 * Any Linux; no privileges.
 */
export class FdSocket {
  readonly #fd: Fd
  readonly #waits = new Set<Pending>()
  #sending: Promise<unknown> = Promise.resolve()
  #receiving: Promise<unknown> = Promise.resolve()

  private constructor(fd: Fd) {
    this.#fd = fd
  }

  /** A connected pair (socketpair(AF_UNIX, SOCK_STREAM)), e.g. one end for a child process. */
  static pair(): [FdSocket, FdSocket] {
    const [a, b] = native.unixSocketpair()
    return [new FdSocket(new Fd(a, 'socket')), new FdSocket(new Fd(b, 'socket'))]
  }

  /**
   * Takes over a unix socket: an owned `Fd`, an fd number (e.g. 3 in a child
   * that got the socket as an extra stdio entry; ownership passes), or a
   * Node `net.Socket`, whose fd is duplicated and which is then destroyed.
   * Take a `net.Socket` over synchronously when it connects (in the
   * 'connect' or 'connection' handler), before it reads: Errors: TypeError
   * when it is not connected or has already read data.
   */
  static from(socket: Socket | Fd | number): FdSocket {
    if (socket instanceof Fd) return new FdSocket(socket)
    if (typeof socket === 'number') return new FdSocket(new Fd(socket, 'socket'))
    const s = socket as Socket & { _handle?: { fd?: number } | null }
    if (s.connecting) throw new TypeError('FdSocket.from: the socket is still connecting; take it over in its connect handler')
    if (s.destroyed || !s._handle || typeof s._handle.fd !== 'number' || s._handle.fd < 0) {
      throw new TypeError('FdSocket.from: the socket has no open file descriptor (destroyed, or not a unix socket)')
    }
    if (s.readableLength > 0) {
      throw new TypeError(`FdSocket.from: the socket already read ${s.readableLength} bytes; fds sent with them are lost. Take it over before reading`)
    }
    const fd = new Fd(native.dupFd(s._handle.fd), 'socket')
    s.destroy()
    return new FdSocket(fd)
  }

  /** The socket's fd number; throws once closed. */
  get fd(): number {
    return this.#fd.fd
  }

  get closed(): boolean {
    return this.#fd.closed
  }

  /**
   * Sends one message with `fds` (duplicates travel; the caller keeps and
   * closes its own). Errors: BpfError EPIPE when the peer is gone; RangeError
   * for more than 253 fds.
   */
  send(data: Uint8Array, fds: readonly (Fd | number)[] = [], options: SendOptions = {}): Promise<void> {
    if (fds.length > maxFdsPerMessage) return Promise.reject(new RangeError(`at most ${maxFdsPerMessage} fds fit in one message`))
    const numbers = fds.map((f) => (typeof f === 'number' ? f : f.fd))
    const frame = Buffer.alloc(headerBytes + data.length)
    frame.writeUInt32LE(data.length, 0)
    frame.set(data, headerBytes)
    const run = this.#sending.then(() => this.#sendFrame(frame, numbers, options.signal))
    this.#sending = run.catch(() => {})
    return run
  }

  async #sendFrame(frame: Buffer, fds: number[], signal?: AbortSignal): Promise<void> {
    let off = 0
    while (off < frame.length) {
      signal?.throwIfAborted()
      const n = reword('sendmsg', 'sending on an fd socket', sendCause, () => native.sendWithFds(this.fd, frame.subarray(off), off === 0 ? fds : undefined))
      if (n < 0) await this.#wait(true, signal)
      else off += n
    }
  }

  /**
   * Receives one message. Resolves undefined when the peer closed the socket
   * between messages. An abort (signal) before the message starts leaves the
   * socket usable; one in the middle of a message closes it. Errors (after closing every fd that came along, and
   * this socket, whose stream can no longer be trusted): ProtocolError for
   * truncated control data (more fds than expected), fds where none or other
   * counts were expected, fds in the middle of a message, a message over
   * maxBytes, or the peer closing mid-message.
   */
  receive(options: ReceiveOptions = {}): Promise<Message | undefined> {
    const run = this.#receiving.then(() => this.#receive(options))
    this.#receiving = run.catch(() => {})
    return run
  }

  async #receive(options: ReceiveOptions): Promise<Message | undefined> {
    if (options.fds !== undefined && options.maxFds !== undefined) throw new TypeError('receive: give fds (exact) or maxFds, not both')
    const exact = options.maxFds === undefined
    const want = options.maxFds ?? options.fds ?? 0
    const maxBytes = options.maxBytes ?? 1 << 20
    if (!Number.isInteger(want) || want < 0 || want > maxFdsPerMessage) throw new RangeError(`fds must be 0..${maxFdsPerMessage}`)
    const fds: Fd[] = []
    const progress = { started: false }
    try {
      const header = await this.#readExact(headerBytes, want, fds, true, progress, options.signal)
      if (header === undefined) return undefined
      const length = header.readUInt32LE(0)
      if (length > maxBytes) throw new ProtocolError(`message of ${length} bytes is over the limit of ${maxBytes}`)
      const data = length === 0 ? Buffer.alloc(0) : ((await this.#readExact(length, 0, fds, false, progress, options.signal)) as Buffer)
      if (exact && fds.length !== want) {
        throw new ProtocolError(`expected ${want} fd${want === 1 ? '' : 's'} with the message, got ${fds.length}`)
      }
      return { data, fds }
    } catch (e) {
      for (const f of fds) f.close()
      // Aborted before the first byte, the stream is where it was; anything
      // else leaves it somewhere in the middle of a message.
      if (progress.started || !(options.signal?.aborted && e === options.signal.reason)) this.close()
      throw e
    }
  }

  // Reads exactly n bytes. `atStart` allows a clean end of stream before the
  // first byte. Fds may only come with the header.
  async #readExact(n: number, maxFds: number, fds: Fd[], atStart: boolean, progress: { started: boolean }, signal?: AbortSignal): Promise<Buffer | undefined> {
    const buf = Buffer.alloc(n)
    let off = 0
    while (off < n) {
      signal?.throwIfAborted()
      const r = reword('recvmsg', 'receiving on an fd socket', recvCause, () => native.recvWithFds(this.fd, buf.subarray(off), maxFds))
      if (r === null) {
        await this.#wait(false, signal)
        continue
      }
      progress.started = true
      for (const f of r.fds) fds.push(new Fd(f, 'received'))
      if (r.truncated) {
        throw new ProtocolError(`control data truncated: the peer sent more fds than the ${maxFds} expected (the extra ones were closed)`)
      }
      if (r.fds.length > 0 && !atStart) throw new ProtocolError('fds arrived in the middle of a message')
      if (r.fds.length > maxFds) {
        throw new ProtocolError(`unexpected fds: the peer sent ${r.fds.length} with a message that expects ${maxFds}`)
      }
      if (r.bytes === 0) {
        if (off === 0 && atStart) return undefined
        throw new ProtocolError(`the peer closed the socket in the middle of a message (${off} of ${n} bytes)`)
      }
      off += r.bytes
    }
    return buf
  }

  #wait(writable: boolean, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        native.fdWaitCancel(pending.handle)
        this.#waits.delete(pending)
        reject(signal?.reason)
      }
      const pending: Pending = {
        handle: native.fdWait(this.fd, writable, (status) => {
          this.#waits.delete(pending)
          signal?.removeEventListener('abort', onAbort)
          if (status < 0) reject(new BpfError('poll', -status, `poll: waiting for the socket failed (${status})`, 'poll'))
          else resolve()
        }),
        reject,
      }
      this.#waits.add(pending)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Closes the socket; pending sends and receives fail with EBADF. Closing twice is a no-op. */
  close(): void {
    if (this.#fd.closed) return
    for (const w of this.#waits) {
      native.fdWaitCancel(w.handle)
      w.reject(new BpfError('close', 9, 'socket closed while waiting', 'close'))
    }
    this.#waits.clear()
    this.#fd.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

function sendCause(code: string): string | undefined {
  if (code === 'EPIPE' || code === 'ECONNRESET') return 'the peer closed the socket'
  if (code === 'EBADF') return 'one of the fds to send is not open'
  if (code === 'ENOTSOCK') return 'not a socket'
  if (code === 'ETOOMANYREFS') return 'fds in flight nest too deep (an fd-passing socket sent over itself)'
  return undefined
}

function recvCause(code: string): string | undefined {
  if (code === 'ECONNRESET') return 'the peer closed the socket'
  if (code === 'EMFILE') return 'this process has no free fds for the ones received'
  if (code === 'ENOTSOCK') return 'not a socket'
  return undefined
}

/** A connected pair of fd-passing sockets. */
export function socketPair(): [FdSocket, FdSocket] {
  return FdSocket.pair()
}

/** Sends `data` with `fds` over `socket` (see FdSocket.send). */
export function sendFds(socket: FdSocket, data: Uint8Array, fds: readonly (Fd | number)[], options?: SendOptions): Promise<void> {
  return socket.send(data, fds, options)
}

/** Receives one message with exactly `options.fds` fds (see FdSocket.receive). */
export function receiveFds(socket: FdSocket, options?: ReceiveOptions): Promise<Message | undefined> {
  return socket.receive(options)
}
