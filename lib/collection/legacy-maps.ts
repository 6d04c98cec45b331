// Legacy map definitions: `struct bpf_map_def SEC("maps") name = { ... }`, the
// form before BTF-defined maps. Each symbol in the 'maps' section is one
// definition of u32 fields in this order: type, key_size, value_size,
// max_entries (all four required), then map_flags, inner_map_idx and
// numa_node when the definition is that long (libbpf's struct has the first
// five, iproute2's and the kernel samples' bpf_load.c all seven). As libbpf
// did, bytes past the known fields are accepted only when they are zero.
// libbpf 1.0 dropped this form; objects built for tc and older loaders still
// use it.
import { ElfError, STT, type ElfFile } from './elf.js'
import type { MapDefinition } from './map-defs.js'

export const LEGACY_MAPS_SECTION = 'maps'

const FIELDS = ['type', 'key_size', 'value_size', 'max_entries', 'map_flags', 'inner_map_idx', 'numa_node'] as const
const REQUIRED_FIELDS = 4
const BPF_F_NUMA_NODE = 1 << 2
// Map types that hold maps: their inner_map_idx names the definition of the inner map.
const MAP_IN_MAP_TYPES = new Set([12 /* array_of_maps */, 13 /* hash_of_maps */])

/**
 * The definitions in the 'maps' section, in section order (none when there
 * is no such section). Errors: ElfError naming the map and its offset in the
 * section for a definition whose size is not a multiple of 4, shorter than
 * the four required fields, running past the section, with non-zero bytes
 * past the known fields, or with an inner_map_idx that names no other map.
 */
export function readLegacyMaps(elf: ElfFile): MapDefinition[] {
  const sec = elf.section(LEGACY_MAPS_SECTION)
  if (sec === undefined) return []
  const data = elf.data(sec)
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const symbols = elf.symbols
    .filter((s) => s.shndx === sec.index && s.type !== STT.SECTION && s.name !== '')
    .sort((a, b) => a.value - b.value)
  const raw = symbols.map((sym) => {
    const where = { section: LEGACY_MAPS_SECTION, offset: sym.value }
    const what = `legacy map '${sym.name}'`
    if (sym.size % 4 !== 0) throw new ElfError(`${what}: definition of ${sym.size} bytes is not a whole number of u32 fields`, where)
    if (sym.size < 4 * REQUIRED_FIELDS) throw new ElfError(`${what}: definition of ${sym.size} bytes is shorter than type, key_size, value_size and max_entries (16 bytes)`, where)
    if (sym.value > data.length || sym.size > data.length - sym.value) {
      throw new ElfError(`${what}: definition of ${sym.size} bytes at ${sym.value} runs past the section's ${data.length} bytes`, where)
    }
    const fields: Partial<Record<(typeof FIELDS)[number], number>> = {}
    for (let i = 0; i < sym.size / 4; i++) {
      const value = view.getUint32(sym.value + 4 * i, true)
      if (i < FIELDS.length) fields[FIELDS[i]] = value
      else if (value !== 0) throw new ElfError(`${what}: non-zero bytes at ${4 * i} past the fields bpfkit knows (${FIELDS.join(', ')})`, where)
    }
    return { name: sym.name, where, fields }
  })
  const defs: MapDefinition[] = raw.map(({ name, fields }) => ({
    name,
    type: fields.type as number,
    keySize: fields.key_size,
    valueSize: fields.value_size,
    keyTypeId: undefined,
    valueTypeId: undefined,
    maxEntries: fields.max_entries,
    flags: fields.map_flags ?? 0,
    // bpf_load.c passed numa_node only with BPF_F_NUMA_NODE; without it the field is just zero padding.
    numaNode: fields.numa_node !== undefined && ((fields.map_flags ?? 0) & BPF_F_NUMA_NODE) !== 0 ? fields.numa_node : undefined,
    mapExtra: undefined,
    pinning: 0,
    inner: undefined,
    slots: 0,
  }))
  raw.forEach(({ name, where, fields }, i) => {
    const idx = fields.inner_map_idx
    // For other types the field is ignored, as bpf_load.c did.
    if (idx === undefined || !MAP_IN_MAP_TYPES.has(defs[i].type)) return
    if (idx >= defs.length || idx === i) {
      throw new ElfError(`legacy map '${name}': inner_map_idx ${idx} names no other map (${defs.length} in the section)`, where)
    }
    defs[i] = { ...defs[i], inner: defs[idx] }
  })
  return defs
}
