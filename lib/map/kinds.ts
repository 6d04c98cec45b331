// How map types differ for user space: which hold one value per CPU, which
// store fds and answer lookups with IDs, which have no keys, and which never
// lose an entry (so a walk over them cannot be restarted by a deletion).
import { kernel } from '../sys/index.js'

const t = kernel.mapTypes

export type PerCpuMapType = 'percpu_hash' | 'percpu_array' | 'lru_percpu_hash' | 'percpu_cgroup_storage'
export type FdMapType = 'prog_array' | 'perf_event_array' | 'cgroup_array' | 'array_of_maps' | 'hash_of_maps'
export type KeylessMapType = 'queue' | 'stack' | 'bloom_filter' | 'ringbuf' | 'user_ringbuf'

const perCpu = new Set<number>([t.percpu_hash, t.percpu_array, t.lru_percpu_hash, t.percpu_cgroup_storage])
const fdValued = new Set<number>([t.prog_array, t.perf_event_array, t.cgroup_array, t.array_of_maps, t.hash_of_maps])
const keyless = new Set<number>([t.queue, t.stack, t.bloom_filter, t.ringbuf, t.user_ringbuf])
const arrayLike = new Set<number>([t.array, t.percpu_array, t.prog_array, t.perf_event_array, t.cgroup_array, t.array_of_maps])
const ofMaps = new Set<number>([t.array_of_maps, t.hash_of_maps])

export const isPerCpu = (type: number): boolean => perCpu.has(type)
/** Update takes an fd (u32); a lookup from user space answers the object's ID. */
export const isFdValued = (type: number): boolean => fdValued.has(type)
export const isKeyless = (type: number): boolean => keyless.has(type)
/** Every index always exists: a walk is never restarted by a deletion. */
export const isArrayLike = (type: number): boolean => arrayLike.has(type)
export const isRingbuf = (type: number): boolean => type === t.ringbuf || type === t.user_ringbuf
export const isMapOfMaps = (type: number): boolean => ofMaps.has(type)

/** Map creation flags by their kernel names without the BPF_F_ prefix; the values come from kernel BTF. */
const mapFlagNames = [
  'no_prealloc', 'no_common_lru', 'numa_node', 'rdonly', 'wronly', 'stack_build_id', 'zero_seed',
  'rdonly_prog', 'wronly_prog', 'clone', 'mmapable', 'preserve_elems', 'inner_map', 'link', 'path_fd',
  'vtype_btf_obj_fd', 'token_fd', 'segv_on_fault', 'no_user_conv',
] as const
export type MapFlagName = (typeof mapFlagNames)[number]

export const mapFlags: Readonly<Partial<Record<MapFlagName, number>>> = Object.fromEntries(
  mapFlagNames
    .map((n) => [n, (kernel.flags as Record<string, number>)[`BPF_F_${n.toUpperCase()}`]] as const)
    .filter(([, v]) => v !== undefined),
)

export function mapFlagsValue(flags: number | readonly (MapFlagName | number)[] | undefined): number {
  if (flags === undefined) return 0
  if (typeof flags === 'number') {
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new RangeError(`flags must be a u32, got ${flags}`)
    return flags
  }
  if (!Array.isArray(flags)) throw new TypeError('flags must be a number or a list of flag names')
  let v = 0
  for (const f of flags as readonly (MapFlagName | number)[]) {
    if (typeof f === 'number') v |= f
    else if (mapFlags[f] !== undefined) v |= mapFlags[f]
    else throw new TypeError(`unknown map flag '${String(f)}' (known: ${Object.keys(mapFlags).join(', ')})`)
  }
  return v >>> 0
}
