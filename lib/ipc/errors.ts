// Errors of the ipc layer: kernel errors reworded with the syscall they came
// from and what they mean here, and protocol errors on sockets.
import { BpfError, SyscallError } from '../sys/index.js'

/**
 * A peer broke the fd passing protocol: truncated control data, fds where
 * none were expected, a message cut short. Any fds that came with it are
 * already closed. `code` is 'EPROTO'.
 */
export class ProtocolError extends Error {
  readonly code = 'EPROTO'

  constructor(message: string) {
    super(message)
    this.name = 'ProtocolError'
  }
}

/** Numeric errno of a SyscallError or BpfError (positive). */
export function errnoOf(e: SyscallError): number {
  return Math.abs(e.errno)
}

/**
 * Runs a native call and rewords its error: `syscall` names the call, `what`
 * what it was for, `cause(code)` the likely cause. The result is a
 * SyscallError for that call (a BpfError keeps its command when the call is
 * bpf() itself). Other errors pass.
 */
export function reword<T>(syscall: string, what: string, cause: (code: string) => string | undefined, call: () => T): T {
  try {
    return call()
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e
    const why = cause(e.code)
    const message = `${syscall}: ${e.code}: ${what}${why ? `: ${why}` : ''}`
    if (syscall === 'bpf' && e instanceof BpfError) throw new BpfError(e.command, errnoOf(e), message)
    throw new SyscallError(syscall, errnoOf(e), message)
  }
}
