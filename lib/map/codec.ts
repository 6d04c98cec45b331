// Codecs turn JavaScript values into the bytes a map key or value holds and
// back. Layout follows the C ABI the kernel and BPF programs use (x86-64 and
// arm64 alike): natural alignment, structs padded to their largest member.
import { describeValue } from '../sys/options.js'

/** A description of a C type: the same vocabulary the BTF builder speaks. */
export type TypeDesc =
  | 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'f32' | 'f64'
  | { bytes: number }
  | { struct: ReadonlyArray<readonly [string, TypeDesc]> }
  | { array: TypeDesc; length: number }

/** The JavaScript value a TypeDesc decodes to. */
export type Decoded<D> =
  D extends 'u64' | 'i64' ? bigint
  : D extends 'u8' | 'u16' | 'u32' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64' ? number
  : D extends { bytes: number } ? Uint8Array // a string is accepted too, stored as zero-padded UTF-8
  : D extends { struct: ReadonlyArray<readonly [string, TypeDesc]> } ? { [F in D['struct'][number] as F[0]]: Decoded<F[1]> }
  : D extends { array: infer E; length: number } ? Decoded<E>[]
  : Uint8Array

export interface Codec<T> {
  readonly size: number
  readonly align: number
  encode(value: T, view: DataView, offset: number): void
  decode(view: DataView, offset: number): T
}

type Scalar = Extract<TypeDesc, string>

const scalars: Record<Scalar, Codec<number | bigint>> = {
  u8: scalar(1, (v, o, x) => v.setUint8(o, x as number), (v, o) => v.getUint8(o)),
  i8: scalar(1, (v, o, x) => v.setInt8(o, x as number), (v, o) => v.getInt8(o)),
  u16: scalar(2, (v, o, x) => v.setUint16(o, x as number, true), (v, o) => v.getUint16(o, true)),
  i16: scalar(2, (v, o, x) => v.setInt16(o, x as number, true), (v, o) => v.getInt16(o, true)),
  u32: scalar(4, (v, o, x) => v.setUint32(o, x as number, true), (v, o) => v.getUint32(o, true)),
  i32: scalar(4, (v, o, x) => v.setInt32(o, x as number, true), (v, o) => v.getInt32(o, true)),
  u64: scalar(8, (v, o, x) => v.setBigUint64(o, BigInt(x), true), (v, o) => v.getBigUint64(o, true)),
  i64: scalar(8, (v, o, x) => v.setBigInt64(o, BigInt(x), true), (v, o) => v.getBigInt64(o, true)),
  f32: scalar(4, (v, o, x) => v.setFloat32(o, x as number, true), (v, o) => v.getFloat32(o, true)),
  f64: scalar(8, (v, o, x) => v.setFloat64(o, x as number, true), (v, o) => v.getFloat64(o, true)),
}

const ranges: Partial<Record<Scalar, [number | bigint, number | bigint]>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
  u64: [0n, 0xffffffffffffffffn], i64: [-0x8000000000000000n, 0x7fffffffffffffffn],
}

function scalar(size: number, set: (v: DataView, o: number, x: number | bigint) => void,
  get: (v: DataView, o: number) => number | bigint): Codec<number | bigint> {
  return { size, align: size, encode: (x, v, o) => set(v, o, x), decode: get }
}

function checkedScalar(name: Scalar): Codec<number | bigint> {
  const base = scalars[name]
  const range = ranges[name]
  const isBig = name === 'u64' || name === 'i64'
  return {
    size: base.size,
    align: base.align,
    encode(x, v, o) {
      if (isBig ? typeof x !== 'bigint' && !Number.isInteger(x) : typeof x !== 'number') {
        throw new TypeError(`${name}: expected ${isBig ? 'a bigint or an integer' : 'a number'}, got ${describe(x)}`)
      }
      if (range && !(x >= range[0] && x <= range[1] && (isBig || Number.isInteger(x)))) {
        throw new RangeError(`${name}: ${String(x)} is out of range ${range[0]}..${range[1]}`)
      }
      base.encode(x, v, o)
    },
    decode: base.decode,
  }
}

function describe(x: unknown): string {
  return describeValue(x)
}

function bytesCodec(size: number): Codec<Uint8Array | string> {
  return {
    size,
    align: 1,
    encode(x, v, o) {
      // A string is stored as UTF-8, zero-padded, like a C char array.
      const b = typeof x === 'string' ? Buffer.from(x, 'utf8') : x
      if (!(b instanceof Uint8Array)) throw new TypeError(`bytes[${size}]: expected a Uint8Array or a string, got ${describe(x)}`)
      if (b.length > size) throw new RangeError(`bytes[${size}]: got ${b.length} bytes`)
      const dst = new Uint8Array(v.buffer, v.byteOffset + o, size)
      dst.set(b)
      dst.fill(0, b.length)
    },
    decode: (v, o) => new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + size)) as Uint8Array | string,
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a
}

function structCodec(fields: ReadonlyArray<readonly [string, TypeDesc]>): Codec<Record<string, unknown>> {
  let offset = 0
  let align = 1
  const names = new Set<string>()
  const members = fields.map(([name, desc]) => {
    names.add(name)
    const c = build(desc)
    offset = alignUp(offset, c.align)
    const m = { name, codec: c, offset }
    offset += c.size
    align = Math.max(align, c.align)
    return m
  })
  const size = alignUp(offset, align)
  return {
    size,
    align,
    encode(x, v, o) {
      if (x === null || typeof x !== 'object') throw new TypeError(`struct: expected an object, got ${describe(x)}`)
      // Padding is zeroed: hash maps compare whole keys, holes included.
      new Uint8Array(v.buffer, v.byteOffset + o, size).fill(0)
      for (const k of Object.keys(x)) if (!names.has(k)) throw new TypeError(`struct: unknown field '${k}'`)
      for (const m of members) {
        if (!(m.name in x)) throw new TypeError(`struct: missing field '${m.name}'`)
        m.codec.encode(x[m.name], v, o + m.offset)
      }
    },
    decode(v, o) {
      const out: Record<string, unknown> = {}
      for (const m of members) out[m.name] = m.codec.decode(v, o + m.offset)
      return out
    },
  }
}

function arrayCodec(elem: TypeDesc, length: number): Codec<unknown[]> {
  const c = build(elem)
  return {
    size: c.size * length,
    align: c.align,
    encode(x, v, o) {
      if (!Array.isArray(x) || x.length !== length) throw new TypeError(`array: expected ${length} elements`)
      for (let i = 0; i < length; i++) c.encode(x[i], v, o + i * c.size)
    },
    decode(v, o) {
      const out = new Array(length)
      for (let i = 0; i < length; i++) out[i] = c.decode(v, o + i * c.size)
      return out
    },
  }
}

// The one check of a type description, for codecs and BTF alike: a
// description is a C type, so struct members must be C identifiers (the
// kernel's BTF checker accepts nothing else). `where` is the path named in
// errors ('key', 'value.addr').
export function checkTypeDesc(desc: unknown, where = 'type'): asserts desc is TypeDesc {
  if (typeof desc === 'string') {
    if (!Object.hasOwn(scalars, desc)) throw new TypeError(`${where}: unknown type '${desc}' (known: ${Object.keys(scalars).join(', ')})`)
    return
  }
  if (desc === null || typeof desc !== 'object' || Array.isArray(desc)) throw new TypeError(`${where}: not a type description: ${describeValue(desc)}`)
  const d = desc as Record<string, unknown>
  if ('bytes' in d) {
    if (!Number.isInteger(d.bytes) || (d.bytes as number) <= 0) throw new RangeError(`${where}: bytes size must be a positive integer, got ${describeValue(d.bytes)}`)
    return
  }
  if ('array' in d) {
    if (!Number.isInteger(d.length) || (d.length as number) <= 0) throw new RangeError(`${where}: array length must be a positive integer, got ${describeValue(d.length)}`)
    checkTypeDesc(d.array, `${where}[]`)
    return
  }
  if ('struct' in d) {
    const fields = d.struct
    if (!Array.isArray(fields) || fields.length === 0) throw new TypeError(`${where}: struct needs a non-empty list of [name, type] fields`)
    const seen = new Set<string>()
    for (const f of fields) {
      if (!Array.isArray(f) || f.length !== 2 || typeof f[0] !== 'string') throw new TypeError(`${where}: each struct field is a [name, type] pair, got ${describeValue(f)}`)
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(f[0])) throw new TypeError(`${where}: field name '${f[0]}' is not a C identifier`)
      if (seen.has(f[0])) throw new TypeError(`${where}: duplicate field '${f[0]}'`)
      seen.add(f[0])
      checkTypeDesc(f[1], `${where}.${f[0]}`)
    }
    return
  }
  throw new TypeError(`${where}: not a type description: ${JSON.stringify(desc)}`)
}

// Codecs of checked descriptions; the caller has validated `desc`.
function build(desc: TypeDesc): Codec<unknown> {
  if (typeof desc === 'string') return checkedScalars[desc]
  const known = built.get(desc)
  if (known) return known
  const c = 'bytes' in desc ? bytesCodec(desc.bytes) : 'struct' in desc ? structCodec(desc.struct) : arrayCodec(desc.array, desc.length)
  return c as Codec<unknown>
}

const checkedScalars = Object.fromEntries(Object.keys(scalars).map((n) => [n, checkedScalar(n as Scalar)])) as Record<Scalar, Codec<unknown>>

// Codecs of the frozen descriptions made by `frozenTypeDesc`: a spec's
// descriptions are checked once, and the map opened from it reuses the codec.
const built = new WeakMap<object, Codec<unknown>>()

/**
 * A checked, deeply frozen copy of `desc` whose codec is kept, so a MapSpec
 * holds plain data that cannot change behind its back and is never checked
 * again. Errors as checkTypeDesc.
 */
export function frozenTypeDesc(desc: unknown, where: string): TypeDesc {
  checkTypeDesc(desc, where)
  if (typeof desc === 'string' || built.has(desc)) return desc
  const copy = deepFreeze(structuredClone(desc))
  built.set(copy, build(copy))
  return copy
}

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object') {
    for (const v of Object.values(x)) deepFreeze(v)
    Object.freeze(x)
  }
  return x
}

/** The codec for a type description. Errors: TypeError/RangeError for a malformed description, naming where. */
export function codecFor<D extends TypeDesc>(desc: D, where?: string): Codec<Decoded<D>>
export function codecFor(desc: TypeDesc, where = 'type'): Codec<unknown> {
  if (typeof desc !== 'object' || desc === null || !built.has(desc)) checkTypeDesc(desc, where)
  return build(desc)
}
