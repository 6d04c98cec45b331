// One clang-built object file, read: the ELF, its BTF and BTF.ext, its
// functions and which of them are programs, its map definitions and data
// sections, its externs and license. CollectionSpec (spec.ts) presents this
// to users; load.ts turns it into kernel objects. Every failure to read is an
// ElfError naming the section: BTF readers' RangeErrors are wrapped here.
import { BtfReader } from '../btf/reader.js'
import { readBtfExt, type BtfExt } from '../btf/ext.js'
import { fixupObjectBtf } from '../btf/fixup.js'
import { cString } from '../sys/c-string.js'
import { kernelName } from './names.js'
import { ElfError, ElfFile, SHF_EXECINSTR, SHT, STB, STT, type ElfSection } from './elf.js'
import { readMapDefinitions, type MapDefinition } from './map-defs.js'
import { readLegacyMaps } from './legacy-maps.js'
import { readDataSections, type VariableSpec } from './variables.js'
import { programForSection, type SectionProgram } from './sections.js'
import { isDataMapSection, linkProgram, readFunctions, type ElfFunction, type LinkedProgram, type MapLocator } from './linker.js'

// A data section is one array value; kernels cap values at KMALLOC_MAX_SIZE
// (4 MiB on x86-64), so anything far past that is damage, refused before it is copied.
const MAX_DATA_SECTION = 64 << 20
const contentSections = new Set(['.BTF', '.BTF.ext', '.maps', 'maps', 'license', 'version'])
const STV_INTERNAL = 1
const STV_HIDDEN = 2

export interface ObjectProgram {
  fn: ElfFunction
  convention: SectionProgram
}

export interface ObjectMap {
  def: MapDefinition
  /** The section ('.maps' or legacy 'maps') and offset of its definition, which relocations name. */
  section: ElfSection
  offset: number
  size: number
}

/** An extern of .kconfig: where it sits in the .kconfig map and its BTF type. */
export interface KconfigExtern {
  name: string
  offset: number
  typeId: number
  weak: boolean
}

/** An extern of .ksyms (or an undefined function): a kernel variable or kfunc. */
export interface KsymExtern {
  name: string
  /** The local BTF VAR's type, or FUNC_PROTO of a kfunc; 0 for an untyped `extern const void x __ksym`. */
  typeId: number
  func: boolean
  weak: boolean
}

export class ParsedObject {
  readonly name: string
  readonly elf: ElfFile
  readonly btf: BtfReader | undefined
  readonly ext: BtfExt | undefined
  readonly functions: ElfFunction[]
  readonly programs = new Map<string, ObjectProgram>()
  readonly maps = new Map<string, ObjectMap>()
  /** Data section name -> its initial bytes (shared with the VariableSpecs that set them). */
  readonly data = new Map<string, Uint8Array>()
  readonly variables: Map<string, VariableSpec>
  readonly kconfig: KconfigExtern[] = []
  readonly kconfigSize: number
  readonly ksyms = new Map<string, KsymExtern>()
  readonly license: string
  readonly kernVersion: number | undefined
  /** The .BTF as the kernel should get it: DATASEC sizes and offsets filled in, extern linkage fixed (before sanitising). */
  readonly loadableBtf: Uint8Array | undefined
  // The sections' code as in the file, for links that apply no CO-RE (linking only reads it).
  #pristine: Map<number, Uint8Array> | undefined
  // Links against the file's own bytes, by program name (link(name) without code).
  readonly #linked = new Map<string, LinkedProgram>()

  constructor(bytes: Uint8Array, name: string) {
    this.name = name
    // A plain Uint8Array: slices of a Buffer are views, which readers here take for copies.
    const elf = (this.elf = new ElfFile(Buffer.isBuffer(bytes) ? new Uint8Array(bytes) : bytes))
    this.btf = asElfError('.BTF', () => {
      const s = elf.section('.BTF')
      return s ? new BtfReader(Uint8Array.from(elf.data(s))) : undefined
    })
    this.ext = asElfError('.BTF.ext', () => {
      const s = elf.section('.BTF.ext')
      return s && this.btf ? readBtfExt(elf.data(s), this.btf) : undefined
    })
    // Sections read as content must have content: NOBITS would make the
    // reader conjure (and copy) as many zero bytes as the header claims.
    for (const s of elf.sections) {
      if (s.type === SHT.NOBITS && ((s.flags & BigInt(SHF_EXECINSTR)) !== 0n || contentSections.has(s.name))) {
        throw new ElfError(`section is SHT_NOBITS (no bytes in the file), but its contents are read`, { section: s.name })
      }
    }
    this.functions = readFunctions(elf)
    this.license = sectionString(elf, 'license') ?? ''
    const version = elf.section('version')
    this.kernVersion = version && version.size >= 4 ? new DataView(elf.data(version).buffer, elf.data(version).byteOffset).getUint32(0, true) : undefined

    const libraries = librarySections(elf)
    for (const fn of this.functions) {
      // Functions of .text, and of other sections no program type is named
      // for when code elsewhere calls into them (as cilium/ebpf allows), are subprograms.
      if (fn.section.name === '.text') continue
      const convention = programForSection(fn.section.name)
      if (!convention && libraries.has(fn.section.index)) continue
      if (!convention) throw new ElfError(`program '${fn.name}' is in a section no program type is known for (SEC("${fn.section.name}"))`, { section: fn.section.name })
      if (!fn.global) throw new ElfError(`program '${fn.name}' is static; programs must be global functions`, { section: fn.section.name, offset: fn.start * 8 })
      if (this.programs.has(fn.name)) throw new ElfError(`two programs are named '${fn.name}'`, { section: fn.section.name })
      this.programs.set(fn.name, { fn, convention })
    }
    asElfError('.maps', () => this.#readMaps())
    for (const s of elf.sections) {
      if (isDataMapSection(s.name) && s.size > MAX_DATA_SECTION) {
        throw new ElfError(`data section of ${s.size} bytes: it becomes one map value, which no kernel allows past ${MAX_DATA_SECTION} bytes`, { section: s.name })
      }
    }
    const { contents, variables } = asElfError('.BTF', () => this.btf ? readDataSections(elf, this.btf) : { contents: new Map<string, Uint8Array>(), variables: new Map<string, VariableSpec>() })
    this.variables = variables
    for (const s of elf.sections) {
      if (!isDataMapSection(s.name) || s.size === 0) continue
      this.data.set(s.name, contents.get(s.name) ?? Uint8Array.from(elf.data(s)))
    }
    this.kconfigSize = asElfError('.BTF', () => this.#readExterns())
    this.loadableBtf = asElfError('.BTF', () => this.btf && this.#fixedBtf())
  }

  // libbpf's fixups, from what the ELF says: section sizes, symbol offsets,
  // hidden symbols; .kconfig as laid out here.
  #fixedBtf(): Uint8Array {
    const elf = this.elf
    const symbol = (section: string, name: string) => {
      const s = elf.section(section)
      return s && elf.symbols.find((y) => y.shndx === s.index && y.name === name && y.type === STT.OBJECT)
    }
    const hidden = (v: number) => v === STV_INTERNAL || v === STV_HIDDEN
    return fixupObjectBtf(elf.data(elf.section('.BTF')!), {
      sectionSize: (name) => (name === '.kconfig' ? this.kconfigSize : elf.section(name)?.size),
      symbolOffset: (section, name) => (section === '.kconfig' ? this.kconfig.find((k) => k.name === name)?.offset : symbol(section, name)?.value),
      hiddenVariable: (section, name) => hidden(symbol(section, name)?.visibility ?? 0),
      hiddenSubprogram: (name) => this.functions.some((f) => f.name === name && f.section.name === '.text' && f.global && hidden(f.visibility)),
    })
  }

  /**
   * Links program `name` against `code` (each executable section's bytes, by
   * section index; by default as in the file: that link is made once and
   * shared, so its callers copy its instructions before changing them).
   */
  link(name: string, code?: ReadonlyMap<number, Uint8Array>): LinkedProgram {
    if (code === undefined) {
      let linked = this.#linked.get(name)
      if (!linked) this.#linked.set(name, (linked = this.link(name, (this.#pristine ??= this.code()))))
      return linked
    }
    const p = this.programs.get(name)
    if (!p) throw new TypeError(`no program named '${name}' in ${this.name}`)
    const locator: MapLocator = {
      mapAt: (section, offset) => [...this.maps.values()].find((m) => m.section === section && m.offset === offset)?.def.name,
    }
    return linkProgram(this.elf, this.functions, code, p.fn, locator, this.ext)
  }

  /** The load options every ProgramSpec of program `name` shares, whatever form its instructions take. */
  programOptions(name: string, linked: LinkedProgram) {
    const { convention } = this.programs.get(name)!
    return {
      type: convention.type,
      expectedAttachType: convention.expectedAttachType,
      license: this.license,
      name: kernelName(name),
      flags: [...(convention.sleepable ? ['sleepable' as const] : []), ...(convention.xdpFrags ? ['xdp_has_frags' as const] : [])],
      kernVersion: this.kernVersion,
      section: linked.entry.section.name,
      attachTo: convention.attachTo,
      autoload: convention.autoload,
    }
  }

  /** A private copy of each executable section's instructions, for CO-RE to patch. */
  code(): Map<number, Uint8Array> {
    const out = new Map<number, Uint8Array>()
    for (const f of this.functions) if (!out.has(f.section.index)) out.set(f.section.index, Uint8Array.from(this.elf.data(f.section)))
    return out
  }

  #readMaps(): void {
    const add = (def: MapDefinition, section: ElfSection) => {
      const sym = this.elf.symbols.find((y) => y.shndx === section.index && y.name === def.name && y.type === STT.OBJECT)
      if (!sym) throw new ElfError(`map '${def.name}' has no symbol`, { section: section.name })
      if (this.maps.has(def.name)) throw new ElfError(`two maps are named '${def.name}'`, { section: section.name })
      this.maps.set(def.name, { def, section, offset: sym.value, size: sym.size })
    }
    const btfMaps = this.elf.section('.maps')
    if (btfMaps) {
      if (!this.btf) throw new ElfError('the object has BTF-defined maps but no .BTF section (build with -g)', { section: '.maps' })
      for (const def of readMapDefinitions(this.btf)) add(def, btfMaps)
    }
    const legacy = this.elf.section('maps')
    if (legacy) for (const def of readLegacyMaps(this.elf)) add(def, legacy)
  }

  // Externs are the undefined symbols; BTF says which are .kconfig values
  // (laid out here in the .kconfig map) and which are kernel symbols.
  #readExterns(): number {
    const undefinedNames = new Set(this.elf.symbols.filter((y) => y.shndx === 0 && y.name !== '').map((y) => y.name))
    const weak = new Set(this.elf.symbols.filter((y) => y.shndx === 0 && y.bind === STB.WEAK).map((y) => y.name))
    if (undefinedNames.size === 0) return 0
    if (!this.btf) throw new ElfError(`externs (${[...undefinedNames].join(', ')}) need the object's BTF (build with -g)`)
    const btf = this.btf
    const kconfig: { name: string; typeId: number; weak: boolean; size: number; align: number }[] = []
    for (const sec of ['.kconfig', '.ksyms']) {
      const id = btf.find(sec, 'DATASEC')
      if (id === undefined) continue
      const t = btf.type(id)
      for (let i = 0; i < t.vlen; i++) {
        const v = btf.type(t.extra[3 * i])
        if (!undefinedNames.has(v.name)) continue
        if (sec === '.kconfig') {
          if (v.kind !== 'VAR') throw new ElfError(`.kconfig extern '${v.name}' is a BTF ${v.kind}, not a variable`, { section: '.kconfig' })
          kconfig.push({ name: v.name, typeId: v.sizeOrType, weak: weak.has(v.name), size: btf.sizeof(v.sizeOrType), align: alignOf(btf, v.sizeOrType) })
        } else {
          const func = v.kind === 'FUNC'
          this.ksyms.set(v.name, { name: v.name, typeId: func || !isVoid(btf, v.sizeOrType) ? v.sizeOrType : 0, func, weak: weak.has(v.name) })
        }
      }
    }
    // libbpf's layout, so the instructions come out the same: by alignment
    // (largest first), then size (smallest first), then name.
    kconfig.sort((a, b) => b.align - a.align || a.size - b.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    let size = 0
    for (const k of kconfig) {
      size = Math.ceil(size / k.align) * k.align
      this.kconfig.push({ name: k.name, offset: size, typeId: k.typeId, weak: k.weak })
      size += k.size
    }
    // kfuncs declared without __ksym are FUNCs outside any DATASEC.
    for (const name of undefinedNames) {
      if (this.ksyms.has(name) || this.kconfig.some((k) => k.name === name)) continue
      const id = btf.find(name, 'FUNC')
      if (id === undefined) throw new ElfError(`extern '${name}' is neither a __kconfig value, a __ksym nor a kfunc with BTF`)
      this.ksyms.set(name, { name, typeId: btf.type(id).sizeOrType, func: true, weak: weak.has(name) })
    }
    return size
  }
}

/**
 * Runs `read`, turning the RangeError/TypeError with which readers and specs
 * refuse malformed input into an ElfError naming `section`: to the user of
 * an object file, that is a malformed object.
 */
export function asElfError<T>(section: string, read: () => T): T {
  try {
    return read()
  } catch (e) {
    if (e instanceof ElfError) throw e
    if (e instanceof RangeError || e instanceof TypeError) throw new ElfError(e.message, { section })
    throw e
  }
}

// Executable sections that code in other sections refers to: function libraries.
function librarySections(elf: ElfFile): Set<number> {
  const out = new Set<number>()
  for (const s of elf.sections) {
    if ((s.flags & BigInt(SHF_EXECINSTR)) === 0n) continue
    for (const r of elf.relocations(s)) if (r.symbol.shndx !== s.index && r.symbol.shndx !== 0) out.add(r.symbol.shndx)
  }
  return out
}

// The C alignment of a BTF type: scalars by size (up to 8), arrays by element, aggregates by member.
function alignOf(btf: BtfReader, id: number, depth = 0, known = new Map<number, number>()): number {
  let a = known.get(id)
  if (a === undefined) {
    const t = btf.resolve(id)
    if (depth > 32) throw new RangeError(`BTF type ${id}: nested more than 32 levels deep`)
    if (t.kind === 'ARRAY') a = alignOf(btf, btf.array(t).type, depth + 1, known)
    else if (t.kind === 'STRUCT' || t.kind === 'UNION') a = Math.max(1, ...btf.members(t).map((m) => alignOf(btf, m.type, depth + 1, known)))
    else a = Math.min(8, Math.max(1, t.kind === 'PTR' ? 8 : t.sizeOrType))
    known.set(id, a)
  }
  return a
}

// `extern const void sym __ksym` is a VAR of (const) void: an address from kallsyms, no BTF type.
function isVoid(btf: BtfReader, id: number): boolean {
  for (let hops = 0; id !== 0; hops++) {
    const t = btf.type(id)
    if (hops > 16 || !['CONST', 'VOLATILE', 'TYPEDEF', 'RESTRICT', 'TYPE_TAG'].includes(t.kind)) return false
    id = t.sizeOrType
  }
  return true
}

function sectionString(elf: ElfFile, name: string): string | undefined {
  const s = elf.section(name)
  if (!s) return undefined
  return cString(elf.data(s), 'latin1')
}
