// How the guard recognises a tenant's requests, as the keys its programs
// look up: a user namespace's inode number, a cgroup v2 id, or the device
// of a bpffs whose tokens are the tenant's.
import { readlinkSync, statSync, type BigIntStats } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, onFilesystem } from '../sys/fs-magic.js'
import { checkOptions, describeValue } from '../sys/options.js'

export interface TenantMatch {
  /**
   * The tenant's user namespace: a path to it (/proc/<pid>/ns/user) or its
   * inode number. Requests made with a token of that namespace, or by a task
   * in it, are the tenant's.
   */
  userns?: string | number
  /**
   * A cgroup v2 directory (path) or its id: requests by tasks in it or in
   * any cgroup below it are the tenant's (the deepest registered one wins).
   */
  cgroup?: string | number | bigint
  /**
   * A bpffs the tenant's tokens are made from (the path of a mount of it):
   * requests carrying such a token are the tenant's. Only tokens made while
   * the guard runs are known.
   */
  token?: string
}

/** A match resolved to the keys of by_userns, by_cgroup and by_bpffs. */
export interface MatchKeys {
  userns?: number
  cgroup?: bigint
  bpffs?: number
}

export function matchKeys(match: TenantMatch): MatchKeys {
  if (match === null || typeof match !== 'object' || Array.isArray(match)) {
    throw new TypeError(`guard: match must be an object like { userns, cgroup, token }, got ${describeValue(match)}`)
  }
  checkOptions('guard: match', match, ['userns', 'cgroup', 'token'], { noun: 'key' })
  const out: MatchKeys = {}
  if (match.userns !== undefined) out.userns = nsInode(match.userns)
  if (match.cgroup !== undefined) out.cgroup = cgroupId(match.cgroup)
  if (match.token !== undefined) out.bpffs = bpffsDevice(match.token)
  if (Object.keys(out).length === 0) throw new TypeError('guard: match names nothing: give userns, cgroup or token')
  return out
}

function nsInode(v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v <= 0 || v > 0xffffffff) throw new RangeError(`guard: match.userns ${v} is not an inode number`)
    return v
  }
  if (typeof v !== 'string') throw new TypeError(`guard: match.userns must be a path (/proc/<pid>/ns/user) or an inode number, got ${describeValue(v)}`)
  // Namespace files all live on nsfs: the same device as our own namespace's.
  const st = statOf('match.userns', v)
  if (st.dev !== statSync('/proc/self/ns/user', { bigint: true }).dev) throw new TypeError(`guard: match.userns: ${v} is not a namespace file (like /proc/<pid>/ns/user)`)
  // Every kind of namespace is on nsfs: a network namespace's inode would be
  // a key no user namespace ever has, and the tenant would go unchecked.
  // /proc/<pid>/ns/* links say their kind; a bind mount of one cannot be asked.
  const kind = nsKindOf(v)
  if (kind !== undefined && kind !== 'user') throw new TypeError(`guard: match.userns: ${v} is a ${kind} namespace, not a user namespace (like /proc/<pid>/ns/user)`)
  return Number(st.ino)
}

/**
 * 'user', 'net'...: what the /proc/<pid>/ns/<kind> link at the end of `path`'s
 * symlinks reads; undefined when the chain ends elsewhere (a bind mount).
 */
function nsKindOf(path: string): string | undefined {
  for (let hops = 0; hops < 40; hops++) {
    let target: string
    try {
      target = readlinkSync(path)
    } catch {
      return undefined // not a link
    }
    const kind = /^(\w+):\[\d+\]$/.exec(target)?.[1]
    if (kind !== undefined) return kind
    path = resolve(dirname(path), target)
  }
  return undefined
}

function cgroupId(v: string | number | bigint): bigint {
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new RangeError(`guard: match.cgroup ${v} is not a cgroup id`)
    const id = BigInt(v)
    if (id <= 0n || id >= 1n << 64n) throw new RangeError(`guard: match.cgroup ${v} is not a cgroup id`)
    return id
  }
  if (typeof v !== 'string') throw new TypeError(`guard: match.cgroup must be a cgroup v2 directory or id, got ${describeValue(v)}`)
  const st = statOf('match.cgroup', v)
  if (!st.isDirectory() || !onFilesystem(v, CGROUP2_SUPER_MAGIC)) throw new TypeError(`guard: match.cgroup: ${v} is not a cgroup v2 directory`)
  // A cgroup v2 directory's inode number is the cgroup's id (its kernfs node id).
  return st.ino
}

function bpffsDevice(v: string): number {
  if (typeof v !== 'string') throw new TypeError(`guard: match.token must be the path of a bpffs, got ${describeValue(v)}`)
  const st = statOf('match.token', v)
  if (!onFilesystem(v, BPF_FS_MAGIC)) throw new TypeError(`guard: match.token: ${v} is not a bpffs`)
  return kernelDev(st.dev)
}

function statOf(what: string, path: string): BigIntStats {
  try {
    return statSync(path, { bigint: true })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw Object.assign(new Error(`guard: ${what}: ${path}: ${code ?? (e as Error).message}`), { code })
  }
}

/**
 * stat's st_dev (glibc's encoding: major in bits 8-19 and 32-43, minor in
 * 0-7 and 20-31) as the kernel's dev_t in super_block.s_dev (major << 20 | minor).
 */
export function kernelDev(userDev: number | bigint): number {
  const d = BigInt(userDev)
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn)
  return Number(((major << 20n) | minor) & 0xffffffffn)
}
