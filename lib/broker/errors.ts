// Errors of the tenant broker, on both ends of the socket. The daemon turns
// whatever a handler threw into an error reply ({ code, message, rule?,
// violations? }); the client turns that reply back into a BrokerError with
// `remote: true`, so `err.code === 'ENOENT'` works as with `fs`.
import { BpfError, NotSupportedError, PolicyError, SyscallError } from '../sys/index.js'
import { ProgramPolicyError, type Violation } from '../policy/index.js'
import { ProtocolError } from '../ipc/index.js'
import { ElfError } from '../collection/elf.js'
import { DelegationRefusedError } from '../delegation/errors.js'

/** The codes the broker itself answers with; kernel codes ('EEXIST', 'EACCES'...) pass through as strings. */
export type BrokerErrorCode = 'EPROTO' | 'EINVAL' | 'ENOENT' | 'EPERM' | 'EDQUOT' | 'E2BIG' | 'EACCES' | 'EBUSY' | 'EIO' | (string & {})

/** A capability checker's Violation as it travels: plain JSON, `program` and `source` absent when unknown. */
export interface WireViolation {
  program?: string
  insn: number
  source?: string
  kind: 'helper' | 'kfunc' | 'map'
  name: string
  mapType?: string
  context: number[]
  allowedBy: string[]
  message: string
}

/** The body of an error reply (the daemon adds protocol, seq and type: 'error'). */
export interface ErrorBody {
  code: string
  message: string
  rule?: string
  violations?: WireViolation[]
}

/**
 * A refusal by the broker. `remote` is true when it came from the daemon in
 * a reply (the client throws these), false when made locally (the daemon's
 * handlers throw these, and the client's own checks of a reply). `rule`
 * names the policy rule of an EPERM ('maps', 'capabilities'); `violations`
 * lists what the capability checker refused.
 */
export class BrokerError extends Error {
  readonly code: BrokerErrorCode
  readonly remote: boolean
  readonly rule?: string
  readonly violations?: WireViolation[]
  readonly syscall?: string

  constructor(code: BrokerErrorCode, message: string, options: { remote?: boolean; rule?: string; violations?: WireViolation[]; syscall?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'BrokerError'
    this.code = code
    this.remote = options.remote ?? false
    if (options.rule !== undefined) this.rule = options.rule
    if (options.violations !== undefined) this.violations = options.violations
    if (options.syscall !== undefined) this.syscall = options.syscall
  }
}

/** A local BrokerError (remote: false). */
export function brokerError(code: BrokerErrorCode, message: string, extra: { rule?: string; violations?: WireViolation[] } = {}): BrokerError {
  return new BrokerError(code, message, { rule: extra.rule, violations: extra.violations })
}

const errorCode = /^E[A-Z0-9]{1,15}$/

/** A Violation as plain JSON: only its known fields, undefined ones left out. */
export function wireViolation(v: Violation | WireViolation): WireViolation {
  const out: WireViolation = {
    insn: v.insn, kind: v.kind, name: v.name, context: [...v.context], allowedBy: [...v.allowedBy], message: v.message,
  }
  if (v.program !== undefined) out.program = v.program
  if (v.source !== undefined) out.source = v.source
  if (v.mapType !== undefined) out.mapType = v.mapType
  return out
}

/**
 * What a handler's error becomes on the wire: a BrokerError as it is; a
 * ProgramPolicyError as EPERM with rule 'capabilities' and its violations;
 * any other PolicyError as EPERM with its rule; SyscallError and BpfError
 * (VerifierError included) with their code and message; NotSupportedError
 * with its code; TypeError, RangeError, SyntaxError and ElfError (bad
 * values, bad objects) as EINVAL; ProtocolError as EPROTO;
 * DelegationRefusedError as EACCES; Node's system errors (fs, net: a code
 * and a numeric errno) with their code; anything else EIO, its message kept.
 */
export function toErrorReply(e: unknown): ErrorBody {
  if (e instanceof BrokerError) return body(e.code, e.message, e.rule, e.violations)
  if (e instanceof ProgramPolicyError) return body('EPERM', e.message, e.rule, e.violations.map(wireViolation))
  if (e instanceof PolicyError) return body('EPERM', e.message, e.rule)
  if (e instanceof SyscallError || e instanceof BpfError) return body(e.code, e.message)
  if (e instanceof NotSupportedError) return body(e.code, e.message)
  if (e instanceof ProtocolError) return body('EPROTO', e.message)
  if (e instanceof DelegationRefusedError) return body('EACCES', e.message)
  // Node's own system errors (fs, net): their code is the kernel's.
  if (e instanceof Error && typeof (e as NodeJS.ErrnoException).errno === 'number' && typeof (e as NodeJS.ErrnoException).code === 'string' && errorCode.test((e as NodeJS.ErrnoException).code!)) {
    return body((e as NodeJS.ErrnoException).code!, e.message)
  }
  if (e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError || e instanceof ElfError) return body('EINVAL', e.message)
  if (e instanceof Error) return body('EIO', e.message)
  return body('EIO', `internal error: ${String(e)}`)
}

function body(code: string, message: string, rule?: string, violations?: readonly WireViolation[]): ErrorBody {
  const out: ErrorBody = { code: errorCode.test(code) ? code : 'EIO', message: String(message) }
  if (rule !== undefined) out.rule = rule
  if (violations !== undefined) out.violations = violations.map(wireViolation)
  return out
}

/** The BrokerError (remote: true) for an error reply. The client throws it. */
export function fromErrorReply(r: { code: string; message: string; rule?: string; violations?: readonly WireViolation[] }): BrokerError {
  return new BrokerError(r.code, r.message, { remote: true, rule: r.rule, violations: r.violations?.map(wireViolation) })
}
