// From a read object to kernel objects, in libbpf's order: find the token,
// load the object's BTF (fixed up, and sanitised to what this kernel
// accepts), create or reuse the maps and fill the data maps, relocate CO-RE
// against the target BTF, link and load each program with its references
// resolved, fill prog_array and map-in-map slots, pin, and map the globals.
// Everything made is closed again if any step fails.
import { Btf } from '../btf/btf.js'
import type { BtfReader } from '../btf/reader.js'
import { POISON_HELPER, relocateCore, type CoreCandidateCache, type CoreResult, type CoreTargets } from '../btf/core.js'
import { sanitizeBtf, type BtfSupport } from '../btf/sanitize.js'
import { btfSupport, supportsBtf, supportsMmapableMaps } from '../features/index.js'
import { codecFromBtf } from '../map/btf-codec.js'
import { createMapFd } from '../map/create.js'
import { BpfMap } from '../map/map.js'
import { isMapOfMaps } from '../map/kinds.js'
import { MapSpec } from '../map/spec.js'
import { BpfProgram } from '../prog/program.js'
import { ProgramSpec } from '../prog/spec.js'
import { Fd, VerifierError, bpfObjectKind, defaultToken, kernel, mapInfoByFd, native, setDefaultToken, type MapInfo, type TokenLike } from '../sys/index.js'
import { pseudo } from '../asm/opcodes.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { ElfError, STT } from './elf.js'
import { KernelSymbols, kconfigBytes } from './externs.js'
import { openKernelBtf } from './kernel-btf.js'
import type { LinkedProgram } from './linker.js'
import type { ObjectMap, ParsedObject } from './object.js'
import { findToken } from './token-path.js'
import { Collection, Variable, closeAll } from './collection.js'
import { attachBtfTarget } from './attach-target.js'

export interface CollectionLoadOptions {
  /** Token for delegated loads; null for none. Default: LIBBPF_BPF_TOKEN_PATH, else a delegated /sys/fs/bpf, as libbpf. */
  token?: TokenLike | null
  /** Target BTF for CO-RE (libbpf's btf_custom_path): a BtfReader, raw BTF bytes, or a path to raw BTF or an ELF with .BTF. Default: this kernel's. */
  kernelBtf?: BtfReader | Uint8Array | string
  /** Maps to use instead of creating the object's own, by name; they must match the definition, and stay open after close(). */
  mapReplacements?: Record<string, BpfMap<any, any>>
  /** A bpffs directory: maps defined with LIBBPF_PIN_BY_NAME are reused from, or pinned at, <pinPath>/<name>. */
  pinPath?: string
  /** The programs to load; by default every program not in a SEC("?...") section. */
  programs?: readonly string[]
  /** Verifier log level for every program (the log is kept in each program's `log`). */
  logLevel?: number
}

/** What one load needs at every step: the object, its token, its loaded BTF and what the kernel has. */
interface Loading {
  object: ParsedObject
  token: TokenLike | null | undefined
  btf: Btf | undefined
  /** BTF kinds this kernel takes (undefined: no BTF at all), and mmapable arrays. */
  has: { btf: BtfSupport | undefined; mmapable: boolean }
}

const loadKeys = ['token', 'kernelBtf', 'mapReplacements', 'pinPath', 'programs', 'logLevel'] as const
const PIN_BY_NAME = 1
const INSN = 8
const CALL = 0x85
// libbpf's marker for an unresolved weak kfunc: a call the verifier rejects unless it is dead code.
const POISON_KFUNC = 2002000000

export async function loadCollection(object: ParsedObject, mapSpecs: Readonly<Record<string, MapSpec>>, options: CollectionLoadOptions): Promise<Collection> {
  checkOptions('CollectionSpec.load', options, loadKeys)
  const selected = selectPrograms(object, options.programs)
  const given = options.mapReplacements ?? {}
  if (given === null || typeof given !== 'object') throw new TypeError(`CollectionSpec.load: mapReplacements must be an object of maps by name, got ${describeValue(given)}`)
  // A Map of own keys only: a map named 'constructor' or 'valueOf' must not find Object.prototype's.
  const replacements = new Map<string, BpfMap>()
  for (const [name, map] of Object.entries(given)) {
    if (!Object.hasOwn(mapSpecs, name)) throw new TypeError(`CollectionSpec.load: mapReplacements names '${name}', which is not a map of this object (${Object.keys(mapSpecs).join(', ')})`)
    if (!(map instanceof BpfMap)) throw new TypeError(`CollectionSpec.load: mapReplacements.${name} must be a BpfMap, got ${describeValue(map)}`)
    replacements.set(name, map)
  }
  if (options.pinPath !== undefined && typeof options.pinPath !== 'string') throw new TypeError(`CollectionSpec.load: pinPath must be a string, got ${describeValue(options.pinPath)}`)

  const found = findToken(options.token)
  const token = found.token
  const owned: { close(): void }[] = []
  const pinned: BpfMap[] = []
  let running: KernelSymbols | undefined
  try {
    const has = probeKernel(token)
    const btf = loadObjectBtf(object, token, has.btf)
    if (btf) owned.push(btf)
    const ctx: Loading = { object, token, btf, has }
    const maps: Record<string, BpfMap> = Object.create(null)
    const fresh = new Set<string>()
    for (const [name, spec] of Object.entries(mapSpecs)) {
      const m = openMap(ctx, name, spec, replacements.get(name), options.pinPath, fresh)
      if (!replacements.has(name)) owned.push(m)
      maps[name] = m
    }
    fillDataMaps(object, maps, fresh)

    // CO-RE patches each section's instructions once, before linking (as libbpf does).
    const code = object.code()
    const core = new Map<number, CoreResult[]>()
    const cache: CoreCandidateCache = new Map()
    const needsCore = [...(object.ext?.coreRelos.keys() ?? [])].length > 0
    const coreTargets: CoreTargets | undefined = needsCore ? openKernelBtf(options.kernelBtf) : undefined
    // Only the functions of the programs being loaded are relocated, as libbpf does.
    const used = needsCore ? selected.flatMap((name) => object.link(name).layout.map((l) => l.fn)) : []
    for (const [section, relos] of object.ext?.coreRelos ?? []) {
      const s = object.elf.section(section)
      if (!s || !code.has(s.index)) throw new ElfError(`CO-RE relocations for a section that holds no code`, { section })
      const include = (off: number) => used.some((f) => f.section === s && off / 8 >= f.start && off / 8 < f.start + f.count)
      core.set(s.index, relocateCore(section, code.get(s.index)!, relos, object.btf!, coreTargets!, { cache, include }))
    }

    const programs: Record<string, BpfProgram> = Object.create(null)
    // This kernel's BTF is read only when something needs it (externs, attach targets), as libbpf.
    running = new KernelSymbols(() => (options.kernelBtf === undefined && coreTargets ? coreTargets : openKernelBtf()))
    for (const name of selected) {
      const linked = object.link(name, code)
      const p = await loadProgram(ctx, name, linked, maps, running, options.logLevel, core)
      owned.push(p)
      programs[name] = p
    }
    fillSlots(object, maps, programs, fresh)
    for (const name of fresh) {
      const m = object.maps.get(name)
      if (m?.def.pinning !== PIN_BY_NAME || options.pinPath === undefined) continue
      maps[name].pin(pinPathOf(options.pinPath, name))
      pinned.push(maps[name])
    }
    const variables = mapVariables(object, maps, owned)
    return new Collection(maps, programs, variables, owned)
  } catch (e) {
    // As libbpf: pins this load made go with it; pins it reused stay.
    for (const m of pinned) {
      try { m.unpin() } catch { /* the failure being reported matters more */ }
    }
    closeAll(owned)
    throw e
  } finally {
    running?.close()
    found.close()
  }
}

function selectPrograms(object: ParsedObject, names: readonly string[] | undefined): string[] {
  if (names === undefined) return [...object.programs].filter(([, p]) => p.convention.autoload).map(([n]) => n)
  if (!Array.isArray(names)) throw new TypeError(`CollectionSpec.load: programs must be an array of program names, got ${describeValue(names)}`)
  for (const n of names) {
    if (!object.programs.has(n)) throw new TypeError(`CollectionSpec.load: no program named ${describeValue(n)} in ${object.name} (${[...object.programs.keys()].join(', ')})`)
  }
  return [...new Set(names)]
}

// What this kernel has, asked once per load. The probes create tiny objects
// with the process's default token; a load that found its own token (a
// delegated tenant, where nothing works without one) lends it to them for
// this synchronous moment. A probe the token does not allow counts as "no".
function probeKernel(token: TokenLike | null | undefined): Loading['has'] {
  const before = defaultToken()
  if (token) setDefaultToken(token)
  const ask = <T>(probe: () => T, otherwise: T): T => {
    try {
      return probe()
    } catch {
      return otherwise
    }
  }
  try {
    return { btf: ask(() => (supportsBtf() ? btfSupport() : undefined), undefined), mmapable: ask(supportsMmapableMaps, false) }
  } finally {
    setDefaultToken(before)
  }
}

// The object's BTF as this kernel will take it. A kernel that takes none
// (or refuses it) still gets the programs, without func/line info, as libbpf does.
function loadObjectBtf(object: ParsedObject, token: TokenLike | null | undefined, support: BtfSupport | undefined): Btf | undefined {
  if (!object.loadableBtf || !support) return undefined
  try {
    return Btf.loadSync(sanitizeBtf(object.loadableBtf, support), { token })
  } catch {
    return undefined
  }
}

// A map of the object: a replacement, a pinned map to reuse, or a new one.
function openMap({ object, token, btf, has }: Loading, name: string, spec: MapSpec, replacement: BpfMap | undefined, pinPath: string | undefined, fresh: Set<string>): BpfMap {
  const m = object.maps.get(name)
  const codecs = mapCodecs(object, m)
  if (replacement) {
    checkCompatible(name, spec, replacement.info(), 'mapReplacements')
    return replacement
  }
  if (m?.def.pinning === PIN_BY_NAME && pinPath !== undefined) {
    const path = pinPathOf(pinPath, name)
    let fd: Fd | undefined
    try {
      fd = new Fd(native.objGet(path), 'map')
    } catch (e) {
      if ((e as { code?: string }).code !== 'ENOENT') throw e
    }
    if (fd) {
      // Checked and then used through the same fd: a pin swapped in between cannot slip past the check.
      try {
        if (bpfObjectKind(fd.fd) !== 'map') throw new TypeError(`map '${name}': the pin at ${path} is not a map`)
        checkCompatible(name, spec, mapInfoByFd(fd.fd), `the pin at ${path}`)
      } catch (e) {
        fd.close()
        throw e
      }
      return BpfMap.fromFd(fd, codecs)
    }
  }
  const isData = m === undefined
  const flags = spec.flags | (isData && has.mmapable && spec.typeId === kernel.mapTypes.array ? kernel.flags.BPF_F_MMAPABLE : 0)
  // A kernel without DATASEC got the data sections' DATASECs as plain structs: no BTF for those maps then, as libbpf.
  const types = btf && (m || has.btf?.datasec) ? btfTypes(object, name, m) : undefined
  const btfRef = btf && types && { btf, ...types }
  let fd
  try {
    fd = createMapFd(MapSpec.from({ ...specOptions(spec), flags, token, btf: btfRef }))
  } catch (e) {
    // As libbpf: a map the kernel refuses with BTF is tried once more without it.
    if (!btfRef) throw e
    fd = createMapFd(MapSpec.from({ ...specOptions(spec), flags, token }))
  }
  fresh.add(name)
  return BpfMap.fromFd(fd, codecs)
}

// MapSpec's fields as create options (innerMap and the rest carried over).
function specOptions(spec: MapSpec) {
  return {
    type: spec.type, keySize: spec.keySize, valueSize: spec.valueSize, maxEntries: spec.maxEntries, name: spec.name,
    numaNode: spec.numaNode, mapExtra: spec.mapExtra, innerMap: spec.innerMap,
  }
}

// BTF key/value types: the __type()s of a BTF map, the DATASEC of a data section.
function btfTypes(object: ParsedObject, name: string, m: ObjectMap | undefined): { keyTypeId: number; valueTypeId: number } | undefined {
  const reader = object.btf!
  if (m) return m.def.keyTypeId !== undefined && m.def.valueTypeId !== undefined && !isMapOfMaps(m.def.type) ? { keyTypeId: m.def.keyTypeId, valueTypeId: m.def.valueTypeId } : undefined
  const sec = reader.find(name, 'DATASEC')
  return sec === undefined ? undefined : { keyTypeId: 0, valueTypeId: sec }
}

function mapCodecs(object: ParsedObject, m: ObjectMap | undefined) {
  if (!m || !object.btf) return {}
  const codec = (id: number | undefined) => (id === undefined ? undefined : codecFromBtf(object.btf!, id))
  return { key: codec(m.def.keyTypeId), value: isMapOfMaps(m.def.type) || m.def.type === kernel.mapTypes.prog_array ? undefined : codec(m.def.valueTypeId) }
}

// A pin path for a map name: the name must be one path component.
function pinPathOf(dir: string, name: string): string {
  if (name.includes('/') || name === '.' || name === '..') throw new ElfError(`map '${name}' cannot be pinned by name: its name is not a file name`, { section: '.maps' })
  return `${dir}/${name}`
}

// libbpf's map_is_reuse_compat: type, sizes, entries, flags (mmapable aside) and map_extra.
function checkCompatible(name: string, spec: MapSpec, info: MapInfo, what: string): void {
  const diffs = (['typeId', 'keySize', 'valueSize', 'maxEntries'] as const)
    .filter((k) => (k === 'typeId' ? info.typeId : info[k]) !== spec[k])
    .map((k) => `${k} ${k === 'typeId' ? info.typeId : info[k]} where the object has ${spec[k]}`)
  if (((info.flags ^ spec.flags) & ~kernel.flags.BPF_F_MMAPABLE) !== 0) diffs.push(`flags 0x${info.flags.toString(16)} where the object has 0x${spec.flags.toString(16)}`)
  if (info.mapExtra !== BigInt(spec.mapExtra ?? 0)) diffs.push(`map_extra ${info.mapExtra} where the object has ${spec.mapExtra ?? 0}`)
  if (diffs.length) throw new TypeError(`map '${name}': ${what} does not match the object's definition: ${diffs.join(', ')}`)
}

// Initial contents: each data section's bytes (with what VariableSpec.set
// wrote), the .kconfig values; then .rodata and .kconfig are frozen.
function fillDataMaps(object: ParsedObject, maps: Record<string, BpfMap>, fresh: Set<string>): void {
  const key = new Uint8Array(4)
  const fill = (name: string, bytes: Uint8Array) => {
    if (!fresh.has(name)) return
    maps[name].update(key, bytes)
    if (name.startsWith('.rodata') || name === '.kconfig') maps[name].freeze()
  }
  for (const [section, bytes] of object.data) fill(section, bytes)
  if (object.kconfigSize > 0) fill('.kconfig', kconfigBytes(object))
}

async function loadProgram({ object, token, btf, has }: Loading, name: string, linked: LinkedProgram, maps: Record<string, BpfMap>,
  running: KernelSymbols, logLevel: number | undefined, core: Map<number, CoreResult[]>): Promise<BpfProgram> {
  const { convention } = object.programs.get(name)!
  const bytes = linked.insns
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const fdArray: Btf[] = []
  for (const { index, ref } of linked.references) {
    const at = index * INSN
    if (ref.kind === 'map' || ref.kind === 'data') {
      const map = maps[ref.kind === 'map' ? ref.map : ref.section]
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | ((ref.kind === 'map' ? pseudo.mapFd : pseudo.mapValue) << 4)
      v.setInt32(at + 4, map.fd, true)
      if (ref.kind === 'data') v.setUint32(at + 12, ref.offset, true)
      continue
    }
    const kc = object.kconfig.find((k) => k.name === ref.name)
    if (kc) {
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.mapValue << 4)
      v.setInt32(at + 4, maps['.kconfig'].fd, true)
      v.setUint32(at + 12, kc.offset, true)
      continue
    }
    const sym = object.ksyms.get(ref.name)
    if (!sym) throw new ElfError(`program '${name}' uses extern '${ref.name}', which the object's BTF does not describe`)
    const target = running.resolve(sym)
    let btfFdIndex = 0
    if (target.kind === 'btf' && target.module !== undefined) {
      const mod = running.moduleBtf(target.module)
      if (!fdArray.includes(mod)) fdArray.push(mod)
      btfFdIndex = fdArray.indexOf(mod) + 1
    }
    if (ref.call) {
      if (target.kind === 'btf') {
        bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.kfuncCall << 4)
        v.setInt32(at + 4, target.id, true)
        v.setInt16(at + 2, btfFdIndex, true)
      } else {
        bytes[at] = CALL
        bytes[at + 1] = 0
        v.setInt16(at + 2, 0, true)
        v.setInt32(at + 4, POISON_KFUNC + [...object.ksyms.keys()].indexOf(ref.name), true)
      }
    } else if (target.kind === 'btf') {
      bytes[at + 1] = (bytes[at + 1] & 0x0f) | (pseudo.btfId << 4)
      v.setInt32(at + 4, target.id, true)
      v.setInt32(at + 12, target.module === undefined ? 0 : running.moduleBtf(target.module).fd.fd, true)
    } else {
      const address = target.kind === 'address' ? target.address : 0n
      v.setUint32(at + 4, Number(address & 0xffffffffn), true)
      v.setUint32(at + 12, Number(address >> 32n), true)
    }
  }
  const attach = attachBtfTarget(convention, running)
  const spec = ProgramSpec.from({
    ...object.programOptions(name, linked),
    bytes,
    attachBtfId: attach?.id,
    attachBtfObjFd: attach?.module === undefined ? undefined : running.moduleBtf(attach.module).fd.fd,
    token,
    logLevel,
    // func_info names FUNC types: a kernel without them (sanitised to typedefs) gets neither func nor line info.
    ...(btf && has.btf?.func ? { btf, funcInfo: linked.funcInfo, lineInfo: linked.lineInfo } : {}),
    ...(fdArray.length ? { fdArray } : {}),
  })
  try {
    return await BpfProgram.load(spec)
  } catch (e) {
    throw e instanceof VerifierError ? explainPoison(e, name, linked, core) : e
  }
}

// A verifier rejection at a poisoned instruction is a failed CO-RE
// relocation: say which, and why, in the words of libbpf.
function explainPoison(e: VerifierError, name: string, linked: LinkedProgram, core: Map<number, CoreResult[]>): VerifierError {
  const at = e.log.map((l) => new RegExp(`^(\\d+): \\(85\\) call unknown#${POISON_HELPER}\\b`).exec(l)).find(Boolean)
  if (!at) return e
  const index = Number(at[1])
  for (const { fn, at: start } of linked.layout) {
    if (index < start || index >= start + fn.count) continue
    const off = (fn.start + index - start) * INSN
    const r = core.get(fn.section.index)?.find((x) => x.poisoned && x.insnOff === off)
    if (r) return new VerifierError(e.command, e.errno, e.log, `CO-RE relocation #${r.index} in ${name}: ${r.reason ?? 'cannot be satisfied by the target BTF'}; the verifier rejected the instruction it poisoned (insn ${index})`)
  }
  return e
}

// Static initialisation of prog_array and map-in-map slots: relocations in
// .maps point each slot of a `values` array at a program or a map.
function fillSlots(object: ParsedObject, maps: Record<string, BpfMap>, programs: Record<string, BpfProgram>, fresh: ReadonlySet<string>): void {
  const section = object.elf.section('.maps')
  if (!section || !object.btf) return
  for (const r of object.elf.relocations(section)) {
    const m = [...object.maps.values()].find((x) => x.section === section && r.offset >= x.offset && r.offset < x.offset + x.size)
    if (!m) throw new ElfError(`relocation at ${r.offset} is inside no map definition`, { section: '.maps', offset: r.offset })
    // Only maps this load made: a reused pin or a replacement is someone else's to fill (libbpf's rule).
    if (!fresh.has(m.def.name)) continue
    const valuesAt = valuesOffset(object.btf, m.def.name)
    const slot = (r.offset - m.offset - valuesAt) / 8
    // The BTF array is usually flexible (values[]): the symbol's size says how many slots were initialised.
    if (valuesAt < 0 || !Number.isInteger(slot) || slot < 0 || r.offset + 8 > m.offset + m.size) {
      throw new ElfError(`map '${m.def.name}': relocation at ${r.offset} is not a slot of its values array`, { section: '.maps', offset: r.offset })
    }
    const sym = r.symbol
    const target = sym.type === STT.FUNC ? programs[sym.name] : maps[sym.name]
    if (!target) {
      if (sym.type === STT.FUNC && object.programs.has(sym.name)) continue // not loaded: its slot stays empty
      throw new ElfError(`map '${m.def.name}' slot ${slot} names '${sym.name}', which is not a program or map of this object`, { section: '.maps', offset: r.offset })
    }
    const key = new Uint8Array(4)
    new DataView(key.buffer).setUint32(0, slot, true)
    maps[m.def.name].update(key as never, target as never)
  }
}

function valuesOffset(btf: BtfReader, map: string): number {
  const sec = btf.type(btf.find('.maps', 'DATASEC')!)
  for (let i = 0; i < sec.vlen; i++) {
    const v = btf.type(sec.extra[3 * i])
    if (v.name !== map) continue
    const member = btf.members(btf.resolve(v.sizeOrType)).find((x) => x.name === 'values')
    return member ? member.bitOffset / 8 : -1
  }
  return -1
}

// Globals live in their data maps: through a memory mapping where the
// kernel allows it (writable for .data/.bss, read-only for frozen .rodata).
function mapVariables(object: ParsedObject, maps: Record<string, BpfMap>, owned: { close(): void }[]): Record<string, Variable> {
  const out: Record<string, Variable> = Object.create(null)
  const mappings = new Map<string, ReturnType<BpfMap['mmap']> | undefined>()
  for (const spec of object.variables.values()) {
    const map = maps[spec.section]
    if (!mappings.has(spec.section)) {
      let mapped
      if ((map.info().flags & kernel.flags.BPF_F_MMAPABLE) !== 0) {
        mapped = map.mmap({ writable: !spec.readonly })
        owned.push(mapped)
      }
      mappings.set(spec.section, mapped)
    }
    out[spec.name] = new Variable({
      name: spec.name, section: spec.section, offset: spec.offset, readonly: spec.readonly, map,
      mapped: mappings.get(spec.section), codec: codecFromBtf(object.btf!, spec.typeId),
    })
  }
  return out
}
