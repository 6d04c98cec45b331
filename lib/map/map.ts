// BpfMap: a BPF map owned by this process, with raw (Uint8Array) and typed
// (codec) access, iteration, batches, queues and stacks, pinning and info.
import {
  Fd, bpfObjectKind, enumName, enumValue, kernel, mapInfoByFd, native,
  tokenFdFor, type MapInfo, type MapTypeName, type TokenLike, type UpdateFlagName,
} from '../sys/index.js'
import { Btf } from '../btf/btf.js'
import { btfForMap } from './btf.js'
import { codecFor, type Decoded, type TypeDesc } from './codec.js'
import { checkObjectName, checkOptions } from '../sys/options.js'
import {
  isArrayLike, isFdValued, isKeyless, isPerCpu, isRingbuf, mapFlagsValue,
  type FdMapType, type MapFlagName, type PerCpuMapType,
} from './kinds.js'
import { FdValues, PerCpuValues, Side, copyBytes, type FdRef, type ValueCodec } from './values.js'
import { walkKeys } from './walk.js'
import { BpfObject } from '../sys/object.js'
import { MappedArray } from './mmap.js'
import { RingBuffer } from './ringbuf.js'
import { batchDelete, batchLookup, batchUpdate, type BatchLookupOptions, type BatchScratch } from './batch.js'

/** The shape of an inner map for array_of_maps / hash_of_maps. */
export interface InnerMapTemplate {
  type: MapTypeName | number
  keySize: number
  valueSize: number
  maxEntries: number
  flags?: number | readonly (MapFlagName | number)[]
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
  flags?: number | readonly (MapFlagName | number)[]
  /** NUMA node for the map's memory (sets BPF_F_NUMA_NODE). */
  numaNode?: number
  /** Inner map for array_of_maps and hash_of_maps: an existing map or a template. */
  innerMap?: BpfMap<unknown, unknown> | InnerMapTemplate
  /** map_extra: bloom filter hash count (low 4 bits), arena address. */
  mapExtra?: number | bigint
  /**
   * BTF key and value types, so that bpftool prints typed dumps: `true` to
   * describe `key` and `value` (BTF_LOAD, CAP_BPF or a token delegating
   * btf_load), or an explicit BTF object and type ids.
   */
  btf?: true | { btf: Btf; keyTypeId: number; valueTypeId: number }
  /** Token for a delegated create; null for none even when a default is set. */
  token?: TokenLike | null
}

export interface MapOpenOptions {
  key?: TypeDesc
  value?: TypeDesc
}

const createKeys = [
  'type', 'keySize', 'valueSize', 'key', 'value', 'maxEntries', 'name', 'flags', 'numaNode',
  'innerMap', 'mapExtra', 'btf', 'token',
] as const

type KeyOf<O> = O extends { key: infer D extends TypeDesc } ? Decoded<D> : Uint8Array
type ElemOf<O> = O extends { value: infer D extends TypeDesc } ? Decoded<D> : Uint8Array
/** Per-CPU maps read one value per possible CPU; fd-valued maps answer IDs. */
export type ValueOf<O> = O extends { type: PerCpuMapType } ? ElemOf<O>[]
  : O extends { type: FdMapType } ? number
  : ElemOf<O>

export type UpdateFlag = UpdateFlagName | 'lock' | number

function updateFlagsValue(flags: UpdateFlag | undefined): number {
  if (flags === undefined) return 0
  if (flags === 'lock') return kernel.flags.BPF_F_LOCK
  return enumValue(kernel.updateFlags, 'update flag', flags)
}

function u32Option(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} must be an integer in 0..2^32-1, got ${String(v)}`)
  }
  return v
}

export class BpfMap<K = Uint8Array, V = Uint8Array> extends BpfObject {
  /** Kernel name of the map type, e.g. 'hash'. */
  readonly type: string
  readonly typeId: number
  readonly keySize: number
  readonly valueSize: number
  readonly maxEntries: number
  /** Bytes one lookup transfers: valueSize, or round_up(valueSize, 8) x possible CPUs for per-CPU maps. */
  readonly valueBytes: number
  readonly #key: Side
  readonly #value: Side
  readonly #values: ValueCodec
  // The native slot: key and value buffers every single-element call uses.
  readonly #slot: number
  readonly #k: Uint8Array
  readonly #kv: DataView
  readonly #v: Uint8Array
  readonly #vv: DataView
  readonly #n: Uint8Array
  // Mappings and ring buffer readers borrow the fd: closed before it is.
  readonly #borrowers = new Set<{ close(): void }>()
  #ring: RingBuffer | undefined
  // Batch lookups read into these (grown as needed) and copy the results out.
  readonly #batch: BatchScratch = { keys: new Uint8Array(0), values: new Uint8Array(0) }
  readonly #batchIn: BatchScratch = { keys: new Uint8Array(0), values: new Uint8Array(0) }

  private constructor(fd: Fd, options: MapOpenOptions) {
    super(fd)
    const meta = native.mapMeta(fd.fd)
    this.typeId = meta.type
    this.type = enumName(kernel.mapTypes, meta.type)
    this.keySize = meta.keySize
    this.valueSize = meta.valueSize
    this.maxEntries = meta.maxEntries
    this.valueBytes = meta.valueBytes
    this.#key = new Side('key', meta.keySize, options.key)
    this.#value = new Side('value', meta.valueSize, options.value)
    this.#values = isPerCpu(meta.type) ? new PerCpuValues(this.#value, native.possibleCpus())
      : isFdValued(meta.type) ? new FdValues() : this.#value
    const slot = native.mapSlotOpen(fd.fd)
    this.#slot = slot.slot
    this.#k = new Uint8Array(slot.key)
    this.#kv = new DataView(slot.key)
    this.#v = new Uint8Array(slot.value)
    this.#vv = new DataView(slot.value)
    this.#n = new Uint8Array(slot.next)
  }

  /**
   * Creates a map (BPF_MAP_CREATE). Errors: a TypeError or RangeError for bad
   * options before any syscall; BpfError EPERM without CAP_BPF or a token,
   * EINVAL for a type or flag this kernel lacks, E2BIG/ENOMEM for sizes.
   * A token must delegate map_create and the map type (Linux 6.9+).
   */
  static create<const O extends MapCreateOptions>(options: O): BpfMap<KeyOf<O>, ValueOf<O>> {
    if (options === null || typeof options !== 'object') throw new TypeError('BpfMap.create: options must be an object with at least type and maxEntries')
    checkOptions('BpfMap.create', options, createKeys)
    const o: MapCreateOptions = options
    checkObjectName('BpfMap.create', o.name)
    const mapType = enumValue(kernel.mapTypes, 'map type', o.type)
    const keySize = sizeFrom('key', o.keySize, o.key, isKeyless(mapType) ? 0 : undefined)
    const valueSize = sizeFrom('value', o.valueSize, o.value, isFdValued(mapType) ? 4 : isRingbuf(mapType) ? 0 : undefined)
    let flags = mapFlagsValue(o.flags)
    if (o.numaNode !== undefined) flags |= kernel.flags.BPF_F_NUMA_NODE
    const tokenFd = tokenFdFor(o.token, { cmd: 'map_create', mapType })
    let inner: InnerFd | undefined
    let btf: Exclude<MapCreateOptions['btf'], true>
    try {
      btf = o.btf === true ? typedBtf(o, mapType) : explicitBtf(o.btf)
      inner = innerMapFd(o.innerMap, o.token)
      const fd = native.mapCreate({
        mapType, keySize, valueSize,
        maxEntries: ringSize(mapType, u32Option('maxEntries', o.maxEntries)),
        mapFlags: flags >>> 0,
        numaNode: o.numaNode === undefined ? undefined : u32Option('numaNode', o.numaNode),
        name: o.name,
        innerMapFd: inner?.fd,
        mapExtra: o.mapExtra,
        btfFd: btf?.btf.fd.fd,
        btfKeyTypeId: btf?.keyTypeId,
        btfValueTypeId: btf?.valueTypeId,
        tokenFd,
      })
      return BpfMap.adopt(new Fd(fd, 'map'), o) as BpfMap<KeyOf<O>, ValueOf<O>>
    } finally {
      if (inner?.temporary) inner.close()
      // The map holds its own reference to the BTF it was made with.
      if (o.btf === true) btf?.btf.close()
    }
  }

  /** Opens a map pinned in bpffs (BPF_OBJ_GET). Errors: ENOENT, EPERM; a TypeError when the pin is not a map. */
  static fromPin<const O extends MapOpenOptions = {}>(path: string, options?: O): BpfMap<KeyOf<O>, ElemOf<O>> {
    options ??= {} as O
    checkOptions('BpfMap.fromPin', options, ['key', 'value'])
    const m = BpfMap.adopt(new Fd(native.objGet(path), 'map'), options, 'was pinned at ' + path)
    m.openedFromPin(path)
    return m
  }

  /** Opens a map by ID (CAP_SYS_ADMIN). Errors: ENOENT when no map has that ID. */
  static fromId<const O extends MapOpenOptions = {}>(id: number, options?: O): BpfMap<KeyOf<O>, ElemOf<O>> {
    options ??= {} as O
    checkOptions('BpfMap.fromId', options, ['key', 'value'])
    return BpfMap.adopt(new Fd(native.mapGetFdById(u32Option('id', id)), 'map'), options, `has ID ${id}`)
  }

  /** Takes ownership of an fd that refers to a map (closed with the BpfMap). */
  static fromFd<const O extends MapOpenOptions = {}>(fd: Fd, options?: O): BpfMap<KeyOf<O>, ElemOf<O>> {
    options ??= {} as O
    checkOptions('BpfMap.fromFd', options, ['key', 'value'])
    if (!(fd instanceof Fd)) throw new TypeError(`BpfMap.fromFd: fd must be an owned Fd (new Fd(number, 'map')), got ${typeof fd}`)
    return BpfMap.adopt(fd, options, `is fd ${fd.fd}`)
  }

  private static adopt(fd: Fd, options: MapOpenOptions, what?: string): BpfMap<never, never> {
    try {
      if (what && bpfObjectKind(fd.fd) !== 'map') throw new TypeError(`the object that ${what} is not a BPF map`)
      return new BpfMap(fd, { key: options.key, value: options.value })
    } catch (e) {
      fd.close()
      throw e
    }
  }

  /** The value for `key`, or undefined when there is none. Per-CPU maps give one value per CPU. */
  lookup(key: K): V | undefined {
    this.putKey(key)
    return native.mapSlotLookup(this.#slot) ? this.takeValue() : undefined
  }

  /**
   * Looks `key` up and copies the raw value bytes (valueBytes of them) into
   * `out` instead of making a new value: no allocation per call, for loops
   * that read many entries. False, and `out` untouched, when there is none.
   */
  lookupInto(key: K, out: Uint8Array): boolean {
    if (!(out instanceof Uint8Array) || out.length !== this.valueBytes) {
      throw new RangeError(`lookupInto: out must be a Uint8Array of ${this.valueBytes} bytes`)
    }
    this.putKey(key)
    if (!native.mapSlotLookup(this.#slot)) return false
    copyBytes(this.#v, 0, out, 0, this.valueBytes)
    return true
  }

  /** Same as lookup. */
  get(key: K): V | undefined {
    return this.lookup(key)
  }

  has(key: K): boolean {
    this.putKey(key)
    return native.mapSlotLookup(this.#slot)
  }

  /**
   * Creates or replaces the value for `key`. `flags`: 'any' (default),
   * 'noexist', 'exist', 'lock'. Errors: EEXIST / ENOENT for those flags,
   * E2BIG when a full map has no room, EPERM on a frozen map.
   */
  update(key: K, value: V | FdRef, flags?: UpdateFlag): void {
    this.putKey(key)
    this.#values.write(value, this.#v, this.#vv)
    // Flags 0 is the common case: one argument fewer for the native side to read.
    const f = updateFlagsValue(flags)
    if (f === 0) native.mapSlotUpdate(this.#slot)
    else native.mapSlotUpdate(this.#slot, f)
  }

  /** Same as update. */
  set(key: K, value: V | FdRef, flags?: UpdateFlag): this {
    this.update(key, value, flags)
    return this
  }

  /** Deletes `key`; false when it was not there. Array maps refuse with EINVAL. */
  delete(key: K): boolean {
    this.putKey(key)
    return native.mapSlotDelete(this.#slot)
  }

  /** Looks up and deletes in one call (hash maps: Linux 5.14+). undefined when absent. */
  lookupAndDelete(key: K): V | undefined {
    this.putKey(key)
    return native.mapSlotLookupAndDelete(this.#slot) ? this.takeValue() : undefined
  }

  /** Queue and stack: adds a value; bloom filter: adds a member. */
  push(value: V, flags?: UpdateFlag): void {
    this.requireKeyless('push')
    this.#values.write(value, this.#v, this.#vv)
    native.mapSlotUpdate(this.#slot, updateFlagsValue(flags))
  }

  /** Queue and stack: removes and returns the next value, undefined when empty. */
  pop(): V | undefined {
    this.requireKeyless('pop')
    return native.mapSlotLookupAndDelete(this.#slot) ? this.takeValue() : undefined
  }

  /** Queue and stack: the next value without removing it, undefined when empty. */
  peek(): V | undefined {
    this.requireKeyless('peek')
    return native.mapSlotLookup(this.#slot) ? this.takeValue() : undefined
  }

  /** Bloom filter: false when `value` was surely never added, true when it may have been. */
  mayContain(value: V): boolean {
    this.requireKeyless('mayContain')
    this.#values.write(value, this.#v, this.#vv)
    return native.mapSlotLookup(this.#slot)
  }

  /**
   * Every key. Robust to deletions during the walk: when the kernel restarts
   * from the first key, keys already given are skipped, never repeated.
   */
  keys(): Generator<K, void, undefined> {
    if (this.keySize === 0) throw new TypeError(`${this.type} maps have no keys`)
    return walkKeys(this.fd, this.keySize, !isArrayLike(this.typeId), (b, v) => this.#key.read(b, v) as K, this.nextKey)
  }

  /** Every [key, value]; a key deleted between the walk and its lookup is skipped. */
  *entries(): Generator<[K, V], void, undefined> {
    for (const k of this.keys()) {
      const v = this.lookup(k)
      if (v !== undefined) yield [k, v]
    }
  }

  *values(): Generator<V, void, undefined> {
    for (const [, v] of this.entries()) yield v
  }

  [Symbol.iterator](): Generator<[K, V], void, undefined> {
    return this.entries()
  }

  /**
   * All entries through BPF_MAP_LOOKUP_BATCH (Linux 5.6+), `batchSize` at a
   * time; with `delete: true`, LOOKUP_AND_DELETE_BATCH. Falls back to single
   * lookups on kernels or map types without batch support.
   */
  lookupBatch(options: BatchLookupOptions = {}): [K, V][] {
    checkOptions('lookupBatch', options, ['batchSize', 'delete'])
    const { keys, values, count } = batchLookup(this.fd, this.keySize, this.valueBytes, options, () => this.rawEntries(options.delete ?? false), this.#batch)
    const out: [K, V][] = new Array(count)
    const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength)
    const vv = new DataView(values.buffer, values.byteOffset, values.byteLength)
    for (let i = 0; i < count; i++) {
      out[i] = [this.#key.read(keys, kv, i * this.keySize) as K, this.#values.read(values, vv, i * this.valueBytes) as V]
    }
    return out
  }

  /**
   * lookupBatch without an object per entry: the keys and the values packed
   * as the kernel writes them (`count` × keySize and `count` × valueBytes
   * bytes, copies the caller keeps), for reading large maps at the kernel's
   * own pace. BPF_MAP_LOOKUP_BATCH (Linux 5.6+), single lookups where the
   * kernel or map type has no batches; errors as lookupBatch.
   */
  lookupBatchBytes(options: BatchLookupOptions = {}): { keys: Uint8Array; values: Uint8Array; count: number } {
    checkOptions('lookupBatchBytes', options, ['batchSize', 'delete'])
    const { keys, values, count } = batchLookup(this.fd, this.keySize, this.valueBytes, options, () => this.rawEntries(options.delete ?? false), this.#batch)
    return { keys: keys.slice(0, count * this.keySize), values: values.slice(0, count * this.valueBytes), count }
  }

  /**
   * updateBatch from packed bytes: `keys` holds whole keys back to back,
   * `values` as many values (valueBytes each). Returns how many were written.
   * A RangeError when the sizes do not match; BPF_MAP_UPDATE_BATCH (Linux
   * 5.6+) errors as updateBatch.
   */
  updateBatchBytes(keys: Uint8Array, values: Uint8Array, options: { flags?: UpdateFlag } = {}): number {
    checkOptions('updateBatchBytes', options, ['flags'])
    if (!(keys instanceof Uint8Array) || !(values instanceof Uint8Array)) throw new TypeError('updateBatchBytes: keys and values must be Uint8Arrays')
    const count = this.keySize === 0 ? 0 : keys.length / this.keySize
    if (!Number.isInteger(count) || values.length !== count * this.valueBytes) {
      throw new RangeError(`updateBatchBytes: keys must be a multiple of ${this.keySize} bytes and values ${this.valueBytes} bytes per key, got ${keys.length} and ${values.length}`)
    }
    return batchUpdate(this.fd, keys, values, count, updateFlagsValue(options.flags), this.keySize, this.valueBytes)
  }

  /** Writes many entries with BPF_MAP_UPDATE_BATCH (5.6+, single updates otherwise). Returns how many were written. */
  updateBatch(entries: Iterable<readonly [K, V | FdRef]>, options: { flags?: UpdateFlag } = {}): number {
    checkOptions('updateBatch', options, ['flags'])
    const list = Array.from(entries)
    const { keys, values } = this.batchInput(list.length)
    const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength)
    const vv = new DataView(values.buffer, values.byteOffset, values.byteLength)
    const key = this.#key
    const vals = this.#values
    for (let i = 0; i < list.length; i++) {
      const e = list[i]
      key.write(e[0], keys, kv, i * this.keySize)
      vals.write(e[1], values, vv, i * this.valueBytes)
    }
    return batchUpdate(this.fd, keys, values, list.length, updateFlagsValue(options.flags), this.keySize, this.valueBytes)
  }

  // Buffers for building a batch, reused from call to call (every byte of an
  // element is written, padding included), so that a batch costs no fresh
  // pages for the kernel to fault in.
  private batchInput(count: number): BatchScratch {
    const s = this.#batchIn
    if (s.keys.length < count * this.keySize) s.keys = new Uint8Array(count * this.keySize)
    if (s.values.length < count * this.valueBytes) s.values = new Uint8Array(count * this.valueBytes)
    return { keys: s.keys.subarray(0, count * this.keySize), values: s.values.subarray(0, count * this.valueBytes) }
  }

  /** Deletes many keys with BPF_MAP_DELETE_BATCH (5.6+); stops at the first missing key. Returns how many were deleted. */
  deleteBatch(keys: Iterable<K>): number {
    const list = Array.from(keys)
    const buf = this.batchInput(list.length).keys
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    list.forEach((k, i) => this.#key.write(k, buf, view, i * this.keySize))
    return batchDelete(this.fd, buf, list.length, this.keySize)
  }

  /** Makes the map read-only for user space (BPF_MAP_FREEZE, Linux 5.2+). */
  freeze(): void {
    native.mapFreeze(this.fd)
  }

  info(): MapInfo {
    return mapInfoByFd(this.fd)
  }

  get id(): number {
    return this.info().id
  }

  /**
   * Maps the values of an array created with the 'mmapable' flag (Linux
   * 5.5+): element access without syscalls. `writable` is refused (EPERM)
   * for frozen maps. Unmapped by its own close() or the map's.
   */
  mmap(options: { writable?: boolean } = {}): MappedArray<V> {
    checkOptions('mmap', options, ['writable'])
    const writable = options.writable ?? true
    const m: MappedArray<V> = new MappedArray<V>(this.fd, this.#value, this.maxEntries, writable, () => this.#borrowers.delete(m))
    this.#borrowers.add(m)
    return m
  }

  /**
   * The consumer of a ringbuf map (Linux 5.8+): `records()` is an async
   * iterator fed by the event loop. One consumer per map; closed with the map.
   */
  ringBuffer(): RingBuffer {
    if (this.#ring) return this.#ring
    const r: RingBuffer = new RingBuffer(this, () => {
      this.#borrowers.delete(r)
      this.#ring = undefined
    })
    this.#borrowers.add(r)
    this.#ring = r
    return r
  }

  /** Closes the map, and the mappings and ring buffer reader that borrow its fd. */
  override close(): void {
    for (const b of [...this.#borrowers]) b.close()
    if (!this.closed) native.mapSlotClose(this.#slot)
    super.close()
  }

  // GET_NEXT_KEY through the slot: the cursor goes into the slot's key
  // buffer just before the call (lookups in between may have used it).
  private readonly nextKey = (cur: Uint8Array | null, out: Uint8Array): boolean => {
    const n = this.keySize
    if (cur !== null) copyBytes(cur, 0, this.#k, 0, n)
    if (!native.mapSlotNextKey(this.#slot, cur === null)) return false
    copyBytes(this.#n, 0, out, 0, n)
    return true
  }

  private putKey(key: K): void {
    const n = this.keySize
    // Raw keys of the right size: copied here, without the Side dispatch.
    if (key instanceof Uint8Array && key.length === n) {
      copyBytes(key, 0, this.#k, 0, n)
    } else if (n !== 0) {
      this.#key.write(key, this.#k, this.#kv)
    }
  }

  /** The slot's value, decoded (copied when raw). */
  private takeValue(): V {
    return this.#values.read(this.#v, this.#vv) as V
  }

  private requireKeyless(op: string): void {
    if (this.keySize !== 0) throw new TypeError(`${op} is for queue, stack and bloom filter maps, not ${this.type}`)
  }

  // The single-op fallback for batches: raw keys and values.
  private *rawEntries(andDelete: boolean): Generator<[Uint8Array, Uint8Array]> {
    const out = new Uint8Array(this.valueBytes)
    for (const k of walkKeys(this.fd, this.keySize, !isArrayLike(this.typeId), (b) => b.slice())) {
      const found = andDelete ? native.mapLookupAndDeleteElem(this.fd, k, out) : native.mapLookupElem(this.fd, k, out)
      if (found) yield [k, out.slice()]
    }
  }
}

function sizeFrom(what: string, size: number | undefined, desc: TypeDesc | undefined, implied: number | undefined): number {
  if (desc !== undefined) {
    // The codec decides the size; an explicit size must agree (checked when the map opens).
    return size ?? codecSize(desc)
  }
  if (size === undefined) {
    if (implied !== undefined) return implied
    throw new TypeError(`BpfMap.create: give ${what}Size or ${what}`)
  }
  return u32Option(`${what}Size`, size)
}

function codecSize(desc: TypeDesc): number {
  return codecFor(desc).size
}

function typedBtf(o: MapCreateOptions, mapType: number) {
  const keyless = isKeyless(mapType)
  if (o.value === undefined || (!keyless && o.key === undefined)) {
    throw new TypeError('BpfMap.create: btf: true needs key and value type descriptions')
  }
  const types = btfForMap(keyless ? null : o.key!, o.value)
  return { btf: Btf.loadSync(types.bytes, { token: o.token }), keyTypeId: types.keyTypeId, valueTypeId: types.valueTypeId }
}

// Ring buffers are sized in bytes: a power of two and a multiple of the page
// size, or the kernel answers a bare EINVAL.
function ringSize(mapType: number, maxEntries: number): number {
  if (isRingbuf(mapType) && (maxEntries < 4096 || (maxEntries & (maxEntries - 1)) !== 0)) {
    throw new RangeError(`BpfMap.create: a ring buffer's maxEntries is its size in bytes, a power of two and a multiple of the page size, got ${maxEntries}`)
  }
  return maxEntries
}

function explicitBtf(btf: MapCreateOptions['btf']): Exclude<MapCreateOptions['btf'], true> {
  if (btf === undefined) return undefined
  if (btf === null || typeof btf !== 'object' || !(btf.btf instanceof Btf) || !Number.isInteger(btf.keyTypeId) || !Number.isInteger(btf.valueTypeId)) {
    throw new TypeError('BpfMap.create: btf must be true or { btf: Btf, keyTypeId, valueTypeId }')
  }
  return btf
}

interface InnerFd {
  fd: number
  temporary: boolean
  close(): void
}

function innerMapFd(inner: MapCreateOptions['innerMap'], token: TokenLike | null | undefined): InnerFd | undefined {
  if (inner === undefined) return undefined
  if (inner instanceof BpfMap) return { fd: inner.fd, temporary: false, close() {} }
  if (inner === null || typeof inner !== 'object') throw new TypeError('innerMap must be a BpfMap or a template { type, keySize, valueSize, maxEntries }')
  checkOptions('innerMap', inner, ['type', 'keySize', 'valueSize', 'maxEntries', 'flags'])
  const m = BpfMap.create({ ...inner, token })
  return { fd: m.fd, temporary: true, close: () => m.close() }
}
