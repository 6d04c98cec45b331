// Which BPF objects are a tenant's without the broker having made them
// (plan §4.2): those its processes hold, those pinned in its bpffs, and the
// links attached to its cgroups. The broker keeps no fd: every object opened
// here to read its id is closed at once.
//
// Tasks: a tenant with a cgroup matcher is every process in its subtree; one
// matched by user namespace (an inode) only is every process in that
// namespace. A tenant matched by uid only, or by userns 'non-initial' only,
// has no discoverable tasks (so nothing held, no cgroup links) — a uid names
// no set of processes the broker could enumerate safely; its pins are still
// found through the peer that asks. Every task is checked against all of the
// tenant's matchers after its fds were read, so a pid reused meanwhile by
// someone else's process adds nothing.
import { constants, fstatSync, opendirSync, readFileSync, statfsSync } from 'node:fs'
import { join } from 'node:path'
import { bpfObjectKind, btfInfoByFd, Fd, linkInfoByFd, mapInfoByFd, native, progInfoByFd } from '../sys/index.js'
import { links } from '../sys/ids.js'
import { fdPath, openBeneath, resolveFlags } from '../sys/resolve.js'
import { BPF_FS_MAGIC } from '../sys/fs-magic.js'
import { pidfdIsAlive } from '../ipc/index.js'
import type { Kind } from './protocol.js'
import type { ResolvedTenant } from './config.js'
import { bpfFdsOf, cgroupPathOf, cgroupProcs, cgroupTree, nsInode, pidsInUserns } from './procfs.js'
import { initialUsernsIno } from './peer.js'

export type Ref = `${Kind}:${number}`

export interface Discovered {
  held: Set<Ref>
  /** Pin paths by object: in the tenant's bpffs as the tenant sees them; under tenantPinRoot as the host does. */
  pinned: Map<Ref, string[]>
  cgroup: Set<Ref>
  /** Date.now() when this pass ran. */
  at: number
}

export interface DiscoveryHint {
  /** A live process of the tenant (the connected peer): its root is where the tenant's bpffs is looked up first. */
  pid: number
  /** That process's pidfd, proving the pid still means it. */
  pidfd?: Fd
}

export interface DiscoverOptions {
  /** The broker-managed pin directory of this tenant (`${tenantPinRoot}/${name}`), walked as the host sees it. */
  pinDir?: string
  /** Link ids by cgroup id, from `cgroupLinks()`: one global link walk shared by every tenant of a pass. */
  cgroupLinks?: ReadonlyMap<bigint, readonly number[]>
  /**
   * Cgroup ids of other tenants' cgroups inside this tenant's subtree: their
   * subtrees, tasks and links are those tenants' (the deepest matcher wins, as
   * it does for a peer), not shared with this one.
   */
  nested?: ReadonlySet<bigint>
}

// O_PATH as lib/sys/resolve.ts has it (Node's fs.constants lacks it).
const O_PATH = 0o10000000
const { O_DIRECTORY } = constants
const { noMagiclinks: RESOLVE_NO_MAGICLINKS, noSymlinks: RESOLVE_NO_SYMLINKS, inRoot: RESOLVE_IN_ROOT } = resolveFlags

/** How deep and how wide a bpffs walk goes: a tenant controls its bpffs and must not make a pass endless. */
export const pinWalkLimits = { depth: 8, entries: 10_000 } as const

/** Errors that mean the thing vanished or is not what was expected: skipped, never fatal to a pass. */
function skippable(e: unknown): boolean {
  const code = (e as { code?: string }).code
  // EAGAIN: openat2 saw a concurrent rename in the tenant's tree; the next pass sees where it went.
  return code === 'ENOENT' || code === 'ESRCH' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EXDEV' ||
    code === 'EACCES' || code === 'EPERM' || code === 'EINVAL' || code === 'EBADF' || code === 'EAGAIN'
}

/** Whether `pid` is (still) one of the tenant's processes, by every matcher the tenant gives. */
export function belongs(t: ResolvedTenant, pid: number): boolean {
  try {
    const m = t.match
    if (m.cgroup !== undefined) {
      const p = cgroupPathOf(pid)
      if (p !== m.cgroup.path && !p.startsWith(`${m.cgroup.path}/`)) return false
    }
    if (m.userns !== undefined) {
      const ino = nsInode(pid, 'user')
      if (m.userns === 'non-initial' ? ino === initialUsernsIno() : ino !== m.userns) return false
    }
    if (m.uid !== undefined) {
      // The effective uid, as SO_PEERCRED reports it (cred_to_ucred: euid).
      const line = /^Uid:\s+\d+\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (!line || !m.uid.includes(Number(line[1]))) return false
    }
    return true
  } catch (e) {
    if (skippable(e)) return false
    throw e
  }
}

/** The tenant's tasks (see the header) and, with a cgroup matcher, the ids of its cgroup subtree. */
export function tasksOf(t: ResolvedTenant, nested?: ReadonlySet<bigint>): { pids: number[]; cgroupIds: Set<bigint> } {
  if (t.match.cgroup !== undefined) {
    const tree = cgroupTree(t.match.cgroup.dir, nested)
    const pids = new Set<number>()
    for (const { dir } of tree) for (const pid of cgroupProcs(dir)) pids.add(pid)
    return { pids: [...pids].sort((a, b) => a - b), cgroupIds: new Set(tree.map((c) => c.id)) }
  }
  if (typeof t.match.userns === 'number') return { pids: pidsInUserns(t.match.userns), cgroupIds: new Set() }
  return { pids: [], cgroupIds: new Set() }
}

/** Link ids by the cgroup they are attached to: one walk of every link id (needs CAP_SYS_ADMIN). */
export function cgroupLinks(): Map<bigint, number[]> {
  const out = new Map<bigint, number[]>()
  for (const info of links()) {
    if (info.cgroupId === undefined || info.cgroupId === 0n) continue
    const list = out.get(info.cgroupId)
    if (list) list.push(info.id)
    else out.set(info.cgroupId, [info.id])
  }
  return out
}

function infoId(kind: Kind, fd: number): number {
  switch (kind) {
    case 'map': return mapInfoByFd(fd).id
    case 'prog': return progInfoByFd(fd).id
    case 'link': return linkInfoByFd(fd).id
    case 'btf': return btfInfoByFd(fd).id
  }
}

/**
 * The object pinned at the O_PATH fd `pin`: BPF_OBJ_GET through its
 * /proc/self/fd magic link lands on exactly that inode, so a rename or a
 * symlink swap after the walk looked at it changes nothing. Closed at once.
 */
function pinnedObject(pin: Fd): Ref | undefined {
  let fd: number
  try {
    fd = native.objGet(fdPath(pin))
  } catch (e) {
    if (skippable(e)) return undefined
    throw e
  }
  try {
    const kind = bpfObjectKind(fd)
    if (kind === undefined || kind === 'token') return undefined
    return `${kind}:${infoId(kind, fd)}`
  } finally {
    native.closeFd(fd)
  }
}

/**
 * Walks the bpffs directory `dir` (an fd the caller owns): every pin below
 * it, recorded under `shown(relative path)`. Symlinks are never followed
 * (bpffs has them: kernel/bpf/inode.c bpf_symlink) and every step is an
 * openat2 beneath the directory without symlinks or mount crossings.
 */
function walkPins(dir: Fd, rel: string, depth: number, budget: { entries: number }, shown: (rel: string) => string, out: Map<Ref, string[]>): void {
  // Read no more names than the budget allows: a tenant could fill one directory with a million pins.
  const names: string[] = []
  let listing
  try {
    listing = opendirSync(fdPath(dir))
  } catch (e) {
    if (skippable(e)) return
    throw e
  }
  try {
    for (let d = listing.readSync(); d !== null && names.length < budget.entries; d = listing.readSync()) names.push(d.name)
  } catch (e) {
    if (!skippable(e)) throw e
  } finally {
    listing.closeSync()
  }
  for (const name of names.sort()) {
    if (--budget.entries < 0) return
    let entry: Fd
    try {
      entry = openBeneath(dir, name, { noFollow: true, pathOnly: true })
    } catch (e) {
      if (skippable(e)) continue
      throw e
    }
    try {
      const st = fstatSync(entry.fd)
      const path = rel === '' ? name : `${rel}/${name}`
      if (st.isDirectory()) {
        if (depth + 1 < pinWalkLimits.depth) walkPins(entry, path, depth + 1, budget, shown, out)
      } else if (st.isFile()) {
        const ref = pinnedObject(entry)
        if (ref !== undefined) {
          const list = out.get(ref)
          if (list) list.push(shown(path))
          else out.set(ref, [shown(path)])
        }
      }
      // Anything else (a symlink above all) is not the tenant's pin.
    } finally {
      entry.close()
    }
  }
}

function openat2Fd(dirFd: number | undefined, path: string, flags: number, resolve: number, kind: string): Fd {
  return new Fd(native.openat2(dirFd, path, flags, resolve), kind)
}

/**
 * The tenant's bpffs as process `pid` sees it: `/proc/PID/root`, then the
 * path resolved inside that root (RESOLVE_IN_ROOT: `..` and absolute names
 * stay in it; no symlinks, no magic links). Mount crossings are allowed on
 * the way there (the bpffs is a mount), not below it. It must be a bpffs.
 * `stillOurs` is asked once the root is open: the pid must still be the
 * tenant's process, else the root may be someone else's.
 */
function openTenantBpffs(pid: number, bpffs: string, stillOurs: () => boolean): Fd | undefined {
  let root: Fd
  try {
    root = openat2Fd(undefined, `/proc/${pid}/root`, O_PATH | O_DIRECTORY, 0, 'root')
  } catch (e) {
    if (skippable(e)) return undefined
    throw e
  }
  try {
    if (!stillOurs()) return undefined
    let dir: Fd
    try {
      dir = openat2Fd(root.fd, bpffs, O_PATH | O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, 'bpffs')
    } catch (e) {
      if (skippable(e)) return undefined
      throw e
    }
    if (statfsSync(fdPath(dir)).type !== BPF_FS_MAGIC) {
      dir.close()
      return undefined
    }
    return dir
  } finally {
    root.close()
  }
}

/** The pid a pidfd refers to, from its fdinfo ('Pid:' line; -1 once reaped), or undefined. */
function pidOfPidfd(pidfd: Fd): number | undefined {
  try {
    const m = /^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd.fd}`, 'utf8'))
    return m ? Number(m[1]) : undefined
  } catch (e) {
    if (skippable(e)) return undefined
    throw e
  }
}

function pinsInTenantBpffs(t: ResolvedTenant, bpffs: string, hint: DiscoveryHint | undefined, pids: readonly number[], out: Map<Ref, string[]>): void {
  const candidates: { pid: number; stillOurs: () => boolean }[] = []
  if (hint !== undefined) {
    const { pidfd } = hint
    // The peer's pidfd (for that very pid, and alive) proves the pid was not
    // reused; without one, the pid must still be the tenant's.
    const proven = (fd: Fd) => !fd.closed && pidOfPidfd(fd) === hint.pid && pidfdIsAlive(fd)
    candidates.push({ pid: hint.pid, stillOurs: pidfd ? () => proven(pidfd) : () => belongs(t, hint.pid) })
  }
  for (const pid of pids) if (pid !== hint?.pid) candidates.push({ pid, stillOurs: () => belongs(t, pid) })
  // A few tries: a process may be gone, or live in a mount namespace without the bpffs.
  for (const c of candidates.slice(0, 4)) {
    const dir = openTenantBpffs(c.pid, bpffs, c.stillOurs)
    if (dir === undefined) continue
    try {
      walkPins(dir, '', 0, { entries: pinWalkLimits.entries }, (rel) => join(bpffs, rel), out)
    } finally {
      dir.close()
    }
    return
  }
}

function pinsInHostDir(pinDir: string, out: Map<Ref, string[]>): void {
  let dir: Fd
  try {
    dir = openat2Fd(undefined, pinDir, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, 'pin dir')
  } catch (e) {
    if (skippable(e)) return
    throw e
  }
  try {
    if (statfsSync(fdPath(dir)).type !== BPF_FS_MAGIC) return
    walkPins(dir, '', 0, { entries: pinWalkLimits.entries }, (rel) => join(pinDir, rel), out)
  } finally {
    dir.close()
  }
}

/**
 * One discovery pass for `tenant` (see the header for whose tasks count).
 * held: BPF fds of its tasks (/proc/PID/fd, then fdinfo). pinned: pins in its
 * bpffs (`tenant.bpffs`, resolved inside the root of a live tenant process,
 * the hint's first) and in `options.pinDir`. cgroup: links attached to a
 * cgroup of its subtree. Vanished processes, fds and pins are skipped.
 * Needs root (CAP_SYS_ADMIN for the link walk, CAP_SYS_PTRACE for /proc).
 */
export function discover(tenant: ResolvedTenant, hint?: DiscoveryHint, options: DiscoverOptions = {}): Discovered {
  const at = Date.now()
  const { pids, cgroupIds } = tasksOf(tenant, options.nested)
  const held = new Set<Ref>()
  for (const pid of pids) {
    let fds
    try {
      fds = bpfFdsOf(pid)
    } catch (e) {
      // A task /proc will not show even to root: the others still count.
      if (skippable(e)) continue
      throw e
    }
    if (fds.length === 0 || !belongs(tenant, pid)) continue
    for (const { kind, id } of fds) held.add(`${kind}:${id}`)
  }
  const pinned = new Map<Ref, string[]>()
  if (tenant.bpffs !== undefined) pinsInTenantBpffs(tenant, tenant.bpffs, hint, pids, pinned)
  if (options.pinDir !== undefined) pinsInHostDir(options.pinDir, pinned)
  const cgroup = new Set<Ref>()
  if (cgroupIds.size > 0) {
    const byCgroup = options.cgroupLinks ?? cgroupLinks()
    for (const id of cgroupIds) for (const link of byCgroup.get(id) ?? []) cgroup.add(`link:${link}`)
  }
  return { held, pinned, cgroup, at }
}

/** The cgroup ids of the other tenants whose cgroup lies strictly inside `tenant`'s (see DiscoverOptions.nested). */
export function nestedCgroups(tenant: ResolvedTenant, tenants: readonly ResolvedTenant[]): Set<bigint> {
  const out = new Set<bigint>()
  const mine = tenant.match.cgroup
  if (mine === undefined) return out
  for (const t of tenants) {
    const theirs = t.match.cgroup
    if (t !== tenant && theirs !== undefined && theirs.path.startsWith(`${mine.path}/`)) out.add(theirs.id)
  }
  return out
}

/**
 * Discovery results per tenant, kept `ttlMs` (0: never kept). The global
 * link walk is shared by every tenant discovered within one TTL. A tenant
 * replaced by another object of the same name is discovered afresh.
 */
export class DiscoveryCache {
  readonly #ttlMs: number
  readonly #tenantPinRoot: string | undefined
  readonly #tenants: () => readonly ResolvedTenant[]
  readonly #entries = new Map<string, { tenant: ResolvedTenant; result: Discovered }>()
  #links: { at: number; byCgroup: Map<bigint, number[]> } | undefined

  /**
   * `options.tenantPinRoot`: the broker's tenant pin root; each tenant's
   * directory there is walked too. `options.tenants`: every configured tenant
   * now, so a tenant's pass leaves out the cgroups of tenants nested in it.
   */
  constructor(ttlMs: number, options: { tenantPinRoot?: string; tenants?: () => readonly ResolvedTenant[] } = {}) {
    if (!Number.isInteger(ttlMs) || ttlMs < 0) throw new RangeError(`DiscoveryCache: ttlMs must be an integer >= 0, got ${String(ttlMs)}`)
    this.#ttlMs = ttlMs
    this.#tenantPinRoot = options.tenantPinRoot
    this.#tenants = options.tenants ?? (() => [])
  }

  get(tenant: ResolvedTenant, hint?: DiscoveryHint, options: { fresh?: boolean } = {}): Discovered {
    const now = Date.now()
    const cached = this.#entries.get(tenant.name)
    if (!options.fresh && cached !== undefined && cached.tenant === tenant && now - cached.result.at < this.#ttlMs) return cached.result
    let byCgroup: Map<bigint, number[]> | undefined
    if (tenant.match.cgroup !== undefined) {
      if (options.fresh || this.#links === undefined || now - this.#links.at >= this.#ttlMs) this.#links = { at: now, byCgroup: cgroupLinks() }
      byCgroup = this.#links.byCgroup
    }
    const result = discover(tenant, hint, {
      cgroupLinks: byCgroup,
      nested: nestedCgroups(tenant, this.#tenants()),
      pinDir: this.#tenantPinRoot === undefined ? undefined : join(this.#tenantPinRoot, tenant.name),
    })
    this.#entries.set(tenant.name, { tenant, result })
    return result
  }

  /** Forgets one tenant's result (after its own mutating request), or every result. */
  invalidate(name?: string): void {
    if (name === undefined) this.#entries.clear()
    else this.#entries.delete(name)
    // An attach or detach changes the links: the next pass walks them again.
    this.#links = undefined
  }
}
