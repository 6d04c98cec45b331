// Helper probes: a program of the given type calls the helper with whatever
// happens to be in the argument registers. The verifier looks the helper up
// before it checks arguments, so its first complaint tells the answer:
// "invalid func" means the kernel lacks the helper (its id is past the
// kernel's list), "program of this type cannot use helper" means the type may
// not call it, anything later (an argument it dislikes) means the call is
// allowed. Older kernels (5.10, 6.1) say "unknown func" for a known id the type may
// not call: that, too, is the program type, never a missing helper.
import { NotSupportedError, VerifierError, type HelperName, type ProgTypeName } from '../sys/index.js'
import { helpers, progTypes } from '../sys/generated/kernel-enums.js'
import { verdictLines } from '../sys/errors.js'
import { cachedProbe, familyMember } from './probe-cache.js'
import { asm } from '../asm/index.js'
import { haveProgramType, loadProbe, loadsCleanly } from './prog-types.js'
import { helperVersion } from './versions.js'

/** A helper the kernel lacks, or one it has but not for this program type. */
export class HelperNotSupportedError extends NotSupportedError {
  readonly helper: string
  readonly programType: string
  /** 'kernel': the kernel has no such helper; 'program-type': it has, but not for this type. */
  readonly reason: 'kernel' | 'program-type'

  constructor(helper: string, programType: string, reason: 'kernel' | 'program-type', minKernel: string) {
    super(
      `helper ${helper} for program type ${programType}`,
      minKernel,
      reason === 'kernel' ? 'the kernel has no such helper' : 'the kernel has the helper, but not for this program type',
    )
    this.name = 'HelperNotSupportedError'
    this.helper = helper
    this.programType = programType
    this.reason = reason
  }
}

// Types whose probe program cannot call helpers as written: struct_ops
// programs need a struct_ops map, extensions take the helpers of the
// program they replace.
const unprobeable = new Set(['struct_ops', 'ext'])

// The verifier prints its verdict on the helper in the last lines of the log.
function logSays(log: string[], ...needles: string[]): boolean {
  return verdictLines(log).slice(-5).some((line) => needles.every((n) => line.includes(n)))
}

/**
 * Checks that programs of type `progType` may call `helper` ('ringbuf_output',
 * or its id). Returns when they may; throws a HelperNotSupportedError (a
 * NotSupportedError) whose `reason` tells a helper missing from the kernel
 * from one this program type may not call, a NotSupportedError when the
 * program type itself is missing, a BpfError when the probe is refused
 * (EPERM), a TypeError for unknown names or a type that cannot be probed
 * (struct_ops, ext). Cached.
 */
export function haveProgramHelper(progType: ProgTypeName | number, helper: HelperName | number): void {
  const { n: pt, name: typeNameStr } = familyMember(progTypes, 'program type', progType)
  const { n: id, name: helperName } = familyMember(helpers, 'helper', helper)
  if (unprobeable.has(typeNameStr)) throw new TypeError(`helpers of program type ${typeNameStr} cannot be probed: ${typeNameStr === 'ext' ? 'an extension uses the helpers of the program it replaces' : 'struct_ops programs load only with a struct_ops map'}`)
  cachedProbe(`helper:${pt}:${id}`, () => {
    haveProgramType(pt)
    if (!loadsCleanly(pt)) throw new Error(`helpers of program type ${typeNameStr} cannot be probed here: even a program that calls no helper is refused`)
    try {
      // Log level 1 so that every refusal carries the verifier's words, also
      // ENOTSUPP ("supported only for fentry/fexit programs").
      loadProbe(pt, typeNameStr, asm.assemble([asm.call(id), asm.mov64Imm(asm.R0, 0), asm.exit()]), 1)
    } catch (e) {
      if (!(e instanceof VerifierError)) throw e
      const tag = `#${id}`
      const minKernel = helperVersion(id) ?? 'newer than bpfkit knows'
      if (logSays(e.log, 'invalid func', tag)) throw new HelperNotSupportedError(helperName, typeNameStr, 'kernel', minKernel)
      if (logSays(e.log, 'cannot use helper', tag) || logSays(e.log, 'unknown func', tag)) {
        throw new HelperNotSupportedError(helperName, typeNameStr, 'program-type', minKernel)
      }
      // Rejected for its arguments, its context or its license: the helper
      // itself is there for this type.
    }
  })
}
