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
import { closedError, createSyscallError, Fd, native, type FdWaitHandle } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { ProtocolError, reword } from './errors.js'

const headerBytes = 4
/** SCM_MAX_FD: the kernel's limit per message. */
export const maxFdsPerMessage = 253
/** The largest payload a frame can describe: its length is a 32-bit field. */
export const maxMessageBytes = 0xffff_ffff

export interface ReceiveOptions {
  /** Exactly this many fds must come with the message; others are an error. Default: 0. */
  fds?: number
  /** Instead of an exact count: at most this many fds. */
  maxFds?: number
  /**
   * Largest payload accepted (an integer, 1 to 2^32-1, the most a frame can
   * describe); a bigger message is a ProtocolError. Default: 1 MiB.
   */
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

type Pending = { handle: FdWaitHandle; reject: (e: unknown) => void; writable: boolean }

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
   * Takes over a unix socket: an owned `Fd` (ownership passes: the given
   * `Fd` reads as closed afterwards, so closing it cannot pull the socket
   * from under a pending receive), an fd number (e.g. 3 in a child
   * that got the socket as an extra stdio entry; ownership passes), or a
   * Node `net.Socket`, whose fd is duplicated and which is then destroyed.
   * Take a `net.Socket` over synchronously when it connects (in the
   * 'connect' or 'connection' handler), before it reads: Errors: TypeError
   * when it is not connected or has already read data.
   */
  static from(socket: Socket | Fd | number): FdSocket {
    if (socket instanceof Fd) return new FdSocket(new Fd(socket.release(), 'socket'))
    if (typeof socket === 'number') return new FdSocket(new Fd(socket, 'socket'))
    if (socket === null || typeof socket !== 'object') {
      throw new TypeError(`FdSocket.from: socket must be a net.Socket, an Fd or an fd number, got ${describeValue(socket)}`)
    }
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
    try {
      checkSendArguments(data, fds, options)
    } catch (e) {
      return Promise.reject(e)
    }
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
    let limits: Limits
    try {
      limits = receiveLimits(options)
    } catch (e) {
      return Promise.reject(e)
    }
    const run = this.#receiving.then(() => this.#receive(limits, options.signal))
    this.#receiving = run.catch(() => {})
    return run
  }

  async #receive({ want, exact, maxBytes }: Limits, signal: AbortSignal | undefined): Promise<Message | undefined> {
    const fds: Fd[] = []
    const progress = { started: false }
    try {
      const header = await this.#readExact(headerBytes, want, fds, true, progress, signal)
      if (header === undefined) return undefined
      const length = header.readUInt32LE(0)
      if (length > maxBytes) throw new ProtocolError(`message of ${length} bytes is over the limit of ${maxBytes}`)
      const data = length === 0 ? Buffer.alloc(0) : ((await this.#readExact(length, 0, fds, false, progress, signal)) as Buffer)
      if (exact && fds.length !== want) {
        throw new ProtocolError(`expected ${want} fd${want === 1 ? '' : 's'} with the message, got ${fds.length}`)
      }
      return { data, fds }
    } catch (e) {
      for (const f of fds) f.close()
      // Aborted before the first byte, the stream is where it was; anything
      // else leaves it somewhere in the middle of a message.
      if (progress.started || !(signal?.aborted && e === signal.reason)) this.close()
      throw e
    }
  }

  // Reads exactly n bytes. `atStart` allows a clean end of stream before the
  // first byte. Fds may only come with the header.
  async #readExact(n: number, maxFds: number, fds: Fd[], atStart: boolean, progress: { started: boolean }, signal?: AbortSignal): Promise<Buffer | undefined> {
    const buf = Buffer.alloc(n)
    let off = 0
    let pollError: unknown
    while (off < n) {
      signal?.throwIfAborted()
      const r = reword('recvmsg', 'receiving on an fd socket', recvCause, () => native.recvWithFds(this.fd, buf.subarray(off), maxFds))
      if (r === null) {
        if (pollError !== undefined) throw pollError
        try {
          await this.#wait(false, signal)
        } catch (e) {
          // A peer that wrote its reply and then reset the connection makes
          // the poll report an error while the reply is still queued: read
          // once more, which returns the queued bytes first (then ECONNRESET).
          if (this.#fd.closed || (e as { syscall?: string }).syscall !== 'poll') throw e
          pollError = e
        }
        continue
      }
      pollError = undefined
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

  // Waits (on the event loop, through a native poll of a dup of the fd) until
  // the socket is readable or writable. close() cancels the poll before the
  // fd goes and rejects the promise.
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
          if (status < 0) reject(createSyscallError('poll', -status, `waiting for the fd socket to be ${writable ? 'writable' : 'readable'}`))
          else resolve()
        }),
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
        writable,
      }
      this.#waits.add(pending)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Closes the socket; pending sends and receives fail with EBADF ("fd
   * socket ... already closed"). Closing twice is a no-op.
   */
  close(): void {
    if (this.#fd.closed) return
    // Polls end before the fd does: libuv must never watch a closed number.
    const waits = [...this.#waits]
    this.#waits.clear()
    for (const w of waits) native.fdWaitCancel(w.handle)
    try {
      this.#fd.close()
    } finally {
      // Even when the fd's own close fails (its number was closed behind
      // our back), every waiter hears that the socket is gone.
      for (const w of waits) w.reject(closedError(`${w.writable ? 'send' : 'receive'} cancelled: fd socket`))
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

// The limits of one receive, checked before anything is read: a TypeError
// for a value of the wrong type, a RangeError for one out of range, so a
// typo or NaN can never lift a limit.
interface Limits {
  want: number
  exact: boolean
  maxBytes: number
}

function receiveLimits(options: ReceiveOptions): Limits {
  checkOptions('receive', options, ['fds', 'maxFds', 'maxBytes', 'signal'], {
    types: { fds: 'number', maxFds: 'number', maxBytes: 'number', signal: 'object' },
  })
  // Any object passes the typeof check; only an AbortSignal has throwIfAborted (npm run fuzz: "signal?.throwIfAborted is not a function").
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError(`receive: option 'signal' must be an AbortSignal, got ${describeValue(options.signal)}`)
  }
  if (options.fds !== undefined && options.maxFds !== undefined) throw new TypeError('receive: give fds (exact) or maxFds, not both')
  const exact = options.maxFds === undefined
  const want = options.maxFds ?? options.fds ?? 0
  const wantName = exact ? 'fds' : 'maxFds'
  if (!Number.isInteger(want) || want < 0 || want > maxFdsPerMessage) {
    throw new RangeError(`receive: ${wantName} must be an integer from 0 to ${maxFdsPerMessage} (SCM_MAX_FD), got ${want}`)
  }
  const maxBytes = options.maxBytes ?? 1 << 20
  if (!Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > maxMessageBytes) {
    throw new RangeError(`receive: maxBytes must be an integer from 1 to ${maxMessageBytes} (a frame's 32-bit length), got ${maxBytes}`)
  }
  return { want, exact, maxBytes }
}

/**
 * send()'s arguments, named before any is read for the frame (found by
 * `npm run fuzz`: JavaScript's own "fds.map is not a function" and
 * "Cannot read properties of null" otherwise).
 */
function checkSendArguments(data: unknown, fds: unknown, options: SendOptions): void {
  if (!(data instanceof Uint8Array)) throw new TypeError(`send: data must be a Uint8Array, got ${describeValue(data)}`)
  if (data.byteLength === 0 && isDetached(data)) throw new TypeError('send: data is a view of a detached ArrayBuffer')
  if (!Array.isArray(fds)) throw new TypeError(`send: fds must be an array of Fd or fd numbers, got ${describeValue(fds)}`)
  fds.forEach((f: unknown, i) => {
    const ok = (Number.isInteger(f) && (f as number) >= 0) || (typeof f === 'object' && f !== null && 'fd' in f)
    if (!ok) throw new TypeError(`send: fds[${i}] must be an Fd or an fd number, got ${describeValue(f)}`)
  })
  checkOptions('send', options, ['signal'])
  if (options?.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new TypeError(`send: option 'signal' must be an AbortSignal, got ${describeValue(options.signal)}`)
  }
}

function isDetached(view: Uint8Array): boolean {
  try {
    new Uint8Array(view.buffer)
    return false
  } catch {
    return true
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
