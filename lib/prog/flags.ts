// BPF_PROG_LOAD flags by name. The kernel declares them with #define in
// include/uapi/linux/bpf.h, so kernel BTF, where the other constants come
// from, does not carry them; their values are part of the stable UAPI.
const progFlagBits = {
  /** BPF_F_STRICT_ALIGNMENT: verify alignment as on architectures without unaligned access. */
  strict_alignment: 1 << 0,
  /** BPF_F_ANY_ALIGNMENT: skip alignment checks (testing only). */
  any_alignment: 1 << 1,
  /** BPF_F_TEST_RND_HI32: randomise the upper halves of 32-bit results (testing only). */
  test_rnd_hi32: 1 << 2,
  /** BPF_F_TEST_STATE_FREQ: verifier testing. */
  test_state_freq: 1 << 3,
  /** BPF_F_SLEEPABLE: may call sleeping helpers; for hooks that can sleep (Linux 5.10+). */
  sleepable: 1 << 4,
  /** BPF_F_XDP_HAS_FRAGS: XDP program that handles multi-buffer packets (Linux 5.18+). */
  xdp_has_frags: 1 << 5,
  /** BPF_F_XDP_DEV_BOUND_ONLY: device-bound XDP with metadata kfuncs (Linux 6.3+). */
  xdp_dev_bound_only: 1 << 6,
  /** BPF_F_TEST_REG_INVARIANTS: fail verification on register invariant violations (testing). */
  test_reg_invariants: 1 << 7,
} as const

export type ProgFlagName = keyof typeof progFlagBits
export const progFlags: Readonly<Record<ProgFlagName, number>> = progFlagBits

/** The numeric prog_flags for a name list or a number. Unknown names are a TypeError. */
export function progFlagsValue(flags: number | readonly (ProgFlagName | number)[] | undefined): number | undefined {
  if (flags === undefined) return undefined
  const list = typeof flags === 'number' ? [flags] : flags
  if (!Array.isArray(list)) throw new TypeError('flags must be a number or an array of flag names')
  let v = 0
  for (const f of list) {
    if (typeof f === 'number') {
      if (!Number.isInteger(f) || f < 0 || f > 0xffffffff) throw new RangeError(`program flag must be a 32-bit unsigned integer, got ${f}`)
      v |= f
    } else if (typeof f === 'string' && Object.hasOwn(progFlagBits, f)) {
      v |= progFlagBits[f as ProgFlagName]
    } else {
      throw new TypeError(`unknown program flag '${String(f)}' (known: ${Object.keys(progFlagBits).join(', ')})`)
    }
  }
  return v >>> 0
}
