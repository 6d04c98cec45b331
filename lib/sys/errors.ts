// Error classes of bpfkit. The native layer builds its errors through
// `createBpfError`, handed to it once at load, so the classes and messages
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
 * A failed bpf() call, in Node's system-error shape: `code` ('EPERM'), `errno`
 * (negative, as Node's own), `syscall` ('bpf') and the `command` that failed
 * ('map_create'). The message says what was attempted and the likely cause.
 */
export class BpfError extends Error {
  readonly code: string
  readonly errno: number
  readonly syscall: string
  readonly command: string

  constructor(command: string, errno: number, message?: string, syscall = 'bpf') {
    const code = errnoName(errno)
    super(message ?? `${command}: ${code}`)
    this.name = 'BpfError'
    this.code = code
    this.errno = -Math.abs(errno)
    this.syscall = syscall
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
  readonly code = 'ENOTSUP'

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
      return 'no CAP_BPF (or CAP_SYS_ADMIN) and no token that covers this request; run as root or pass a token'
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

/** Builds the error for a failed command; the native layer calls it. */
export function createBpfError(command: string, errno: number, log?: string, detail?: string): BpfError {
  const code = errnoName(errno)
  const rejected = log !== undefined && log.length > 0 && (code === 'EINVAL' || code === 'EACCES')
  const cause = rejected ? (command === 'btf_load' ? 'the kernel rejected the BTF' : 'the verifier rejected the program') : likelyCause(command, code)
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
