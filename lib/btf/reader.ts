// Reads raw BTF back into type records: enough to find a type by name and
// kind in the kernel's own BTF (/sys/kernel/btf/vmlinux), which feature
// probes need for attach targets, to check what BtfBuilder wrote, and to
// decode members, enumerators and sizes. It is bpfkit's only BTF reader:
// scripts/gen-kernel-defs.mjs, which generates the kernel constants and
// layouts from vmlinux BTF, runs on its compiled form (dist/btf/reader.js,
// built by `npm run gen` first), so the library and its generator can never
// read BTF differently.
//
// Split BTF (a kernel module's /sys/kernel/btf/<module>) is read on top of its
// base (vmlinux): its type ids continue after the base's, and string offsets
// past the base's string section address the split's own strings, as the
// kernel numbers them. For CO-RE, names are indexed once, lazily, by their
// essential name (the part before a `___flavor` suffix).
import { readFileSync } from 'node:fs'
import { findEnumName } from '../sys/names.js'
import { describeValue } from '../sys/options.js'
import { BTF_MAGIC, BtfIntEncoding, BtfKind, extraWords, type BtfKindName } from './format.js'

export interface BtfTypeRecord {
  id: number
  kind: BtfKindName
  name: string
  vlen: number
  kindFlag: boolean
  /** `size` for sized kinds, the referred type for the others. */
  sizeOrType: number
  /** The u32 words that follow the common header (members, params, ...). */
  extra: Uint32Array
}

/** A STRUCT or UNION member; bit offsets from the start of its aggregate. */
export interface BtfMemberRecord {
  name: string
  type: number
  bitOffset: number
  /** Bitfield width, 0 for a plain member. */
  bitSize: number
}

/** An ENUM or ENUM64 enumerator; signed when the enum's kind_flag says so. */
export interface BtfEnumValue {
  name: string
  value: bigint
}

// Kinds that only qualify or rename another type.
const modifiers = new Set<BtfKindName>(['TYPEDEF', 'VOLATILE', 'CONST', 'RESTRICT', 'TYPE_TAG'])

// The record's length depends on the kind: past an unknown one nothing can be read.
function recordWords(kind: number, vlen: number): number {
  const words = extraWords(kind, vlen)
  if (words < 0) throw new RangeError(`BTF has a type of unknown kind ${kind}; this reader knows kinds 1..19`)
  return words
}

/**
 * The name without its flavor: `task_struct___v2` → `task_struct`. A flavor
 * is the text after the last `___` that has a non-underscore on both sides,
 * as libbpf's bpf_core_essential_name_len() decides.
 */
export function essentialName(name: string): string {
  if (!name.includes('___')) return name
  for (let i = name.length - 5; i >= 0; i--) {
    if (name[i] !== '_' && name[i + 1] === '_' && name[i + 2] === '_' && name[i + 3] === '_' && name[i + 4] !== '_') return name.slice(0, i + 1)
  }
  return name
}

export class BtfReader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #strOff: number
  readonly #strLen: number
  /** Byte offset of each of this BTF's own type records, by id - firstId. */
  readonly #offsets: number[] = []
  readonly #base: BtfReader | undefined
  /** Types and string bytes of the base, which this BTF's ids and offsets continue. */
  readonly #baseCount: number
  readonly #baseStrLen: number
  /** Own records by the hash of their essential names, built on first use. */
  #nameIndex: { heads: Int32Array; next: Int32Array; mask: number } | undefined

  /**
   * `base`: for split BTF (a module's, on vmlinux), the BTF it extends.
   * Errors: TypeError when `bytes` is not a Uint8Array or not BTF, or `base`
   * not a BtfReader; RangeError for truncated or unknown-kind data.
   */
  constructor(bytes: Uint8Array, base?: BtfReader) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`BtfReader: bytes must be a Uint8Array (raw BTF), got ${describeValue(bytes)}`)
    if (base !== undefined && !(base instanceof BtfReader)) throw new TypeError(`BtfReader: base must be a BtfReader (the BTF a split BTF extends), got ${describeValue(base)}`)
    this.#base = base
    this.#baseCount = base?.count ?? 0
    this.#baseStrLen = base?.stringsLength ?? 0
    // Before any view is made: a view of a detached ArrayBuffer (length 0) would fail inside JavaScript.
    if (bytes.length < 24) throw new TypeError(`not BTF: ${bytes.length} bytes, shorter than the 24-byte header`)
    this.#bytes = bytes
    const v = (this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (v.getUint16(0, true) !== BTF_MAGIC) throw new TypeError('not BTF: bad magic (only little-endian BTF is read)')
    const hdrLen = v.getUint32(4, true)
    const typeOff = hdrLen + v.getUint32(8, true)
    const typeLen = v.getUint32(12, true)
    this.#strOff = hdrLen + v.getUint32(16, true)
    this.#strLen = v.getUint32(20, true)
    if (typeOff + typeLen > bytes.length || this.#strOff + this.#strLen > bytes.length) throw new RangeError('BTF sections run past the end of the data')
    for (let at = typeOff; at < typeOff + typeLen;) {
      this.#offsets.push(at)
      const info = v.getUint32(at + 4, true)
      at += 12 + 4 * recordWords((info >>> 24) & 0x1f, info & 0xffff)
    }
  }

  /** Reads a BTF file, by default the running kernel's own; with `base`, a split BTF on it (a module's). */
  static fromFile(path = '/sys/kernel/btf/vmlinux', base?: BtfReader): BtfReader {
    if (typeof path !== 'string') throw new TypeError(`BtfReader.fromFile: path must be a string, got ${describeValue(path)}`)
    return new BtfReader(readFileSync(path), base)
  }

  /** The highest type id: the base's types and this BTF's own. */
  get count(): number {
    return this.#baseCount + this.#offsets.length
  }

  /** The id of this BTF's first own type (1, or the base's count + 1 for split BTF). */
  get firstId(): number {
    return this.#baseCount + 1
  }

  /** The BTF this split BTF extends, if any. */
  get base(): BtfReader | undefined {
    return this.#base
  }

  /** Bytes of string section addressed so far: the base's and this BTF's own. */
  get stringsLength(): number {
    return this.#baseStrLen + this.#strLen
  }

  /** The string at `off` in the string section (the base's, for offsets below its length). */
  string(off: number): string {
    if (!Number.isInteger(off) || off < 0) throw new TypeError(`BtfReader.string: offset must be a non-negative integer, got ${describeValue(off)}`)
    if (off < this.#baseStrLen) return this.#base!.string(off)
    off -= this.#baseStrLen
    if (off >= this.#strLen) throw new RangeError(`BTF string offset ${off + this.#baseStrLen} is past the string section`)
    const start = this.#strOff + off
    const end = this.#bytes.indexOf(0, start)
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + start, (end < 0 ? this.#strOff + this.#strLen : end) - start).toString('utf8')
  }

  type(id: number): BtfTypeRecord {
    if (!Number.isInteger(id)) throw new TypeError(`BtfReader.type: id must be an integer, got ${describeValue(id)}`)
    if (id >= 1 && id <= this.#baseCount) return this.#base!.type(id)
    const at = this.#offsets[id - 1 - this.#baseCount]
    if (at === undefined) throw new RangeError(`no BTF type with id ${id}`)
    const v = this.#view
    const info = v.getUint32(at + 4, true)
    const kind = (info >>> 24) & 0x1f
    const vlen = info & 0xffff
    const words = recordWords(kind, vlen)
    const extra = new Uint32Array(words)
    for (let i = 0; i < words; i++) extra[i] = v.getUint32(at + 12 + 4 * i, true)
    return {
      id,
      kind: findEnumName(BtfKind, kind) as BtfKindName,
      name: this.string(v.getUint32(at, true)),
      vlen,
      kindFlag: (info >>> 31) === 1,
      sizeOrType: v.getUint32(at + 8, true),
      extra,
    }
  }

  /** The id of the first type named `name` of `kind`, or undefined. */
  find(name: string, kind: BtfKindName): number | undefined {
    if (typeof name !== 'string') throw new TypeError(`BtfReader.find: name must be a string, got ${describeValue(name)}`)
    if (typeof kind !== 'string' || !Object.hasOwn(BtfKind, kind)) throw new TypeError(`BtfReader.find: kind must be one of ${Object.keys(BtfKind).join(', ')}, got ${describeValue(kind)}`)
    // Split BTF names its types with the base's strings as well as its own: the index knows both.
    if (this.#base !== undefined) return this.findAll(name, kind)[0]
    // Find where the name sits in the string section, then scan the records'
    // name offsets: no string is decoded, so a search of vmlinux stays cheap.
    const needle = Buffer.from(`\0${name}\0`, 'utf8')
    const strings = Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + this.#strOff, this.#strLen)
    const offsets = new Set<number>()
    for (let at = strings.indexOf(needle); at >= 0; at = strings.indexOf(needle, at + 1)) offsets.add(at + 1)
    if (offsets.size === 0) return undefined
    const want = BtfKind[kind]
    for (let i = 0; i < this.#offsets.length; i++) {
      const at = this.#offsets[i]
      if (offsets.has(this.#view.getUint32(at, true)) && ((this.#view.getUint32(at + 4, true) >>> 24) & 0x1f) === want) return i + 1
    }
    return undefined
  }

  /** Ids of every type named exactly `name` (of `kind`, if given), the base's first, in id order. */
  findAll(name: string, kind?: BtfKindName): number[] {
    if (typeof name !== 'string') throw new TypeError(`BtfReader.findAll: name must be a string, got ${describeValue(name)}`)
    if (kind !== undefined && (typeof kind !== 'string' || !Object.hasOwn(BtfKind, kind))) throw new TypeError(`BtfReader.findAll: kind must be one of ${Object.keys(BtfKind).join(', ')}, got ${describeValue(kind)}`)
    const out = this.#base?.findAll(name, kind) ?? []
    if (name === '') return out
    const want = kind === undefined ? -1 : BtfKind[kind]
    for (const id of this.withEssentialName(essentialName(name))) {
      const at = this.#offsets[id - 1 - this.#baseCount]
      if (want !== -1 && ((this.#view.getUint32(at + 4, true) >>> 24) & 0x1f) !== want) continue
      if (this.string(this.#view.getUint32(at, true)) === name) out.push(id)
    }
    return out
  }

  /**
   * Ids of this BTF's own named types whose essential name (the name without
   * a `___flavor` suffix) is `essential`, in id order, of any kind. For split
   * BTF only its own types, not the base's: CO-RE looks for candidates in
   * vmlinux first and in each module's own types after.
   */
  withEssentialName(essential: string): number[] {
    if (typeof essential !== 'string') throw new TypeError(`BtfReader.withEssentialName: name must be a string, got ${describeValue(essential)}`)
    const index = (this.#nameIndex ??= this.#indexNames())
    const key = Buffer.from(essential, 'utf8')
    const out: number[] = []
    for (let i = index.heads[fnv1a(key, 0, key.length) & index.mask]; i >= 0; i = index.next[i]) {
      const name = this.string(this.#view.getUint32(this.#offsets[i], true))
      if (essentialName(name) === essential) out.push(this.#baseCount + i + 1)
    }
    return out
  }

  // A hash table over the own records by the hash of their essential names,
  // built from the string bytes without decoding them: vmlinux has ~100k
  // named types, and a Map of that many strings costs ~100 ms to fill.
  #indexNames(): { heads: Int32Array; next: Int32Array; mask: number } {
    const n = this.#offsets.length
    let size = 1024
    while (size < 2 * n) size *= 2
    const heads = new Int32Array(size).fill(-1)
    const next = new Int32Array(n)
    const v = this.#view
    // Backwards, so that each chain lists ids in ascending order.
    for (let i = n - 1; i >= 0; i--) {
      const h = this.#essentialHash(v.getUint32(this.#offsets[i], true))
      if (h < 0) continue
      next[i] = heads[h & (size - 1)]
      heads[h & (size - 1)] = i
    }
    return { heads, next, mask: size - 1 }
  }

  // The FNV-1a hash of the essential part of the string at `off`, -1 for an
  // empty one. One pass: the hash is remembered at each flavor separator.
  #essentialHash(off: number): number {
    if (off < this.#baseStrLen) return this.#base!.#essentialHash(off)
    off -= this.#baseStrLen
    if (off >= this.#strLen) throw new RangeError(`BTF string offset ${off + this.#baseStrLen} is past the string section`)
    const b = this.#bytes
    const limit = this.#strOff + this.#strLen
    let at = this.#strOff + off
    if (at >= limit || b[at] === 0) return -1
    let h = 0x811c9dc5
    let atSeparator = 0
    let separated = false
    for (let c = b[at]; c !== 0 && at < limit; c = b[++at]) {
      h = Math.imul(h ^ c, 0x01000193)
      // X___Y, X and Y not underscores: the essential name ends after X.
      if (b[at + 1] === 0x5f && c !== 0x5f && b[at + 2] === 0x5f && b[at + 3] === 0x5f && at + 4 < limit && b[at + 4] !== 0x5f && b[at + 4] !== 0) {
        atSeparator = h
        separated = true
      }
    }
    return (separated ? atSeparator : h) >>> 0
  }

  /** Members of a STRUCT or UNION (kind_flag: bitfield sizes packed in the offset word). */
  members(t: BtfTypeRecord): BtfMemberRecord[] {
    recordArg('members', t)
    if (t.kind !== 'STRUCT' && t.kind !== 'UNION') throw new TypeError(`BtfReader.members: type ${t.id} is a ${t.kind}, not a STRUCT or UNION`)
    const out: BtfMemberRecord[] = []
    for (let i = 0; i < t.vlen; i++) {
      const [nameOff, type, off] = t.extra.subarray(3 * i, 3 * i + 3)
      out.push({ name: this.string(nameOff), type, bitOffset: t.kindFlag ? off & 0xffffff : off, bitSize: t.kindFlag ? off >>> 24 : 0 })
    }
    return out
  }

  /** Enumerators of an ENUM or ENUM64. */
  enumValues(t: BtfTypeRecord): BtfEnumValue[] {
    recordArg('enumValues', t)
    const out: BtfEnumValue[] = []
    if (t.kind === 'ENUM') {
      for (let i = 0; i < t.vlen; i++) {
        const raw = t.extra[2 * i + 1]
        out.push({ name: this.string(t.extra[2 * i]), value: BigInt(t.kindFlag ? raw | 0 : raw) })
      }
    } else if (t.kind === 'ENUM64') {
      for (let i = 0; i < t.vlen; i++) {
        const v = (BigInt(t.extra[3 * i + 2]) << 32n) | BigInt(t.extra[3 * i + 1])
        out.push({ name: this.string(t.extra[3 * i]), value: t.kindFlag ? BigInt.asIntN(64, v) : v })
      }
    } else {
      throw new TypeError(`BtfReader.enumValues: type ${t.id} is a ${t.kind}, not an ENUM or ENUM64`)
    }
    return out
  }

  /** An ARRAY's element type, index type and element count. */
  array(t: BtfTypeRecord): { type: number; indexType: number; nelems: number } {
    recordArg('array', t)
    if (t.kind !== 'ARRAY') throw new TypeError(`BtfReader.array: type ${t.id} is a ${t.kind}, not an ARRAY`)
    return { type: t.extra[0], indexType: t.extra[1], nelems: t.extra[2] }
  }

  /** An INT's signedness, whether it is a C bool, and its width in bits (from its encoding word). */
  intEncoding(t: BtfTypeRecord): { signed: boolean; bool: boolean; bits: number } {
    recordArg('intEncoding', t)
    if (t.kind !== 'INT') throw new TypeError(`BtfReader.intEncoding: type ${t.id} is a ${t.kind}, not an INT`)
    const enc = t.extra[0] >>> 24
    return { signed: (enc & BtfIntEncoding.SIGNED) !== 0, bool: (enc & BtfIntEncoding.BOOL) !== 0, bits: t.extra[0] & 0xff }
  }

  /** The type `id` names once typedefs and qualifiers are followed. */
  resolve(id: number): BtfTypeRecord {
    let t = this.type(id)
    for (let hops = 0; modifiers.has(t.kind); hops++) {
      if (hops > 64) throw new RangeError(`BTF type ${id}: a loop of typedefs or qualifiers`)
      t = this.type(t.sizeOrType)
    }
    return t
  }

  /** The size in bytes of type `id` (arrays multiplied out, pointers 8). */
  sizeof(id: number): number {
    const t = this.resolve(id)
    if (t.kind === 'ARRAY') {
      const a = this.array(t)
      return a.nelems * this.sizeof(a.type)
    }
    if (t.kind === 'PTR') return 8
    return t.sizeOrType
  }

  /** Every type record, in id order (id 0, void, has none); for split BTF the base's first. */
  *types(): Generator<BtfTypeRecord> {
    for (let id = 1; id <= this.count; id++) yield this.type(id)
  }
}

function fnv1a(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193)
  return h >>> 0
}

// The decoders take records from type(); anything else is named, not dereferenced.
function recordArg(where: string, t: unknown): void {
  if (t === null || typeof t !== 'object' || !(((t as BtfTypeRecord).extra) instanceof Uint32Array)) {
    throw new TypeError(`BtfReader.${where}: expected a type record from BtfReader.type(), got ${describeValue(t)}`)
  }
}

