// What the attach families ask of the program they are given: its fd, its
// type, and the section and target it was loaded for. A BpfProgram knows
// them; any other object with a program fd is asked of the kernel (type) or
// has none (section).
import type { FdRef } from '../map/values.js'
import { progInfoByFd } from '../sys/index.js'
import { describeValue } from '../sys/options.js'

/** A program to attach: a BpfProgram, or any object with the fd of one. */
export type AttachableProgram = FdRef & {
  readonly type?: string
  readonly section?: string
  readonly attachTo?: string
  readonly expectedAttachType?: string
}

/** The program's fd; `where` names the caller in the TypeError for anything else. */
export function programFd(where: string, program: unknown): number {
  if (program === null || typeof program !== 'object' || !('fd' in program)) {
    throw new TypeError(`${where}: program must be a BpfProgram or an object with a program fd, got ${describeValue(program)}`)
  }
  return (program as FdRef).fd
}

/** The program's type name ('kprobe', 'xdp', ...). */
export function programType(where: string, program: unknown): string {
  const fd = programFd(where, program)
  const known = (program as AttachableProgram).type
  return typeof known === 'string' ? known : progInfoByFd(fd).type
}

/**
 * The fd of `program` after checking it is of one of `types`: the kernel
 * would refuse another with a bare EINVAL. Errors: TypeError naming both
 * types; the closed-object error for a closed program.
 */
export function programOfType(where: string, program: unknown, ...types: string[]): number {
  const actual = programType(where, program)
  if (!types.includes(actual)) throw new TypeError(`${where}: the program is a ${actual} program; this hook runs ${types.join(' or ')} programs`)
  return programFd(where, program)
}

/** The ELF section the program came from, without libbpf's leading '?', when it is known. */
export function programSection(program: unknown): string | undefined {
  const s = (program as AttachableProgram | null)?.section
  return typeof s === 'string' ? s.replace(/^\?/, '') : undefined
}
