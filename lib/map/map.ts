// BpfMap: a BPF map owned by this process, with raw (Uint8Array) and typed
// (codec) access through the native slot, iteration, queues and stacks,
// pinning and info. Creation is MapSpec (spec.ts) then createMapFd
// (create.ts); batches are MapBatches (batch.ts).
import { Fd, bpfObjectKind, closedError, enumName, kernel, mapInfoByFd, native, type MapInfo } from '../sys/index.js'
import { checkOptions } from '../sys/options.js'
import { BpfObject } from '../sys/object.js'
import type { Codec, TypeDesc } from './codec.js'
import { isArrayLike, isFdValued, isPerCpu, updateFlagsValue, type UpdateFlag } from './kinds.js'
import { FdValues, PerCpuValues, Side, type FdRef, type ValueCodec } from './values.js'
import { copyBytes } from './bytes.js'
import { walkKeys } from './walk.js'
import { MappedArray } from './mmap.js'
import { RingBuffer } from './ringbuf.js'
import { PerfBuffer, type PerfBufferOptions } from './perf-buffer.js'
import { MapBatches, type BatchLookupOptions, type RawBatch } from './batch.js'
import { MapSpec, u32Option, type ElemOf, type KeyOf, type MapCreateOptions, type ValueOf } from './spec.js'
import { createMapFd } from './create.js'

export type { InnerMapTemplate, MapCreateOptions, ValueOf } from './spec.js'

// The slot calls, read from the addon once. Through `native.mapSlotLookup`
// every call made two generic property loads (the CommonJS re-export's
// getter, then the addon's exports object, which V8 keeps in dictionary
// mode): ~25-50 ns per call on the per-call rows of `npm run bench`.
const { mapSlotLookup, mapSlotUpdate, mapSlotDelete, mapSlotNextKeys, mapSlotLookupAndDelete } = native
export type { UpdateFlag } from './kinds.js'

export interface MapOpenOptions {
  /** A type description, or a codec (a collection's maps use codecs derived from BTF). */
  key?: TypeDesc | Codec<unknown>
  value?: TypeDesc | Codec<unknown>
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
  // Mappings and ring buffer readers borrow the fd: closed before it is.
  readonly #borrowers = new Set<{ close(): void }>()
  #ring: RingBuffer | undefined
  readonly #batches: MapBatches<K, V>
  // Set by close: the slot calls check it first, so a closed map answers with
  // the same closed error as every other object (one field read per call).
  #closed = false

  private constructor(fd: Fd, options: MapOpenOptions) {
    super(fd)
    // The slot's dup and the sizes read from it (one info call for both).
    const slot = native.mapSlotOpen(fd.fd)
    const meta = slot.meta
    this.#slot = slot.slot
    try {
      this.#key = new Side('key', meta.keySize, options.key)
      this.#value = new Side('value', meta.valueSize, options.value)
    } catch (e) {
      native.mapSlotClose(slot.slot)
      throw e
    }
    this.typeId = meta.type
    this.type = enumName(kernel.mapTypes, meta.type)
    this.keySize = meta.keySize
    this.valueSize = meta.valueSize
    this.maxEntries = meta.maxEntries
    this.valueBytes = meta.valueBytes
    this.#values = isPerCpu(meta.type) ? new PerCpuValues(this.#value, native.possibleCpus())
      : isFdValued(meta.type) ? new FdValues() : this.#value
    this.#k = new Uint8Array(slot.key)
    this.#kv = new DataView(slot.key)
    this.#v = new Uint8Array(slot.value)
    this.#vv = new DataView(slot.value)
    const map = this
    this.#batches = new MapBatches<K, V>({
      get fd() { return map.fd },
      get slot() {
        if (map.#closed) throw closedError('map')
        return map.#slot
      },
      keySize: meta.keySize,
      valueBytes: meta.valueBytes,
      maxEntries: meta.maxEntries,
      restartable: !isArrayLike(meta.type),
      key: this.#key,
      values: this.#values,
    })
  }

  /**
   * Creates a map (BPF_MAP_CREATE) from options or a MapSpec: the options are
   * checked by MapSpec.from, then createMapFd makes the map. Errors: a
   * TypeError or RangeError for bad options before any syscall; BpfError
   * EPERM without CAP_BPF or a token, EINVAL for a type or flag this kernel
   * lacks, E2BIG/ENOMEM for sizes. A token must delegate map_create and the
   * map type (Linux 6.9+).
   */
  static create<O extends MapCreateOptions>(spec: MapSpec<O>): BpfMap<KeyOf<O>, ValueOf<O>>
  static create<const O extends MapCreateOptions>(options: O): BpfMap<KeyOf<O>, ValueOf<O>>
  static create(options: MapCreateOptions | MapSpec): BpfMap<unknown, unknown> {
    const spec = MapSpec.from(options)
    return BpfMap.adopt(createMapFd(spec), spec)
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

  /** @internal A map fd createMapFd has just made (the collection loader's): no check that it is a map. */
  static fromCreated<const O extends MapOpenOptions = {}>(fd: Fd, options: O): BpfMap<KeyOf<O>, ElemOf<O>> {
    return BpfMap.adopt(fd, options)
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

  /**
   * The value for `key`, or undefined when there is none. Per-CPU maps give
   * one value per CPU. A raw value over 64 bytes may share its ArrayBuffer
   * with other values (see copyOut in bytes.ts): read `.buffer` through the
   * value's byteOffset and byteLength.
   */
  lookup(key: K): V | undefined {
    this.putKey(key)
    return mapSlotLookup(this.#slot) ? this.takeValue() : undefined
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
    if (!mapSlotLookup(this.#slot)) return false
    copyBytes(this.#v, 0, out, 0, this.valueBytes)
    return true
  }

  /** Same as lookup. */
  get(key: K): V | undefined {
    return this.lookup(key)
  }

  has(key: K): boolean {
    this.putKey(key)
    return mapSlotLookup(this.#slot)
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
    if (f === 0) mapSlotUpdate(this.#slot)
    else mapSlotUpdate(this.#slot, f)
  }

  /** Same as update. */
  set(key: K, value: V | FdRef, flags?: UpdateFlag): this {
    this.update(key, value, flags)
    return this
  }

  /** Deletes `key`; false when it was not there. Array maps refuse with EINVAL. */
  delete(key: K): boolean {
    this.putKey(key)
    return mapSlotDelete(this.#slot)
  }

  /** Looks up and deletes in one call (hash maps: Linux 5.14+). undefined when absent. */
  lookupAndDelete(key: K): V | undefined {
    this.putKey(key)
    return mapSlotLookupAndDelete(this.#slot) ? this.takeValue() : undefined
  }

  /** Queue and stack: adds a value; bloom filter: adds a member. */
  push(value: V, flags?: UpdateFlag): void {
    this.requireKeyless('push')
    this.#values.write(value, this.#v, this.#vv)
    mapSlotUpdate(this.#slot, updateFlagsValue(flags))
  }

  /** Queue and stack: removes and returns the next value, undefined when empty. */
  pop(): V | undefined {
    this.requireKeyless('pop')
    return mapSlotLookupAndDelete(this.#slot) ? this.takeValue() : undefined
  }

  /** Queue and stack: the next value without removing it, undefined when empty. */
  peek(): V | undefined {
    this.requireKeyless('peek')
    return mapSlotLookup(this.#slot) ? this.takeValue() : undefined
  }

  /** Bloom filter: false when `value` was surely never added, true when it may have been. */
  mayContain(value: V): boolean {
    this.requireKeyless('mayContain')
    this.#values.write(value, this.#v, this.#vv)
    return mapSlotLookup(this.#slot)
  }

  /**
   * Every key. Robust to deletions during the walk: when the kernel restarts
   * from the first key, keys already given are skipped, never repeated.
   */
  keys(): Generator<K, void, undefined> {
    if (this.keySize === 0) throw new TypeError(`${this.type} maps have no keys`)
    return walkKeys(this.fd, this.keySize, !isArrayLike(this.typeId), (b, v, at) => this.#key.read(b, v, at) as K, this.nextKeys)
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
   * lookups on kernels or map types without batch support. Raw keys (and
   * raw values) of one call are views into one buffer: read `.buffer`
   * through their byteOffset and byteLength.
   */
  lookupBatch(options: BatchLookupOptions = {}): [K, V][] {
    return this.#batches.lookup(options)
  }

  /**
   * lookupBatch without an object per entry: the keys and the values packed
   * as the kernel writes them (`count` × keySize and `count` × valueBytes
   * bytes, copies the caller keeps), for reading large maps at the kernel's
   * own pace. BPF_MAP_LOOKUP_BATCH (Linux 5.6+), single lookups where the
   * kernel or map type has no batches; errors as lookupBatch.
   */
  lookupBatchBytes(options: BatchLookupOptions = {}): RawBatch {
    return this.#batches.lookupBytes(options)
  }

  /**
   * lookupBatchBytes into the caller's own buffers, with no allocation (as
   * lookupInto is to lookup; cilium/ebpf's BatchLookup): the whole map, its
   * keys packed into `keys` and its values into `values` from their start.
   * They need room for maxEntries entries (a RangeError otherwise, before
   * any syscall). Returns how many entries were read; the bytes after them
   * are left as they were. An error after some batches carries `count`: the
   * entries already in the buffers (with delete, already taken from the map).
   */
  lookupBatchInto(keys: Uint8Array, values: Uint8Array, options: Omit<BatchLookupOptions, 'onBatch'> = {}): number {
    return this.#batches.lookupInto(keys, values, options)
  }

  /**
   * updateBatch from packed bytes: `keys` holds whole keys back to back,
   * `values` as many values (valueBytes each). Returns how many were written.
   * A RangeError when the sizes do not match; BPF_MAP_UPDATE_BATCH (Linux
   * 5.6+) errors as updateBatch.
   */
  updateBatchBytes(keys: Uint8Array, values: Uint8Array, options: { flags?: UpdateFlag } = {}): number {
    return this.#batches.updateBytes(keys, values, options)
  }

  /** Writes many entries with BPF_MAP_UPDATE_BATCH (5.6+, single updates otherwise). Returns how many were written. */
  updateBatch(entries: Iterable<readonly [K, V | FdRef]>, options: { flags?: UpdateFlag } = {}): number {
    return this.#batches.update(entries, options)
  }

  /** Deletes many keys with BPF_MAP_DELETE_BATCH (5.6+); stops at the first missing key. Returns how many were deleted. */
  deleteBatch(keys: Iterable<K>): number {
    return this.#batches.delete(keys)
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

  /**
   * A reader of a perf_event_array map (see PerfBuffer.open): one perf event
   * and ring per CPU, stored in the map. Closed with the map, or by its own
   * close(), which deletes the entries it set.
   */
  perfBuffer(options: PerfBufferOptions = {}): PerfBuffer {
    const pb: PerfBuffer = new PerfBuffer(this, options, () => this.#borrowers.delete(pb))
    this.#borrowers.add(pb)
    return pb
  }

  /** Closes the map, and the mappings, ring buffer and perf buffer readers that borrow its fd. */
  override close(): void {
    for (const b of [...this.#borrowers]) b.close()
    if (!this.closed) native.mapSlotClose(this.#slot)
    this.#closed = true
    super.close()
  }

  // GET_NEXT_KEY steps through the slot, many per call: the cursor goes
  // into the slot's key buffer just before the call (lookups in between may
  // have used it), the kernel writes the keys straight into `out`.
  private readonly nextKeys = (cur: Uint8Array | null, out: Uint8Array, max: number): number => {
    if (this.#closed) throw closedError('map')
    if (cur !== null) copyBytes(cur, 0, this.#k, 0, this.keySize)
    return mapSlotNextKeys(this.#slot, cur === null, out, max)
  }

  private putKey(key: K): void {
    if (this.#closed) throw closedError('map')
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
    if (this.#closed) throw closedError('map')
    if (this.keySize !== 0) throw new TypeError(`${op} is for queue, stack and bloom filter maps, not ${this.type}`)
  }
}
