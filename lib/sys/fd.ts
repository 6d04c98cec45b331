// Owned file descriptors. Every fd bpfkit creates is an `Fd`: closed once,
// explicitly or by `using`, with a FinalizationRegistry as the last resort.
import { readFileSync, readlinkSync } from 'node:fs'
import { native } from './addon.js'
import { BpfError } from './errors.js'
import { describeValue } from './options.js'
import { BPF_FS_MAGIC, onFilesystem } from './fs-magic.js'

const EBADF = 9

interface Origin {
  kind: string
  stack?: string
}

// Live fds by number, for leak checks. Keyed by number so that it never keeps
// an Fd object alive (the finalizer must still be able to run).
const live = new Map<number, Origin>()
const traceStacks = process.env.BPFKIT_TRACE_FDS === '1'

const finalizer = new FinalizationRegistry<number>((fd) => {
  live.delete(fd)
  try {
    native.closeFd(fd)
  } catch {
    // Nothing to report to: the owner is gone.
  }
})

export class Fd {
  #fd: number
  /** What the fd refers to ('map', 'prog', 'link', 'btf', 'token', ...), for messages. */
  readonly kind: string

  /** Takes ownership of `fd`, which must be open and at least 3. */
  constructor(fd: number, kind = 'fd') {
    if (!Number.isInteger(fd) || fd < 3) throw new RangeError(`not an owned file descriptor: ${describeValue(fd)}`)
    // Adopting a closed number, or one another Fd owns, would let this Fd's
    // close (or its finalizer) close whatever the number means later.
    const owner = live.get(fd)
    if (owner) throw new TypeError(`fd ${fd} is already owned by another Fd (${owner.kind}); dup() it to share`)
    if (!native.fdIsOpen(fd)) throw new BpfError('fd', EBADF, `${kind}: fd ${fd} is not open`, 'fcntl')
    // Whatever native state was opened from this number belongs to what it
    // meant before (closed and reused behind bpfkit's back): it ends here.
    // Native also closes the number if this environment ends with it open
    // (a terminated worker runs no finalizers).
    native.adoptFd(fd)
    this.#fd = fd
    this.kind = kind
    live.set(fd, { kind, stack: traceStacks ? new Error().stack?.split('\n').slice(2).join('\n') : undefined })
    finalizer.register(this, fd, this)
  }

  /** The fd number; throws EBADF once closed. */
  get fd(): number {
    if (this.#fd < 0) throw closedError(`${this.kind}: file descriptor`)
    return this.#fd
  }

  get closed(): boolean {
    return this.#fd < 0
  }

  /** Closes the fd. Closing twice is a no-op. */
  close(): void {
    const fd = this.#fd
    if (fd < 0) return
    this.#fd = -1
    finalizer.unregister(this)
    live.delete(fd)
    native.closeFd(fd)
  }

  [Symbol.dispose](): void {
    this.close()
  }

  /** A new owned fd (O_CLOEXEC, >= 3) for the same object. */
  dup(): Fd {
    return new Fd(native.dupFd(this.fd), this.kind)
  }

  /**
   * Gives up ownership: the caller must close the returned number. Objects
   * built on this Fd (a BpfMap's op slot) stop working: once the number is the
   * caller's, it may be closed and reused for something else at any time.
   */
  release(): number {
    const fd = this.fd
    this.#fd = -1
    finalizer.unregister(this)
    live.delete(fd)
    native.forgetFd(fd)
    return fd
  }

  toString(): string {
    return this.#fd < 0 ? `Fd(${this.kind}, closed)` : `Fd(${this.kind}, ${this.#fd})`
  }

  /** Fds owned by bpfkit objects and still open, with where they were made when BPFKIT_TRACE_FDS=1. */
  static openFds(): Array<{ fd: number; kind: string; stack?: string }> {
    return [...live].map(([fd, o]) => ({ fd, ...o }))
  }
}

/**
 * The error for using a closed object, one type everywhere (fds, maps,
 * programs, links, ring buffers, mappings): a BpfError with code EBADF and
 * the message "<what> already closed".
 */
export function closedError(what: string): BpfError {
  return new BpfError('fd', EBADF, `${what} already closed`, 'close')
}

/**
 * The kind of BPF object behind an fd, or undefined for anything else. Maps,
 * programs, links and BTF are anon inodes, told apart by the inode's name
 * ('bpf-map', 'bpf-prog', 'bpf_link', 'btf'). A token is not: it is a
 * pseudo file on the bpffs it was made from (kernel/bpf/token.c:
 * alloc_file_pseudo, "bpf-token"; its link reads "/bpf-token (deleted)"),
 * recognised by what no other file has: the bpffs's f_type and the
 * kernel's token fdinfo (allowed_cmds). OBJ_GET_INFO_BY_FD answers for any
 * kind, so this is how an fd from a pin or another process is checked
 * before it is trusted.
 */
export function bpfObjectKind(fd: number): 'map' | 'prog' | 'link' | 'btf' | 'token' | undefined {
  let target: string
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`)
  } catch {
    return undefined
  }
  const m = /^anon_inode:\[?(bpf-map|bpf-prog|bpf_link|bpf-link|btf|bpf-token)\]?$/.exec(target)
  if (m) return ({ 'bpf-map': 'map', 'bpf-prog': 'prog', bpf_link: 'link', 'bpf-link': 'link', btf: 'btf', 'bpf-token': 'token' } as const)[m[1] as 'btf']
  return !target.startsWith('anon_inode:') && isToken(fd) ? 'token' : undefined
}

// kernel/bpf/token.c bpf_token_show_fdinfo: the first line of a token's own fdinfo.
const tokenFdinfo = /^allowed_cmds:\s/m

function isToken(fd: number): boolean {
  try {
    if (!onFilesystem(`/proc/self/fd/${fd}`, BPF_FS_MAGIC)) return false
    return tokenFdinfo.test(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
  } catch {
    return false
  }
}
