// What a loader must fill into an object's .BTF before BPF_BTF_LOAD, as
// libbpf does between opening and loading an object (btf_fixup_datasec,
// the extern handling of bpf_object__collect_externs, and the hidden-symbol
// rules): clang writes every DATASEC with size 0 and its global variables at
// offset 0, since only the ELF file knows where they end up; externs (.kconfig,
// .ksyms) have no ELF section at all and linkages the kernel refuses.
//
// Raw BTF in, raw BTF out: records keep their sizes, so every type id stays
// what .BTF.ext, relocations and map definitions say. Types are only ever
// appended (the .ksyms placeholder variable and, when the object has none, a
// 32-bit int for it). RawBtf, the in-place editor, is shared with sanitize.ts.
import { describeValue } from '../sys/options.js'
import { BTF_HEADER_SIZE, BTF_MAGIC, BtfKind, extraWords, funcLinkages, varLinkages } from './format.js'

/** What the ELF object says about its sections and symbols (see fixupObjectBtf). */
export interface BtfFixupFacts {
  /** Size of ELF section `name`, or undefined when the object has no such section. */
  sectionSize(name: string): number | undefined
  /** st_value of the symbol `variable` defined in section `section`, or undefined. */
  symbolOffset(section: string, variable: string): number | undefined
  /**
   * True for a global variable whose symbol has hidden or internal
   * visibility: libbpf makes its VAR static. Optional (none hidden).
   */
  hiddenVariable?(section: string, variable: string): boolean
  /**
   * True for a global subprogram (a non-entry function in .text) of hidden
   * or internal visibility: libbpf makes its FUNC static, so the verifier
   * checks it with its caller's context. Optional (none hidden).
   */
  hiddenSubprogram?(name: string): boolean
}


// The header with the layout section (Linux 7.1) is 32 bytes; longer ones are not known.
const LAYOUT_HEADER_SIZE = 32

/**
 * A private copy of raw BTF whose records can be changed in place (never
 * resized) and to which strings and types can be appended. Errors: TypeError
 * for what is not BTF, RangeError for truncated or unknown-kind data.
 */
export class RawBtf {
  #types: Uint8Array
  #typesView: DataView
  #strings: Uint8Array
  readonly #addedStrings: string[] = []
  #stringsEnd: number
  readonly #stringIndex = new Map<string, number>()
  readonly #offsets: number[] = []
  readonly #added: number[][] = []
  /** The layout section, when the header has one (kept or dropped by the caller). */
  layout: Uint8Array | undefined

  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`raw BTF must be a Uint8Array, got ${describeValue(bytes)}`)
    // A plain copy: a Buffer's slice() is a view, and the sections cut from it below are edited in place.
    bytes = Uint8Array.from(bytes)
    if (bytes.length < BTF_HEADER_SIZE) throw new TypeError(`not BTF: ${bytes.length} bytes, shorter than the ${BTF_HEADER_SIZE}-byte header`)
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (v.getUint16(0, true) !== BTF_MAGIC) throw new TypeError('not BTF: bad magic (only little-endian BTF is read)')
    const hdrLen = v.getUint32(4, true)
    if (hdrLen < BTF_HEADER_SIZE || hdrLen > bytes.length) throw new RangeError(`BTF header length ${hdrLen} is outside 24..${bytes.length}`)
    const section = (offField: number, what: string): Uint8Array => {
      const off = hdrLen + v.getUint32(offField, true)
      const len = v.getUint32(offField + 4, true)
      if (off + len > bytes.length) throw new RangeError(`BTF ${what} section (${len} bytes at ${off}) runs past the end of the data (${bytes.length} bytes)`)
      return bytes.slice(off, off + len)
    }
    if (hdrLen > BTF_HEADER_SIZE) {
      // A longer header must be the layout one, its unknown tail zero (as the kernel insists).
      for (let i = LAYOUT_HEADER_SIZE; i < hdrLen; i++) {
        if (bytes[i] !== 0) throw new RangeError(`BTF header has ${hdrLen} bytes with unknown fields past byte ${LAYOUT_HEADER_SIZE}`)
      }
      if (hdrLen >= LAYOUT_HEADER_SIZE && v.getUint32(28, true) > 0) this.layout = section(24, 'layout')
    }
    this.#types = section(8, 'type')
    this.#typesView = new DataView(this.#types.buffer)
    this.#strings = section(16, 'string')
    this.#stringsEnd = this.#strings.length
    for (let at = 0; at < this.#types.length;) {
      if (at + 12 > this.#types.length) throw new RangeError(`BTF type ${this.#offsets.length + 1} at byte ${at} is cut off by the end of the type section`)
      this.#offsets.push(at)
      const info = this.#typesView.getUint32(at + 4, true)
      const words = extraWords((info >>> 24) & 0x1f, info & 0xffff)
      if (words < 0) throw new RangeError(`BTF type ${this.#offsets.length} has unknown kind ${(info >>> 24) & 0x1f}`)
      at += 12 + 4 * words
      if (at > this.#types.length) throw new RangeError(`BTF type ${this.#offsets.length} runs past the end of the type section`)
    }
  }

  /** Number of types (the highest id), appended ones included. */
  get count(): number {
    return this.#offsets.length + this.#added.length
  }

  #at(id: number): number {
    const at = this.#offsets[id - 1]
    if (at === undefined) throw new RangeError(`no BTF type with id ${id} to edit (appended types are fixed once added)`)
    return at
  }

  kind(id: number): number {
    return (this.#typesView.getUint32(this.#at(id) + 4, true) >>> 24) & 0x1f
  }

  vlen(id: number): number {
    return this.#typesView.getUint32(this.#at(id) + 4, true) & 0xffff
  }

  kindFlag(id: number): boolean {
    return this.#typesView.getUint32(this.#at(id) + 4, true) >>> 31 === 1
  }

  /** Sets kind, vlen and kind_flag; the record must keep its length. */
  setInfo(id: number, kind: number, vlen: number, kindFlag = false): void {
    const at = this.#at(id)
    const old = this.#typesView.getUint32(at + 4, true)
    if (extraWords(kind, vlen) !== extraWords((old >>> 24) & 0x1f, old & 0xffff)) {
      throw new RangeError(`BTF type ${id}: kind ${kind} with vlen ${vlen} would change the record's length`)
    }
    this.#typesView.setUint32(at + 4, ((kindFlag ? 0x80000000 : 0) | (kind << 24) | vlen) >>> 0, true)
  }

  nameOff(id: number): number {
    return this.#typesView.getUint32(this.#at(id), true)
  }

  setNameOff(id: number, off: number): void {
    this.#typesView.setUint32(this.#at(id), off, true)
  }

  name(id: number): string {
    return this.string(this.nameOff(id))
  }

  sizeOrType(id: number): number {
    return this.#typesView.getUint32(this.#at(id) + 8, true)
  }

  setSizeOrType(id: number, v: number): void {
    this.#typesView.setUint32(this.#at(id) + 8, v, true)
  }

  /** Word `i` after the record's 12-byte header. */
  word(id: number, i: number): number {
    return this.#typesView.getUint32(this.#at(id) + 12 + 4 * i, true)
  }

  setWord(id: number, i: number, v: number): void {
    this.#typesView.setUint32(this.#at(id) + 12 + 4 * i, v >>> 0, true)
  }

  /** The string at `off`. */
  string(off: number): string {
    if (off >= this.#stringsEnd) throw new RangeError(`BTF string offset ${off} is past the string section`)
    if (off >= this.#strings.length) {
      // An appended string: find it by offset.
      for (const [s, o] of this.#stringIndex) if (o === off) return s
      throw new RangeError(`BTF string offset ${off} is not the start of a string`)
    }
    const end = this.#strings.indexOf(0, off)
    return Buffer.from(this.#strings.buffer, this.#strings.byteOffset + off, (end < 0 ? this.#strings.length : end) - off).toString('utf8')
  }

  /** The offset of `s`, appending it to the string section when it is not there yet. */
  addString(s: string): number {
    const known = this.#stringIndex.get(s)
    if (known !== undefined) return known
    const needle = Buffer.from(`\0${s}\0`, 'utf8')
    const found = Buffer.from(this.#strings.buffer, this.#strings.byteOffset, this.#strings.length).indexOf(needle)
    const off = s === '' ? 0 : found >= 0 ? found + 1 : this.#stringsEnd
    if (off === this.#stringsEnd) {
      this.#addedStrings.push(s)
      this.#stringsEnd += Buffer.byteLength(s, 'utf8') + 1
    }
    this.#stringIndex.set(s, off)
    return off
  }

  /** Appends a type record given as its u32 words (header included); returns its id. */
  addType(words: number[]): number {
    this.#added.push(words)
    return this.count
  }

  /** The raw BTF, with the layout section when `this.layout` is set. */
  bytes(): Uint8Array {
    const added = this.#added.reduce((n, w) => n + 4 * w.length, 0)
    const typeLen = this.#types.length + added
    const layoutLen = this.layout?.length ?? 0
    const hdrLen = this.layout ? LAYOUT_HEADER_SIZE : BTF_HEADER_SIZE
    const out = new Uint8Array(hdrLen + typeLen + layoutLen + this.#stringsEnd)
    const v = new DataView(out.buffer)
    v.setUint16(0, BTF_MAGIC, true)
    v.setUint8(2, 1)
    v.setUint32(4, hdrLen, true)
    v.setUint32(8, 0, true)
    v.setUint32(12, typeLen, true)
    v.setUint32(16, typeLen + layoutLen, true)
    v.setUint32(20, this.#stringsEnd, true)
    if (this.layout) {
      v.setUint32(24, typeLen, true)
      v.setUint32(28, layoutLen, true)
    }
    out.set(this.#types, hdrLen)
    let at = hdrLen + this.#types.length
    for (const words of this.#added) for (const w of words) v.setUint32((at += 4) - 4, w >>> 0, true)
    if (this.layout) out.set(this.layout, at)
    at += layoutLen
    out.set(this.#strings, at)
    at += this.#strings.length
    for (const s of this.#addedStrings) {
      const b = Buffer.from(s, 'utf8')
      out.set(b, at)
      at += b.length + 1
    }
    return out
  }
}

/** The .kconfig and .ksyms DATASECs hold externs, which have no ELF section. */
export const KCONFIG_SECTION = '.kconfig'
export const KSYMS_SECTION = '.ksyms'
/** Name of the variable that stands for extern functions in .ksyms, as libbpf names it. */
export const KSYM_PLACEHOLDER = 'dummy_ksym'

const GLOBAL_ALLOCATED = varLinkages.global

/**
 * The object's BTF as the kernel must get it: each DATASEC with its
 * section's size and each global variable's offset (from its symbol), sorted
 * by offset; hidden globals and hidden global subprograms static; .kconfig
 * externs laid out (by `facts` for '.kconfig' when it answers, else in BTF
 * order at natural alignment) with the allocated linkage; .ksyms externs as
 * 4-byte int slots, extern functions there replaced by one placeholder
 * variable with their parameters named and their linkage global; other
 * extern functions (kfuncs declared without __ksym) global. Returns a copy.
 *
 * Errors: RangeError naming the section and variable when the object has no
 * section for a DATASEC, no symbol for a global variable, or a variable
 * past its section's end; TypeError/RangeError for bytes that are not BTF.
 */
export function fixupObjectBtf(btf: Uint8Array, facts: BtfFixupFacts): Uint8Array {
  if (facts === null || typeof facts !== 'object' || typeof facts.sectionSize !== 'function' || typeof facts.symbolOffset !== 'function') {
    throw new TypeError(`fixupObjectBtf: facts must be { sectionSize(name), symbolOffset(section, variable) }, got ${describeValue(facts)}`)
  }
  const raw = new RawBtf(btf)
  const n = raw.count
  for (let id = 1; id <= n; id++) {
    const kind = raw.kind(id)
    if (kind === BtfKind.DATASEC) {
      const name = raw.name(id)
      if (name === KCONFIG_SECTION) fixKconfig(raw, id, facts)
      else if (name === KSYMS_SECTION) fixKsyms(raw, id)
      else fixDataSection(raw, id, name, facts)
      sortEntries(raw, id)
    } else if (kind === BtfKind.FUNC) {
      // The kernel takes static and global functions only (Linux 5.6+ for global).
      if (raw.vlen(id) === funcLinkages.extern) raw.setInfo(id, BtfKind.FUNC, funcLinkages.global)
      else if (raw.vlen(id) === funcLinkages.global && facts.hiddenSubprogram?.(raw.name(id)) === true) raw.setInfo(id, BtfKind.FUNC, funcLinkages.static)
    }
  }
  return raw.bytes()
}

// A section's DATASEC: size from the ELF section, global variables' offsets
// from their symbols. Static variables already have their offsets from clang,
// and a DATASEC with a size was already fixed (by a static linker).
function fixDataSection(raw: RawBtf, id: number, name: string, facts: BtfFixupFacts): void {
  let size = raw.sizeOrType(id)
  const fixOffsets = size === 0
  if (fixOffsets) {
    const s = facts.sectionSize(name)
    if (s === undefined) throw new RangeError(`BTF DATASEC '${name}' names a section the object does not have`)
    if (!Number.isInteger(s) || s <= 0) throw new RangeError(`BTF DATASEC '${name}': section size ${describeValue(s)} is not a positive integer`)
    raw.setSizeOrType(id, (size = s))
  }
  for (let i = 0; i < raw.vlen(id); i++) {
    const varId = raw.word(id, 3 * i)
    const v = entryVar(raw, id, name, i, varId)
    const linkage = raw.word(varId, 0)
    if (linkage !== varLinkages.static && linkage !== varLinkages.extern) {
      const offset = facts.symbolOffset(name, v)
      if (offset === undefined) throw new RangeError(`BTF DATASEC '${name}': variable '${v}' has no symbol in the section`)
      if (fixOffsets) raw.setWord(id, 3 * i + 1, offset)
      if (facts.hiddenVariable?.(name, v) === true) raw.setWord(varId, 0, varLinkages.static)
    }
    const offset = raw.word(id, 3 * i + 1)
    const varSize = raw.word(id, 3 * i + 2)
    if (offset + varSize > size) throw new RangeError(`BTF DATASEC '${name}': variable '${v}' (${varSize} bytes at ${offset}) runs past the section's ${size} bytes`)
  }
}

function entryVar(raw: RawBtf, secId: number, sec: string, i: number, varId: number): string {
  if (varId < 1 || varId > raw.count || raw.kind(varId) !== BtfKind.VAR) {
    throw new RangeError(`BTF DATASEC '${sec}' entry ${i} is type ${varId}, not a variable`)
  }
  return raw.name(varId)
}

// .kconfig: the loader lays the values out in its .kconfig map; the kernel
// refuses extern linkage, so they become allocated globals.
function fixKconfig(raw: RawBtf, id: number, facts: BtfFixupFacts): void {
  let end = 0
  for (let i = 0; i < raw.vlen(id); i++) {
    const varId = raw.word(id, 3 * i)
    const v = entryVar(raw, id, KCONFIG_SECTION, i, varId)
    const size = raw.word(id, 3 * i + 2)
    const align = Math.min(8, size & -size || 1)
    const own = Math.ceil(end / align) * align
    const offset = facts.symbolOffset(KCONFIG_SECTION, v) ?? own
    raw.setWord(id, 3 * i + 1, offset)
    raw.setWord(varId, 0, GLOBAL_ALLOCATED)
    end = Math.max(end, offset + size)
  }
  const size = facts.sectionSize(KCONFIG_SECTION) ?? end
  if (size < end) throw new RangeError(`BTF DATASEC '${KCONFIG_SECTION}': its size ${size} is less than the ${end} bytes its externs take`)
  raw.setSizeOrType(id, size)
}

// .ksyms: each extern is a 4-byte int slot; the kernel wants variables with
// allocated linkage there, and functions are not variables.
function fixKsyms(raw: RawBtf, id: number): void {
  const vlen = raw.vlen(id)
  let int32 = 0
  for (let t = 1; t <= raw.count && int32 === 0; t++) {
    if (t <= raw.count && raw.kind(t) === BtfKind.INT && (raw.word(t, 0) & 0xff) === 32) int32 = t
  }
  const needInt = () => (int32 ||= raw.addType([raw.addString('int'), BtfKind.INT << 24, 4, 32 | (1 << 24)]))
  let placeholder = 0
  for (let i = 0; i < vlen; i++) {
    const t = raw.word(id, 3 * i)
    const kind = t >= 1 && t <= raw.count ? raw.kind(t) : -1
    if (kind === BtfKind.FUNC) {
      placeholder ||= raw.addType([raw.addString(KSYM_PLACEHOLDER), BtfKind.VAR << 24, needInt(), GLOBAL_ALLOCATED])
      nameParams(raw, raw.sizeOrType(t))
      raw.setInfo(t, BtfKind.FUNC, funcLinkages.global)
      raw.setWord(id, 3 * i, placeholder)
    } else if (kind === BtfKind.VAR) {
      raw.setWord(t, 0, GLOBAL_ALLOCATED)
      raw.setSizeOrType(t, needInt())
    } else {
      throw new RangeError(`BTF DATASEC '${KSYMS_SECTION}' entry ${i} is type ${t}, neither a variable nor a function`)
    }
    raw.setWord(id, 3 * i + 1, 4 * i)
    raw.setWord(id, 3 * i + 2, 4)
  }
  raw.setSizeOrType(id, 4 * vlen)
}

// The kernel insists that a FUNC's parameters have names; an extern's
// declaration may leave them out.
function nameParams(raw: RawBtf, proto: number): void {
  if (proto < 1 || proto > raw.count || raw.kind(proto) !== BtfKind.FUNC_PROTO) return
  for (let j = 0; j < raw.vlen(proto); j++) {
    if (raw.word(proto, 2 * j) === 0 && raw.word(proto, 2 * j + 1) !== 0) raw.setWord(proto, 2 * j, raw.addString(KSYM_PLACEHOLDER))
  }
}

// The kernel wants a DATASEC's entries in offset order (and not overlapping).
function sortEntries(raw: RawBtf, id: number): void {
  const entries = Array.from({ length: raw.vlen(id) }, (_, i) => [raw.word(id, 3 * i), raw.word(id, 3 * i + 1), raw.word(id, 3 * i + 2)])
  entries.sort((a, b) => a[1] - b[1])
  entries.forEach((e, i) => e.forEach((w, k) => raw.setWord(id, 3 * i + k, w)))
}
