// Batch operations (BPF_MAP_*_BATCH, Linux 5.6+) with a fallback to single
// operations where the kernel or the map type has none: a kernel without the
// commands answers EINVAL, a map type without batch ops ENOTSUPP/EOPNOTSUPP.
import { BpfError, native } from '../sys/index.js'
import { supportsBatchOps } from '../features/index.js'

export interface BatchLookupOptions {
  /** Elements per syscall (default 256); grown when a hash bucket holds more (ENOSPC). */
  batchSize?: number
  /** Use LOOKUP_AND_DELETE_BATCH: the map is emptied as it is read. */
  delete?: boolean
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

export function batchLookup(fd: number, keySize: number, valueBytes: number, options: BatchLookupOptions,
  fallback: () => Iterable<[Uint8Array, Uint8Array]>, scratch?: BatchScratch): RawBatch {
  let batch = options.batchSize ?? 256
  if (!Number.isInteger(batch) || batch < 1 || batch > 1 << 20) throw new RangeError(`batchSize must be 1..2^20, got ${batch}`)
  const lookup = options.delete ? native.mapLookupAndDeleteBatch : native.mapLookupBatch
  const cursorBytes = Math.max(keySize, 8)
  let inBatch: Uint8Array | null = null
  let outBatch = new Uint8Array(cursorBytes)
  let keys: Uint8Array = scratch && scratch.keys.length >= batch * keySize ? scratch.keys : new Uint8Array(batch * keySize)
  let values: Uint8Array = scratch && scratch.values.length >= batch * valueBytes ? scratch.values : new Uint8Array(batch * valueBytes)
  let count = 0
  for (;;) {
    if (keys.length < (count + batch) * keySize) {
      keys = grow(keys, Math.max(keys.length * 2, (count + batch) * keySize))
      values = grow(values, Math.max(values.length * 2, (count + batch) * valueBytes))
    }
    let r
    try {
      r = lookup(fd, inBatch, outBatch, keys.subarray(count * keySize), values.subarray(count * valueBytes), batch)
    } catch (e) {
      if (e instanceof BpfError && e.code === 'ENOSPC' && batch < 1 << 20) {
        batch *= 2 // a hash bucket holds more elements than fit in one batch
        continue
      }
      if (count === 0 && unsupported(e)) return collect(fallback(), keySize, valueBytes)
      throw e
    }
    count += r.count
    if (scratch) {
      scratch.keys = keys
      scratch.values = values
    }
    if (r.done) break
    inBatch = outBatch
    outBatch = new Uint8Array(cursorBytes)
  }
  return { keys, values, count }
}

function grow(b: Uint8Array, size: number): Uint8Array {
  const n = new Uint8Array(size)
  n.set(b)
  return n
}

function collect(entries: Iterable<[Uint8Array, Uint8Array]>, keySize: number, valueBytes: number): RawBatch {
  const list = Array.from(entries)
  const keys = new Uint8Array(list.length * keySize)
  const values = new Uint8Array(list.length * valueBytes)
  list.forEach(([k, v], i) => {
    keys.set(k, i * keySize)
    values.set(v, i * valueBytes)
  })
  return { keys, values, count: list.length }
}

export function batchUpdate(fd: number, keys: Uint8Array, values: Uint8Array, count: number, elemFlags: number,
  keySize: number, valueBytes: number): number {
  if (count === 0) return 0
  try {
    return native.mapUpdateBatch(fd, keys, values, count, elemFlags)
  } catch (e) {
    if (!unsupported(e)) throw e
  }
  for (let i = 0; i < count; i++) {
    native.mapUpdateElem(fd, keys.subarray(i * keySize, (i + 1) * keySize), values.subarray(i * valueBytes, (i + 1) * valueBytes), elemFlags)
  }
  return count
}

export function batchDelete(fd: number, keys: Uint8Array, count: number, keySize: number): number {
  if (count === 0) return 0
  try {
    return native.mapDeleteBatch(fd, keys, count)
  } catch (e) {
    if (!unsupported(e)) throw e
  }
  for (let i = 0; i < count; i++) {
    if (!native.mapDeleteElem(fd, keys.subarray(i * keySize, (i + 1) * keySize))) return i
  }
  return count
}
