// From a read object to kernel objects, in libbpf's order: find the token,
// load the object's BTF (fixed up, and sanitised to what this kernel
// accepts), create or reuse the maps and fill the data maps, relocate CO-RE
// against the target BTF, link and load each program with its references
// resolved, fill prog_array and map-in-map slots, pin, and map the globals.
// Everything made is closed again if any step fails.
import type { BtfReader } from '../btf/reader.js'
import { relocateCore, type CoreCandidateCache, type CoreResult } from '../btf/core.js'
import { BpfMap } from '../map/map.js'
import type { MapSpec } from '../map/spec.js'
import { BpfProgram } from '../prog/program.js'
import type { ProgramPolicy, ProgramSpec } from '../prog/spec.js'
import type { TokenLike } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { ElfError } from './elf.js'
import { KernelSymbols } from './externs.js'
import { openKernelBtf } from './kernel-btf.js'
import { asElfError, type ParsedObject } from './object.js'
import { findToken } from './token-path.js'
import { Collection, closeAll } from './collection.js'
import { loadObjectBtf, probeKernel, type Loading } from './loading.js'
import { PIN_BY_NAME, fillDataMaps, fillSlots, mapVariables, openMap, pinPathOf } from './load-maps.js'
import { explainRefusal, programForLoad, type FreplaceTarget } from './load-programs.js'
import type { LinkedProgram } from './linker.js'

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
  /**
   * Checks every program to be loaded (its ProgramSpec: type, attach target,
   * struct_ops members) before anything is made: a refusal (PolicyError)
   * leaves no map, BTF or program behind. A `Policy` with capability sets.
   */
  policy?: ProgramPolicy
  /**
   * The program each freplace program replaces a global function of, by
   * program name (libbpf's bpf_program__set_attach_target): `function`
   * defaults to the one the section names (SEC("freplace/decide")).
   */
  attachTargets?: Record<string, FreplaceTarget>
}

const loadKeys = ['token', 'kernelBtf', 'mapReplacements', 'pinPath', 'programs', 'logLevel', 'policy', 'attachTargets'] as const

/** Checks attachTargets against the programs being loaded: only freplace programs take one, and each needs one. */
function freplaceTargets(object: ParsedObject, selected: readonly string[], given: unknown): Map<string, FreplaceTarget> {
  if (given !== undefined && (given === null || typeof given !== 'object')) throw new TypeError(`CollectionSpec.load: attachTargets must be an object of targets by program name, got ${describeValue(given)}`)
  const out = new Map<string, FreplaceTarget>()
  for (const [name, t] of Object.entries((given ?? {}) as Record<string, unknown>)) {
    const p = object.programs.get(name)
    if (!p || !selected.includes(name)) throw new TypeError(`CollectionSpec.load: attachTargets names '${name}', which is not a program being loaded (${selected.join(', ')})`)
    if (p.convention.type !== 'ext') throw new TypeError(`CollectionSpec.load: attachTargets.${name}: only freplace programs take a target program; '${name}' is ${p.convention.type}`)
    if (t === null || typeof t !== 'object' || !('program' in t)) throw new TypeError(`CollectionSpec.load: attachTargets.${name} must be { program, function? }, got ${describeValue(t)}`)
    checkOptions(`CollectionSpec.load: attachTargets.${name}`, t, ['program', 'function'])
    out.set(name, t as FreplaceTarget)
  }
  for (const name of selected) {
    const p = object.programs.get(name)!
    if (p.convention.type === 'ext' && !out.has(name)) throw new TypeError(`CollectionSpec.load: '${name}' is a freplace program: give the program it replaces a function of in attachTargets.${name}`)
  }
  return out
}

/**
 * `programSpecs` are read only when a policy or a token's grant checks them
 * (each is made on first use); `structOps` names the struct_ops members
 * each program fills.
 */
export async function loadCollection(object: ParsedObject, mapSpecs: Readonly<Record<string, MapSpec>>, options: CollectionLoadOptions,
  programSpecs: Readonly<Record<string, ProgramSpec>>, structOps: ReadonlyMap<string, ProgramSpec['structOps']>): Promise<Collection> {
  checkOptions('CollectionSpec.load', options, loadKeys)
  const selected = selectPrograms(object, options.programs)
  const targets = freplaceTargets(object, selected, options.attachTargets)
  checkPolicy(options.policy, selected, programSpecs)
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
  // A delegated token may carry its grant's capabilities: checked, as the policy option is, before anything is made.
  try {
    for (const name of selected) (token?.assertProgram as ((p: ProgramSpec) => void) | undefined)?.call(token, programSpecs[name])
  } catch (e) {
    found.close()
    throw e
  }
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

    const { code, core, coreTargets } = relocateSections(object, selected, options.kernelBtf)
    const programs: Record<string, BpfProgram> = Object.create(null)
    // This kernel's BTF is read only when something needs it (externs, attach targets), as libbpf.
    running = new KernelSymbols(() => (options.kernelBtf === undefined && coreTargets ? coreTargets : openKernelBtf()))
    const linked = selected.map((name) => linkForLoad(object, name, code, core))
    const specs = selected.map((name, i) => programForLoad(ctx, name, linked[i], maps, running!, options.logLevel, structOps.get(name), targets.get(name)))
    let loaded: BpfProgram[]
    try {
      // In one worker round trip (libbpf loads them one after the other on its own thread).
      loaded = await BpfProgram.loadAll(specs)
    } catch (e) {
      const at = (e as { index?: number }).index
      throw at === undefined ? e : explainRefusal(e, selected[at], linked[at], core)
    }
    loaded.forEach((p, i) => {
      owned.push(p)
      programs[selected[i]] = p
    })
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

// A program none of whose sections CO-RE patched links as its spec did: that
// link is reused, its instructions copied (loading writes fds into them).
function linkForLoad(object: ParsedObject, name: string, code: ReadonlyMap<number, Uint8Array>, core: ReadonlyMap<number, unknown>): LinkedProgram {
  const section = object.programs.get(name)!.fn.section.name
  const pristine = asElfError(section, () => object.link(name))
  if (pristine.layout.some((l) => core.has(l.fn.section.index))) return asElfError(section, () => object.link(name, code))
  return { ...pristine, insns: pristine.insns.slice() }
}

// CO-RE patches each section's instructions once, before linking, and only
// the functions of the programs being loaded (as libbpf does); one candidate
// cache serves the whole object.
function relocateSections(object: ParsedObject, selected: readonly string[], kernelBtf: CollectionLoadOptions['kernelBtf']) {
  const code = object.code()
  const core = new Map<number, CoreResult[]>()
  if (!object.ext || object.ext.coreRelos.size === 0) return { code, core, coreTargets: undefined }
  const coreTargets = openKernelBtf(kernelBtf)
  const cache: CoreCandidateCache = new Map()
  const used = selected.flatMap((name) => object.link(name).layout.map((l) => l.fn))
  for (const [section, relos] of object.ext.coreRelos) {
    const s = object.elf.section(section)
    if (!s || !code.has(s.index)) throw new ElfError('CO-RE relocations for a section that holds no code', { section })
    const include = (off: number) => used.some((f) => f.section === s && off / 8 >= f.start && off / 8 < f.start + f.count)
    core.set(s.index, relocateCore(section, code.get(s.index)!, relos, object.btf!, coreTargets, { cache, include }))
  }
  return { code, core, coreTargets }
}

// Each program as its spec shows it: the instructions before CO-RE (which
// changes field offsets, never which helpers, kfuncs or maps are used).
function checkPolicy(policy: ProgramPolicy | undefined, selected: readonly string[], specs: Readonly<Record<string, ProgramSpec>>): void {
  if (policy === undefined) return
  if (policy === null || typeof policy !== 'object' || typeof policy.assertProgram !== 'function') {
    throw new TypeError(`CollectionSpec.load: policy must be a Policy (an object with assertProgram(spec)), got ${describeValue(policy)}`)
  }
  for (const name of selected) policy.assertProgram(specs[name])
}

function selectPrograms(object: ParsedObject, names: readonly string[] | undefined): string[] {
  if (names === undefined) return [...object.programs].filter(([, p]) => p.convention.autoload).map(([n]) => n)
  if (!Array.isArray(names)) throw new TypeError(`CollectionSpec.load: programs must be an array of program names, got ${describeValue(names)}`)
  for (const n of names) {
    if (!object.programs.has(n)) throw new TypeError(`CollectionSpec.load: no program named ${describeValue(n)} in ${object.name} (${[...object.programs.keys()].join(', ')})`)
  }
  return [...new Set(names)]
}

