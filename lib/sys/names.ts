// Kernel enum names <-> numbers. Names are the kernel's without prefix, as the
// bpffs delegate_* mount options spell them; numbers are accepted too.

export type EnumTable = Readonly<Record<string, number>>

/** The number for `value` in `table`; a TypeError names the known values. */
export function enumValue(table: EnumTable, what: string, value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${what} must be a name or a non-negative integer, got ${value}`)
    return value
  }
  if (typeof value !== 'string') throw new TypeError(`${what} must be a name or a number, got ${typeof value}`)
  const n = Object.hasOwn(table, value) ? table[value] : undefined
  if (n === undefined) {
    const known = Object.keys(table)
    throw new TypeError(`unknown ${what} '${value}' (known: ${known.slice(0, 40).join(', ')}${known.length > 40 ? ', ...' : ''})`)
  }
  return n
}

const reverse = new WeakMap<EnumTable, Map<number, string>>()

/** The kernel name for number `n` in `table`, or `unknown(n)`. The first name wins for aliases. */
export function enumName(table: EnumTable, n: number): string {
  let r = reverse.get(table)
  if (!r) {
    r = new Map()
    for (const [k, v] of Object.entries(table)) if (!r.has(v)) r.set(v, k)
    reverse.set(table, r)
  }
  return r.get(n) ?? `unknown(${n})`
}
