// Options objects: unknown keys are a TypeError, so a misspelt option never
// silently does nothing.

export function checkOptions(where: string, options: object | undefined, known: readonly string[]): void {
  if (options === undefined) return
  if (options === null || typeof options !== 'object') throw new TypeError(`${where}: options must be an object`)
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${where}: unknown option '${key}' (known: ${known.join(', ')})`)
  }
}
