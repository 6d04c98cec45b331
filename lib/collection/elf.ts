// A reader for the ELF64 little-endian relocatable objects clang writes for
// the BPF target (`clang -target bpf -g -c`): section headers, symbols and
// REL relocations, nothing more. Every offset and count read from the file is
// checked against the bytes before it is used, and a malformed object is an
// ElfError naming the section, symbol and offset, never a crash or a hang.
// It is the first layer of lib/collection: the CollectionSpec builder reads
// programs, maps and BTF through it.
import { readFileSync } from 'node:fs'
import { describeValue } from '../sys/options.js'

/** A malformed or foreign object file: what was wrong, and where. */
export class ElfError extends Error {
  readonly code = 'EINVAL'
  /** The section the problem is in, when there is one. */
  readonly section: string | undefined
  /** A byte offset in the file, or in `section` when that is set. */
  readonly offset: number | undefined

  constructor(message: string, where: { section?: string; offset?: number } = {}) {
    const at = [where.section === undefined ? '' : `section ${where.section}`, where.offset === undefined ? '' : `offset ${where.offset}`]
      .filter(Boolean).join(', ')
    super(at ? `${message} (${at})` : message)
    this.name = 'ElfError'
    this.section = where.section
    this.offset = where.offset
  }
}

// ELF constants this reader needs (elf.h).
const EI_CLASS_64 = 2
const EI_DATA_LSB = 1
const ET_REL = 1
const EM_BPF = 247
export const SHT = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, NOBITS: 8, REL: 9 } as const
export const SHF_EXECINSTR = 0x4
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const
/** BPF relocation types (llvm's BPF backend; the kernel's Documentation/bpf/llvm_reloc.rst). */
export const R_BPF = { NONE: 0, '64_64': 1, '64_ABS64': 2, '64_ABS32': 3, '64_NODYLD32': 4, '64_32': 10 } as const
const SHN_UNDEF = 0
const SHN_LORESERVE = 0xff00
const HEADER_SIZE = 64
const SHDR_SIZE = 64
const SYM_SIZE = 24
const REL_SIZE = 16

export interface ElfSection {
  index: number
  name: string
  type: number
  flags: bigint
  /** Offset of the section's bytes in the file (meaningless for NOBITS). */
  offset: number
  size: number
  link: number
  info: number
  align: number
  entsize: number
}

export interface ElfSymbol {
  index: number
  name: string
  /** STB_*: local, global, weak. */
  bind: number
  /** STT_*: notype, object, func, section. */
  type: number
  /** STV_* visibility (st_other & 3). */
  visibility: number
  /** Section index; 0 for undefined (externs), >= 0xff00 for special ones. */
  shndx: number
  value: number
  size: number
}

export interface ElfRelocation {
  /** Offset of the relocated bytes in the target section. */
  offset: number
  /** R_BPF_* type. */
  type: number
  symbol: ElfSymbol
}

export class ElfFile {
  readonly bytes: Uint8Array
  readonly sections: readonly ElfSection[]
  readonly symbols: readonly ElfSymbol[]
  readonly #view: DataView

  /** Errors: ElfError for anything that is not a well-formed ELF64 little-endian BPF relocatable object. */
  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`ElfFile: bytes must be a Uint8Array, got ${describeValue(bytes)}`)
    if (bytes.length < HEADER_SIZE) throw new ElfError(`not an ELF object: ${bytes.length} bytes, shorter than the 64-byte ELF64 header`)
    this.bytes = bytes
    const v = (this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (v.getUint32(0, false) !== 0x7f454c46) throw new ElfError('not an ELF object: bad magic')
    if (bytes[4] !== EI_CLASS_64) throw new ElfError(`not a 64-bit ELF object (class ${bytes[4]}); clang -target bpf writes ELF64`)
    if (bytes[5] !== EI_DATA_LSB) {
      throw new ElfError(`ELF object is ${bytes[5] === 2 ? 'big-endian' : `of unknown byte order ${bytes[5]}`}; only little-endian objects load on this host (build with -target bpfel or bpf on x86/arm64)`)
    }
    const machine = v.getUint16(18, true)
    if (machine !== EM_BPF) throw new ElfError(`ELF object is for machine ${machine}, not BPF (${EM_BPF}); build it with clang -target bpf`)
    const type = v.getUint16(16, true)
    if (type !== ET_REL) throw new ElfError(`ELF object has type ${type}, not a relocatable object (ET_REL, from clang -c)`)
    const shoff = this.#u64(40, 'e_shoff')
    const shentsize = v.getUint16(58, true)
    const shnum = v.getUint16(60, true)
    const shstrndx = v.getUint16(62, true)
    if (shnum === 0) throw new ElfError('ELF object has no section headers')
    if (shentsize !== SHDR_SIZE) throw new ElfError(`ELF section header size is ${shentsize}, not ${SHDR_SIZE}`)
    if (shoff > bytes.length || shnum * SHDR_SIZE > bytes.length - shoff) {
      throw new ElfError(`${shnum} section headers at ${shoff} run past the end of the file (${bytes.length} bytes)`, { offset: shoff })
    }
    const raw: ElfSection[] = []
    for (let i = 0; i < shnum; i++) {
      const at = shoff + i * SHDR_SIZE
      const s: ElfSection = {
        index: i,
        name: '',
        type: v.getUint32(at + 4, true),
        flags: v.getBigUint64(at + 8, true),
        offset: this.#u64(at + 24, `section ${i} offset`),
        size: this.#u64(at + 32, `section ${i} size`),
        link: v.getUint32(at + 40, true),
        info: v.getUint32(at + 44, true),
        align: this.#u64(at + 48, `section ${i} alignment`),
        entsize: this.#u64(at + 56, `section ${i} entry size`),
      }
      if (s.type !== SHT.NOBITS && s.type !== SHT.NULL && (s.offset > bytes.length || s.size > bytes.length - s.offset)) {
        throw new ElfError(`section ${i} (${s.size} bytes at ${s.offset}) runs past the end of the file (${bytes.length} bytes)`, { offset: at })
      }
      raw.push(s)
    }
    if (shstrndx >= shnum || raw[shstrndx].type !== SHT.STRTAB) throw new ElfError(`section name table index ${shstrndx} is not a string table`)
    const names = raw[shstrndx]
    for (let i = 0; i < shnum; i++) raw[i].name = this.#string(names, v.getUint32(shoff + i * SHDR_SIZE, true), `section ${i} name`)
    this.sections = Object.freeze(raw.map((s) => Object.freeze(s)))
    this.symbols = Object.freeze(this.#readSymbols())
    Object.freeze(this)
  }

  static fromFile(path: string): ElfFile {
    if (typeof path !== 'string') throw new TypeError(`ElfFile.fromFile: path must be a string, got ${describeValue(path)}`)
    return new ElfFile(readFileSync(path))
  }

  /** The first section named `name`, or undefined. */
  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name)
  }

  /** A copy-free view of a section's bytes; a NOBITS section (.bss) reads as zeros of its size. */
  data(s: ElfSection): Uint8Array {
    if (s.type === SHT.NOBITS) return new Uint8Array(s.size)
    return this.bytes.subarray(s.offset, s.offset + s.size)
  }

  /** The REL sections that apply to `target`, each relocation checked to lie inside it. */
  relocations(target: ElfSection): ElfRelocation[] {
    const out: ElfRelocation[] = []
    for (const rs of this.sections) {
      if (rs.info !== target.index || (rs.type !== SHT.REL && rs.type !== SHT.RELA)) continue
      if (rs.type === SHT.RELA) throw new ElfError('RELA relocations are not used by the BPF target', { section: rs.name })
      if (rs.size % REL_SIZE !== 0) throw new ElfError(`relocation section size ${rs.size} is not a multiple of ${REL_SIZE}`, { section: rs.name })
      for (let at = rs.offset; at < rs.offset + rs.size; at += REL_SIZE) {
        const offset = this.#u64(at, 'r_offset')
        const info = this.#view.getBigUint64(at + 8, true)
        const symIndex = Number(info >> 32n)
        const type = Number(info & 0xffffffffn)
        const symbol = this.symbols[symIndex]
        if (symbol === undefined) throw new ElfError(`relocation names symbol ${symIndex}, past the ${this.symbols.length} symbols`, { section: rs.name, offset: at - rs.offset })
        if (target.type !== SHT.NOBITS && offset >= target.size) {
          throw new ElfError(`relocation against ${symbol.name || `symbol ${symIndex}`} points at ${offset}, outside ${target.name} (${target.size} bytes)`, { section: rs.name, offset: at - rs.offset })
        }
        out.push({ offset, type, symbol })
      }
    }
    return out
  }

  #readSymbols(): ElfSymbol[] {
    const tabs = this.sections.filter((s) => s.type === SHT.SYMTAB)
    if (tabs.length === 0) return []
    if (tabs.length > 1) throw new ElfError(`ELF object has ${tabs.length} symbol tables, expected one`)
    const tab = tabs[0]
    if (tab.size % SYM_SIZE !== 0) throw new ElfError(`symbol table size ${tab.size} is not a multiple of ${SYM_SIZE}`, { section: tab.name })
    const strs = this.sections[tab.link]
    if (strs === undefined || strs.type !== SHT.STRTAB) throw new ElfError(`symbol table links to section ${tab.link}, not a string table`, { section: tab.name })
    const v = this.#view
    const out: ElfSymbol[] = []
    for (let i = 0; i < tab.size / SYM_SIZE; i++) {
      const at = tab.offset + i * SYM_SIZE
      const info = v.getUint8(at + 4)
      const shndx = v.getUint16(at + 6, true)
      if (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= this.sections.length) {
        throw new ElfError(`symbol ${i} is in section ${shndx}, past the ${this.sections.length} sections`, { section: tab.name, offset: i * SYM_SIZE })
      }
      out.push(Object.freeze({
        index: i,
        name: this.#string(strs, v.getUint32(at, true), `symbol ${i} name`),
        bind: info >> 4,
        type: info & 0xf,
        visibility: v.getUint8(at + 5) & 3,
        shndx,
        value: this.#u64(at + 8, `symbol ${i} value`),
        size: this.#u64(at + 16, `symbol ${i} size`),
      }))
    }
    return out
  }

  // A u64 field as a number; anything past 2^53 cannot be an offset in a file held in memory.
  #u64(at: number, what: string): number {
    const x = this.#view.getBigUint64(at, true)
    if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`${what} is ${x}, too large for any object file`, { offset: at })
    return Number(x)
  }

  #string(table: ElfSection, off: number, what: string): string {
    if (off >= table.size) throw new ElfError(`${what} at string offset ${off} is past the string table (${table.size} bytes)`, { section: table.name || `#${table.index}` })
    const start = table.offset + off
    const end = this.bytes.indexOf(0, start)
    if (end < 0 || end >= table.offset + table.size) throw new ElfError(`${what} at string offset ${off} is not NUL-terminated inside its table`, { section: table.name || `#${table.index}` })
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, end - start).toString('utf8')
  }
}
