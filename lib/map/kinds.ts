// How map types differ for user space: which hold one value per CPU, which
// store fds and answer lookups with IDs, which have no keys, and which never
// lose an entry (so a walk over them cannot be restarted by a deletion);
// and the flags maps and their elements take, by name or number.
import { enumValue, kernel, type UpdateFlagName } from '../sys/index.js'
import { flagTable, flagsValue, type FlagTable, type FlagsInput } from '../sys/flags.js'

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

export const mapFlags: FlagTable<MapFlagName> = flagTable(mapFlagNames, kernel.flags)

/** map_flags for a number or a list of names and numbers. Errors: TypeError for an unknown name, RangeError beyond u32. */
export function mapFlagsValue(flags: FlagsInput<MapFlagName> | undefined): number {
  return flagsValue(mapFlags, 'map flag', flags)
}

/** Element update flags: 'any' (the default), 'noexist', 'exist', and 'lock' for values with a bpf_spin_lock. */
export type UpdateFlag = UpdateFlagName | 'lock' | number

export function updateFlagsValue(flags: UpdateFlag | undefined): number {
  if (flags === undefined) return 0
  if (flags === 'lock') return kernel.flags.BPF_F_LOCK
  return enumValue(kernel.updateFlags, 'update flag', flags)
}
