// What the broker reads from /proc and the cgroup2 tree, and nothing else:
// which BPF objects a task holds (fd links, then fdinfo), which cgroup and
// namespaces it is in, and which tasks are in a cgroup subtree or a user
// namespace. A task or fd that vanishes between two reads is skipped, never
// an error: processes come and go while a pass runs.
//
// Reading another task's fd and fdinfo needs ptrace read access
// (fs/proc/fd.c: proc_fd_link, proc_fdinfo_access_allowed): the broker is
// root with CAP_SYS_PTRACE.
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Kind } from './protocol.js'

export interface FdinfoObject {
  kind: Kind | 'token'
  /** The object's id; tokens have none. */
  id?: number
  /** Every `key:\tvalue` line, value trimmed (pos, flags, mnt_id and ino included). */
  fields: Record<string, string>
}

// The line that names each kind, in the order that decides: a link's fdinfo
// also prints its program's prog_id (kernel/bpf/syscall.c:
// bpf_link_show_fdinfo), so link_id must win over prog_id.
const idLines: readonly [string, Kind][] = [['link_id', 'link'], ['map_id', 'map'], ['prog_id', 'prog'], ['btf_id', 'btf']]

/**
 * Classifies an fdinfo text: `link_id` → link, else `map_id` → map, else
 * `prog_id` → prog, else `btf_id` → btf, else `allowed_cmds` → token (which
 * has no id: kernel/bpf/token.c prints only its masks); anything else
 * (a socket, a pipe, a file, an id that is not a decimal u32) → undefined.
 */
export function parseFdinfo(text: string): FdinfoObject | undefined {
  const fields: Record<string, string> = Object.create(null)
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    fields[line.slice(0, colon)] = line.slice(colon + 1).trim()
  }
  for (const [key, kind] of idLines) {
    const value = fields[key]
    if (value === undefined) continue
    if (!/^[0-9]{1,10}$/.test(value)) return undefined
    const id = Number(value)
    if (id === 0 || id > 0xffff_ffff) return undefined
    return { kind, id, fields: { ...fields } }
  }
  if (fields.allowed_cmds !== undefined) return { kind: 'token', fields: { ...fields } }
  return undefined
}

// The anon inode names the kernel gives BPF fds (kernel/bpf/syscall.c:
// bpf_map_new_fd "bpf-map", bpf_prog_new_fd "bpf-prog", bpf_link_prime
// "bpf_link"; kernel/bpf/btf.c: __btf_new_fd "btf"). Tokens are bpffs files,
// not anon inodes, and carry no id: they never match.
const anonKinds: Readonly<Record<string, Kind>> = {
  'anon_inode:bpf-map': 'map',
  'anon_inode:bpf-prog': 'prog',
  'anon_inode:bpf_link': 'link',
  'anon_inode:btf': 'btf',
}

/** Errors that mean "that task or fd is gone" (or never was). */
function vanished(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ESRCH' || code === 'ENOTDIR'
}

/**
 * The BPF objects `pid` holds open, by fd number (increasing): the cheap
 * readlink first, fdinfo only for BPF anon inodes, and the fdinfo's kind
 * must agree with the link's. A vanished pid gives [], a vanished fd is
 * skipped. Threads with an unshared fd table are not seen.
 */
export function bpfFdsOf(pid: number): { fd: number; kind: Kind; id: number }[] {
  checkPid(pid)
  let names: string[]
  try {
    names = readdirSync(`/proc/${pid}/fd`)
  } catch (e) {
    if (vanished(e)) return []
    throw e
  }
  const found: { fd: number; kind: Kind; id: number }[] = []
  for (const name of names) {
    let target: string
    try {
      target = readlinkSync(`/proc/${pid}/fd/${name}`)
    } catch (e) {
      if (vanished(e)) continue
      throw e
    }
    const kind = anonKinds[target]
    if (kind === undefined) continue
    let text: string
    try {
      text = readFileSync(`/proc/${pid}/fdinfo/${name}`, 'utf8')
    } catch (e) {
      if (vanished(e)) continue
      throw e
    }
    const info = parseFdinfo(text)
    // A different kind here means the number was closed and reused between
    // the two reads: what it holds now is seen on the next pass.
    if (info?.kind !== kind || info.id === undefined) continue
    found.push({ fd: Number(name), kind, id: info.id })
  }
  return found.sort((a, b) => a.fd - b.fd)
}

/**
 * The cgroup2 path of `pid` (the `0::` line of /proc/PID/cgroup), relative to
 * the reader's cgroup namespace root: '/' or '/a/b'. Errors: ENOENT (the
 * pid is gone), Error when the task has no cgroup2 line (a cgroup v1 only host).
 */
export function cgroupPathOf(pid: number): string {
  checkPid(pid)
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    if (line.startsWith('0::')) return line.slice(3)
  }
  throw new Error(`/proc/${pid}/cgroup has no cgroup2 line ('0::'): is cgroup2 mounted?`)
}

/** The inode of a task's namespace (what `readlink /proc/PID/ns/user` shows in brackets). Errors: ENOENT (gone). */
export function nsInode(pid: number | 'self', ns: 'user' | 'net' | 'mnt'): number {
  if (pid !== 'self') checkPid(pid)
  if (ns !== 'user' && ns !== 'net' && ns !== 'mnt') throw new TypeError(`nsInode: ns must be 'user', 'net' or 'mnt', got ${String(ns)}`)
  return statSync(`/proc/${pid}/ns/${ns}`).ino
}

/**
 * Every cgroup directory of the subtree at `cgroupDir` (itself first) with its
 * id, the kernfs inode number (as LinkInfo.cgroupId and the guard use it).
 * Directories removed mid-walk are skipped.
 */
export function cgroupTree(cgroupDir: string, skip: ReadonlySet<bigint> = new Set()): { dir: string; id: bigint }[] {
  const out: { dir: string; id: bigint }[] = []
  const walk = (dir: string, depth: number) => {
    let id: bigint
    let entries
    try {
      id = statSync(dir, { bigint: true }).ino
      entries = readdirSync(dir, { withFileTypes: true })
    } catch (e) {
      if (vanished(e)) return
      throw e
    }
    if (depth > 0 && skip.has(id)) return
    out.push({ dir, id })
    // cgroup2 nests at most cgroup.max.depth (default unlimited, but each
    // level is a mkdir by someone with write access): 64 bounds a hostile tree.
    if (depth >= 64) return
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name), depth + 1)
  }
  walk(cgroupDir, 0)
  return out
}

/** The pids in the cgroup.procs of `dir` alone ([] when it vanished or is a threaded cgroup, which lists none). */
export function cgroupProcs(dir: string): number[] {
  let text: string
  try {
    text = readFileSync(join(dir, 'cgroup.procs'), 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (vanished(e) || code === 'EOPNOTSUPP' || code === 'ENOTSUP') return []
    throw e
  }
  return text.split('\n').filter((l) => l !== '').map(Number)
}

/** The processes (tgids) in `cgroupDir` and every cgroup below it, each once, increasing. */
export function tasksIn(cgroupDir: string): number[] {
  const pids = new Set<number>()
  for (const { dir } of cgroupTree(cgroupDir)) for (const pid of cgroupProcs(dir)) pids.add(pid)
  return [...pids].sort((a, b) => a - b)
}

/** The processes whose user namespace has inode `ino` (one scan of /proc), increasing; those /proc refuses to show are left out. */
export function pidsInUserns(ino: number): number[] {
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^[1-9][0-9]*$/.test(name)) continue
    try {
      if (statSync(`/proc/${name}/ns/user`).ino === ino) pids.push(Number(name))
    } catch (e) {
      // Gone, or a zombie (its namespaces are released before it is reaped),
      // or a process even root may not inspect (a sandbox's supervisor): not
      // one the broker could read fds of either.
      if (vanished(e) || (e as NodeJS.ErrnoException).code === 'EACCES') continue
      throw e
    }
  }
  return pids.sort((a, b) => a - b)
}

/** Unescapes the octal escapes (\040 for a space) mountinfo uses in paths. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/**
 * Where cgroup2 is mounted, from /proc/self/mountinfo (or the text given):
 * /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
 * A mount of the whole hierarchy (root '/') is preferred over a bind mount
 * of a subtree. Errors: Error when no cgroup2 is mounted.
 */
export function cgroup2Root(mountinfo?: string): string {
  const text = mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8')
  let subtree: string | undefined
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ')
    if (right === undefined || !right.startsWith('cgroup2 ')) continue
    const fields = left.split(' ')
    if (fields.length < 5) continue
    const mountPoint = unescapeMountPath(fields[4])
    if (fields[3] === '/') return mountPoint
    subtree ??= mountPoint
  }
  if (subtree !== undefined) return subtree
  throw new Error('no cgroup2 filesystem is mounted (none in /proc/self/mountinfo)')
}

function checkPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new RangeError(`pid must be a positive integer, got ${String(pid)}`)
}
