// CollectionSpec: everything a clang-built object describes, read once and
// checked before anything reaches the kernel: its programs (linked, as
// ProgramSpecs), its maps (BTF-defined, legacy, and one per data section, as
// MapSpecs) and its global variables (settable before load). load() makes
// the kernel objects (load.ts). Reading is pure: the same bytes give the
// same spec on any machine, and a malformed object is always an ElfError.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { decode } from '../asm/assemble.js'
import type { Insn, MapRef } from '../asm/insn.js'
import { pseudo } from '../asm/opcodes.js'
import type { BtfReader } from '../btf/reader.js'
import { isKeyless } from '../map/kinds.js'
import { MapSpec } from '../map/spec.js'
import { ProgramSpec } from '../prog/spec.js'
import { kernel, native, type MapTypeName } from '../sys/index.js'
import { describeValue } from '../sys/options.js'
import { ElfError } from './elf.js'
import { ParsedObject, asElfError, type ObjectMap } from './object.js'
import { dataMapName, kernelName } from './names.js'
import { loadCollection, type CollectionLoadOptions } from './load.js'
import type { Collection } from './collection.js'
import type { LinkedProgram } from './linker.js'
import type { VariableSpec } from './variables.js'
import { structOpsSlots, type StructOpsSlot } from './struct-ops.js'
import type { AnyCollectionShape, CollectionShape } from './shape.js'

/**
 * Stands for a map of the object inside a spec's instructions, until load
 * makes the map. Reading its fd is an error: load the collection first.
 */
export class MapReference implements MapRef {
  /** `type`: the map's type as its MapSpec has it ('hash'), for readers of the spec (policy checks). */
  constructor(readonly name: string, readonly type?: MapTypeName | number) {}
  get fd(): number {
    throw new TypeError(`map '${this.name}' is a reference inside a CollectionSpec: load the collection to get a map fd`)
  }
}

type Programs<S extends CollectionShape> = { readonly [K in S['programs']]: ProgramSpec }
type Maps<S extends CollectionShape> = { readonly [K in keyof S['maps']]: MapSpec } & { readonly [section: `.${string}`]: MapSpec }
type Variables<S extends CollectionShape> = { readonly [K in keyof S['variables']]: VariableSpec<S['variables'][K]> }

export class CollectionSpec<S extends CollectionShape = AnyCollectionShape> {
  /**
   * Each program by its C function name, linked with its subprograms. Each
   * ProgramSpec is made when first read (load() does not need them): an
   * ElfError its instructions deserve comes then, and again on every read.
   */
  readonly programs: Programs<S>
  /** Each map by its C name, and each data section's map by section name ('.data', '.rodata', '.bss', '.kconfig'). */
  readonly maps: Maps<S>
  /** Globals of .data/.rodata/.bss and their .name variants: set() before load. */
  readonly variables: Variables<S>
  /** The object's own BTF (undefined for an object built without -g). */
  readonly btf: BtfReader | undefined
  /** The object's license ('license' section). */
  readonly license: string
  readonly #object: ParsedObject
  readonly #structOps = new Map<string, readonly StructOpsSlot[] | undefined>()

  private constructor(object: ParsedObject) {
    this.#object = object
    this.btf = object.btf
    this.license = object.license
    const maps: Record<string, MapSpec> = Object.create(null)
    for (const m of object.maps.values()) maps[m.def.name] = asElfError(m.section.name, () => objectMapSpec(object, m))
    for (const [section, bytes] of object.data) maps[section] = asElfError(section, () => dataMapSpec(object.name, section, bytes.length))
    if (object.kconfigSize > 0) maps['.kconfig'] = asElfError('.kconfig', () => dataMapSpec(object.name, '.kconfig', object.kconfigSize))
    const slots = asElfError('.struct_ops', () => structOpsSlots(object.elf, object.btf))
    const programs: Record<string, ProgramSpec> = Object.create(null)
    for (const [name, p] of object.programs) {
      const section = p.fn.section.name
      // Linked now, so that a malformed object fails here; its ProgramSpec
      // (each instruction decoded, checked and frozen: most of what reading
      // costs) is made on first use, and a plain load never needs it.
      const linked = asElfError(section, () => object.link(name))
      const structOps = slots.get(`${p.fn.section.index}:${p.fn.start}`)
      this.#structOps.set(name, structOps)
      let made: { value: ProgramSpec } | { error: unknown } | undefined
      Object.defineProperty(programs, name, {
        enumerable: true,
        get: () => {
          made ??= attempt(() => asElfError(section, () => programSpec(object, name, linked, maps, structOps)))
          if ('error' in made) throw made.error
          return made.value
        },
      })
    }
    this.programs = Object.freeze(programs) as Programs<S>
    this.maps = Object.freeze(maps) as Maps<S>
    this.variables = Object.freeze(Object.assign(Object.create(null), Object.fromEntries(object.variables))) as Variables<S>
    Object.freeze(this)
  }

  /** Reads an object file. Errors: ENOENT and the like from the file system; ElfError for a malformed object. */
  static fromFile<S extends CollectionShape = AnyCollectionShape>(path: string): CollectionSpec<S> {
    if (typeof path !== 'string') throw new TypeError(`CollectionSpec.fromFile: path must be a string, got ${describeValue(path)}`)
    // A plain Uint8Array: a Buffer's slice() is a view, not the copy readers expect.
    return new CollectionSpec<S>(new ParsedObject(new Uint8Array(readFileSync(path)), objectName(path)))
  }

  /** Reads an object from memory; `name` prefixes data maps' kernel names as the file name would. Errors: ElfError. */
  static fromBuffer<S extends CollectionShape = AnyCollectionShape>(bytes: Uint8Array, options: { name?: string } = {}): CollectionSpec<S> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`CollectionSpec.fromBuffer: bytes must be a Uint8Array, got ${describeValue(bytes)}`)
    if (options.name !== undefined && typeof options.name !== 'string') throw new TypeError('CollectionSpec.fromBuffer: name must be a string')
    return new CollectionSpec<S>(new ParsedObject(Uint8Array.from(bytes), options.name ?? 'obj'))
  }

  /**
   * Creates the maps, loads the programs (all but SEC("?...") ones, or those
   * named in `programs`) and maps the globals. Errors: ElfError for an
   * object that cannot be linked, CoreError for an ambiguous CO-RE
   * relocation, BpfError/VerifierError from the kernel; whatever was made
   * before the failure is closed.
   */
  load(options: CollectionLoadOptions = {}): Promise<Collection<S>> {
    return loadCollection(this.#object, this.maps, options, this.programs, this.#structOps) as Promise<Collection<S>>
  }
}

// f's value, or what it threw, to be thrown again on every read.
const attempt = <T>(f: () => T): { value: T } | { error: unknown } => {
  try {
    return { value: f() }
  } catch (error) {
    return { error }
  }
}

// 'counter.bpf.o' -> 'counter', as libbpf names objects.
function objectName(path: string): string {
  return basename(path).replace(/\.o$/, '').replace(/\.bpf$/, '')
}

function dataMapSpec(object: string, section: string, size: number): MapSpec {
  const readonly = section.startsWith('.rodata') || section === '.kconfig'
  return MapSpec.from({
    type: 'array', keySize: 4, valueSize: size, maxEntries: 1, name: dataMapName(object, section),
    // Loading decides mmapable (Linux 5.5+); read-only to programs is the point of .rodata.
    flags: readonly ? ['rdonly_prog'] : [],
  })
}

function objectMapSpec(object: ParsedObject, m: ObjectMap): MapSpec {
  const d = m.def
  try {
    const typeName = kernel.mapTypes
    const inner = d.inner && objectMapSpec(object, { ...m, def: d.inner })
    return MapSpec.from({
      type: d.type,
      keySize: d.keySize ?? (isKeyless(d.type) ? 0 : undefined),
      valueSize: d.valueSize,
      // A perf event array of unspecified size gets one slot per possible CPU, as libbpf does.
      maxEntries: d.maxEntries ?? (d.type === typeName.perf_event_array ? native.possibleCpus() : 0),
      flags: d.flags,
      numaNode: d.numaNode,
      mapExtra: d.mapExtra,
      name: kernelName(d.name),
      innerMap: inner,
    })
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw new ElfError(`map '${d.name}': ${e.message}`, { section: m.section.name, offset: m.offset })
    throw e
  }
}

// The program as a ProgramSpec: its linked instructions with maps as
// MapReferences (externs stay zero until load, listed by name), its BTF line
// and func info, and the struct_ops members it fills.
function programSpec(object: ParsedObject, name: string, linked: LinkedProgram, maps: Record<string, MapSpec>, structOps: StructOpsSlot[] | undefined): ProgramSpec {
  const insns: Insn[] = decode(linked.insns)
  // decode() gives one Insn per ld_imm64 (two slots): map instruction indices to Insn indices.
  const at: number[] = []
  insns.forEach((insn, n) => { at.push(n); if (insn.code === 0x18) at.push(n) })
  for (const { index, ref } of linked.references) {
    const insn = insns[at[index]]
    if (ref.kind === 'map') Object.assign(insn, { src: pseudo.mapFd, map: new MapReference(ref.map, maps[ref.map]?.type) })
    if (ref.kind === 'data') Object.assign(insn, { src: pseudo.mapValue, imm64: BigInt(ref.offset) << 32n, map: new MapReference(ref.section, maps[ref.section]?.type) })
    // A .kconfig value is read from the .kconfig map, as load will make it.
    const kc = ref.kind === 'extern' ? object.kconfig.find((k) => k.name === ref.name) : undefined
    if (kc) Object.assign(insn, { src: pseudo.mapValue, imm64: BigInt(kc.offset) << 32n, map: new MapReference('.kconfig', maps['.kconfig']?.type) })
  }
  // The other externs are kernel symbols (kfuncs, __ksym), named here until load resolves them.
  const externs = linked.references.flatMap(({ index, ref }) => (ref.kind === 'extern' && !object.kconfig.some((k) => k.name === ref.name) ? [{ insn: index, name: ref.name, call: ref.call }] : []))
  return ProgramSpec.from({
    ...object.programOptions(name, linked),
    insns,
    funcInfo: linked.funcInfo,
    lineInfo: linked.lineInfo,
    ...(externs.length ? { externs } : {}),
    ...(structOps ? { structOps } : {}),
  })
}
