// Who is on the other end of a connection, decided once, at accept (plan
// §4.1). SO_PEERCRED gives the pid and uid the kernel stored at connect();
// SO_PEERPIDFD pins that very process; /proc/PID then gives its cgroup and
// namespaces; and a last liveness check on the pidfd proves the pid was not
// reaped (and so not reused) while /proc was read: a pid number is freed only
// at reap (kernel/exit.c: release_task → detach_pid → free_pid).
//
// Identity is never re-derived per request: a process that later moves to
// another cgroup keeps the tenant it connected as (moving into a cgroup needs
// write access to its cgroup.procs, the authority to be that tenant already),
// and a connected socket handed to another process carries its creator's
// identity: authority as an fd.
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { peerCredentials, peerPidfd, pidfdIsAlive, type FdSocket } from '../ipc/index.js'
import type { Fd } from '../sys/index.js'
import { brokerError } from './errors.js'
import type { ResolvedConfig, ResolvedTenant } from './config.js'
import { cgroupPathOf, nsInode } from './procfs.js'

export interface Peer {
  /** In the broker's pid namespace (the initial one). */
  pid: number
  uid: number
  gid: number
  /** The connecting process; the session closes it. */
  pidfd: Fd
  /** Relative to the cgroup2 root: '/' or '/tenants/a'. */
  cgroupPath: string
  /** The cgroup's id (its kernfs inode), as LinkInfo.cgroupId and the guard use it. */
  cgroupId: bigint
  usernsIno: number
  netnsIno: number
}

export type TenantMatch = { tenant: ResolvedTenant } | { admin: true } | { refused: string }

function gone(e: unknown): boolean {
  const code = (e as { code?: string }).code
  return code === 'ENOENT' || code === 'ESRCH'
}

/**
 * Identifies the peer of a connected unix socket. Errors: BrokerError EACCES
 * when the broker cannot see the peer's pid (it runs in another pid
 * namespace: SO_PEERCRED then reports 0) or the peer exited before it was
 * identified; NotSupportedError('peerPidfd', '6.5') on older kernels.
 * Needs root (reading another task's /proc entries).
 */
export function identify(socket: FdSocket, cgroupRoot: string): Peer {
  const { pid, uid, gid } = peerCredentials(socket)
  if (pid === 0) {
    throw brokerError('EACCES', "the broker cannot see the peer's pid (uid " + uid + '): run the broker in the host pid namespace')
  }
  let pidfd: Fd
  try {
    pidfd = peerPidfd(socket)
  } catch (e) {
    if (gone(e) || (e as { code?: string }).code === 'EINVAL') throw brokerError('EACCES', `the peer (pid ${pid}) exited before it was identified`)
    throw e
  }
  try {
    let cgroupPath: string
    let cgroupId: bigint
    let usernsIno: number
    let netnsIno: number
    try {
      cgroupPath = cgroupPathOf(pid)
      cgroupId = statSync(join(cgroupRoot, cgroupPath), { bigint: true }).ino
      usernsIno = nsInode(pid, 'user')
      netnsIno = nsInode(pid, 'net')
    } catch (e) {
      // A zombie has released its namespaces; a reaped pid has no /proc entry.
      if (gone(e)) throw brokerError('EACCES', `the peer (pid ${pid}) exited before it was identified`)
      throw e
    }
    if (!pidfdIsAlive(pidfd)) throw brokerError('EACCES', `the peer (pid ${pid}) exited before it was identified`)
    return { pid, uid, gid, pidfd, cgroupPath, cgroupId, usernsIno, netnsIno }
  } catch (e) {
    pidfd.close()
    throw e
  }
}

/**
 * The initial user namespace's inode: fixed by the kernel
 * (include/linux/proc_ns.h: PROC_USER_INIT_INO = 0xEFFFFFFD), so it needs no
 * read of /proc/1/ns/user, which some hosts refuse even to root (a sandbox's pid 1).
 */
export function initialUsernsIno(): number {
  return 0xefff_fffd
}

/** Whether `peer` satisfies every matcher `t` gives. */
export function matches(t: ResolvedTenant, peer: Peer): boolean {
  const m = t.match
  if (m.cgroup !== undefined) {
    const p = m.cgroup.path
    if (peer.cgroupPath !== p && !peer.cgroupPath.startsWith(`${p}/`)) return false
  }
  if (m.userns !== undefined) {
    if (m.userns === 'non-initial' ? peer.usernsIno === initialUsernsIno() : peer.usernsIno !== m.userns) return false
  }
  if (m.uid !== undefined && !m.uid.includes(peer.uid)) return false
  return true
}

/** How specific a tenant's matcher is: cgroup depth first ('/a/b' is 2, none -1), then the number of matchers. */
function specificity(t: ResolvedTenant): [number, number] {
  const m = t.match
  const depth = m.cgroup === undefined ? -1 : m.cgroup.path.split('/').length - 1
  return [depth, (m.cgroup ? 1 : 0) + (m.userns !== undefined ? 1 : 0) + (m.uid ? 1 : 0)]
}

/**
 * The peer's tenant: among the tenants whose every matcher holds, the one
 * with the deepest cgroup (then the most matchers); two equally specific
 * matches are refused as ambiguous rather than decided by config order.
 * Without a tenant: admin when the uid is one of admin.uids and the peer is
 * in the initial user namespace (root inside a tenant's cgroup is that
 * tenant). Otherwise refused, naming what was seen (all the peer's own facts).
 */
export function matchTenant(peer: Peer, config: ResolvedConfig): TenantMatch {
  const candidates = config.tenants.filter((t) => matches(t, peer))
  if (candidates.length > 0) {
    const ranked = candidates.map((t) => ({ t, s: specificity(t) })).sort((a, b) => b.s[0] - a.s[0] || b.s[1] - a.s[1])
    const [first, second] = ranked
    if (second !== undefined && second.s[0] === first.s[0] && second.s[1] === first.s[1]) {
      return { refused: `pid ${peer.pid} matches tenants '${first.t.name}' and '${second.t.name}' equally: the configuration must tell them apart` }
    }
    return { tenant: first.t }
  }
  if (config.admin.uids.includes(peer.uid) && peer.usernsIno === initialUsernsIno()) return { admin: true }
  return {
    refused: `no tenant matches pid ${peer.pid} (uid ${peer.uid}, cgroup ${peer.cgroupPath}, user namespace ${peer.usernsIno})`,
  }
}

/** Whether the peer process still exists (not yet reaped). A closed pidfd counts as gone. */
export function peerAlive(peer: Peer): boolean {
  if (peer.pidfd.closed) return false
  return pidfdIsAlive(peer.pidfd)
}
