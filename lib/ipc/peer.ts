// Who is at the other end of a unix socket: the credentials the kernel
// recorded when the peer connected, and a pidfd for that process. A broker
// identifies a tenant by them; the pidfd tells later whether that very
// process still exists, which a pid alone cannot (pids are reused).
import { Fd, NotSupportedError, native } from '../sys/index.js'
import { describeValue } from '../sys/options.js'
import { reword } from './errors.js'
import { FdSocket } from './socket.js'

export interface PeerCredentials {
  /** 0 when the peer's pid is not visible in our pid namespace. */
  pid: number
  uid: number
  gid: number
}

function socketFd(where: string, socket: FdSocket): number {
  if (!(socket instanceof FdSocket)) throw new TypeError(`${where}: socket must be an FdSocket, got ${describeValue(socket)}`)
  return socket.fd // EBADF "... already closed" once closed
}

const peerCause = (code: string): string | undefined =>
  code === 'ENOTSOCK' ? 'the fd is not a socket' : code === 'ENODATA' ? 'the socket has no peer (not connected)' : undefined

/**
 * The peer's pid, uid and gid (SO_PEERCRED) as of connect() (or socketpair),
 * translated into our namespaces; they never change afterwards. Any Linux.
 * Errors: TypeError for a socket that is not AF_UNIX (other families report
 * no real peer); EBADF when closed.
 */
export function peerCredentials(socket: FdSocket): PeerCredentials {
  const fd = socketFd('peerCredentials', socket)
  return reword('getsockopt', 'reading the peer credentials (SO_PEERCRED)', peerCause, () => native.unixPeerCred(fd))
}

/**
 * A pidfd (kind 'pidfd', O_CLOEXEC) of the process that connected, taken
 * from the socket (SO_PEERPIDFD, Linux 6.5): it refers to that process even
 * after its pid is reused. Errors: NotSupportedError before 6.5; SyscallError
 * 'getsockopt' ESRCH or EINVAL when the peer is already gone (reaped), ENODATA
 * when the socket has no peer; TypeError for a socket that is not AF_UNIX.
 */
export function peerPidfd(socket: FdSocket): Fd {
  const fd = socketFd('peerPidfd', socket)
  try {
    return new Fd(native.unixPeerPidfd(fd), 'pidfd')
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOPROTOOPT') {
      throw new NotSupportedError('peerPidfd', '6.5', 'no SO_PEERPIDFD for unix socket peers')
    }
    throw e
  }
}

/**
 * Whether the process behind `pidfd` still exists: true until it is reaped
 * (a zombie counts, its pid cannot be reused yet). Errors: EBADF when the
 * fd is closed or not a pidfd; TypeError when not an Fd.
 */
export function pidfdIsAlive(pidfd: Fd): boolean {
  if (!(pidfd instanceof Fd)) throw new TypeError(`pidfdIsAlive: pidfd must be an Fd, got ${describeValue(pidfd)}`)
  return native.pidfdIsAlive(pidfd.fd)
}
