// bpffs delegation mounts through the new mount API, with errors that say
// which side of the delegation went wrong.
import { Fd, native } from '../sys/index.js'
import { Policy, type PolicyLike } from '../policy/index.js'
import { reword } from '../ipc/errors.js'
import { checkOptions } from '../sys/options.js'
import { fdNumberOf, stringArg } from './args.js'

export interface DelegateOptions {
  /** Permission bits of the mount's root directory (bpffs `mode=`), e.g. 0o700. */
  mode?: number
}

/**
 * Opens a bpf filesystem context (fsopen("bpf")) owned by the caller's user
 * namespace: the tenant's first step. Needs CAP_SYS_ADMIN over the caller's
 * mount namespace (a tenant unshares user and mount namespaces together).
 * Linux 5.2+ (new mount API).
 */
export function openBpffsContext(): Fd {
  const fd = reword('fsopen', 'opening a bpf filesystem context', (code) =>
    code === 'EPERM' ? 'the caller needs CAP_SYS_ADMIN over its mount namespace (unshare a user and a mount namespace together)'
      : code === 'ENOSYS' ? 'the kernel lacks the new mount API (Linux 5.2+)'
        : code === 'ENODEV' ? 'the kernel has no bpf filesystem (CONFIG_BPF_SYSCALL)' : undefined,
  () => native.fsopen('bpf'))
  return new Fd(fd, 'fscontext')
}

/**
 * The manager's step: sets the delegate_* options of `policy` (and `mode`)
 * on a tenant's bpf filesystem context, creates the superblock and returns
 * the detached mount (an O_PATH fd; the context fd stays the caller's to
 * close). A policy that delegates nothing makes a plain bpffs, from which
 * token creation fails with ENOENT.
 *
 * Privileges: CAP_SYS_ADMIN in the initial user namespace (the kernel refuses
 * delegate_* options from anyone else with EPERM). Linux 6.9+ for delegate_*.
 * Errors: BpfError from fsconfig/fsmount, worded: EPERM (not privileged),
 * EINVAL (a kernel before 6.9 does not know the options, or the context is
 * not a fresh bpf one), EBUSY (the context was already used).
 */
export function delegate(policy: PolicyLike, fsContext: Fd | number, options: DelegateOptions = {}): Fd {
  const p = Policy.from(policy)
  checkOptions('delegate', options, ['mode'], { types: { mode: 'number' } })
  const fd = fdNumberOf('delegate', 'fsContext', fsContext)
  const configure = (key: string, value: string) =>
    reword('fsconfig', `setting ${key}=${value} on the tenant's bpffs`, (code) =>
      code === 'EPERM' ? 'delegate_* options need CAP_SYS_ADMIN in the initial user namespace: the manager sets them, never the tenant'
        : code === 'EINVAL' ? 'the kernel does not know this option (delegation needs Linux 6.9+) or the fd is not a bpf filesystem context'
          : code === 'EBUSY' ? 'the context has already been used to create a filesystem' : undefined,
    () => native.fsconfigString(fd, key, value))
  if (options.mode !== undefined) {
    if (!Number.isInteger(options.mode) || options.mode < 0 || options.mode > 0o7777) throw new RangeError('mode must be 0..0o7777')
    configure('mode', options.mode.toString(8))
  }
  for (const entry of p.toMountOptions()) {
    const eq = entry.indexOf('=')
    configure(entry.slice(0, eq), entry.slice(eq + 1))
  }
  reword('fsconfig', 'creating the delegated bpffs superblock', (code) =>
    code === 'EBUSY' ? 'the context has already been used' : code === 'EPERM' ? 'not privileged to create it' : undefined,
  () => native.fsconfigCreate(fd))
  const mnt = reword('fsmount', 'making a detached mount of the delegated bpffs', () => undefined, () => native.fsmount(fd, 0))
  return new Fd(mnt, 'mount')
}

/**
 * Attaches a detached mount (from fsmount, e.g. received from a manager) at
 * `path` in the caller's mount namespace (move_mount). Needs CAP_SYS_ADMIN
 * over that mount namespace; a tenant does this in its own namespaces.
 * Linux 5.2+. Errors: BpfError EPERM, ENOENT (no such path), worded.
 */
export function attachMount(mount: Fd | number, path: string): void {
  const fd = fdNumberOf('attachMount', 'mount', mount)
  stringArg('attachMount', 'path', path)
  reword('move_mount', `attaching the bpffs at ${path}`, (code) =>
    code === 'EPERM' ? 'the caller needs CAP_SYS_ADMIN over its mount namespace (a tenant mounts in its own namespaces)'
      : code === 'ENOENT' ? `${path} does not exist` : undefined,
  () => native.moveMount(fd, path))
}

/**
 * Opens the root of a mount for BPF_TOKEN_CREATE: a mount fd from fsmount
 * is O_PATH, which the kernel refuses (EBADF), so its root is opened anew.
 * No privileges beyond access to the mount. Errors: BpfError from openat.
 */
export function openMountRoot(mount: Fd | number): Fd {
  const fd = fdNumberOf('openMountRoot', 'mount', mount)
  return new Fd(reword('openat', 'opening the root of the bpffs mount', () => undefined, () => native.openDirectory(fd, '.')), 'bpffs')
}
