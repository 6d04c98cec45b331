// BpfLink: a program attached somewhere. Kernel links (BPF_LINK_CREATE) are
// objects with IDs that can be pinned; a socket filter is attached with
// setsockopt and lives as long as the socket. Closing a link detaches it
// unless it is pinned, as with libbpf's bpf_link__destroy.
import { closeSync, openSync } from 'node:fs'
import { BpfError, Fd, bpfObjectKind, closedError, enumValue, kernel, linkInfoByFd, native, progInfoByFd, type AttachTypeName, type LinkInfo } from '../sys/index.js'
import type { FdRef } from '../map/values.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { Pin } from '../sys/pin.js'
import { programFd } from './program-ref.js'

/** A socket the caller owns: a Node net.Socket or dgram.Socket (bound), or an fd number. */
export type SocketLike = number | object

/** The fd under a Node socket: net sockets keep it on `_handle`, dgram sockets on an internal state symbol. */
function socketFd(socket: SocketLike): number {
  if (typeof socket === 'number') return socket
  if (socket === null || typeof socket !== 'object') throw new TypeError(`socket must be a Node socket or an fd number, got ${describeValue(socket)}`)
  const s = socket as Record<string | symbol, unknown>
  const state = Object.getOwnPropertySymbols(s).map((k) => s[k]).find((v) => (v as { handle?: unknown } | null)?.handle)
  const handle = (s._handle ?? (state as { handle?: unknown } | undefined)?.handle) as { fd?: unknown } | undefined
  if (typeof handle?.fd === 'number' && handle.fd >= 0) return handle.fd
  throw new TypeError('cannot find the socket\'s fd: pass a bound or connected Node socket, or an fd number')
}

/**
 * An attachment that is not a kernel link fd of bpfkit's own: a program set
 * on a perf event by ioctl (kernels before perf links), a PROG_ATTACH
 * attachment, a tc filter made over netlink. The attach family that made it
 * says how to describe, update and end it; BpfLink gives it the one API.
 */
export interface Attachment {
  /** What kind of attachment it is, for messages and `BpfLink.kind`. */
  readonly kind: 'perf_event' | 'prog_attach' | 'netlink'
  readonly closed: boolean
  /** Throws a closedError once closed, a TypeError once detached. */
  info(): LinkInfo
  /** Ends the attachment now; a second call does nothing. */
  detach(): void
  /** Detaches (unless it outlives its holder by design) and releases what it holds; idempotent. */
  close(): void
  /** Swaps the program in place, where the hook allows it. */
  update?(program: FdRef, expected?: FdRef): void
}

// A socket attachment holds its own dup of the socket's fd: the caller's fd
// number may be closed and reused by an unrelated socket, whose filter
// detach() must never touch.
type State =
  | { kind: 'link'; fd: Fd; onClose?: () => void }
  | { kind: 'socket'; socket: Fd; progId: number; attached: boolean }
  | { kind: 'other'; a: Attachment }

/** LINK_CREATE's target and options; the kernel decides which an attach type takes. */
export interface LinkCreateOptions {
  attachType: AttachTypeName | number
  /** The object to attach to by fd: a cgroup directory, a netns, a program, ... */
  targetFd?: number
  /** The network interface to attach to (xdp, tcx, netkit). */
  targetIfindex?: number
  flags?: number
  /** BTF id of the attach point, for tracing programs retargeted at link time. */
  targetBtfId?: number
  /** The value bpf_get_attach_cookie returns (perf_event links). */
  cookie?: number | bigint
}

// EOPNOTSUPP (95): LINK_DETACH is implemented per link type, and raw
// tracepoint, tracing, iterator and perf_event links have none.
const EOPNOTSUPP = 95

function detachLink(fd: number): void {
  try {
    native.linkDetach(fd)
  } catch (e) {
    if (!(e instanceof BpfError) || Math.abs(e.errno) !== EOPNOTSUPP) throw e
    const type = linkInfoByFd(fd).type
    throw new BpfError('link_detach', EOPNOTSUPP, `link_detach: EOPNOTSUPP: the kernel cannot detach a ${type} link while it is open; close it (and remove its pins) to detach it`)
  }
}

export class BpfLink {
  #a: State
  readonly #pin = new Pin()

  private constructor(a: State) {
    this.#a = a
  }

  /**
   * Wraps a kernel link fd an attach family made (the link takes the Fd).
   * `onClose` runs once the fd is closed: the family's own cleanup, such as
   * removing a tracefs probe it created for this link.
   */
  static fromLinkFd(fd: Fd, options: { onClose?: () => void } = {}): BpfLink {
    return new BpfLink({ kind: 'link', fd, onClose: options.onClose })
  }

  /** Wraps an attachment that is not a kernel link (see Attachment). */
  static fromAttachment(a: Attachment): BpfLink {
    return new BpfLink({ kind: 'other', a })
  }

  /**
   * Attaches a socket_filter program to a socket the caller owns
   * (SO_ATTACH_BPF, Linux 3.19+). Packets the program answers 0 for are
   * dropped; a positive answer truncates to that many bytes (UDP sockets
   * see the packet from the UDP header on, and keep at least that header).
   * Replaces a filter already there. The program may be closed afterwards.
   * The link holds a reference to the socket (a dup of its fd) until closed.
   * Errors: TypeError when no socket fd can be found; BpfError (command
   * 'so_attach_bpf') ENOTSOCK, EINVAL for a program that is not a
   * socket_filter, EPERM for a locked filter. Needs no privilege beyond
   * owning the socket.
   */
  static attachSocketFilter(socket: SocketLike, program: FdRef): BpfLink {
    const sock = new Fd(native.dupFd(socketFd(socket)), 'socket')
    try {
      const prog = programFd('BpfLink', program)
      native.socketAttachProg(sock.fd, prog)
      return new BpfLink({ kind: 'socket', socket: sock, progId: progInfoByFd(prog).id, attached: true })
    } catch (e) {
      sock.close()
      throw e
    }
  }

  /**
   * Creates a kernel link (BPF_LINK_CREATE, Linux 5.7+; attach types were
   * added over time): the low-level form behind attachCgroup. Errors:
   * BpfError EINVAL for a program that does not fit the attach type or
   * target, EPERM without the capability the attach type needs
   * (CAP_NET_ADMIN for network hooks), EEXIST for an exclusive hook in use.
   */
  static create(program: FdRef, options: LinkCreateOptions): BpfLink {
    if (options === null || typeof options !== 'object') throw new TypeError('BpfLink.create: options must be an object with at least attachType')
    checkOptions('BpfLink.create', options, ['attachType', 'targetFd', 'targetIfindex', 'flags', 'targetBtfId', 'cookie'])
    const fd = native.linkCreate({
      progFd: programFd('BpfLink', program),
      attachType: enumValue(kernel.attachTypes, 'attach type', options.attachType),
      targetFd: options.targetFd,
      targetIfindex: options.targetIfindex,
      flags: options.flags,
      targetBtfId: options.targetBtfId,
      cookie: options.cookie,
    })
    return BpfLink.fromLinkFd(new Fd(fd, 'link'))
  }

  /**
   * Attaches to a cgroup v2 directory (a path or an open directory fd) with a
   * kernel link (Linux 5.7+): 'cgroup_inet_ingress', 'cgroup_inet_egress',
   * 'cgroup_inet_sock_create', ... Needs CAP_NET_ADMIN (or CAP_BPF for some).
   */
  static attachCgroup(cgroup: string | number, program: FdRef, attachType: AttachTypeName | number, options: { flags?: number } = {}): BpfLink {
    checkOptions('attachCgroup', options, ['flags'])
    const type = enumValue(kernel.attachTypes, 'attach type', attachType)
    const progFd = programFd('BpfLink', program)
    if (typeof cgroup !== 'number' && typeof cgroup !== 'string') throw new TypeError(`attachCgroup: cgroup must be a path or a directory fd, got ${describeValue(cgroup)}`)
    const dirFd = typeof cgroup === 'number' ? cgroup : openSync(cgroup, 'r')
    try {
      const fd = native.linkCreate({ progFd, targetFd: dirFd, attachType: type, flags: options.flags })
      return new BpfLink({ kind: 'link', fd: new Fd(fd, 'link') })
    } finally {
      if (typeof cgroup !== 'number') closeSync(dirFd)
    }
  }

  /** Opens a kernel link by ID (CAP_SYS_ADMIN). Closing it does not detach others' fds. */
  static fromId(id: number): BpfLink {
    return new BpfLink({ kind: 'link', fd: new Fd(native.linkGetFdById(id), 'link') })
  }

  /** Opens a link pinned in bpffs. */
  static fromPin(path: string): BpfLink {
    const fd = new Fd(native.objGet(path), 'link')
    if (bpfObjectKind(fd.fd) !== 'link') {
      fd.close()
      throw new TypeError(`the object pinned at ${path} is not a BPF link`)
    }
    const link = new BpfLink({ kind: 'link', fd })
    link.#pin.at = path
    return link
  }

  /** The link's fd (kernel links only). */
  get fd(): number {
    if (this.#a.kind !== 'link') throw new TypeError(`a ${this.kind} attachment has no link fd`)
    return this.#a.fd.fd
  }

  /**
   * 'link' for kernel links; otherwise what holds the attachment, which has
   * no link fd, ID or pin: 'socket' (a socket filter), 'perf_event' (a
   * program set on a perf event, before perf links), 'prog_attach',
   * 'netlink' (a classic tc filter).
   */
  get kind(): 'link' | 'socket' | Attachment['kind'] {
    return this.#a.kind === 'other' ? this.#a.a.kind : this.#a.kind
  }

  get closed(): boolean {
    const a = this.#a
    if (a.kind === 'link') return a.fd.closed
    return a.kind === 'socket' ? a.socket.closed : a.a.closed
  }

  /** The bpffs path of the pin made by `pin` or opened by `fromPin`. */
  get pinnedAt(): string | undefined {
    return this.#pin.at
  }

  /**
   * Kernel links (Linux 5.8+): id, type, program ID, attach type, cgroup id.
   * Socket filters, which are no kernel object: id 0, type 'socket_filter',
   * the program ID.
   */
  info(): LinkInfo {
    const a = this.#a
    if (a.kind === 'link') return linkInfoByFd(a.fd.fd)
    if (a.kind === 'other') return a.a.info()
    if (a.socket.closed) throw closedError('link (a socket filter)')
    if (!a.attached) throw new TypeError('the socket filter is detached')
    return { id: 0, type: 'socket_filter', typeId: 0, progId: a.progId }
  }

  get id(): number {
    return this.info().id
  }

  /**
   * Replaces the program on the hook without a moment unattached
   * (BPF_LINK_UPDATE, Linux 5.7+ for cgroup links, then xdp, tcx, netns,
   * iter, struct_ops...). With `expected`, only if that program is still the
   * one attached (EPERM otherwise). Errors: BpfError EINVAL or EOPNOTSUPP for
   * a link type the kernel cannot update, EINVAL for a program of another
   * type or attach type.
   */
  update(program: FdRef, options: { expected?: FdRef } = {}): void {
    checkOptions('update', options, ['expected'])
    const a = this.#a
    if (a.kind === 'other') {
      if (!a.a.update) throw new TypeError(`a ${a.a.kind} attachment cannot be updated in place; detach it and attach the new program`)
      return a.a.update(program, options.expected)
    }
    if (a.kind === 'socket') throw new TypeError('a socket filter is replaced by attaching the new one to the socket (BpfLink.attachSocketFilter)')
    native.linkUpdate(a.fd.fd, programFd('BpfLink', program), options.expected === undefined ? undefined : programFd('BpfLink.update', options.expected))
  }

  /** Pins a kernel link in bpffs: it then outlives this process. */
  pin(path: string): void {
    this.#pin.pin(this.fd, path)
  }

  /** Removes that pin; the link stays attached while open. */
  unpin(): void {
    this.#pin.unpin()
  }

  /**
   * Detaches now, even if pinned or open elsewhere (BPF_LINK_DETACH, Linux
   * 5.9+; SO_DETACH_BPF for sockets). The link object stays open until close.
   */
  detach(): void {
    const a = this.#a
    if (a.kind === 'link') detachLink(a.fd.fd)
    else if (a.kind === 'other') a.a.detach()
    else if (a.socket.closed) throw closedError('link (a socket filter)')
    else if (a.attached) {
      native.socketDetachProg(a.socket.fd)
      a.attached = false
    }
  }

  /** Closes the link: detaches it unless pinned (or held open elsewhere); a socket filter is detached and the socket released. */
  close(): void {
    const a = this.#a
    if (a.kind === 'link') {
      if (a.fd.closed) return
      a.fd.close()
      a.onClose?.()
      return
    }
    if (a.kind === 'other') return a.a.close()
    if (a.socket.closed) return
    try {
      this.detach()
    } finally {
      a.socket.close()
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
