// Reads raw BTF back into type records: enough to find a type by name and
// kind in the kernel's own BTF (/sys/kernel/btf/vmlinux), which feature
// probes need for attach targets, and to check what BtfBuilder wrote.
import { readFileSync } from 'node:fs'
import { BTF_MAGIC, BtfKind, type BtfKindName } from './builder.js'

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

const kindNames = new Map<number, BtfKindName>(Object.entries(BtfKind).map(([k, v]) => [v, k as BtfKindName]))

// u32 words each kind appends after the 12-byte header, given vlen.
function extraWords(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.INT: case BtfKind.VAR: case BtfKind.DECL_TAG: return 1
    case BtfKind.ARRAY: return 3
    case BtfKind.STRUCT: case BtfKind.UNION: case BtfKind.DATASEC: case BtfKind.ENUM64: return 3 * vlen
    case BtfKind.ENUM: case BtfKind.FUNC_PROTO: return 2 * vlen
    default: return 0
  }
}

export class BtfReader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  readonly #strOff: number
  readonly #strLen: number
  /** Byte offset of each type record, by id - 1. */
  readonly #offsets: number[] = []

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
    const v = (this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (bytes.length < 24 || v.getUint16(0, true) !== BTF_MAGIC) throw new TypeError('not BTF: bad magic (only little-endian BTF is read)')
    const hdrLen = v.getUint32(4, true)
    const typeOff = hdrLen + v.getUint32(8, true)
    const typeLen = v.getUint32(12, true)
    this.#strOff = hdrLen + v.getUint32(16, true)
    this.#strLen = v.getUint32(20, true)
    if (typeOff + typeLen > bytes.length || this.#strOff + this.#strLen > bytes.length) throw new RangeError('BTF sections run past the end of the data')
    for (let at = typeOff; at < typeOff + typeLen;) {
      this.#offsets.push(at)
      const info = v.getUint32(at + 4, true)
      at += 12 + 4 * extraWords((info >>> 24) & 0x1f, info & 0xffff)
    }
  }

  /** Reads a BTF file, by default the running kernel's own. */
  static fromFile(path = '/sys/kernel/btf/vmlinux'): BtfReader {
    return new BtfReader(readFileSync(path))
  }

  get count(): number {
    return this.#offsets.length
  }

  /** The string at `off` in the string section. */
  string(off: number): string {
    if (off >= this.#strLen) throw new RangeError(`BTF string offset ${off} is past the string section`)
    const start = this.#strOff + off
    const end = this.#bytes.indexOf(0, start)
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset + start, (end < 0 ? this.#strOff + this.#strLen : end) - start).toString('utf8')
  }

  type(id: number): BtfTypeRecord {
    const at = this.#offsets[id - 1]
    if (at === undefined) throw new RangeError(`no BTF type with id ${id}`)
    const v = this.#view
    const info = v.getUint32(at + 4, true)
    const kind = (info >>> 24) & 0x1f
    const vlen = info & 0xffff
    const words = extraWords(kind, vlen)
    const extra = new Uint32Array(words)
    for (let i = 0; i < words; i++) extra[i] = v.getUint32(at + 12 + 4 * i, true)
    return {
      id,
      kind: kindNames.get(kind) ?? (`UNKNOWN(${kind})` as BtfKindName),
      name: this.string(v.getUint32(at, true)),
      vlen,
      kindFlag: (info >>> 31) === 1,
      sizeOrType: v.getUint32(at + 8, true),
      extra,
    }
  }

  /** The id of the first type named `name` of `kind`, or undefined. */
  find(name: string, kind: BtfKindName): number | undefined {
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
}
