// Flag words given by name or number: one mechanism for map flags, program
// flags and whatever flag set comes next. Tables are built from generated
// kernel constants (BPF_F_* by their kernel names), so a value is never
// hand-copied and a flag this kernel's BTF lacks is simply not offered.
import { describeValue } from './options.js'

export type FlagTable<N extends string = string> = Readonly<Partial<Record<N, number>>>

/** Flags as callers give them: a number, or a list of names and numbers. */
export type FlagsInput<N extends string> = number | readonly (N | number)[]

/**
 * The table of `names` (kernel names without `prefix`, lower case) with their
 * values from `generated`. Names the generated definitions lack are left out.
 */
export function flagTable<const N extends string>(names: readonly N[], generated: Readonly<Record<string, number>>, prefix = 'BPF_F_'): FlagTable<N> {
  const table: Partial<Record<N, number>> = {}
  for (const n of names) {
    const v = generated[prefix + n.toUpperCase()]
    if (v !== undefined) table[n] = v
  }
  return Object.freeze(table)
}

function u32(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${describeValue(v)}`)
  }
  return v
}

/**
 * The flag word for `flags` (undefined is 0). `what` names the flag set in
 * errors ('map flag'): an unknown name is a TypeError listing the known ones,
 * a number outside u32 a RangeError.
 */
export function flagsValue<N extends string>(table: FlagTable<N>, what: string, flags: FlagsInput<N> | undefined): number {
  if (flags === undefined) return 0
  if (typeof flags === 'number') return u32(what + 's', flags)
  if (!Array.isArray(flags)) throw new TypeError(`${what}s must be a number or a list of flag names, got ${describeValue(flags)}`)
  let v = 0
  for (const f of flags as readonly unknown[]) {
    if (typeof f === 'number') v |= u32(what, f)
    else if (typeof f === 'string' && Object.hasOwn(table, f)) v |= table[f as N]!
    else throw new TypeError(`unknown ${what} ${describeValue(f)} (known: ${Object.keys(table).join(', ')})`)
  }
  return v >>> 0
}
