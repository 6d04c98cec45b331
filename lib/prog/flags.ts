// BPF_PROG_LOAD prog_flags by name. The values are generated from the UAPI
// header's #defines (kernel BTF cannot carry them); names and numbers become
// a flag word through the same helper as map flags.
import { kernel } from '../sys/index.js'
import { flagTable, flagsValue, type FlagTable, type FlagsInput } from '../sys/flags.js'

const progFlagNames = [
  // verify alignment as on architectures without unaligned access
  'strict_alignment',
  // skip alignment checks (testing only)
  'any_alignment',
  // randomise the upper halves of 32-bit results (testing only)
  'test_rnd_hi32',
  // verifier testing
  'test_state_freq',
  // may call sleeping helpers; for hooks that can sleep (Linux 5.10+)
  'sleepable',
  // XDP program that handles multi-buffer packets (Linux 5.18+)
  'xdp_has_frags',
  // device-bound XDP with metadata kfuncs (Linux 6.3+)
  'xdp_dev_bound_only',
  // fail verification on register invariant violations (testing)
  'test_reg_invariants',
] as const

export type ProgFlagName = (typeof progFlagNames)[number]

export const progFlags: FlagTable<ProgFlagName> = flagTable(progFlagNames, kernel.progLoadFlags)

/** The numeric prog_flags for a name list or a number. Unknown names are a TypeError, numbers beyond u32 a RangeError. */
export function progFlagsValue(flags: FlagsInput<ProgFlagName> | undefined): number {
  return flagsValue(progFlags, 'program flag', flags)
}
