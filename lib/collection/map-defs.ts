// BTF-defined maps: the `.maps` section's variables, each a struct whose
// members encode the map's attributes the way libbpf's bpf_helpers.h macros
// write them: `__uint(name, N)` is `int (*name)[N]` (a pointer to an array of
// N), `__type(name, T)` is `T *name`, and `__array(values, struct inner)` is
// an array of pointers to the inner map's own definition. This reads those
// definitions; turning them into MapSpecs is the CollectionSpec's job.
import type { BtfReader, BtfTypeRecord } from '../btf/reader.js'
import { ElfError } from './elf.js'

export interface MapDefinition {
  name: string
  type: number
  keySize: number | undefined
  valueSize: number | undefined
  /** BTF types of key and value in the object's BTF, when given with __type. */
  keyTypeId: number | undefined
  valueTypeId: number | undefined
  maxEntries: number | undefined
  flags: number
  numaNode: number | undefined
  mapExtra: number | undefined
  /** LIBBPF_PIN_BY_NAME is 1; 0 for none. */
  pinning: number
  /** The inner map of a map-in-map, from __array(values, ...). */
  inner: MapDefinition | undefined
  /** prog_array / map-in-map slots with __array: a BTF pointer type per slot, set by relocations. */
  slots: number
}

const numberMembers = ['type', 'key_size', 'value_size', 'max_entries', 'map_flags', 'numa_node', 'map_extra', 'pinning'] as const

/** The definitions in `.maps`, in section order. Errors: ElfError naming the map and member. */
export function readMapDefinitions(btf: BtfReader): MapDefinition[] {
  const secId = btf.find('.maps', 'DATASEC')
  if (secId === undefined) return []
  const sec = btf.type(secId)
  const out: MapDefinition[] = []
  for (let i = 0; i < sec.vlen; i++) {
    const v = btf.type(sec.extra[3 * i])
    if (v.kind !== 'VAR') throw new ElfError(`.maps entry ${i} is a BTF ${v.kind}, not a variable`, { section: '.maps' })
    out.push(definition(btf, v.name, btf.resolve(v.sizeOrType), 0))
  }
  return out
}

function definition(btf: BtfReader, name: string, t: BtfTypeRecord, depth: number): MapDefinition {
  if (t.kind !== 'STRUCT') throw new ElfError(`map '${name}' is defined as a BTF ${t.kind}, not a struct of __uint/__type members`, { section: '.maps' })
  const types: { key?: number; value?: number } = {}
  let inner: MapDefinition | undefined
  let slots = 0
  const numbers: Partial<Record<(typeof numberMembers)[number], number>> = {}
  for (const m of btf.members(t)) {
    const where = `map '${name}' member '${m.name}'`
    if ((numberMembers as readonly string[]).includes(m.name)) {
      numbers[m.name as (typeof numberMembers)[number]] = uintMember(btf, m.type, where)
    } else if (m.name === 'key' || m.name === 'value') {
      const p = btf.resolve(m.type)
      if (p.kind !== 'PTR') throw new ElfError(`${where} must be __type(${m.name}, T): a pointer, got a BTF ${p.kind}`, { section: '.maps' })
      types[m.name] = p.sizeOrType
    } else if (m.name === 'values') {
      // __array(values, struct inner): an array (usually of 0) of pointers to the inner definition, or to a program type.
      const a = btf.resolve(m.type)
      if (a.kind !== 'ARRAY') throw new ElfError(`${where} must be __array(values, ...), got a BTF ${a.kind}`, { section: '.maps' })
      const arr = btf.array(a)
      slots = arr.nelems
      const p = btf.resolve(arr.type)
      if (p.kind !== 'PTR') throw new ElfError(`${where}: __array elements must be pointers, got a BTF ${p.kind}`, { section: '.maps' })
      const target = btf.resolve(p.sizeOrType)
      if (target.kind === 'STRUCT') {
        if (depth > 0) throw new ElfError(`${where}: an inner map cannot itself hold maps`, { section: '.maps' })
        inner = definition(btf, `${name}.inner`, target, depth + 1)
      } else if (target.kind !== 'FUNC_PROTO') {
        throw new ElfError(`${where}: __array of ${target.kind}, expected an inner map struct or a program prototype`, { section: '.maps' })
      }
    } else {
      throw new ElfError(`${where} is not a map attribute libbpf knows (${[...numberMembers, 'key', 'value', 'values'].join(', ')})`, { section: '.maps' })
    }
  }
  if (numbers.type === undefined) throw new ElfError(`map '${name}' has no type (__uint(type, BPF_MAP_TYPE_...))`, { section: '.maps' })
  // A size given both ways must agree, as libbpf insists.
  const size = (member: 'key_size' | 'value_size', typeId: number | undefined): number | undefined => {
    const fromType = typeId === undefined ? undefined : btf.sizeof(typeId)
    const given = numbers[member]
    if (given !== undefined && fromType !== undefined && given !== fromType) {
      throw new ElfError(`map '${name}': ${member} ${given} disagrees with the size of its __type (${fromType})`, { section: '.maps' })
    }
    return given ?? fromType
  }
  const pinning = numbers.pinning ?? 0
  if (pinning > 1) throw new ElfError(`map '${name}': pinning ${pinning} is unknown (0 none, 1 LIBBPF_PIN_BY_NAME)`, { section: '.maps' })
  return {
    name,
    type: numbers.type,
    keySize: size('key_size', types.key),
    valueSize: size('value_size', types.value),
    keyTypeId: types.key,
    valueTypeId: types.value,
    maxEntries: numbers.max_entries,
    flags: numbers.map_flags ?? 0,
    numaNode: numbers.numa_node,
    mapExtra: numbers.map_extra,
    pinning,
    inner,
    slots,
  }
}

// __uint(name, N) is `int (*name)[N]`: N is the array's element count.
function uintMember(btf: BtfReader, id: number, where: string): number {
  const p = btf.resolve(id)
  const a = p.kind === 'PTR' ? btf.resolve(p.sizeOrType) : p
  if (p.kind !== 'PTR' || a.kind !== 'ARRAY') throw new ElfError(`${where} must be __uint(name, N): a pointer to an array, got a BTF ${p.kind}`, { section: '.maps' })
  return btf.array(a).nelems
}
