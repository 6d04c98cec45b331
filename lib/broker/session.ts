// One connection: receive a frame (size, fd and idle limits), classify its
// fds, decode, dispatch to a handler, reply; one request at a time. Every fd
// that came in is closed once the reply went out, whatever happened, and so
// is every Fd the handler put in its reply: the broker keeps no object fds
// between requests. A well-framed bad request gets an error reply and the
// connection stays; a broken stream (bad length, fds mid-frame, too many
// fds, a stalled peer) gets a best-effort error frame and is closed. The
// one thing a connection keeps between requests is in its holds (the
// statistics fd of enable_stats), closed with it.
import { FdSocket, ProtocolError } from '../ipc/index.js'
import { bpfObjectKind, Fd, native } from '../sys/index.js'
import { BrokerError, toErrorReply, type ErrorBody } from './errors.js'
import { adminRequests, encodeFrame, errorReply, okReply, type RequestType } from './protocol.js'
import { decodeRequest, peekSeq } from './validate.js'
import type { Peer } from './peer.js'
import type { ResolvedTenant } from './config.js'
import type { BrokerState, ConnectionHolds, Handler, HandlerContext, ReceivedFd } from './state.js'
import { infoOf } from './handlers/view-object.js'

export type HandlerTable = Partial<Record<RequestType, Handler>>

/** Counters the server sums into Broker.stats(). */
export interface SessionCounters {
  requests: number
  errors: number
  protocolErrors: number
}

export interface SessionOptions {
  state: BrokerState
  socket: FdSocket
  peer: Peer
  tenant: ResolvedTenant | null
  handlers: HandlerTable
  counters: SessionCounters
}

/**
 * What a received fd is: its BPF kind and id (the kernel's info), a token
 * (no id), or undefined for anything else.
 */
export function classifyFd(fd: Fd): ReceivedFd {
  const kind = bpfObjectKind(fd.fd)
  if (kind === undefined || kind === 'token') return { fd, kind }
  try {
    const id = infoOf(kind, fd.fd).id
    return typeof id === 'number' ? { fd, kind, id } : { fd, kind: undefined }
  } catch {
    return { fd, kind: undefined }
  }
}

export class Session {
  readonly #o: SessionOptions
  // A second fd for the same socket: FdSocket closes its own on a framing
  // error, and this one still carries the error frame to the peer.
  readonly #spare: Fd
  #closed = false
  /** What requests asked the broker to keep for this connection (statistics on). */
  readonly holds: ConnectionHolds = {}

  /** Takes nothing over when it throws: the caller still owns the socket and the peer's pidfd. */
  constructor(options: SessionOptions) {
    const spare = native.dupFd(options.socket.fd)
    try {
      this.#spare = new Fd(spare, 'socket')
    } catch (e) {
      // Unowned yet: a leaked duplicate would hold the connection open, the
      // peer waiting for an answer until its own timeout.
      native.closeFd(spare)
      throw e
    }
    this.#o = options
  }

  get peer(): Peer {
    return this.#o.peer
  }

  get tenant(): ResolvedTenant | null {
    return this.#o.tenant
  }

  /** Serves requests until the peer hangs up, the stream breaks, it idles too long, or close(). */
  async run(): Promise<void> {
    const { socket, state } = this.#o
    const { maxFrameBytes, maxFds, idleTimeoutMs } = state.config.limits
    try {
      while (!this.#closed) {
        let message
        try {
          message = await socket.receive({ maxBytes: maxFrameBytes, maxFds, signal: AbortSignal.timeout(idleTimeoutMs) })
        } catch (e) {
          if (this.#closed) return
          this.#o.counters.protocolErrors++
          await this.#lastWord(e)
          return
        }
        if (message === undefined) return
        await this.#serve(message.data, message.fds)
      }
    } finally {
      this.close()
    }
  }

  async #serve(data: Buffer, received: Fd[]): Promise<void> {
    const { state, socket, counters } = this.#o
    counters.requests++
    const fds = received.map(classifyFd)
    let seq = 0
    let frame: Record<string, unknown>
    let out: (Fd | number)[] = []
    const controller = new AbortController()
    try {
      const req = decodeRequest(data, received.length)
      seq = req.seq
      const handler = Object.hasOwn(this.#o.handlers, req.type) ? this.#o.handlers[req.type] : undefined
      if (!handler) throw new BrokerError('EPROTO', `the broker has no handler for '${req.type}'`)
      if (adminRequests.includes(req.type) && this.#o.tenant !== null) {
        throw new BrokerError('EACCES', `'${req.type}' is for the admin; this connection is tenant ${this.#o.tenant.name}`)
      }
      const ctx: HandlerContext = { state, tenant: this.#o.tenant, peer: this.#o.peer, fds, signal: controller.signal, holds: this.holds }
      const result = await handler(ctx, req)
      // Closed while the handler ran (Broker.close): what it just took into
      // the holds would outlive the connection, so release it here.
      if (this.#closed) this.holds.stats?.close()
      out = result.fds ?? []
      frame = okReply(seq, result.reply)
    } catch (e) {
      counters.errors++
      if (seq === 0) seq = peekSeq(data) ?? 0
      frame = errorReply(seq, toErrorReply(e))
      for (const f of out) if (f instanceof Fd) f.close()
      out = []
    } finally {
      for (const r of fds) r.fd.close()
    }
    try {
      await socket.send(encodeFrame(frame), out, { signal: AbortSignal.timeout(state.config.limits.idleTimeoutMs) })
    } catch {
      // The peer went away (EPIPE) or stopped reading: nothing more to tell it.
      this.close()
    } finally {
      for (const f of out) if (f instanceof Fd) f.close()
      controller.abort()
    }
  }

  // A broken stream or an idle peer: one error frame on the spare fd, in
  // case the peer still listens, then close.
  async #lastWord(e: unknown): Promise<void> {
    const timeout = e instanceof DOMException && e.name === 'TimeoutError'
    const body: ErrorBody = timeout
      ? { code: 'ETIMEDOUT', message: `no complete request within ${this.#o.state.config.limits.idleTimeoutMs} ms: closing` }
      : e instanceof ProtocolError ? { code: 'EPROTO', message: e.message } : toErrorReply(e)
    if (this.#spare.closed) return
    const s = FdSocket.from(this.#spare)
    try {
      await s.send(encodeFrame(errorReply(0, body)), [], { signal: AbortSignal.timeout(1000) })
    } catch {
      // best effort
    } finally {
      s.close()
    }
  }

  close(): void {
    this.holds.stats?.close()
    if (this.#closed && this.#spare.closed && this.#o.socket.closed) return
    this.#closed = true
    this.#o.socket.close()
    this.#spare.close()
  }
}

