// BpfLink: a program attached somewhere. Kernel links (BPF_LINK_CREATE) are
// objects with IDs that can be pinned; a socket filter is attached with
// setsockopt and lives as long as the socket. Closing a link detaches it
// unless it is pinned, as with libbpf's bpf_link__destroy.
import { closeSync, openSync, unlinkSync } from 'node:fs'
import { Fd, bpfObjectKind, enumValue, kernel, linkInfoByFd, native, type AttachTypeName, type LinkInfo } from './sys/index.js'
import type { FdRef } from './map-values.js'
import { checkOptions } from './options.js'

/** A socket the caller owns: a Node net.Socket or dgram.Socket (bound), or an fd number. */
export type SocketLike = number | object

/** The fd under a Node socket: net sockets keep it on `_handle`, dgram sockets on an internal state symbol. */
function socketFd(socket: SocketLike): number {
  if (typeof socket === 'number') return socket
  const s = socket as Record<string | symbol, unknown>
  const state = Object.getOwnPropertySymbols(s).map((k) => s[k]).find((v) => (v as { handle?: unknown } | null)?.handle)
  const handle = (s._handle ?? (state as { handle?: unknown } | undefined)?.handle) as { fd?: unknown } | undefined
  if (typeof handle?.fd === 'number' && handle.fd >= 0) return handle.fd
  throw new TypeError('cannot find the socket\'s fd: pass a bound or connected Node socket, or an fd number')
}

type Attachment =
  | { kind: 'link'; fd: Fd }
  | { kind: 'socket'; socketFd: number; progId: number; attached: boolean }

export class BpfLink {
  #a: Attachment
  #pinnedAt: string | undefined

  private constructor(a: Attachment) {
    this.#a = a
  }

  /**
   * Attaches a socket_filter program to a socket the caller owns
   * (SO_ATTACH_BPF, Linux 3.19+). Packets the program answers 0 for are
   * dropped; a positive answer truncates to that many bytes. Replaces a
   * filter already there. The program may be closed afterwards.
   */
  static attachSocketFilter(socket: SocketLike, program: FdRef): BpfLink {
    const fd = socketFd(socket)
    native.socketAttachProg(fd, program.fd)
    const progId = (program as { id?: number }).id ?? 0
    return new BpfLink({ kind: 'socket', socketFd: fd, progId, attached: true })
  }

  /**
   * Attaches to a cgroup v2 directory (a path or an open directory fd) with a
   * kernel link (Linux 5.7+): 'cgroup_inet_ingress', 'cgroup_inet_egress',
   * 'cgroup_inet_sock_create', ... Needs CAP_NET_ADMIN (or CAP_BPF for some).
   */
  static attachCgroup(cgroup: string | number, program: FdRef, attachType: AttachTypeName | number, options: { flags?: number } = {}): BpfLink {
    checkOptions('attachCgroup', options, ['flags'])
    const type = enumValue(kernel.attachTypes, 'attach type', attachType)
    const dirFd = typeof cgroup === 'number' ? cgroup : openSync(cgroup, 'r')
    try {
      const fd = native.linkCreate({ progFd: program.fd, targetFd: dirFd, attachType: type, flags: options.flags })
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
    link.#pinnedAt = path
    return link
  }

  /** The link's fd (kernel links only). */
  get fd(): number {
    if (this.#a.kind !== 'link') throw new TypeError('a socket filter attachment has no link fd')
    return this.#a.fd.fd
  }

  /** Kernel links: id, type, program ID, attach type. Socket filters: the program ID. */
  info(): LinkInfo {
    const a = this.#a
    if (a.kind === 'link') return linkInfoByFd(a.fd.fd)
    if (!a.attached) throw new TypeError('the socket filter is detached')
    return { id: 0, type: 'socket_filter', typeId: 0, progId: a.progId }
  }

  get id(): number {
    return this.info().id
  }

  /** Pins a kernel link in bpffs: it then outlives this process. */
  pin(path: string): void {
    native.objPin(this.fd, path)
    this.#pinnedAt = path
  }

  unpin(): void {
    if (this.#pinnedAt === undefined) return
    unlinkSync(this.#pinnedAt)
    this.#pinnedAt = undefined
  }

  /**
   * Detaches now, even if pinned or open elsewhere (BPF_LINK_DETACH, Linux
   * 5.9+; SO_DETACH_BPF for sockets). The link object stays open until close.
   */
  detach(): void {
    const a = this.#a
    if (a.kind === 'link') native.linkDetach(a.fd.fd)
    else if (a.attached) {
      native.socketDetachProg(a.socketFd)
      a.attached = false
    }
  }

  /** Closes the link: detaches it unless pinned (or held open elsewhere). */
  close(): void {
    const a = this.#a
    if (a.kind === 'link') a.fd.close()
    else if (a.attached && native.fdIsOpen(a.socketFd)) this.detach()
    else a.attached = false
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
