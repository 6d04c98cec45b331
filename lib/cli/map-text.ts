// Map keys and values as a person types and reads them on the command line:
// through the map's BTF when it has one (JSON: structs as objects, enums by
// name, char arrays as strings), as hex bytes otherwise ("01 00 00 00",
// "0x01 0x00 0x00 0x00", "01000000"), as bpftool takes and prints them.
// Per-CPU maps have one value per possible CPU; fd-valued maps (prog_array,
// map-in-map) are updated with the program or map named, and read as IDs.
import type { BtfReader } from '../btf/reader.js'
import { codecFromBtf } from '../map/btf-codec.js'
import type { Codec } from '../map/codec.js'
import { UsageError } from './args.js'

/** "01 00 00 00": bytes as bpftool's plain output prints them. */
export function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ')
}

/** ["0x01", "0x00"]: bytes as bpftool's --json prints them. */
export function hexJson(b: Uint8Array): string[] {
  return Array.from(b, (x) => `0x${x.toString(16).padStart(2, '0')}`)
}

/**
 * Hex bytes in the forms bpftool prints and people paste: pairs of hex
 * digits, each whitespace- or comma-separated group optionally prefixed with
 * 0x ("01 02", "0x01 0x02", "0102", "0x0102"; a group of one digit is one
 * byte: "1 0 0 0"), exactly `size` bytes.
 * UsageError (exit 2) otherwise, saying what was wrong.
 */
export function parseHex(text: string, size: number, what: string): Uint8Array {
  const groups = text.trim().split(/[\s,]+/).filter((g) => g !== '')
  const out: number[] = []
  for (const g of groups) {
    const digits = g.replace(/^0x/i, '')
    // One digit is one byte ("0x5 0 0 0"); longer groups are whole pairs.
    if (!/^[0-9a-f]+$/i.test(digits) || (digits.length > 2 && digits.length % 2 !== 0)) {
      throw new UsageError(`${what}: '${g}' is not hex bytes (pairs of hex digits such as 01 or 0x01)`)
    }
    if (digits.length === 1) out.push(parseInt(digits, 16))
    for (let i = 0; digits.length > 1 && i < digits.length; i += 2) out.push(parseInt(digits.slice(i, i + 2), 16))
  }
  if (out.length !== size) throw new UsageError(`${what}: the map's ${what} is ${size} bytes, got ${out.length} (${text.trim() || 'nothing'})`)
  return Uint8Array.from(out)
}

/** JSON text with bigints written as plain numbers (as bpftool writes 64-bit integers). */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `\u0000big${v}\u0000` : v), indent)
    .replace(/"\\u0000big(-?\d+)\\u0000"/g, '$1')
}

// Long integers are wrapped in an object under this key before JSON.parse, and made bigints after.
const bigKey = '#bpfkit bigint#'

/**
 * Parses JSON keeping integers beyond 2^53 exact (as bigints). A bare word
 * that is not JSON (an enum's enumerator: RED) is taken as that string.
 */
export function parseJsonText(text: string, what: string): unknown {
  const marked = text.replace(/"(?:[^"\\]|\\.)*"|-?\d{16,}(?![.eE\d])/g, (m) => (m.startsWith('"') ? m : `{"${bigKey}":"${m}"}`))
  try {
    return JSON.parse(marked, (_k, v) => (v !== null && typeof v === 'object' && typeof v[bigKey] === 'string' ? BigInt(v[bigKey]) : v))
  } catch {
    if (/^[A-Za-z_]\w*$/.test(text.trim())) return text.trim()
    throw new UsageError(`${what}: '${text}' is not JSON (the map has BTF: a number, "string", [array] or {"field": value}; --hex for bytes)`)
  }
}

// A byte array whose bytes are text up to a NUL and zeros after it reads as a C string.
function cString(b: Uint8Array): string | undefined {
  const end = b.indexOf(0)
  const n = end < 0 ? b.length : end
  if (n === 0 && b.length > 0 && end !== 0) return undefined
  for (let i = 0; i < n; i++) if (b[i] < 0x20 || b[i] > 0x7e) return undefined
  for (let i = n; i < b.length; i++) if (b[i] !== 0) return undefined
  return Buffer.from(b.subarray(0, n)).toString('latin1')
}

/** A value decoded from BTF made printable: byte arrays as C strings when they are text, else numbers. */
export function printable(x: unknown): unknown {
  if (x instanceof Uint8Array) return cString(x) ?? Array.from(x)
  if (Array.isArray(x)) return x.map(printable)
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, printable(v)]))
  return x
}

/**
 * Shapes parsed JSON the way the BTF codec takes it: byte arrays given as
 * number lists become bytes, integers given as strings ("0x10", "18446744073709551615")
 * become numbers or bigints. Members of anonymous structs and unions sit in
 * their parent's object, as the codec reads them.
 */
export function coerce(btf: BtfReader, id: number, x: unknown, depth = 0): unknown {
  if (depth > 32) return x
  const t = btf.resolve(id)
  switch (t.kind) {
    case 'INT': case 'ENUM': case 'ENUM64': {
      if (typeof x === 'string' && /^-?(0x[0-9a-f]+|\d+)$/i.test(x)) {
        const n = x.startsWith('-') ? -BigInt(x.slice(1)) : BigInt(x)
        return t.sizeOrType <= 4 ? Number(n) : n
      }
      if (typeof x === 'bigint' && t.sizeOrType <= 4 && x >= -(2n ** 31n) && x < 2n ** 32n) return Number(x)
      return x
    }
    case 'ARRAY': {
      const a = btf.array(t)
      const elem = btf.resolve(a.type)
      if (elem.kind === 'INT' && elem.sizeOrType === 1 && !btf.intEncoding(elem).bool) {
        if (Array.isArray(x) && x.every((b) => Number.isInteger(b) && b >= -128 && b <= 255)) return Uint8Array.from(x as number[])
        return x
      }
      return Array.isArray(x) ? x.map((e) => coerce(btf, a.type, e, depth + 1)) : x
    }
    case 'STRUCT': case 'UNION': {
      if (x === null || typeof x !== 'object' || Array.isArray(x)) return x
      let out = { ...(x as Record<string, unknown>) }
      for (const m of btf.members(t)) {
        if (m.name === '') out = coerce(btf, m.type, out, depth + 1) as Record<string, unknown>
        else if (m.name in out) out[m.name] = coerce(btf, m.type, out[m.name], depth + 1)
      }
      return out
    }
    default: return x
  }
}

/** One side (key or value) of a map: its size, and its BTF type when the map has one. */
export class SideText {
  readonly codec: Codec<unknown> | undefined

  constructor(readonly what: 'key' | 'value', readonly size: number, readonly btf?: BtfReader, readonly typeId = 0) {
    // A BTF type the codec cannot read (a void value) is shown as bytes.
    try {
      this.codec = btf && typeId ? codecFromBtf(btf, typeId) : undefined
    } catch {
      this.codec = undefined
    }
    if (this.codec && this.codec.size !== size) this.codec = undefined
  }

  /** Bytes from the command line: JSON through BTF, or hex. */
  parse(text: string): Uint8Array {
    if (!this.codec) return parseHex(text, this.size, this.what)
    const value = coerce(this.btf!, this.typeId, parseJsonText(text, this.what))
    const out = new Uint8Array(this.size)
    try {
      this.codec.encode(value, new DataView(out.buffer), 0)
    } catch (e) {
      throw new UsageError(`${this.what}: ${(e as Error).message}`)
    }
    return out
  }

  /** The decoded value (printable), or undefined when the map has no BTF for this side. */
  decode(bytes: Uint8Array, offset = 0): unknown {
    if (!this.codec) return undefined
    return printable(this.codec.decode(new DataView(bytes.buffer, bytes.byteOffset), offset))
  }

  /** For plain output: JSON through BTF, else hex bytes. */
  text(bytes: Uint8Array, offset = 0): string {
    if (this.codec) return jsonText(this.decode(bytes, offset))
    return hexBytes(bytes.subarray(offset, offset + this.size))
  }
}
