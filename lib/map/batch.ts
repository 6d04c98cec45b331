// Batch operations (BPF_MAP_*_BATCH, Linux 5.6+) with a fallback to single
// operations where the kernel or the map type has none: a kernel without the
// commands answers EINVAL, a map type without batch ops ENOTSUPP/EOPNOTSUPP.
import { BpfError, native } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { supportsBatchOps } from '../features/index.js'
import { updateFlagsValue, type UpdateFlag } from './kinds.js'
import { Side, type FdRef, type ValueCodec } from './values.js'
import { walkKeys } from './walk.js'

export interface BatchLookupOptions {
  /** Elements per syscall (default 256); grown when a hash bucket holds more (ENOSPC). */
  batchSize?: number
  /** Use LOOKUP_AND_DELETE_BATCH: the map is emptied as it is read. */
  delete?: boolean
  /** Called after each batch syscall with the entries read so far (a progress display for big maps). */
  onBatch?: (entries: number) => void
}

export interface RawBatch {
  keys: Uint8Array
  values: Uint8Array
  count: number
}

function unsupported(e: unknown): boolean {
  if (!(e instanceof BpfError)) return false
  if (e.code === 'ENOTSUPP' || e.code === 'EOPNOTSUPP') return true
  // EINVAL also means bad flags; only the probe tells an old kernel apart.
  return e.code === 'EINVAL' && !supportsBatchOps()
}

/**
 * Buffers a map keeps for its batch lookups: fresh ones per call would cost
 * page faults in the kernel's copy-out on every call (a few microseconds per
 * page on virtual machines), more than the copying itself.
 */
export interface BatchScratch {
  keys: Uint8Array
  values: Uint8Array
}

/**
 * Reads the whole map in batches into `into`. With `grow`, those are the
 * map's scratch buffers, replaced by larger ones as needed (and handed back
 * through `into`); without, the caller's own, never replaced: each call then
 * asks for no more entries than they have room left for, and the reading
 * stops when they are full. `slot`: the map's native slot (map.ts), whose
 * dup and sizes the batch calls use.
 */
export function batchLookup(slot: number, keySize: number, valueBytes: number, options: BatchLookupOptions,
  fallback: () => Iterable<[Uint8Array, Uint8Array]>, into: BatchScratch, grow: boolean): RawBatch {
  let batch = options.batchSize ?? 256
  if (!Number.isInteger(batch) || batch < 1 || batch > 1 << 20) throw new RangeError(`batchSize must be 1..2^20, got ${describeValue(batch)}`)
  const lookup = options.delete ? native.mapSlotLookupAndDeleteBatch : native.mapSlotLookupBatch
  const cursorBytes = Math.max(keySize, 8)
  let inBatch: Uint8Array | null = null
  let outBatch = new Uint8Array(cursorBytes)
  let { keys, values } = into
  let count = 0
  // Entries the buffers have room for after the `count` read so far.
  const left = () => Math.min(keySize ? Math.floor(keys.length / keySize) : Infinity, valueBytes ? Math.floor(values.length / valueBytes) : Infinity) - count
  // Room for up to n more: made (grow), or what the caller's buffers have left.
  const room = (n: number): number => {
    if (grow && left() < n) {
      into.keys = keys = enlarge(keys, Math.max(keys.length * 2, (count + n) * keySize))
      into.values = values = enlarge(values, Math.max(values.length * 2, (count + n) * valueBytes))
    }
    return Math.min(n, left())
  }
  for (let ask = room(batch); ask > 0; ask = room(batch)) {
    let r
    try {
      r = lookup(slot, inBatch, outBatch, keys.subarray(count * keySize), values.subarray(count * valueBytes), ask)
    } catch (e) {
      // A hash bucket holds more elements than one call asked for.
      if (e instanceof BpfError && e.code === 'ENOSPC' && ask < (grow ? 1 << 20 : left())) {
        batch = ask * 2
        continue
      }
      if (count === 0 && unsupported(e)) {
        // Entry by entry, straight into the buffers; with delete, nothing is
        // taken from the map once the caller's buffers are full (the walk
        // stops before its next entry).
        for (const [k, v] of fallback()) {
          keys.set(k, count * keySize)
          values.set(v, count * valueBytes)
          count++
          if (room(1) <= 0) break
        }
        return { keys, values, count }
      }
      // Entries already read into the caller's buffers (and with delete, taken from the map): say how many.
      if (!grow && count > 0 && e instanceof Error) Object.assign(e, { count })
      throw e
    }
    count += r.count
    options.onBatch?.(count)
    if (r.done) break
    inBatch = outBatch
    outBatch = new Uint8Array(cursorBytes)
  }
  return { keys, values, count }
}

/** A copy of b's first n bytes, as an ArrayBuffer of its own. */
function region(b: Uint8Array, n: number): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + n) as ArrayBuffer
}

function enlarge(b: Uint8Array, size: number): Uint8Array {
  const n = new Uint8Array(size)
  n.set(b)
  return n
}

export function batchUpdate(fd: number, slot: number, keys: Uint8Array, values: Uint8Array, count: number, elemFlags: number,
  keySize: number, valueBytes: number): number {
  if (count === 0) return 0
  try {
    return native.mapSlotUpdateBatch(slot, keys, values, count, elemFlags)
  } catch (e) {
    if (!unsupported(e)) throw e
  }
  for (let i = 0; i < count; i++) {
    native.mapUpdateElem(fd, keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * valueBytes, (i + 1) * valueBytes), elemFlags)
  }
  return count
}

export function batchDelete(fd: number, slot: number, keys: Uint8Array, count: number, keySize: number): number {
  if (count === 0) return 0
  try {
    return native.mapSlotDeleteBatch(slot, keys, count)
  } catch (e) {
    if (!unsupported(e)) throw e
  }
  for (let i = 0; i < count; i++) {
    if (!native.mapDeleteElem(fd, keys.subarray(i * keySize, (i + 1) * keySize))) return i
  }
  return count
}

/** What batches need of a map: its fd and native slot (both throw once closed), sizes and how keys and values are coded. */
export interface BatchTarget {
  readonly fd: number
  readonly slot: number
  readonly keySize: number
  readonly valueBytes: number
  readonly maxEntries: number
  readonly restartable: boolean
  readonly key: Side
  readonly values: ValueCodec
}

function iterableArgument(where: string, what: string, x: unknown): Iterable<unknown> {
  if (x === null || typeof x !== 'object' || typeof (x as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new TypeError(`${where}: ${what} must be an iterable, got ${describeValue(x)}`)
  }
  return x as Iterable<unknown>
}

/**
 * A map's batch operations: encoding and decoding many entries at once, with
 * buffers kept from call to call (see BatchScratch).
 */
export class MapBatches<K, V> {
  readonly #out: BatchScratch = { keys: new Uint8Array(0), values: new Uint8Array(0) }
  readonly #in: BatchScratch = { keys: new Uint8Array(0), values: new Uint8Array(0) }

  constructor(private readonly map: BatchTarget) {}

  lookup(options: BatchLookupOptions): [K, V][] {
    checkOptions('lookupBatch', options, ['batchSize', 'delete', 'onBatch'], { types: { onBatch: 'function' } })
    const { keys, values, count } = this.lookupRaw(options)
    const { keySize, valueBytes, key, values: codec } = this.map
    const out: [K, V][] = new Array(count)
    const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength)
    const vv = new DataView(values.buffer, values.byteOffset, values.byteLength)
    // Raw keys and values are views into one copy of the batch's keys (and
    // one of its values): a buffer of their own per entry cost 20-60 ns
    // each, a third of the kernel's work per element.
    const rawKeys = key.codec === undefined ? region(keys, count * keySize) : undefined
    const rawValues = codec instanceof Side && codec.codec === undefined ? region(values, count * valueBytes) : undefined
    for (let i = 0; i < count; i++) {
      const k = rawKeys ? new Uint8Array(rawKeys, i * keySize, keySize) : key.read(keys, kv, i * keySize)
      const v = rawValues ? new Uint8Array(rawValues, i * valueBytes, valueBytes) : codec.read(values, vv, i * valueBytes)
      out[i] = [k as K, v as V]
    }
    return out
  }

  lookupBytes(options: BatchLookupOptions): RawBatch {
    checkOptions('lookupBatchBytes', options, ['batchSize', 'delete', 'onBatch'], { types: { onBatch: 'function' } })
    const { keys, values, count } = this.lookupRaw(options)
    return { keys: keys.slice(0, count * this.map.keySize), values: values.slice(0, count * this.map.valueBytes), count }
  }

  lookupInto(keys: Uint8Array, values: Uint8Array, options: BatchLookupOptions): number {
    checkOptions('lookupBatchInto', options, ['batchSize', 'delete'])
    if (!(keys instanceof Uint8Array) || !(values instanceof Uint8Array)) throw new TypeError('lookupBatchInto: keys and values must be Uint8Arrays')
    const { slot, keySize, valueBytes, maxEntries } = this.map
    // cgroup storage: max_entries 0, no bound to size the buffers by.
    if (maxEntries === 0) throw new TypeError('lookupBatchInto: this map has no maxEntries to size the buffers by: use lookupBatchBytes')
    if (keys.length < maxEntries * keySize || values.length < maxEntries * valueBytes) {
      throw new RangeError(`lookupBatchInto: keys and values need room for maxEntries (${maxEntries}) entries, ${maxEntries * keySize} and ${maxEntries * valueBytes} bytes, got ${keys.length} and ${values.length}`)
    }
    return batchLookup(slot, keySize, valueBytes, options, () => this.rawEntries(options.delete ?? false), { keys, values }, false).count
  }

  update(entries: Iterable<readonly [K, V | FdRef]>, options: { flags?: UpdateFlag }): number {
    checkOptions('updateBatch', options, ['flags'])
    const list = Array.from(iterableArgument('updateBatch', 'entries', entries))
    const { keySize, valueBytes, key, values: codec } = this.map
    const { keys, values } = this.input(list.length)
    const kv = new DataView(keys.buffer, keys.byteOffset, keys.byteLength)
    const vv = new DataView(values.buffer, values.byteOffset, values.byteLength)
    for (let i = 0; i < list.length; i++) {
      const e = list[i]
      if (!Array.isArray(e) || e.length !== 2) throw new TypeError(`updateBatch: entry ${i} must be a [key, value] pair, got ${describeValue(e)}`)
      key.write(e[0], keys, kv, i * keySize)
      codec.write(e[1], values, vv, i * valueBytes)
    }
    return batchUpdate(this.map.fd, this.map.slot, keys, values, list.length, updateFlagsValue(options.flags), keySize, valueBytes)
  }

  updateBytes(keys: Uint8Array, values: Uint8Array, options: { flags?: UpdateFlag }): number {
    checkOptions('updateBatchBytes', options, ['flags'])
    if (!(keys instanceof Uint8Array) || !(values instanceof Uint8Array)) throw new TypeError('updateBatchBytes: keys and values must be Uint8Arrays')
    const { keySize, valueBytes } = this.map
    const count = keySize === 0 ? 0 : keys.length / keySize
    if (!Number.isInteger(count) || values.length !== count * valueBytes) {
      throw new RangeError(`updateBatchBytes: keys must be a multiple of ${keySize} bytes and values ${valueBytes} bytes per key, got ${keys.length} and ${values.length}`)
    }
    return batchUpdate(this.map.fd, this.map.slot, keys, values, count, updateFlagsValue(options.flags), keySize, valueBytes)
  }

  delete(keys: Iterable<K>): number {
    const list = Array.from(iterableArgument('deleteBatch', 'keys', keys))
    const { keySize, key } = this.map
    const buf = this.input(list.length).keys
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    list.forEach((k, i) => key.write(k, buf, view, i * keySize))
    return batchDelete(this.map.fd, this.map.slot, buf, list.length, keySize)
  }

  private lookupRaw(options: BatchLookupOptions): RawBatch {
    const { slot, keySize, valueBytes } = this.map
    return batchLookup(slot, keySize, valueBytes, options, () => this.rawEntries(options.delete ?? false), this.#out, true)
  }

  // Buffers for building a batch, reused from call to call (every byte of an
  // element is written, padding included), so that a batch costs no fresh
  // pages for the kernel to fault in.
  private input(count: number): BatchScratch {
    const { keySize, valueBytes } = this.map
    const s = this.#in
    if (s.keys.length < count * keySize) s.keys = new Uint8Array(count * keySize)
    if (s.values.length < count * valueBytes) s.values = new Uint8Array(count * valueBytes)
    return { keys: s.keys.subarray(0, count * keySize), values: s.values.subarray(0, count * valueBytes) }
  }

  // The single-op fallback for batches: raw keys and values.
  private *rawEntries(andDelete: boolean): Generator<[Uint8Array, Uint8Array]> {
    const { fd, keySize, valueBytes, restartable } = this.map
    const out = new Uint8Array(valueBytes)
    for (const k of walkKeys(fd, keySize, restartable, (b, _v, at) => b.slice(at, at + keySize))) {
      const found = andDelete ? native.mapLookupAndDeleteElem(fd, k, out) : native.mapLookupElem(fd, k, out)
      if (found) yield [k, out.slice()]
    }
  }
}
