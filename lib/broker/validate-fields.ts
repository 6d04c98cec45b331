// The generic readers under the broker's request and reply checks: JSON
// parsed with its nesting bounded first, own properties only, copies into
// plain objects, and a Reader whose every check throws a BrokerError
// naming the request type and the field. What each request holds is not
// here (validate.ts); only how a field is read.
import { checkObjectName } from '../sys/options.js'
import { brokerError, type BrokerError } from './errors.js'
import { jsonLimits, kinds, type Kind, type RequestType } from './protocol.js'

export type Json = Record<string, unknown>

const utf8 = new TextDecoder('utf-8', { fatal: true })
const enumName = /^[A-Za-z0-9_]{1,64}$/
const base64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** A received value as an error message shows it: its kind, and strings cut to 40 characters. */
export const show = (v: unknown): string => {
  if (v === null) return 'null'
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}...` : v}'`
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${String(v)}`
}

export const proto = (message: string): BrokerError => brokerError('EPROTO', message)

/** Bytes to a JSON object: EPROTO for what is not UTF-8, nests too deep, is not JSON or not an object. */
export function parse(data: Uint8Array, what: string): Json {
  if (!(data instanceof Uint8Array)) throw proto(`${what}: the payload must be bytes`)
  let text: string
  try {
    text = utf8.decode(data)
  } catch {
    throw proto(`${what}: the payload is not UTF-8`)
  }
  const depth = nestingDepth(text)
  if (depth > jsonLimits.maxDepth) throw proto(`${what}: JSON nested deeper than ${jsonLimits.maxDepth} levels`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (e) {
    throw proto(`${what}: not JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw proto(`${what}: must be a JSON object, got ${show(v)}`)
  return v as Json
}

/**
 * The deepest nesting of arrays and objects in JSON text, brackets inside
 * strings not counted; read before JSON.parse, so that no walk over the
 * parsed value (and no parser) ever meets more than maxDepth levels. The
 * count stops early once over the limit.
 */
export function nestingDepth(text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth
        if (max > jsonLimits.maxDepth) return max
      }
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return max
}

/** An own property only: `constructor` or `toString` must never come from Object.prototype. */
export function own(o: Json, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined
}

export function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff
}

export function setKey(out: Json, key: string, value: unknown): void {
  Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
}

/**
 * A copy of parsed JSON in new arrays and plain objects. A `__proto__` key
 * is refused (Error with the path), or with `keepProto` kept as a plain
 * own key (a reply's record of objects by name: an ELF may name a map so).
 * Depth was bounded before parsing.
 */
export function plainCopy(v: unknown, path: string, depth: number, keepProto = false): unknown {
  if (depth > jsonLimits.maxDepth) throw new Error(`${path}: nested deeper than ${jsonLimits.maxDepth} levels`)
  if (Array.isArray(v)) return v.map((x, i) => plainCopy(x, `${path}[${i}]`, depth + 1, keepProto))
  if (v !== null && typeof v === 'object') {
    const out: Json = {}
    for (const k of Object.keys(v)) {
      if (k === '__proto__' && !keepProto) throw new Error(`${path}: key '__proto__' is not allowed`)
      setKey(out, k, plainCopy((v as Json)[k], `${path}.${k}`, depth + 1, keepProto))
    }
    return out
  }
  return v
}

/** Reads the fields of one request; every refusal is EINVAL naming the request type and the field's path. */
export class Reader {
  constructor(readonly top: Json, readonly type: RequestType) {}

  invalid(field: string, message: string): BrokerError {
    return brokerError('EINVAL', `${this.type}: ${field} ${message}`)
  }

  /** The object at `path` (the top for ''), with only `keys` (and the envelope at the top). */
  object(o: Json, path: string, keys: readonly string[]): void {
    const allowed = path === '' ? ['protocol', 'type', 'seq', ...keys] : keys
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) {
        const known = keys.length ? ` (known: ${keys.join(', ')})` : ' (this request has no fields)'
        throw brokerError('EINVAL', `${this.type}: unknown key ${show(k)}${path ? ` in ${path}` : ''}${known}`)
      }
    }
  }

  sub(o: Json, key: string, path: string, optional: boolean): Json | undefined {
    const v = own(o, key)
    if (v === undefined && optional) return undefined
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw this.invalid(join(path, key), `must be an object, got ${show(v)}`)
    return v as Json
  }

  u32(o: Json, key: string, path: string, opts: { optional?: boolean; min?: number; max?: number } = {}): number | undefined {
    const v = own(o, key)
    if (v === undefined && opts.optional) return undefined
    const min = opts.min ?? 0
    const max = opts.max ?? 0xffffffff
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw this.invalid(join(path, key), `must be an integer in ${min}..${max === 0xffffffff ? '2^32-1' : max}, got ${show(v)}`)
    }
    return v
  }

  string(o: Json, key: string, path: string, opts: { optional?: boolean; pattern?: RegExp; rule?: string; max?: number } = {}): string | undefined {
    const v = own(o, key)
    if (v === undefined && opts.optional) return undefined
    if (typeof v !== 'string') throw this.invalid(join(path, key), `must be a string, got ${show(v)}`)
    const max = opts.max ?? jsonLimits.maxString
    if (v.length > max) throw this.invalid(join(path, key), `is longer than ${max} characters`)
    if (v.includes('\0')) throw this.invalid(join(path, key), 'contains a NUL character')
    if (opts.pattern && !opts.pattern.test(v)) throw this.invalid(join(path, key), `must be ${opts.rule}, got ${show(v)}`)
    return v
  }

  /** A kernel enum: its name ('hash', any case as the library takes it) or its number. */
  enumValue(o: Json, key: string, path: string, optional = false): string | number | undefined {
    const v = own(o, key)
    if (v === undefined && optional) return undefined
    if (typeof v === 'number') return this.u32(o, key, path)
    return this.string(o, key, path, { pattern: enumName, rule: "a kernel name like 'hash' or a number" })
  }

  /** An object name as the kernel takes it (at most 15 letters, digits, '_' or '.'). */
  objectName(o: Json, key: string, path: string): string | undefined {
    const v = this.string(o, key, path, { optional: true, max: 64 })
    try {
      checkObjectName(this.type, v)
    } catch {
      throw this.invalid(join(path, key), `must be at most 15 letters, digits, '_' or '.', got ${show(v)}`)
    }
    return v
  }

  true(o: Json, key: string): true | undefined {
    const v = own(o, key)
    if (v === undefined) return undefined
    if (v !== true) throw this.invalid(key, `must be true when given, got ${show(v)}`)
    return true
  }

  kind(o: Json, key: string): Kind {
    const v = own(o, key)
    if (typeof v !== 'string' || !(kinds as readonly string[]).includes(v)) throw this.invalid(key, `must be one of ${kinds.join(', ')}, got ${show(v)}`)
    return v as Kind
  }

  list<T extends string>(o: Json, key: string, allowed: readonly T[]): T[] | undefined {
    const v = own(o, key)
    if (v === undefined) return undefined
    if (!Array.isArray(v)) throw this.invalid(key, `must be an array, got ${show(v)}`)
    if (v.length > allowed.length * 4) throw this.invalid(key, `has too many entries (${v.length})`)
    return v.map((x, i) => {
      if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) throw this.invalid(`${key}[${i}]`, `must be one of ${allowed.join(', ')}, got ${show(x)}`)
      return x as T
    })
  }

  id(o: Json, key: string): number {
    return this.u32(o, key, '', { min: 1 })!
  }

  /** Base64 text (strict: the alphabet, padding, length a multiple of 4), decoded. */
  bytes(o: Json, key: string, path: string): Uint8Array {
    const v = own(o, key)
    if (typeof v !== 'string') throw this.invalid(join(path, key), `must be a base64 string, got ${show(v)}`)
    if (v.length === 0) throw this.invalid(join(path, key), 'is empty')
    if (v.length % 4 !== 0 || !base64.test(v)) throw this.invalid(join(path, key), 'is not base64')
    return Buffer.from(v, 'base64')
  }
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key)

// Strings anywhere in a document (a policy) are held to the string limit.
export function checkStrings(v: unknown, path: string): void {
  if (typeof v === 'string') {
    if (v.length > jsonLimits.maxString) throw new Error(`${path} is longer than ${jsonLimits.maxString} characters`)
  } else if (Array.isArray(v)) v.forEach((x, i) => checkStrings(x, `${path}[${i}]`))
  else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) checkStrings((v as Json)[k], `${path}.${k}`)
}
