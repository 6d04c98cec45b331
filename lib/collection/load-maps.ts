// The maps of one load: each one replaced, reused from its pin or created
// (with the object's BTF types when the kernel takes them), the data maps
// filled and frozen, prog_array and map-in-map slots filled, and the
// globals mapped as live variables.
import type { BtfReader } from '../btf/reader.js'
import { codecFromBtf } from '../map/btf-codec.js'
import { createMapFd } from '../map/create.js'
import { BpfMap } from '../map/map.js'
import { isMapOfMaps } from '../map/kinds.js'
import { MapSpec } from '../map/spec.js'
import type { BpfProgram } from '../prog/program.js'
import { Fd, bpfObjectKind, kernel, mapInfoByFd, native, type MapInfo } from '../sys/index.js'
import { ElfError, STT } from './elf.js'
import { kconfigBytes } from './externs.js'
import type { ObjectMap, ParsedObject } from './object.js'
import { Variable } from './collection.js'
import type { Loading } from './loading.js'

/** LIBBPF_PIN_BY_NAME. */
export const PIN_BY_NAME = 1

// A map of the object: a replacement, a pinned map to reuse, or a new one.
export function openMap({ object, token, btf, has }: Loading, name: string, spec: MapSpec, replacement: BpfMap | undefined, pinPath: string | undefined, fresh: Set<string>): BpfMap {
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
  return BpfMap.fromCreated(fd, codecs)
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
export function pinPathOf(dir: string, name: string): string {
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
export function fillDataMaps(object: ParsedObject, maps: Record<string, BpfMap>, fresh: Set<string>): void {
  const key = new Uint8Array(4)
  const fill = (name: string, bytes: Uint8Array) => {
    if (!fresh.has(name)) return
    maps[name].update(key, bytes)
    if (name.startsWith('.rodata') || name === '.kconfig') maps[name].freeze()
  }
  for (const [section, bytes] of object.data) fill(section, bytes)
  if (object.kconfigSize > 0) fill('.kconfig', kconfigBytes(object))
}

// Static initialisation of prog_array and map-in-map slots: relocations in
// .maps point each slot of a `values` array at a program or a map.
export function fillSlots(object: ParsedObject, maps: Record<string, BpfMap>, programs: Record<string, BpfProgram>, fresh: ReadonlySet<string>): void {
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
export function mapVariables(object: ParsedObject, maps: Record<string, BpfMap>, owned: { close(): void }[]): Record<string, Variable> {
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
