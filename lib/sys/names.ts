// Kernel enum names <-> numbers, the one place bpfkit converts them (map and
// program types, commands, attach types, helpers; features, policies and info
// decoding all come here). Names are the kernel's without prefix, as the
// bpffs delegate_* mount options spell them; numbers are accepted too.

export type EnumTable = Readonly<Record<string, number>>

/**
 * The number for `name` in `table`, or undefined. `ignoreCase`: match as the
 * kernel matches delegate_* mount option names (strcasecmp).
 */
export function findEnumValue(table: EnumTable, name: string, options: { ignoreCase?: boolean } = {}): number | undefined {
  if (Object.hasOwn(table, name)) return table[name]
  if (!options.ignoreCase) return undefined
  let lower = lowerCase.get(table)
  if (!lower) {
    // Aliases included (prog_run = prog_test_run).
    lower = new Map(Object.entries(table).map(([k, v]) => [k.toLowerCase(), v]))
    lowerCase.set(table, lower)
  }
  return lower.get(name.toLowerCase())
}
const lowerCase = new WeakMap<EnumTable, Map<string, number>>()

/** The number for `value` in `table`; a TypeError names the closest and the known values. */
export function enumValue(table: EnumTable, what: string, value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${what} must be a name or a non-negative integer, got ${value}`)
    return value
  }
  if (typeof value !== 'string') throw new TypeError(`${what} must be a name or a number, got ${value === null ? 'null' : typeof value}`)
  const n = findEnumValue(table, value)
  if (n === undefined) {
    const known = Object.keys(table)
    const hint = closestEnumName(table, value)
    throw new TypeError(`unknown ${what} '${value}'${hint ? ` (did you mean '${hint}'?)` : ''} (known: ${known.slice(0, 40).join(', ')}${known.length > 40 ? ', ...' : ''})`)
  }
  return n
}

const plainNames = new WeakMap<EnumTable, Map<number, string>>()
const firstNames = new WeakMap<EnumTable, Map<number, string>>()

/**
 * The name for number `n` in `table`, or undefined. Aliases: the plain name
 * wins ('cgroup_storage', not the 'cgroup_storage_deprecated' the kernel
 * lists first); with `kernelOrder`, the first name in the kernel's enum wins,
 * as bpffs prints a delegate_* mask.
 */
export function findEnumName(table: EnumTable, n: number, options: { kernelOrder?: boolean } = {}): string | undefined {
  const cache = options.kernelOrder ? firstNames : plainNames
  let r = cache.get(table)
  if (!r) {
    r = new Map()
    for (const [k, v] of Object.entries(table)) {
      const had = r.get(v)
      if (had === undefined || (!options.kernelOrder && had.endsWith('_deprecated') && !k.endsWith('_deprecated'))) r.set(v, k)
    }
    cache.set(table, r)
  }
  return r.get(n)
}

/** The name for number `n` in `table` (see findEnumName), or `unknown(n)`, for info objects and messages. */
export function enumName(table: EnumTable, n: number): string {
  return findEnumName(table, n) ?? `unknown(${n})`
}

/** The closest known name, for "did you mean" hints; undefined when nothing is close. */
export function closestEnumName(table: EnumTable, name: string): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const candidate of Object.keys(table)) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]
}
