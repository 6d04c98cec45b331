// Codecs derived from BTF, for maps and globals described by a clang-built
// object: the layout is the BTF's own (offsets, bitfields, padding), not the
// natural alignment lib/map/codec.ts computes for TypeDescs. Values decode to
// plain JavaScript: integers up to 32 bits as numbers, 64 and 128 bits as
// bigints, bool as boolean, enums as the enumerator's name (its number when
// none matches), char and byte arrays as Uint8Array, pointers as bigint
// addresses, structs as objects (an anonymous struct or union member's fields
// sit in the parent, as in C), unions as every member read from offset 0.
import { describeValue } from '../sys/options.js'
import type { BtfReader } from '../btf/reader.js'
import { codecFor, type Codec } from './codec.js'

/** A codec for BTF type `id` of `btf`. Errors: TypeError for a type with no value (void, function, forward declaration). */
export function codecFromBtf(btf: BtfReader, id: number): Codec<unknown> {
  return build(btf, id, 0, new Map())
}

// One codec per type id within a call: a type used twice at every level
// (malformed or hostile BTF) would otherwise cost 2^depth builds.
type Built = Map<number, Codec<unknown>>

function build(btf: BtfReader, id: number, depth: number, built: Built): Codec<unknown> {
  let c = built.get(id)
  if (!c) {
    c = make(btf, id, depth, built)
    built.set(id, c)
  }
  return c
}

function make(btf: BtfReader, id: number, depth: number, built: Built): Codec<unknown> {
  if (depth > 32) throw new RangeError(`BTF type ${id}: nested more than 32 levels deep`)
  if (id === 0) throw new TypeError('BTF type 0 is void: it has no value to encode or decode')
  const t = btf.resolve(id)
  const size = btf.sizeof(id)
  switch (t.kind) {
    case 'INT': {
      const { signed, bool } = btf.intEncoding(t)
      if (bool) return fixed(size, (v, o) => readBig(v, o, size, false) !== 0n, (x, v, o) => writeBig(v, o, size, x ? 1n : 0n))
      return integer(size, signed, t.name || 'int')
    }
    case 'ENUM': case 'ENUM64': {
      const values = btf.enumValues(t)
      const byName = new Map(values.map((e) => [e.name, e.value]))
      const inner = integer(size, t.kindFlag, t.name || 'enum')
      return fixed(size, (v, o) => {
        const n = inner.decode(v, o) as number | bigint
        const raw = BigInt(n)
        return values.find((e) => e.value === raw || BigInt.asUintN(size * 8, e.value) === raw)?.name ?? n
      }, (x, v, o) => {
        if (typeof x === 'string') {
          const n = byName.get(x)
          if (n === undefined) throw new TypeError(`enum ${t.name || '(anonymous)'} has no enumerator '${x}'; it has ${values.map((e) => e.name).join(', ')}`)
          return writeBig(v, o, size, BigInt.asUintN(size * 8, n))
        }
        inner.encode(x, v, o)
      })
    }
    case 'FLOAT':
      // long double and other widths have no JavaScript number: their bytes.
      return codecFor(size === 4 ? 'f32' : size === 8 ? 'f64' : { bytes: size }) as Codec<unknown>
    case 'PTR': return integer(8, false, 'pointer')
    case 'ARRAY': {
      const a = btf.array(t)
      const elem = btf.resolve(a.type)
      // char x[0] (a flexible tail) is an empty byte array.
      if (size === 0) return fixed(0, () => new Uint8Array(0), () => {})
      if (elem.kind === 'INT' && elem.sizeOrType === 1 && !btf.intEncoding(elem).bool) return codecFor({ bytes: size }) as Codec<unknown>
      const e = build(btf, a.type, depth + 1, built)
      return fixed(size, (v, o) => Array.from({ length: a.nelems }, (_, i) => e.decode(v, o + i * e.size)), (x, v, o) => {
        if (!Array.isArray(x) || x.length !== a.nelems) throw new TypeError(`array of ${a.nelems}: got ${describeValue(x)}`)
        x.forEach((el, i) => e.encode(el, v, o + i * e.size))
      })
    }
    case 'STRUCT': case 'UNION': return aggregate(btf, t.id, t.kind === 'UNION', size, depth, built)
    default: throw new TypeError(`BTF type ${id} is a ${t.kind}: it has no value to encode or decode`)
  }
}

interface Field { name: string; bitOffset: number; bitSize: number; codec: Codec<unknown>; signed: boolean; anonymous: boolean }

function aggregate(btf: BtfReader, id: number, union: boolean, size: number, depth: number, built: Built): Codec<unknown> {
  const t = btf.type(id)
  const fields: Field[] = btf.members(t).map((m) => {
    const r = btf.resolve(m.type)
    const signed = r.kind === 'INT' ? btf.intEncoding(r).signed : r.kind.startsWith('ENUM') && r.kindFlag
    const field = { name: m.name, bitOffset: m.bitOffset, bitSize: m.bitSize, codec: build(btf, m.type, depth + 1, built), signed, anonymous: m.name === '' }
    // A member past its aggregate's end would read outside the value: the BTF is malformed.
    const end = m.bitSize ? Math.ceil((m.bitOffset + m.bitSize) / 8) : m.bitOffset / 8 + field.codec.size
    if (end > size || (!m.bitSize && m.bitOffset % 8 !== 0)) {
      throw new RangeError(`BTF type ${id}: member '${m.name}' (bits ${m.bitOffset}..) lies outside its ${size}-byte ${union ? 'union' : 'struct'} or off a byte boundary`)
    }
    return field
  })
  const what = `${union ? 'union' : 'struct'} ${t.name || '(anonymous)'}`
  return fixed(size, (v, o) => {
    const out: Record<string, unknown> = {}
    for (const f of fields) {
      const value = f.bitSize ? readBits(v, o, f) : f.codec.decode(v, o + f.bitOffset / 8)
      if (f.anonymous) Object.assign(out, value)
      else out[f.name] = value
    }
    return out
  }, (x, v, o) => {
    if (x === null || typeof x !== 'object') throw new TypeError(`${what}: expected an object, got ${describeValue(x)}`)
    const obj = x as Record<string, unknown>
    for (let i = 0; i < size; i++) v.setUint8(o + i, 0)
    const chosen = union ? fields.filter((f) => f.anonymous || f.name in obj).slice(0, 1) : fields
    if (union && chosen.length === 0) throw new TypeError(`${what}: give one of ${fields.map((f) => f.name).join(', ')}`)
    for (const f of chosen) {
      if (f.anonymous) { f.codec.encode(obj, v, o + f.bitOffset / 8); continue }
      if (!(f.name in obj)) throw new TypeError(`${what}: missing field '${f.name}'`)
      if (f.bitSize) writeBits(v, o, f, obj[f.name])
      else f.codec.encode(obj[f.name], v, o + f.bitOffset / 8)
    }
  })
}

function readBits(v: DataView, o: number, f: Field): number | bigint {
  const first = Math.floor(f.bitOffset / 8)
  const span = Math.ceil((f.bitOffset % 8 + f.bitSize) / 8)
  let raw = (readBig(v, o + first, span, false) >> BigInt(f.bitOffset % 8)) & ((1n << BigInt(f.bitSize)) - 1n)
  if (f.signed) raw = BigInt.asIntN(f.bitSize, raw)
  return f.codec.size === 8 ? raw : Number(raw)
}

function writeBits(v: DataView, o: number, f: Field, x: unknown): void {
  const raw = typeof x === 'bigint' ? x : BigInt(integerArg(x, `bitfield ${f.name}`))
  const lo = f.signed ? -(1n << BigInt(f.bitSize - 1)) : 0n
  const hi = f.signed ? (1n << BigInt(f.bitSize - 1)) - 1n : (1n << BigInt(f.bitSize)) - 1n
  if (raw < lo || raw > hi) throw new RangeError(`bitfield ${f.name} (${f.bitSize} bits) cannot hold ${raw}`)
  const first = Math.floor(f.bitOffset / 8)
  const span = Math.ceil((f.bitOffset % 8 + f.bitSize) / 8)
  const shift = BigInt(f.bitOffset % 8)
  const mask = ((1n << BigInt(f.bitSize)) - 1n) << shift
  const old = readBig(v, o + first, span, false)
  writeBig(v, o + first, span, (old & ~mask) | ((BigInt.asUintN(f.bitSize, raw) << shift) & mask))
}

// The C widths are lib/map/codec.ts's checked scalars (numbers up to 32
// bits, bigints for 64); other widths (__int128) are bigints read bytewise.
function integer(size: number, signed: boolean, what: string): Codec<unknown> {
  if (size === 1 || size === 2 || size === 4 || size === 8) return codecFor(`${signed ? 'i' : 'u'}${size * 8}` as 'u8') as Codec<unknown>
  const bits = BigInt(size * 8)
  const lo = signed ? -(1n << (bits - 1n)) : 0n
  const hi = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n
  return fixed(size, (v, o) => {
    const raw = readBig(v, o, size, signed)
    return raw
  }, (x, v, o) => {
    const n = typeof x === 'bigint' ? x : BigInt(integerArg(x, what))
    if (n < lo || n > hi) throw new RangeError(`${what} (${size} bytes, ${signed ? 'signed' : 'unsigned'}) cannot hold ${n}`)
    writeBig(v, o, size, BigInt.asUintN(size * 8, n))
  })
}

function fixed(size: number, decode: (v: DataView, o: number) => unknown, encode: (x: unknown, v: DataView, o: number) => void): Codec<unknown> {
  return { size, align: 1, decode, encode }
}

function integerArg(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x)) throw new TypeError(`${what}: expected an integer, got ${describeValue(x)}`)
  return x
}

function readBig(v: DataView, o: number, size: number, signed: boolean): bigint {
  let x = 0n
  for (let i = size - 1; i >= 0; i--) x = (x << 8n) | BigInt(v.getUint8(o + i))
  return signed ? BigInt.asIntN(size * 8, x) : x
}

function writeBig(v: DataView, o: number, size: number, x: bigint): void {
  for (let i = 0; i < size; i++, x >>= 8n) v.setUint8(o + i, Number(x & 0xffn))
}
