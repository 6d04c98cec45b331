// Globals of a clang-built object: the variables in .data, .rodata, .bss and
// their .data.<name> / .rodata.<name> variants, typed from BTF. Before load
// each section is a private copy of its bytes (zeros for .bss) that
// `set()` writes; the Collection creates one array map per section from
// that copy. The offset of each variable comes from its ELF symbol: clang
// leaves DATASEC offsets and sizes for the loader to fill, as libbpf notes.
import type { BtfReader } from '../btf/reader.js'
import { codecFromBtf } from '../map/btf-codec.js'
import type { Codec } from '../map/codec.js'
import { ElfError, STT, type ElfFile } from './elf.js'

/** Sections that hold globals; .rodata.str1.1 and the like hold only string literals. */
export function isDataSection(name: string): boolean {
  return /^\.(data|bss|rodata)(\..+)?$/.test(name) && !/^\.rodata\.(str|cst)\d/.test(name)
}

export class VariableSpec<T = unknown> {
  readonly name: string
  /** The ELF section, which becomes the array map of the same name. */
  readonly section: string
  readonly offset: number
  readonly size: number
  /** The variable's BTF type in the object's BTF. */
  readonly typeId: number
  /** .rodata variables are frozen once loaded; before load they may still be set. */
  readonly readonly: boolean
  readonly #bytes: Uint8Array
  readonly #codec: Codec<unknown>

  constructor(init: { name: string; section: string; offset: number; typeId: number; bytes: Uint8Array; codec: Codec<unknown> }) {
    this.name = init.name
    this.section = init.section
    this.offset = init.offset
    this.size = init.codec.size
    this.typeId = init.typeId
    this.readonly = init.section.startsWith('.rodata')
    this.#bytes = init.bytes
    this.#codec = init.codec
  }

  /** The value the object will be loaded with. */
  get(): T {
    return this.#codec.decode(new DataView(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.byteLength), this.offset) as T
  }

  /** Sets the value the object will be loaded with. Errors: TypeError/RangeError when the value does not fit the type. */
  set(value: T): void {
    // Encode into scratch first so a value that fails halfway changes nothing.
    const scratch = new Uint8Array(this.size)
    this.#codec.encode(value, new DataView(scratch.buffer), 0)
    this.#bytes.set(scratch, this.offset)
  }
}

export interface DataSections {
  /** Section name -> its initial bytes (a private copy, written by VariableSpec.set). */
  contents: Map<string, Uint8Array>
  variables: Map<string, VariableSpec>
}

/** The data sections of `elf` and the variables BTF describes in them. Errors: ElfError naming section and variable. */
export function readDataSections(elf: ElfFile, btf: BtfReader): DataSections {
  const contents = new Map<string, Uint8Array>()
  const variables = new Map<string, VariableSpec>()
  for (const s of elf.sections) {
    if (!isDataSection(s.name)) continue
    const bytes = Uint8Array.from(elf.data(s))
    contents.set(s.name, bytes)
    const secId = btf.find(s.name, 'DATASEC')
    if (secId === undefined) continue
    const sec = btf.type(secId)
    for (let i = 0; i < sec.vlen; i++) {
      const v = btf.type(sec.extra[3 * i])
      if (v.kind !== 'VAR') continue
      const sym = elf.symbols.find((x) => x.name === v.name && x.shndx === s.index && x.type === STT.OBJECT)
      if (sym === undefined) throw new ElfError(`variable '${v.name}' has BTF but no symbol in its section`, { section: s.name })
      const codec = codecFromBtf(btf, v.sizeOrType)
      if (sym.value + codec.size > bytes.length) throw new ElfError(`variable '${v.name}' (${codec.size} bytes at ${sym.value}) runs past its section (${bytes.length} bytes)`, { section: s.name, offset: sym.value })
      if (variables.has(v.name)) throw new ElfError(`variable '${v.name}' is defined in two sections`, { section: s.name })
      variables.set(v.name, new VariableSpec({ name: v.name, section: s.name, offset: sym.value, typeId: v.sizeOrType, bytes, codec }))
    }
  }
  return { contents, variables }
}
