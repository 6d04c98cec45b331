// Options objects: unknown keys are a TypeError, so a misspelt option never
// silently does nothing.

export function checkOptions(where: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return
  if (options === null || typeof options !== 'object') throw new TypeError(`${where}: options must be an object`)
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${where}: unknown option '${key}' (known: ${known.join(', ')})`)
  }
}

// BPF object names (maps, programs): the kernel answers anything else with a
// bare EINVAL, so the rule it applies is checked here and named.
const OBJECT_NAME = /^[A-Za-z0-9_.]{0,15}$/

export function checkObjectName(where: string, name: unknown): void {
  if (name === undefined || (typeof name === 'string' && OBJECT_NAME.test(name))) return
  const message = `${where}: name must be at most 15 letters, digits, '_' or '.', got ${JSON.stringify(name)}`
  throw typeof name === 'string' && name.length > 15 ? new RangeError(message) : new TypeError(message)
}
