// The tenant's side of the broker: a unix socket to the daemon, one request
// at a time, and what breaks a connection (a send or receive cut short, a
// reply out of step) closes it. The typed objects built from the fds that
// come back, and the checks made before a request leaves (options through
// MapSpec and ProgramSpec, the tenant's policy from hello), are
// client-objects.ts; the broker checks everything again.
import { connect as netConnect } from 'node:net'
import { FdSocket, ProtocolError, maxFdsPerMessage } from '../ipc/index.js'
import { Fd, SyscallError } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { BpfMap } from '../map/map.js'
import type { KeyOf, MapCreateOptions, ValueOf } from '../map/spec.js'
import type { BpfProgram } from '../prog/program.js'
import type { ProgramLoadOptions } from '../prog/spec.js'
import { BpfLink } from '../link/link.js'
import { Policy, type PolicyLike } from '../policy/index.js'
import type { Delegation } from '../delegation/tenant.js'
import { BrokerError, brokerError, fromErrorReply } from './errors.js'
import {
  encodeFrame, protocol, toWire,
  type AttachTarget, type Kind, type ObjectView, type OkReply, type Origin, type ReplyBodies, type RequestBody, type RequestType,
} from './protocol.js'
import { decodeReply } from './validate.js'
import * as objects from './client-objects.js'
import { closeAll, expectFds, view, views, type BrokerObject, type LoadCollectionOptions, type LoadedCollection, type ObjectOfKind } from './client-objects.js'

export type { BrokerObject, LoadCollectionOptions, LoadedCollection } from './client-objects.js'

/** Where the broker listens when neither the caller nor $BPFKIT_BROKER says. */
export const defaultBrokerSocket = '/run/bpfkit/broker.sock'

/** Replies can be large (a list of many objects); the broker is trusted not to flood its own tenants. */
const maxReplyBytes = 64 << 20

export interface ConnectOptions {
  signal?: AbortSignal
  /**
   * Milliseconds for the connect and hello, and then for each request's
   * round trip (default: none). A request that times out closes the client:
   * its reply may still come, and would answer the next request.
   */
  timeoutMs?: number
}

export interface RequestOptions {
  signal?: AbortSignal
}

type Hello = ReplyBodies['hello']

/**
 * A connection to the tenant broker (`bpfkit broker`). The broker knows the
 * caller by its socket's credentials (pid, cgroup, user namespace at
 * connect time): there is nothing to log in with. Requests are queued and
 * sent one at a time; each method resolves with the reply, or throws a
 * BrokerError (`remote: true` when the broker refused: ENOENT for an object
 * not in the tenant's view, EPERM with `rule` or `violations` for a policy
 * refusal, EDQUOT for a quota...). A connection that breaks (the broker
 * closed it, a reply out of step) is closed, and later requests fail with
 * EPIPE naming why. Objects returned own their fds: close them; the broker
 * keeps its own (pinned) until `release`.
 */
export class BrokerClient {
  readonly #socket: FdSocket
  readonly #timeoutMs: number | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #seq = 0
  #closed: string | undefined
  #hello: Hello | undefined
  #policy: Policy | undefined

  private constructor(socket: FdSocket, timeoutMs: number | undefined) {
    this.#socket = socket
    this.#timeoutMs = timeoutMs
  }

  /**
   * Connects to the broker at `path` (default $BPFKIT_BROKER, else
   * /run/bpfkit/broker.sock) and says hello. Errors: BrokerError with the
   * connect error's code (ENOENT: nobody listens there; ECONNREFUSED;
   * EACCES) and `syscall: 'connect'`; the broker's own refusal (EACCES for
   * a peer that matches no tenant and is not the admin; EBUSY for too many
   * connections); TypeError/RangeError for bad arguments. Any Linux the
   * broker runs on (6.5+); no privileges.
   */
  static async connect(path?: string, options: ConnectOptions = {}): Promise<BrokerClient> {
    checkOptions('BrokerClient.connect', options, ['signal', 'timeoutMs'], { types: { timeoutMs: 'number', signal: 'object' } })
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
      throw new TypeError(`BrokerClient.connect: option 'signal' must be an AbortSignal, got ${describeValue(options.signal)}`)
    }
    const timeoutMs = options.timeoutMs
    if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 1)) {
      throw new RangeError(`BrokerClient.connect: timeoutMs must be a positive integer, got ${timeoutMs}`)
    }
    const where = path ?? (process.env.BPFKIT_BROKER || defaultBrokerSocket)
    if (typeof where !== 'string' || where === '') throw new TypeError(`BrokerClient.connect: path must be a socket path, got ${describeValue(where)}`)
    const signal = combine(options.signal, timeoutMs)
    const socket = await openSocket(where, signal)
    const client = new BrokerClient(socket, timeoutMs)
    try {
      const { reply, fds } = await client.#exchange('hello', { client: 'bpfkit' }, [], signal)
      expectFds(fds, 0, 'hello')
      client.#welcome(reply)
    } catch (e) {
      client.close()
      throw e
    }
    return client
  }

  #welcome(reply: OkReply): void {
    const r = reply as unknown as Hello
    if (typeof r.admin !== 'boolean' || (r.tenant !== null && typeof r.tenant !== 'string')) {
      throw this.#fail('EPROTO', 'the broker answered hello without a tenant or admin flag')
    }
    this.#hello = r
    if (r.policy !== null && r.policy !== undefined) {
      // The kernel's BTF may be missing inside a container: then the names it would check are taken as they are.
      try {
        this.#policy = Policy.from(r.policy)
      } catch {
        try {
          this.#policy = Policy.from(r.policy, { kernelBtf: null })
        } catch {
          this.#policy = undefined
        }
      }
    }
  }

  /** The tenant the broker recognised this process as; null for the admin. */
  get tenant(): string | null {
    return this.#hello?.tenant ?? null
  }

  /** True when the broker sees the caller as its admin (root in the initial user namespace, in no tenant). */
  get admin(): boolean {
    return this.#hello?.admin ?? false
  }

  /** The tenant's policy, as the broker enforces it; undefined for the admin. */
  get policy(): Policy | undefined {
    return this.#policy
  }

  /** The tenant's quotas (null: unlimited) and usage at connect time, and the broker's version. */
  get quota(): Record<string, number | null> {
    return { ...(this.#hello?.quota ?? {}) }
  }

  get usage(): Record<string, number> {
    return { ...(this.#hello?.usage ?? {}) }
  }

  get brokerVersion(): string | undefined {
    return this.#hello?.broker
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  /**
   * Sends one request and waits for its reply: the low level under every
   * method. `fds` travel with the request (duplicates; the caller keeps
   * its own). Returns the ok reply and the fds that came with it (owned:
   * close them). Errors: BrokerError (the broker's refusal, remote: true;
   * EPROTO/ECONNRESET/EPIPE when the connection broke, then closed).
   */
  request<T extends RequestType>(type: T, body?: RequestBody<T>, fds?: readonly (Fd | number)[], options?: RequestOptions): Promise<{ reply: OkReply; fds: Fd[] }>
  request(type: string, body?: Record<string, unknown>, fds?: readonly (Fd | number)[], options?: RequestOptions): Promise<{ reply: OkReply; fds: Fd[] }>
  request(type: string, body: object = {}, fds: readonly (Fd | number)[] = [], options: RequestOptions = {}): Promise<{ reply: OkReply; fds: Fd[] }> {
    try {
      if (typeof type !== 'string') throw new TypeError(`request: type must be a request type, got ${describeValue(type)}`)
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new TypeError(`request: body must be an object, got ${describeValue(body)}`)
      if (!Array.isArray(fds)) throw new TypeError(`request: fds must be an array of Fd or fd numbers, got ${describeValue(fds)}`)
      checkOptions('request', options, ['signal'])
    } catch (e) {
      return Promise.reject(e)
    }
    // The timeout starts when the request's turn comes, not while it waits in the queue.
    const run = this.#queue.then(() => this.#exchange(type, body, fds, combine(options.signal, this.#timeoutMs)))
    this.#queue = run.catch(() => {})
    return run
  }

  // One round trip. Anything that leaves the stream in an unknown state
  // (a send or receive cut short, a reply that is not a reply or answers
  // another seq) closes the connection.
  async #exchange(type: string, body: object, fds: readonly (Fd | number)[], signal: AbortSignal | undefined): Promise<{ reply: OkReply; fds: Fd[] }> {
    if (this.#closed !== undefined) throw brokerError('EPIPE', `${type}: the connection to the broker is closed (${this.#closed})`)
    const seq = this.#nextSeq()
    const frame = encodeFrame({ ...(toWire(body) as object), protocol, type, seq })
    try {
      await this.#socket.send(frame, fds, { signal })
    } catch (e) {
      if (e instanceof RangeError || e instanceof TypeError) throw e // bad fds: nothing was sent
      // A broker that refuses a peer says why, then closes: the reason may be waiting unread.
      if (e instanceof SyscallError && (e.code === 'EPIPE' || e.code === 'ECONNRESET')) {
        const why = await this.#lastWord()
        if (why) {
          this.#fail(why.code, why.message)
          throw why
        }
      }
      throw this.#broken(e, type, 'sending')
    }
    let message
    try {
      message = await this.#socket.receive({ maxFds: maxFdsPerMessage, maxBytes: maxReplyBytes, signal })
    } catch (e) {
      throw this.#broken(e, type, 'waiting for the reply')
    }
    if (message === undefined) throw this.#fail('ECONNRESET', `the broker closed the connection before replying to ${type} (seq ${seq})`)
    const received = message.fds
    try {
      const reply = decodeReply(message.data)
      if (reply.seq !== seq) {
        // seq 0 is never ours: the broker could not read the request, or refused the connection; it closes.
        if (reply.type === 'error' && reply.seq === 0) {
          const e = fromErrorReply(reply)
          this.#fail(e.code, e.message)
          throw e
        }
        throw this.#fail('EPROTO', `the broker answered seq ${reply.seq} to ${type} seq ${seq}: the connection is out of step`)
      }
      if (reply.type === 'error') throw fromErrorReply(reply)
      return { reply, fds: received }
    } catch (e) {
      closeAll(received)
      if (e instanceof BrokerError && e.code === 'EPROTO' && !e.remote && this.#closed === undefined) this.#fail('EPROTO', e.message)
      throw e
    }
  }

  // The error reply the broker left before closing, if one is there to read.
  async #lastWord(): Promise<BrokerError | undefined> {
    try {
      const m = await this.#socket.receive({ maxFds: maxFdsPerMessage, maxBytes: maxReplyBytes, signal: AbortSignal.timeout(1000) })
      if (m === undefined) return undefined
      closeAll(m.fds)
      const reply = decodeReply(m.data)
      return reply.type === 'error' ? fromErrorReply(reply) : undefined
    } catch {
      return undefined
    }
  }

  #nextSeq(): number {
    // 0 is the broker's "no seq" (a connection-level refusal); a u32 otherwise.
    this.#seq = this.#seq >= 0xffffffff ? 1 : this.#seq + 1
    return this.#seq
  }

  // The connection is no longer usable: close it, and say why in an error.
  #fail(code: string, reason: string, cause?: unknown): BrokerError {
    if (this.#closed === undefined) {
      this.#closed = reason
      this.#socket.close()
    }
    return new BrokerError(code, reason, { cause })
  }

  #broken(e: unknown, type: string, doing: string): BrokerError {
    if (e instanceof BrokerError) return e
    if (e instanceof ProtocolError) return this.#fail('EPROTO', `${type}: ${doing}: ${e.message}`, e)
    if (e instanceof SyscallError) {
      const gone = e.code === 'EPIPE' || e.code === 'ECONNRESET'
      return this.#fail(e.code, `${type}: ${doing}: ${gone ? 'the broker closed the connection' : e.message}`, e)
    }
    if (e instanceof Error && (e.name === 'AbortError' || e.name === 'TimeoutError')) {
      return this.#fail(e.name === 'TimeoutError' ? 'ETIMEDOUT' : 'ECANCELED', `${type}: ${doing}: ${e.message}`, e)
    }
    return this.#fail('EIO', `${type}: ${doing}: ${e instanceof Error ? e.message : String(e)}`, e)
  }

  /** A request whose reply carries no fds (any that come are closed: EPROTO). */
  async #call<T extends RequestType>(type: T, body: RequestBody<T>): Promise<OkReply> {
    const r = await this.request(type, body)
    expectFds(r.fds, 0, type)
    return r.reply
  }

  /**
   * Creates a map through the broker: options as BpfMap.create (checked by
   * MapSpec.from here, and the map type against the tenant's policy), with
   * `innerMap` an existing BpfMap (sent as an fd) and `token` sent as an fd
   * for a tenant that loads with its own token. `btf` and inner map
   * templates do not travel (TypeError). The map comes back typed as
   * BpfMap.create types it (key and value codecs apply here).
   */
  createMap<const O extends MapCreateOptions>(options: O): Promise<BpfMap<KeyOf<O>, ValueOf<O>>> {
    return objects.createMap(this, options)
  }

  /**
   * Loads a program through the broker: options as BpfProgram.load (type,
   * insns from asm with map references, or bytes whose ld_imm64 hold map
   * fds; license, name, expectedAttachType, attachBtfId, flags, logLevel;
   * token). The maps the instructions reference go along as fds, their
   * ld_imm64 rewritten to indexes. Checked here first: the `policy`
   * option, and the tenant's policy (PolicyError for a program type or
   * attach type it does not delegate, ProgramPolicyError listing every
   * helper, kfunc or map its capabilities do not grant). Options that name
   * other fds (btf, funcInfo, lineInfo, fdArray, attachBtfObjFd,
   * attachProgFd) do not travel: TypeError.
   */
  loadProgram(options: ProgramLoadOptions): Promise<BpfProgram> {
    return objects.loadProgram(this, options)
  }

  /**
   * Loads an object file (a path, read here, or its bytes) through the
   * broker, which checks every program against the tenant's policy.
   * `variables` sets const volatile globals before load (numbers, bigints,
   * booleans, or bytes); `programs` names the programs to load (default:
   * those the object autoloads). Returns the maps and programs by name,
   * each owning its fd.
   */
  loadCollection(pathOrBytes: string | Uint8Array, options: LoadCollectionOptions = {}): Promise<LoadedCollection> {
    return objects.loadCollection(this, pathOrBytes, options)
  }

  /**
   * Attaches one of the tenant's programs (or a program id in its view) to
   * a target in its scope: a cgroup path below the tenant's cgroup, or a
   * network interface in its network namespace. Returns the link (closing
   * it does not detach: the broker holds the link until `detach`).
   */
  attach(prog: BpfProgram | number, attachType: string, target: AttachTarget, options: { flags?: number } = {}): Promise<BpfLink> {
    return objects.attach(this, prog, attachType, target, options)
  }

  /** Detaches a link the broker made for the tenant (by object or id). */
  async detach(link: BpfLink | number): Promise<void> {
    const linkId = typeof link === 'number' ? link : link instanceof BpfLink ? link.id : undefined
    if (linkId === undefined) throw new TypeError(`detach: link must be a BpfLink or a link id, got ${describeValue(link)}`)
    await this.#call('detach', { linkId })
  }

  /** The tenant's objects: made by the broker, adopted, held by its processes, pinned in its bpffs, attached to its cgroups. */
  async list(options: { kinds?: Kind[]; origins?: Origin[] } = {}): Promise<ObjectView[]> {
    checkOptions('list', options, ['kinds', 'origins'], { types: { kinds: 'object', origins: 'object' } })
    const reply = await this.#call('list', { ...(options.kinds ? { kinds: [...options.kinds] } : {}), ...(options.origins ? { origins: [...options.origins] } : {}) })
    return views(reply.objects, 'list')
  }

  /** One object in the tenant's view. ENOENT when it is not (another tenant's and missing look the same). */
  async show(kind: Kind, id: number): Promise<ObjectView> {
    const reply = await this.#call('show', { kind, id })
    return view(reply.object, 'show')
  }

  /** An fd for an object in the tenant's view (get_fd), as its typed object. */
  open<K extends Kind>(kind: K, id: number): Promise<ObjectOfKind<K>> {
    return objects.openObject(this, kind, id)
  }

  /** Pins an object of the tenant's view under the tenant's pin directory as `name`; returns the path. */
  async pin(kind: Kind, id: number, name: string): Promise<string> {
    const reply = await this.#call('pin', { kind, id, name })
    if (typeof reply.path !== 'string') throw brokerError('EPROTO', 'pin: the broker answered without a path')
    return reply.path
  }

  async unpin(name: string): Promise<void> {
    await this.#call('unpin', { name })
  }

  /**
   * Hands objects the tenant made itself (with its token) to the broker,
   * which records them as the tenant's: 1 to 16 BpfMap, BpfProgram,
   * BpfLink, Btf or Fd. The caller keeps its own fds.
   */
  adopt(items: (BrokerObject | Fd)[]): Promise<ObjectView[]> {
    return objects.adopt(this, items)
  }

  /** Drops the broker's hold (its pin, the tenant's pins of it, the record); the object lives while fds hold it. */
  async release(kind: Kind, id: number): Promise<void> {
    await this.#call('release', { kind, id })
  }

  /**
   * Asks the broker for a delegated bpffs (a token mount) for the tenant's
   * policy, or the smaller `policy` given: opens a bpf filesystem context
   * here (fsopen: CAP_SYS_ADMIN over the caller's mount namespace, root in
   * fresh user and mount namespaces), sends it, and gets the configured
   * mount back. Same result as lib/delegation's requestDelegation.
   */
  requestDelegation(options: { policy?: PolicyLike; mountAt?: string } = {}): Promise<Delegation> {
    return objects.requestDelegation(this, options)
  }

  /** Admin: every object on the node, with its owner. Tenants get EACCES. */
  async listAll(options: { kinds?: Kind[] } = {}): Promise<ObjectView[]> {
    checkOptions('listAll', options, ['kinds'], { types: { kinds: 'object' } })
    const reply = await this.#call('list_all', options.kinds ? { kinds: [...options.kinds] } : {})
    return views(reply.objects, 'list_all')
  }

  /** Admin: the tenants with their matchers, policies, quotas and usage. */
  async tenants(): Promise<unknown[]> {
    const reply = await this.#call('tenants', {})
    if (!Array.isArray(reply.tenants)) throw brokerError('EPROTO', 'tenants: the broker answered without a tenants list')
    return reply.tenants
  }

  /** Admin: the broker's counters (sessions, requests, errors, fds...). */
  async stats(): Promise<Record<string, number>> {
    const reply = await this.#call('stats', {})
    const s = reply.stats
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw brokerError('EPROTO', 'stats: the broker answered without stats')
    return s as Record<string, number>
  }

  /**
   * Turns the kernel's run-time statistics (BPF_ENABLE_STATS: programs'
   * runTimeNs and runCount) on for as long as this connection lives; the
   * broker releases them when it closes. Host-wide, so the tenant's policy
   * must list the 'enable_stats' command (else EPERM, rule 'delegate_cmds'). Resolves
   * true when this connection had them on already.
   */
  async enableStats(): Promise<boolean> {
    const reply = await this.#call('enable_stats', {})
    return reply.already === true
  }

  /**
   * One of the tenant's programs as the verifier left it (the kernel gives
   * these to CAP_BPF callers only): the 8-byte instructions, with kernel
   * addresses (call targets, __ksym values) and foreign map IDs zeroed.
   * Decode with asm's decode(). ENOENT when it is not in the tenant's view.
   */
  async xlated(progId: number): Promise<Uint8Array> {
    const reply = await this.#call('prog_xlated', { id: progId })
    if (typeof reply.insns !== 'string') throw brokerError('EPROTO', 'prog_xlated: the broker answered without instructions')
    const bytes = Buffer.from(reply.insns, 'base64')
    if (bytes.length % 8 !== 0) throw brokerError('EPROTO', `prog_xlated: ${bytes.length} bytes are not whole instructions`)
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  }

  /** Closes the connection; queued requests fail with EPIPE. Closing twice is a no-op. */
  close(): void {
    if (this.#closed !== undefined) return
    this.#closed = 'closed by the client'
    this.#socket.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

// ---- helpers ----

function combine(signal: AbortSignal | undefined, timeoutMs: number | undefined): AbortSignal | undefined {
  const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)
  if (signal && timeout) return AbortSignal.any([signal, timeout])
  return signal ?? timeout
}

// connect(2) on a unix stream socket, taken over by an FdSocket the moment it
// connects (before Node reads a byte).
function openSocket(path: string, signal: AbortSignal | undefined): Promise<FdSocket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const s = netConnect({ path })
    const onAbort = () => {
      s.destroy()
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    s.once('connect', () => {
      signal?.removeEventListener('abort', onAbort)
      try {
        resolve(FdSocket.from(s))
      } catch (e) {
        s.destroy()
        reject(e)
      }
    })
    s.once('error', (e: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort)
      s.destroy()
      const code = e.code ?? 'EIO'
      const why = code === 'ENOENT' ? ': no broker listens there (is `bpfkit broker` running? $BPFKIT_BROKER names another socket)'
        : code === 'ECONNREFUSED' ? ': the broker is not accepting connections (stopped?)'
          : code === 'EACCES' ? ': permission denied on the socket' : ''
      reject(new BrokerError(code, `cannot connect to the broker at ${path}: ${code}${why}`, { syscall: 'connect', cause: e }))
    })
  })
}
