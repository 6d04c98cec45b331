// The static program checker: which helpers, kfuncs and maps a program uses,
// against what a policy's capability contexts grant it. (Stub: being built.)
import type { Insn } from '../asm/insn.js'
import type { BpfProgram } from '../prog/program.js'
import type { ProgramSpec } from '../prog/spec.js'
import type { AttachTypeName, ProgTypeName } from '../sys/generated/kernel-enums.js'
import type { Policy } from './policy.js'

/** What a context matches a program on (the same shape as capabilities.ts's ProgramTarget), plus its name. */
export interface CheckContext {
  type?: ProgTypeName | number
  expectedAttachType?: AttachTypeName | number
  attachTo?: string
  member?: string
  name?: string
}

/** A program the checker reads: a spec, a loaded program, raw instruction bytes or instructions. */
export type CheckedProgram = ProgramSpec | BpfProgram | Uint8Array | readonly Insn[]

export interface Violation {
  program: string | undefined
  insn: number
  source: string | undefined
  kind: 'helper' | 'kfunc' | 'map'
  name: string
  mapType?: string
  context: number[]
  allowedBy: string[]
  message: string
}

export function checkProgram(policy: Policy, program: CheckedProgram, context?: CheckContext): Violation[] {
  void policy; void program; void context
  return []
}

export function assertProgram(policy: Policy, program: CheckedProgram, context?: CheckContext): void {
  void checkProgram(policy, program, context)
}
