// Argument checks for BtfBuilder: a wrong type is a TypeError (a number out
// of range a RangeError) naming the method and the argument, never a
// JavaScript internal from deep inside the encoder.
import { describeValue } from '../sys/options.js'

export const MAX_U32 = 0xffffffff

export function u32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${v}`)
  return v
}


export function nameArg(where: string, what: string, v: unknown): string {
  if (typeof v !== 'string') throw new TypeError(`BtfBuilder.${where}: ${what} must be a string, got ${describeValue(v)}`)
  return v
}

// A type id (0 is void); whether it exists is checked when the blob is made.
export function idArg(where: string, what: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`BtfBuilder.${where}: ${what} must be a type id (a number), got ${describeValue(v)}`)
  return u32(`${where}: ${what}`, v)
}

export function numberArg(where: string, what: string, v: unknown): number {
  if (typeof v !== 'number') throw new TypeError(`BtfBuilder.${where}: ${what} must be a number, got ${describeValue(v)}`)
  return v
}

export function listArg<T>(where: string, what: string, v: unknown, item: string): readonly T[] {
  if (!Array.isArray(v)) throw new TypeError(`BtfBuilder.${where}: ${what} must be an array of ${item}, got ${describeValue(v)}`)
  v.forEach((x, i) => {
    if (x === null || typeof x !== 'object') throw new TypeError(`BtfBuilder.${where}: ${what}[${i}] must be ${item}, got ${describeValue(x)}`)
  })
  return v as readonly T[]
}

// An enum's values: [name, value] pairs.
export function enumValuesArg(where: string, values: unknown, valueType: 'number' | 'bigint'): void {
  if (!Array.isArray(values)) throw new TypeError(`BtfBuilder.${where}: values must be an array of [name, ${valueType}] pairs, got ${describeValue(values)}`)
  values.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== valueType) {
      throw new TypeError(`BtfBuilder.${where}: values[${i}] must be a [name, ${valueType}] pair, got ${describeValue(pair)}`)
    }
  })
}
