// Consumer of a perf_event_array map (perf buffers, Linux 4.4+): one
// BPF_OUTPUT perf event per CPU, each with its own ring, written by
// bpf_perf_event_output. Shaped like the ring buffer reader (ringbuf.ts):
// batches copied out of shared memory, an async iterator fed by one poll on
// Node's event loop. What differs: every record says its CPU, and samples the
// kernel dropped because a ring was full arrive as lost-samples records.
import { closedError, mapInfoByFd, native, type PerfbufHandle } from '../sys/index.js'
import { onlineCpus } from '../sys/cpus.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { ReaderWait, recordStream } from './reader-wait.js'

/**
 * One record of a perf buffer. A sample has `lost === 0` and its bytes in
 * `data`; a lost-samples record (the CPU's ring was full) has `lost > 0` (how
 * many samples were dropped at that point of that CPU's stream) and empty
 * `data`.
 *
 * `data` is the sample as the kernel stores it: bpf_perf_event_output's size
 * rounded up so that 4 + size is a multiple of 8. The up to 7 bytes of
 * padding are not zeroed (they hold whatever the ring held there before): a
 * 16-byte struct reads back as 20 bytes; read the fields you wrote.
 */
export interface PerfRecord {
  readonly cpu: number
  readonly data: Uint8Array
  readonly lost: number
}

export interface PerfBufferOptions {
  /** Data pages per CPU, a power of two (default 8: 32 KiB per CPU with 4 KiB pages; at most 65536). */
  pageCount?: number
  /** Samples per wake-up of a waiting reader (default 1: every sample wakes it). */
  wakeupEvents?: number
  /** The CPUs to read (default: every online CPU below the map's maxEntries). */
  cpus?: readonly number[]
}

export interface PerfRecordsOptions {
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal
}

/** What PerfBuffer.open reads: a BpfMap, or anything with the map's fd and type name. */
export interface PerfEventArrayRef {
  readonly fd: number
  readonly type: string
  readonly maxEntries: number
}

const DEFAULT_PAGES = 8
const MAX_PAGES = 1 << 16

const EMPTY = new Uint8Array(0)

// The CPUs of each map (by id) that a reader of this thread has set: a second
// reader would take over their entries, and the first one's close would then
// delete the second's (the kernel does not let user space read an entry to
// see whose it is). Readers in other processes cannot be seen.
const claimed = new Map<number, Set<number>>()


function positiveInt(where: string, name: string, v: unknown, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${where}: ${name} must be a number, got ${describeValue(v)}`)
  if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${where}: ${name} must be an integer from 1 to ${max}, got ${v}`)
  return v
}

function cpuList(map: PerfEventArrayRef, cpus: unknown): number[] {
  if (cpus === undefined) {
    const list = onlineCpus().filter((c) => c < map.maxEntries)
    if (list.length === 0) throw new RangeError(`PerfBuffer.open: no online CPU is below the map's ${map.maxEntries} entries`)
    return list
  }
  if (!Array.isArray(cpus)) throw new TypeError(`PerfBuffer.open: cpus must be an array of CPU numbers, got ${describeValue(cpus)}`)
  if (cpus.length === 0) throw new RangeError('PerfBuffer.open: cpus is empty')
  const seen = new Set<number>()
  for (const c of cpus) {
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 0) {
      throw new TypeError(`PerfBuffer.open: cpus must hold CPU numbers (non-negative integers), got ${describeValue(c)}`)
    }
    if (c >= map.maxEntries) throw new RangeError(`PerfBuffer.open: cpu ${c} is past the map's ${map.maxEntries} entries`)
    if (seen.has(c)) throw new RangeError(`PerfBuffer.open: cpu ${c} is listed twice`)
    seen.add(c)
  }
  return [...cpus]
}

/**
 * The reader of a perf_event_array map. `PerfBuffer.open(map)` opens a
 * BPF_OUTPUT perf event and its ring on each CPU and stores the events in
 * the map at the CPU's index, so that `bpf_perf_event_output(ctx, &map,
 * BPF_F_CURRENT_CPU, ...)` reaches this reader; `close()` deletes those
 * entries (programs then get -ENOENT), unmaps and closes every fd.
 *
 * One reader per CPU of a map in a thread: a second reader of a CPU already
 * read is an Error (it would take over the entry, and the first reader's
 * close would delete it). The kernel does not show user space whose event an
 * entry holds, so close deletes its CPUs' entries even when another process
 * replaced them since.
 *
 * The reader holds its own reference to the map: closing the map object
 * does not end it; close the reader (or use `using`). Needs root
 * (CAP_PERFMON and CAP_BPF) to open per-CPU events. Linux 4.4+.
 */
export class PerfBuffer {
  #pb: PerfbufHandle | undefined
  #recs = new Float64Array(3 * 1024)
  #scratch: Uint8Array = new Uint8Array(64 * 1024)
  readonly #waiter = new ReaderWait('perf buffer')
  #lost = 0
  readonly #cpus: readonly number[]
  readonly #mapId: number
  readonly #onClose: (() => void) | undefined
  // Keeps the map object alive while this reader may still poll.
  readonly #map: object

  /**
   * Opens the per-CPU events and rings of `map`, a perf_event_array.
   * Errors: TypeError for another map type or wrong options, RangeError for a
   * pageCount that is not a power of two or a CPU past the map, EBADF for a
   * closed map, SyscallError 'perf_event_open' (ENODEV: CPU offline) or
   * 'mmap' (EPERM: over the locked-memory limit). Nothing stays open or set
   * in the map after an error.
   */
  static open(map: PerfEventArrayRef, options: PerfBufferOptions = {}): PerfBuffer {
    return new PerfBuffer(map, options)
  }

  /** @internal Made by PerfBuffer.open (or a map's perfBuffer(), which passes onClose). */
  constructor(map: PerfEventArrayRef, options: PerfBufferOptions = {}, onClose?: () => void) {
    checkOptions('PerfBuffer.open', options, ['pageCount', 'wakeupEvents', 'cpus'])
    if (map === null || typeof map !== 'object') throw new TypeError(`PerfBuffer.open: map must be a BpfMap, got ${describeValue(map)}`)
    const fd = map.fd // a closed map throws its closed error here
    if (map.type !== 'perf_event_array') throw new TypeError(`PerfBuffer.open: the map is a ${String(map.type)} map, not a perf_event_array`)
    const pages = options.pageCount === undefined ? DEFAULT_PAGES : positiveInt('PerfBuffer.open', 'pageCount', options.pageCount, MAX_PAGES)
    if ((pages & (pages - 1)) !== 0) throw new RangeError(`PerfBuffer.open: pageCount must be a power of two, got ${pages}`)
    const wakeup = options.wakeupEvents === undefined ? 1 : positiveInt('PerfBuffer.open', 'wakeupEvents', options.wakeupEvents, 0xffffffff)
    const cpus = cpuList(map, options.cpus)
    const id = mapInfoByFd(fd).id
    const taken = claimed.get(id) ?? new Set<number>()
    const busy = cpus.find((c) => taken.has(c))
    if (busy !== undefined) throw new Error(`PerfBuffer.open: cpu ${busy} of map ${id} is read by another PerfBuffer; close that one first`)
    this.#pb = native.perfbufOpen(fd, cpus, pages, wakeup)
    for (const c of cpus) taken.add(c)
    claimed.set(id, taken)
    this.#mapId = id
    this.#cpus = Object.freeze(cpus)
    this.#map = map
    this.#onClose = onClose
  }

  /** The CPUs read, in the order given. */
  get cpus(): readonly number[] {
    return this.#cpus
  }

  /** Bytes written by the kernel and not yet consumed, over all CPUs (record headers included). */
  get pending(): number {
    return native.perfbufPending(this.live())
  }

  /** Samples the kernel dropped (rings full), over the lost-samples records consumed so far. */
  get lost(): number {
    return this.#lost
  }

  get closed(): boolean {
    return this.#pb === undefined
  }

  /**
   * Calls `onRecord` for every record now in the rings (per CPU in order; the
   * CPUs are taken in turn) and returns how many. `data` is valid only during
   * the call: copy what you keep.
   */
  consume(onRecord: (record: PerfRecord) => void): number {
    return this.consumeBatches((buf, recs, n) => {
      const ab = buf.buffer
      const base = buf.byteOffset
      let start = 0
      for (let i = 0; i < n; i++) {
        const end = recs[3 * i]
        const lost = recs[3 * i + 2]
        onRecord({ cpu: recs[3 * i + 1], data: lost > 0 ? EMPTY : new Uint8Array(ab, base + start, end - start), lost })
        start = end
      }
    })
  }

  /**
   * The fastest drain: `onBatch` once per batch of up to 1,024 records, with
   * no object per record. Record i < count is `recs[3i]` (its end in `bytes`;
   * it starts at the previous record's end, or 0), `recs[3i + 1]` (the CPU)
   * and `recs[3i + 2]` (lost samples: 0 for a sample, > 0 for a lost-samples
   * record with no bytes). `bytes` and `recs` are reused: valid only during
   * the call. Returns the number of records.
   */
  consumeBatches(onBatch: (bytes: Uint8Array, recs: Float64Array, count: number) => void): number {
    let total = 0
    for (;;) {
      const [n, buf] = this.fill(this.#scratch)
      if (buf.length > this.#scratch.length) this.#scratch = buf
      if (n === 0) return total
      onBatch(buf, this.#recs, n)
      total += n
    }
  }

  /** Every record now in the rings, as copies the caller may keep. */
  read(): PerfRecord[] {
    const out: PerfRecord[] = []
    for (;;) {
      // A fresh buffer per batch: the records returned are views into it.
      const [n, buf] = this.fill(new Uint8Array(Math.max(this.pending, 8)))
      if (n === 0) return out
      let start = 0
      for (let i = 0; i < n; i++) {
        const end = this.#recs[3 * i]
        const lost = this.#recs[3 * i + 2]
        out.push({ cpu: this.#recs[3 * i + 1], data: lost > 0 ? EMPTY : new Uint8Array(buf.buffer, buf.byteOffset + start, end - start), lost })
        start = end
      }
    }
  }

  /**
   * Records as they arrive, lost-samples records included, waiting on the
   * event loop in between. Ends when `signal` aborts or the reader is closed.
   */
  records(options: PerfRecordsOptions = {}): AsyncGenerator<PerfRecord, void, undefined> {
    return recordStream(options, () => this.#pb !== undefined, () => this.read(), (signal) => this.wait(signal))
  }

  [Symbol.asyncIterator](): AsyncGenerator<PerfRecord, void, undefined> {
    return this.records()
  }

  /**
   * Resolves true when a CPU's ring has been written to, false when aborted
   * or when the reader is closed while waiting. One poll (an epoll fd over
   * the per-CPU events) on Node's loop; no thread. Errors (as rejections):
   * EBADF for a closed reader, TypeError while another wait is pending,
   * SyscallError 'poll' when polling fails.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    const h = this.#pb
    return this.#waiter.wait(signal, h && { start: (onReady) => native.perfbufWait(h, onReady), cancel: () => this.#pb && native.perfbufCancel(this.#pb) })
  }


  /**
   * Deletes the map entries this reader set, stops a pending wait (it
   * resolves false), unmaps and closes the events. Closing twice is a no-op.
   */
  close(): void {
    if (!this.#pb) return
    const pb = this.#pb
    this.#pb = undefined
    native.perfbufClose(pb)
    const taken = claimed.get(this.#mapId)
    for (const c of this.#cpus) taken?.delete(c)
    if (taken?.size === 0) claimed.delete(this.#mapId)
    this.#waiter.end()
    this.#onClose?.()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  // Copies a batch of records into `buf`, or into a larger buffer when the
  // next sample alone does not fit; returns the count and the buffer used.
  private fill(buf: Uint8Array): [number, Uint8Array] {
    const pb = this.live()
    let n = native.perfbufConsume(pb, buf, this.#recs)
    // The next call starts with the same sample: -n bytes are then enough.
    while (n < 0) {
      buf = new Uint8Array(-n)
      n = native.perfbufConsume(pb, buf, this.#recs)
    }
    for (let i = 0; i < n; i++) this.#lost += this.#recs[3 * i + 2]
    return [n, buf]
  }

  private live(): PerfbufHandle {
    if (!this.#pb) throw closedError('perf buffer')
    return this.#pb
  }
}
