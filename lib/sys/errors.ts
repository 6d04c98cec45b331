// Error classes of bpfkit. The native layer builds its errors through
// `createNativeError`, handed to it once at load, so the classes and messages
// live here and not in C++.
import { constants } from 'node:os'

const errnoNames: Record<number, string> = {}
for (const [name, value] of Object.entries(constants.errno)) errnoNames[value] ??= name
// Linux names Node's table lacks or spells otherwise: the kernel-internal
// ENOTSUPP that bpf() can leak, EBADFD (OBJ_GET_INFO_BY_FD on a bad fd), and
// 95 as the kernel's EOPNOTSUPP rather than libuv's ENOTSUP.
Object.assign(errnoNames, { 77: 'EBADFD', 95: 'EOPNOTSUPP', 524: 'ENOTSUPP' })

/** The symbolic name of a positive errno ('EPERM'), as Node spells it. */
export function errnoName(errno: number): string {
  return errnoNames[errno] ?? `E${errno}`
}

/**
 * A failed system call, in Node's system-error shape: `code` ('EPERM'),
 * `errno` (negative, as Node's own) and `syscall`, the call that failed
 * ('sendmsg', 'fsopen', 'mmap', 'poll', ...), so `err.code === 'ENOENT'`
 * works as with `fs`. bpf() failures are the subclass BpfError.
 */
export class SyscallError extends Error {
  readonly code: string
  readonly errno: number
  readonly syscall: string

  constructor(syscall: string, errno: number, message?: string) {
    const code = errnoName(Math.abs(errno))
    super(message ?? `${syscall}: ${code}`)
    this.name = 'SyscallError'
    this.code = code
    this.errno = -Math.abs(errno)
    this.syscall = syscall
  }
}

/**
 * A failed bpf() call: a SyscallError with `syscall` 'bpf' and the `command`
 * that failed ('map_create'). The message says what was attempted and the
 * likely cause.
 */
export class BpfError extends SyscallError {
  readonly command: string

  constructor(command: string, errno: number, message?: string, syscall = 'bpf') {
    super(syscall, errno, message ?? `${command}: ${errnoName(Math.abs(errno))}`)
    this.name = 'BpfError'
    this.command = command
  }
}

/**
 * The verifier (or the BTF checker) refused a program. `log` holds the whole
 * verifier log, a line per entry; the message shows its last meaningful lines.
 */
export class VerifierError extends BpfError {
  readonly log: string[]

  constructor(command: string, errno: number, log: string[], message: string) {
    super(command, errno, message)
    this.name = 'VerifierError'
    this.log = log
  }
}

/**
 * A request bpfkit refused in user space before any syscall, naming the rule
 * and the thing requested ("token does not delegate map type 'ringbuf'").
 */
export class PolicyError extends Error {
  readonly rule: string
  readonly requested: string
  readonly code = 'EPERM'

  constructor(rule: string, requested: string, message: string) {
    super(message)
    this.name = 'PolicyError'
    this.rule = rule
    this.requested = requested
  }
}

/** A feature this kernel lacks, as decided by a probe, with the version that added it. */
export class NotSupportedError extends Error {
  readonly feature: string
  readonly minKernel: string
  /** The kernel's name for errno 95, as errnoName(95) and BpfError spell it. */
  readonly code = 'EOPNOTSUPP'

  constructor(feature: string, minKernel: string, detail?: string) {
    super(`${feature} is not supported by this kernel (needs Linux ${minKernel}${detail ? `; ${detail}` : ''})`)
    this.name = 'NotSupportedError'
    this.feature = feature
    this.minKernel = minKernel
  }
}

// Likely causes, by errno and then by command.
function likelyCause(command: string, code: string): string | undefined {
  switch (code) {
    case 'EPERM':
      if (command.startsWith('token')) return 'the bpffs is not delegated to this user namespace, or the caller lacks CAP_BPF in it'
      if (/_get_(next_id|fd_by_id)$/.test(command) && command !== 'btf_get_fd_by_id') {
        return 'walking or opening objects by ID needs CAP_SYS_ADMIN in the initial user namespace; no token covers it'
      }
      // A BPF LSM (bpfkit's guard) refuses with EPERM too, with the capability or token there: its events say why.
      return 'no CAP_BPF (or CAP_SYS_ADMIN) and no token that covers this request (run as root or pass a token), or a BPF LSM such as the guard refused it'
    case 'EACCES':
      return command === 'prog_load' ? 'the verifier rejected the program' : 'permission denied by the kernel or an LSM'
    case 'E2BIG':
      if (command === 'map_update_elem' || command === 'map_update_batch') return 'the map is full (max_entries reached)'
      return command === 'prog_load'
        ? 'the program is too large, or the kernel does not know an attribute bpfkit passed'
        : 'a size is too large, or the kernel does not know an attribute bpfkit passed (kernel too old)'
    case 'ENOSPC':
      return command === 'prog_test_run' ? 'the output buffer is too small' : 'the log buffer is too small or the map is full'
    case 'EINVAL':
      if (command === 'prog_test_run') return 'this program type does not accept that data, ctx, repeat or flags (data shorter than its header?)'
      if (command === 'map_create') return 'invalid attributes for this kernel: a type or flag it does not know (kernel too old?), or sizes or max_entries this map type does not accept'
      if (command.startsWith('map_')) return 'flags or arguments this map type does not accept'
      return 'invalid attributes for this kernel: an unknown type or flag (kernel too old?), or sizes the object does not accept'
    case 'ENOENT':
      return command.includes('by_id') ? 'no object with that id (it may have been freed)'
        : command.startsWith('obj_') ? 'no such pinned object' : 'no such element'
    case 'EBADF':
    case 'EBADFD':
      return 'the file descriptor is not open, or not of the kind this command needs'
    case 'EEXIST':
      return 'the element or path already exists'
    case 'ENOMEM':
      return 'out of memory, or the memlock limit is too low on kernels before 5.11'
    case 'EOPNOTSUPP':
    case 'ENOTSUPP':
      return command.startsWith('token') ? 'tokens cannot be created in the initial user namespace'
        : 'the operation is not supported for this object type or by this kernel'
    case 'ENOSYS':
      return 'the kernel has no bpf() syscall'
    default:
      return undefined
  }
}

/**
 * The log without the structured report newer kernels (7.x) print after the
 * verdict ("Verification failed: ...", then Reason, At, Suggestion): the
 * verdict line itself ("R2 !read_ok") is what every kernel prints last
 * before it, so messages and probes read that part.
 */
export function verdictLines(lines: readonly string[]): string[] {
  const report = lines.findIndex((l) => l.startsWith('Verification failed:'))
  return report < 0 ? [...lines] : lines.slice(0, report)
}

// Lines of a verifier log that say nothing about the cause.
const boring = /^(processed \d+ insns|verification time|stack depth|max_states_per_insn|-- END PROG LOAD LOG --|\s*$)/

/**
 * Builds the error for a failed bpf() command. `cause`, when the caller
 * knows it (native code that checked what the fd or path really is),
 * replaces the guess made from the errno.
 */
export function createBpfError(command: string, errno: number, log?: string, detail?: string, cause?: string): BpfError {
  const code = errnoName(errno)
  const rejected = log !== undefined && log.length > 0 && (code === 'EINVAL' || code === 'EACCES')
  cause ??= rejected ? (command === 'btf_load' ? 'the kernel rejected the BTF' : 'the verifier rejected the program') : likelyCause(command, code)
  let message = `${command}: ${code}`
  if (detail) message += ` (${detail})`
  if (cause) message += `: ${cause}`
  if (log !== undefined && log.length > 0) {
    const lines = log.replace(/\0+$/, '').split('\n')
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()
    const meaningful = verdictLines(lines).filter((l) => !boring.test(l))
    const shown = meaningful.slice(-2)
    const omitted = lines.length - shown.length
    if (shown.length > 0) message += `\n  ${shown.join('\n  ')}${omitted > 0 ? `\n  (${omitted} lines omitted)` : ''}`
    return new VerifierError(command, errno, lines, message)
  }
  return new BpfError(command, errno, message)
}

// Likely causes of failed system calls other than bpf(), by errno and call.
// Only what the errno says for that call: never a guess about kernel versions
// unless the call itself is missing (ENOSYS).
const mountCalls = new Set(['fsopen', 'fspick', 'fsconfig', 'fsmount', 'move_mount'])
function syscallCause(syscall: string, code: string): string | undefined {
  const mount = mountCalls.has(syscall)
  switch (code) {
    case 'EBADF':
      return 'the file descriptor is not open (or not of the kind this call needs)'
    case 'ENOSYS':
      return mount ? `the kernel has no ${syscall}() (the mount API is Linux 5.2+)` : `the kernel has no ${syscall}()`
    case 'EPERM':
      if (syscall === 'poll' || syscall === 'uv_poll_init' || syscall === 'epoll_ctl') return 'this kind of file cannot be waited on (epoll refuses regular files and /dev/null)'
      if (mount) return 'not permitted: needs CAP_SYS_ADMIN in the user namespace that owns the filesystem context or mount'
      if (syscall === 'mmap') return 'the map does not allow this mapping (frozen, or read-only for user space)'
      return 'operation not permitted'
    case 'EACCES':
      return 'permission denied'
    case 'EINVAL':
      if (syscall === 'fsconfig') return 'the filesystem does not accept this option or value, or the context is in the wrong state'
      if (syscall === 'fspick') return 'the path is not the root of a mount, or bad flags'
      if (syscall === 'fsmount') return 'the context has no superblock yet (fsconfig create first) or the mount attributes are invalid'
      if (syscall === 'move_mount') return 'not a detached mount, or the target cannot take it'
      if (syscall === 'munmap') return 'not a mapping made by mapMmap'
      if (syscall === 'mmap') return 'the fd cannot be mapped with this length, offset or protection'
      return 'invalid argument'
    case 'ENOENT':
      return 'no such file or directory'
    case 'ENOTDIR':
      return 'a path component is not a directory'
    case 'ENODEV':
      return syscall === 'fsopen' ? 'no filesystem of that type' : syscall === 'mmap' ? 'the fd cannot be memory-mapped' : 'no such device'
    case 'EBUSY':
      return syscall === 'fsconfig' ? 'the context already made its superblock' : 'busy'
    case 'EPIPE':
    case 'ECONNRESET':
      return 'the peer closed the socket'
    case 'ENOTSOCK':
      return 'not a socket'
    case 'EMFILE':
    case 'ENFILE':
      return 'no free file descriptors'
    case 'ENOMEM':
      return 'out of memory'
    case 'EOPNOTSUPP':
      return 'the operation is not supported for this object'
    default:
      return undefined
  }
}

/**
 * Builds the error for a failed system call other than bpf() (`syscall`:
 * 'sendmsg', 'fsopen', 'mmap', 'poll', ...). `cause` replaces the guess made
 * from the errno when the caller knows better.
 */
export function createSyscallError(syscall: string, errno: number, detail?: string, cause?: string): SyscallError {
  const code = errnoName(Math.abs(errno))
  cause ??= syscallCause(syscall, code)
  let message = `${syscall}: ${code}`
  if (detail) message += ` (${detail})`
  if (cause) message += `: ${cause}`
  return new SyscallError(syscall, errno, message)
}

/**
 * The factory the native layer builds every error with: a BpfError (or
 * VerifierError) when `syscall` is 'bpf' or absent, a SyscallError naming
 * its own call otherwise. `command` is the bpf command, unused for others.
 */
export function createNativeError(command: string, errno: number, log?: string, detail?: string, syscall?: string, cause?: string): SyscallError {
  if (syscall === undefined || syscall === 'bpf') return createBpfError(command, errno, log, detail, cause)
  return createSyscallError(syscall, errno, detail, cause)
}
