// MapSpec: everything BPF_MAP_CREATE needs, checked once. BpfMap.create
// takes options or a spec; the ELF loader (lib/collection) makes the same
// specs from a map's BTF definition. A spec is plain data: it owns no fd, and
// holds only what the caller handed it (an inner map, a BTF object, a token).
import { enumName, enumValue, findEnumName, kernel, type MapTypeName, type TokenLike } from '../sys/index.js'
import { BpfObject } from '../sys/object.js'
import { checkObjectName, checkOptions, describeValue } from '../sys/options.js'
import type { FlagsInput } from '../sys/flags.js'
import { Btf } from '../btf/btf.js'
import { codecFor, frozenTypeDesc, type Decoded, type TypeDesc } from './codec.js'
import { btfForMap } from './btf.js'
import { isFdValued, isKeyless, isMapOfMaps, isRingbuf, mapFlagsValue, type FdMapType, type MapFlagName, type PerCpuMapType } from './kinds.js'

/** The shape of an inner map for array_of_maps / hash_of_maps. */
export interface InnerMapTemplate {
  type: MapTypeName | number
  keySize: number
  valueSize: number
  maxEntries: number
  flags?: FlagsInput<MapFlagName>
}

/** BTF key and value types given explicitly. */
export interface MapBtfRef {
  btf: Btf
  keyTypeId: number
  valueTypeId: number
}

export interface MapCreateOptions {
  type: MapTypeName | number
  /** Key size in bytes; implied by `key` when that is given. Keyless maps (queue, stack, bloom filter, ring buffer) take 0. */
  keySize?: number
  valueSize?: number
  /** Key type: the map then takes and returns decoded keys. */
  key?: TypeDesc
  value?: TypeDesc
  maxEntries: number
  /** Up to 15 bytes, shown by bpftool. */
  name?: string
  flags?: FlagsInput<MapFlagName>
  /** NUMA node for the map's memory (sets BPF_F_NUMA_NODE). */
  numaNode?: number
  /** Inner map for array_of_maps and hash_of_maps: an existing map, a template or a spec. */
  innerMap?: BpfObject | InnerMapTemplate | MapSpec
  /** map_extra: bloom filter hash count (low 4 bits), arena address. */
  mapExtra?: number | bigint
  /**
   * BTF key and value types, so that bpftool prints typed dumps: `true` to
   * describe `key` and `value` (BTF_LOAD, CAP_BPF or a token delegating
   * btf_load), or an explicit BTF object and type ids.
   */
  btf?: true | MapBtfRef
  /** Token for a delegated create; null for none even when a default is set. */
  token?: TokenLike | null
}

/** What MapSpec.from accepts: the options of BpfMap.create. */
export type MapSpecOptions = MapCreateOptions

type KeyOf<O> = O extends { key: infer D extends TypeDesc } ? Decoded<D> : Uint8Array
type ElemOf<O> = O extends { value: infer D extends TypeDesc } ? Decoded<D> : Uint8Array
/** Per-CPU maps read one value per possible CPU; fd-valued maps answer IDs. */
export type ValueOf<O> = O extends { type: PerCpuMapType } ? ElemOf<O>[]
  : O extends { type: FdMapType } ? number
  : ElemOf<O>
export type { KeyOf, ElemOf }

const createKeys = [
  'type', 'keySize', 'valueSize', 'key', 'value', 'maxEntries', 'name', 'flags', 'numaNode',
  'innerMap', 'mapExtra', 'btf', 'token',
] as const
const templateKeys = ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'] as const

/** A u32 option, or a RangeError naming it. */
export function u32Option(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${describeValue(v)}`)
  }
  return v
}

// BTF made from the key and value descriptions (btf: true): plain bytes,
// loaded when the map is created.
const typedBtfs = new WeakMap<MapSpec, { bytes: Uint8Array; keyTypeId: number; valueTypeId: number }>()

/**
 * A checked description of a map. Field names are those of the create
 * options, so `MapSpec.from({ ...spec, maxEntries: 64 })` derives a new one.
 * Frozen; `key` and `value` are frozen copies of the descriptions given.
 */
export class MapSpec<O extends MapCreateOptions = MapCreateOptions> {
  /** The map type by kernel name ('hash'), or its number when this kernel's BTF has no name for it. */
  readonly type: MapTypeName | number
  readonly keySize: number
  readonly valueSize: number
  readonly maxEntries: number
  /** map_flags, BPF_F_NUMA_NODE included when numaNode is set. */
  readonly flags: number
  readonly name: string | undefined
  readonly numaNode: number | undefined
  readonly key: TypeDesc | undefined
  readonly value: TypeDesc | undefined
  readonly innerMap: BpfObject | MapSpec | undefined
  readonly mapExtra: number | bigint | undefined
  readonly btf: true | MapBtfRef | undefined
  readonly token: TokenLike | null | undefined
  /** Type-level only (never set): the options the spec came from, so BpfMap.create(spec) types its keys and values. */
  declare readonly __options?: O

  private constructor(o: MapCreateOptions) {
    checkOptions('BpfMap.create', o, createKeys)
    checkObjectName('BpfMap.create', o.name)
    const typeId = enumValue(kernel.mapTypes, 'map type', o.type)
    // The kernel name when this kernel's BTF has one, else the number given.
    this.type = (findEnumName(kernel.mapTypes, typeId) as MapTypeName | undefined) ?? typeId
    this.key = o.key === undefined ? undefined : frozenTypeDesc(o.key, 'key')
    this.value = o.value === undefined ? undefined : frozenTypeDesc(o.value, 'value')
    this.keySize = sideSize('key', o.keySize, this.key, isKeyless(typeId) ? 0 : undefined)
    this.valueSize = sideSize('value', o.valueSize, this.value, isFdValued(typeId) ? 4 : isRingbuf(typeId) ? 0 : undefined)
    this.maxEntries = ringSize(typeId, u32Option('maxEntries', o.maxEntries))
    this.numaNode = o.numaNode === undefined ? undefined : u32Option('numaNode', o.numaNode)
    this.flags = (mapFlagsValue(o.flags) | (this.numaNode === undefined ? 0 : kernel.flags.BPF_F_NUMA_NODE)) >>> 0
    this.name = o.name
    this.mapExtra = mapExtraOption(o.mapExtra)
    this.innerMap = innerMapOption(typeId, o.innerMap, o.token)
    this.btf = btfOption(o.btf)
    this.token = o.token
    if (this.btf === true) typedBtfs.set(this, typedBtf(typeId, this.key, this.value))
    Object.freeze(this)
  }

  /**
   * Checks `options` once: a TypeError or RangeError names what is wrong
   * (unknown option, type, flag; sizes that disagree with the key and value
   * types; a malformed type description). A MapSpec is returned as is.
   */
  static from<O extends MapCreateOptions>(spec: MapSpec<O>): MapSpec<O>
  static from<const O extends MapCreateOptions>(options: O): MapSpec<O>
  static from(options: MapCreateOptions | MapSpec): MapSpec {
    if (options instanceof MapSpec) return options
    if (options === null || typeof options !== 'object') throw new TypeError('BpfMap.create: options must be an object with at least type and maxEntries')
    return new MapSpec(options)
  }

  /** The map type's number. */
  get typeId(): number {
    return enumValue(kernel.mapTypes, 'map type', this.type)
  }

  /** The BTF bytes made for `btf: true`: key and value types from their descriptions. */
  get typedBtf(): { bytes: Uint8Array; keyTypeId: number; valueTypeId: number } | undefined {
    return typedBtfs.get(this)
  }
}

function sideSize(what: 'key' | 'value', size: number | undefined, desc: TypeDesc | undefined, implied: number | undefined): number {
  if (desc !== undefined) {
    const typeSize = codecFor(desc).size
    if (size !== undefined && size !== typeSize) throw new RangeError(`${what} type is ${typeSize} bytes but the map's ${what} size is ${String(size)}`)
    return typeSize
  }
  if (size === undefined) {
    if (implied !== undefined) return implied
    throw new TypeError(`BpfMap.create: give ${what}Size or ${what}`)
  }
  return u32Option(`${what}Size`, size)
}

// Ring buffers are sized in bytes: a power of two and a multiple of the page
// size, or the kernel answers a bare EINVAL.
function ringSize(typeId: number, maxEntries: number): number {
  if (isRingbuf(typeId) && (maxEntries < 4096 || (maxEntries & (maxEntries - 1)) !== 0)) {
    throw new RangeError(`BpfMap.create: a ring buffer's maxEntries is its size in bytes, a power of two and a multiple of the page size, got ${maxEntries}`)
  }
  return maxEntries
}

function mapExtraOption(v: unknown): number | bigint | undefined {
  if (v === undefined) return undefined
  if (typeof v === 'bigint' ? v >= 0n && v <= 0xffffffffffffffffn : Number.isSafeInteger(v) && (v as number) >= 0) return v as number | bigint
  throw new RangeError(`BpfMap.create: mapExtra must be a u64 (a non-negative integer or bigint), got ${describeValue(v)}`)
}

function innerMapOption(typeId: number, inner: unknown, token: TokenLike | null | undefined): BpfObject | MapSpec | undefined {
  const name = enumName(kernel.mapTypes, typeId)
  if (inner === undefined) {
    if (isMapOfMaps(typeId)) throw new TypeError(`BpfMap.create: ${name} needs innerMap (a BpfMap, a MapSpec or a template { type, keySize, valueSize, maxEntries })`)
    return undefined
  }
  if (!isMapOfMaps(typeId)) throw new TypeError(`BpfMap.create: innerMap is for array_of_maps and hash_of_maps, not ${name}`)
  if (inner instanceof MapSpec) return inner
  // A map the caller owns: referenced, its fd read when the outer map is made.
  if (inner instanceof BpfObject) return inner
  if (inner === null || typeof inner !== 'object') throw new TypeError('innerMap must be a BpfMap or a template { type, keySize, valueSize, maxEntries }')
  checkOptions('innerMap', inner, templateKeys)
  // The template's map is made with the outer map's token, and closed once the outer map holds it.
  return MapSpec.from({ ...(inner as InnerMapTemplate), token })
}

function btfOption(btf: unknown): true | MapBtfRef | undefined {
  if (btf === undefined || btf === true) return btf
  const b = btf as MapBtfRef | null
  if (b === null || typeof b !== 'object' || !(b.btf instanceof Btf) || !Number.isInteger(b.keyTypeId) || !Number.isInteger(b.valueTypeId)) {
    throw new TypeError('BpfMap.create: btf must be true or { btf: Btf, keyTypeId, valueTypeId }')
  }
  return Object.freeze({ btf: b.btf, keyTypeId: b.keyTypeId, valueTypeId: b.valueTypeId })
}

function typedBtf(typeId: number, key: TypeDesc | undefined, value: TypeDesc | undefined) {
  const keyless = isKeyless(typeId)
  if (value === undefined || (!keyless && key === undefined)) {
    throw new TypeError('BpfMap.create: btf: true needs key and value type descriptions')
  }
  const { bytes, keyTypeId, valueTypeId } = btfForMap(keyless ? null : key!, value)
  return { bytes, keyTypeId, valueTypeId }
}
