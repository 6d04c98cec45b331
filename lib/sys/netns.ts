// Network namespaces for the network attach families: interface indexes are
// per namespace, and xdp/tcx links and tc filters are made on a device of the
// namespace the calling thread is in. `inNetns` moves only the calling thread,
// only for the synchronous call it wraps (native withNetns).
import { fstatSync, openSync, statSync } from 'node:fs'
import { native } from './addon.js'
import { Fd } from './fd.js'
import { describeValue } from './options.js'

/** A network namespace: a path such as /run/netns/NAME or /proc/PID/ns/net, or an open fd of one. */
export type NetnsRef = string | number

function checkNetns(where: string, netns: NetnsRef): void {
  if (typeof netns === 'string' ? netns.length === 0 : !(Number.isInteger(netns) && netns >= 0)) {
    throw new TypeError(`${where}: netns must be a namespace path or an fd, got ${describeValue(netns)}`)
  }
}

/**
 * Runs `fn` synchronously inside `netns` (undefined: where the thread is) and
 * returns its result; the thread is back in its own namespace afterwards,
 * whatever fn did. A path is opened and closed around the call. Errors:
 * SyscallError 'setns' EINVAL when the path or fd is no network namespace,
 * EPERM without CAP_SYS_ADMIN; 'open' ENOENT for a missing path.
 */
export function inNetns<T>(netns: NetnsRef | undefined, fn: () => T, where = 'inNetns'): T {
  if (netns === undefined) return fn()
  checkNetns(where, netns)
  if (typeof netns === 'number') return native.withNetns(netns, fn)
  const fd = openNetns(netns, where)
  try {
    return native.withNetns(fd.fd, fn)
  } finally {
    fd.close()
  }
}

/** An owned fd of the namespace `netns` names (a dup for an fd), to enter it again later. */
export function openNetns(netns: NetnsRef, where = 'openNetns'): Fd {
  checkNetns(where, netns)
  if (typeof netns === 'number') return new Fd(native.dupFd(netns), 'netns')
  let fd: number
  try {
    fd = openSync(netns, 'r')
  } catch (e) {
    const err = e as NodeJS.ErrnoException
    err.message = `${where}: cannot open the network namespace ${netns}: ${err.code ?? err.message}`
    throw err
  }
  return new Fd(fd, 'netns')
}

/**
 * The namespace's identity (its nsfs inode, "net:[N]"), to tell namespaces
 * apart: undefined means the calling thread's own.
 */
export function netnsKey(netns: NetnsRef | undefined): string {
  const st = netns === undefined ? statSync('/proc/thread-self/ns/net') : typeof netns === 'number' ? fstatSync(netns) : statSync(netns)
  return `net:[${st.ino}]`
}

/**
 * The index of `iface` (a name, or an index checked to exist) in the calling
 * thread's namespace. Errors: TypeError for anything but a name or an index,
 * RangeError for an index that is not positive; SyscallError 'if_nametoindex'
 * ENODEV or 'if_indextoname' ENXIO naming an unknown interface.
 */
export function interfaceIndex(iface: string | number, where: string): number {
  if (typeof iface === 'number') {
    if (!Number.isInteger(iface) || iface <= 0 || iface > 0x7fffffff) {
      throw new RangeError(`${where}: an interface index must be a positive integer, got ${describeValue(iface)}`)
    }
    // An unknown index fails here with a message naming it, not as a bare ENODEV from the attach.
    native.ifIndexToName(iface)
    return iface
  }
  if (typeof iface !== 'string') throw new TypeError(`${where}: interface must be a name or an index, got ${describeValue(iface)}`)
  return native.ifNameToIndex(iface)
}
