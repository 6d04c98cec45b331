// Opening paths inside a directory someone else controls (a tenant's bpffs,
// a container's root) without letting the path escape it: the kernel resolves
// with openat2's RESOLVE_* restrictions, so neither a symlink (swapped in
// between a check and a use) nor `..` nor a mount can lead the caller outside.
// Read and O_PATH opens only. The opened fd is then used through
// `/proc/self/fd/N` (fdPath), which names exactly the inode that was opened.
import { constants } from 'node:fs'
import { native } from './addon.js'
import { Fd } from './fd.js'
import { checkOptions, describeValue } from './options.js'

// O_PATH is 010000000 on x86_64, arm64 and every architecture that uses the
// generic fcntl values (not alpha, parisc, sparc); Node's fs.constants lacks
// it. O_DIRECTORY and O_NOFOLLOW differ between architectures (arm64 has its
// own), so they come from Node. Native checks the bits against its headers.
const O_PATH = 0o10000000
const { O_DIRECTORY, O_NOFOLLOW } = constants

/** openat2 `resolve` bits (linux/openat2.h, uapi: the same everywhere). */
export const resolveFlags = Object.freeze({
  noXdev: 0x01,
  noMagiclinks: 0x02,
  noSymlinks: 0x04,
  beneath: 0x08,
  inRoot: 0x10,
})

export interface OpenBeneathOptions {
  /**
   * Resolve with `dir` as the root (RESOLVE_IN_ROOT): absolute paths and `..`
   * stay inside it, as the tenant sees its own tree. Default: RESOLVE_BENEATH,
   * where an absolute path or a `..` above `dir` is refused (EXDEV).
   */
  inRoot?: boolean
  /** The path must be a directory (O_DIRECTORY); ENOTDIR otherwise. */
  directory?: boolean
  /** Open the last component itself when it is a symlink (O_NOFOLLOW; with pathOnly, an fd of the link). */
  noFollow?: boolean
  /**
   * An O_PATH fd: names the inode without opening it for reading (bpffs pins
   * cannot be opened otherwise). Use it through fdPath (BPF_OBJ_GET,
   * readdir, stat). Default: opened for reading (O_RDONLY).
   */
  pathOnly?: boolean
}

const optionKeys = ['inRoot', 'directory', 'noFollow', 'pathOnly'] as const

function dirNumber(dir: Fd | number): number {
  if (dir instanceof Fd) return dir.fd
  if (Number.isInteger(dir) && dir >= 0) return dir
  throw new TypeError(`openBeneath: dir must be an Fd or an fd number, got ${describeValue(dir)}`)
}

/**
 * Opens `path` relative to the directory `dir`, never leaving it: no symlinks
 * at all (RESOLVE_NO_SYMLINKS; magic links too), no mount crossings
 * (RESOLVE_NO_XDEV), and BENEATH or IN_ROOT (see options). The fd is
 * O_CLOEXEC and owned. Linux 5.6. Errors: SyscallError 'openat2' with EXDEV
 * (escape or mount crossing), ELOOP (a symlink), ENOENT, ENOTDIR, EAGAIN (a
 * concurrent rename: retry); TypeError for bad arguments.
 */
export function openBeneath(dir: Fd | number, path: string, opts: OpenBeneathOptions = {}): Fd {
  const dirFd = dirNumber(dir)
  if (typeof path !== 'string' || path.length === 0) {
    throw new TypeError(`openBeneath: path must be a non-empty string, got ${describeValue(path)}`)
  }
  checkOptions('openBeneath', opts, optionKeys, { types: { inRoot: 'boolean', directory: 'boolean', noFollow: 'boolean', pathOnly: 'boolean' } })
  let flags = 0
  if (opts.pathOnly) flags |= O_PATH
  if (opts.directory) flags |= O_DIRECTORY
  if (opts.noFollow) flags |= O_NOFOLLOW
  const resolve = resolveFlags.noSymlinks | resolveFlags.noMagiclinks | resolveFlags.noXdev |
    (opts.inRoot ? resolveFlags.inRoot : resolveFlags.beneath)
  return new Fd(native.openat2(dirFd, path, flags, resolve), opts.pathOnly ? 'path' : 'file')
}

/**
 * `/proc/self/fd/N`: a path that names exactly the inode `fd` refers to,
 * for calls that take paths (BPF_OBJ_GET on an O_PATH fd of a pin,
 * fs.readdirSync of a directory fd, stat). Valid while the fd is open.
 */
export function fdPath(fd: Fd | number): string {
  const n = fd instanceof Fd ? fd.fd : fd
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`fdPath: fd must be an Fd or an fd number, got ${describeValue(fd)}`)
  return `/proc/self/fd/${n}`
}
