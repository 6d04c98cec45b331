// Options objects: unknown keys are a TypeError, so a misspelt option never
// silently does nothing.

/** typeof names an option's value may have ('object' excludes null). */
export type OptionType = 'string' | 'number' | 'bigint' | 'boolean' | 'function' | 'object'

export interface OptionRules {
  /** The options object itself must be given (a call with required fields in it). */
  readonly required?: boolean
  /** For keys whose value, when not undefined, must be of one of these types. */
  readonly types?: Readonly<Record<string, OptionType | readonly OptionType[]>>
  /** What the keys are called in messages: 'option' (default), or 'key' for a plain description object. */
  readonly noun?: string
}

/**
 * Checks an options object: an object (or undefined unless `rules.required`),
 * only `known` keys, and values of the `rules.types` given. Errors: TypeError
 * naming `where`, the option and what it got.
 */
export function checkOptions(where: string, options: object | undefined, known: readonly string[], rules: OptionRules = {}): void {
  if (options === undefined && !rules.required) return
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    // A description object (noun 'key') is named by `where` itself: "policy must be an object".
    const what = rules.noun === undefined || rules.noun === 'option' ? `${where}: options` : where
    throw new TypeError(`${what} must be an object${rules.required ? ` with ${known.join(', ')}` : ''}, got ${describeValue(options)}`)
  }
  const noun = rules.noun ?? 'option'
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${where}: unknown ${noun} '${key}' (known: ${known.join(', ')})`)
  }
  for (const [key, type] of Object.entries(rules.types ?? {})) {
    const value = (options as Record<string, unknown>)[key]
    if (value === undefined) continue
    const allowed: readonly OptionType[] = typeof type === 'string' ? [type] : type
    if (!allowed.includes(typeof value as OptionType) || value === null) {
      const wanted = allowed.map((t) => `${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}`).join(' or ')
      throw new TypeError(`${where}: ${rules.noun ?? 'option'} '${key}' must be ${wanted}, got ${describeValue(value)}`)
    }
  }
}

/** A value as error messages show it: null, an array, a string in quotes, a type and value. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return String(v)
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`
  if (typeof v === 'object') {
    const name = (v as { constructor?: { name?: unknown } }).constructor?.name
    return typeof name === 'string' && name !== 'Object' ? `a ${name}` : 'an object'
  }
  if (typeof v === 'function') return 'a function'
  // String() and not a template: a symbol in a template literal throws.
  return `${typeof v} ${String(v)}`
}

// BPF object names (maps, programs): the kernel answers anything else with a
// bare EINVAL, so the rule it applies is checked here and named.
const OBJECT_NAME = /^[A-Za-z0-9_.]{0,15}$/

export function checkObjectName(where: string, name: unknown): void {
  if (name === undefined || (typeof name === 'string' && OBJECT_NAME.test(name))) return
  const message = `${where}: name must be at most 15 letters, digits, '_' or '.', got ${JSON.stringify(name)}`
  throw typeof name === 'string' && name.length > 15 ? new RangeError(message) : new TypeError(message)
}
