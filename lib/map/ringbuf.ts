// Consumer of a BPF ring buffer map (Linux 5.8+): drains records copied out of
// the shared memory in batches, and waits for more through a uv_poll on the
// map's fd on Node's own event loop.
import { closedError, native, type RingbufHandle } from '../sys/index.js'
import { ReaderWait, recordStream } from './reader-wait.js'

export interface RecordsOptions {
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal
}

export class RingBuffer {
  #ring: RingbufHandle | undefined
  #ends = new Uint32Array(1024)
  #scratch: Uint8Array = new Uint8Array(64 * 1024)
  readonly #waiter = new ReaderWait('ring buffer')
  readonly #onClose: () => void
  // Keeps the map (and so its fd) alive while this reader may still poll it.
  readonly #map: object

  /** @internal Made by BpfMap.ringBuffer. */
  constructor(map: { readonly fd: number }, onClose: () => void) {
    this.#ring = native.ringbufOpen(map.fd)
    this.#map = map
    this.#onClose = onClose
  }

  /** Bytes written by producers and not yet consumed (headers included). */
  get pending(): number {
    return native.ringbufPending(this.live())
  }

  /**
   * Calls `onRecord` for every committed record, in order, and returns how
   * many. The view is valid only during the call: copy what you keep.
   */
  consume(onRecord: (record: Uint8Array) => void): number {
    return this.consumeBatches((buf, ends, n) => {
      // Views made directly: subarray() goes through the species
      // constructor and costs several times as much per record.
      const ab = buf.buffer
      const base = buf.byteOffset
      let start = 0
      for (let i = 0; i < n; i++) {
        const end = ends[i]
        onRecord(new Uint8Array(ab, base + start, end - start))
        start = end
      }
    })
  }

  /**
   * The fastest drain: calls `onBatch` once per batch of committed records
   * (up to 1,024), with no object per record. Record i of a batch is
   * `bytes.subarray(i ? ends[i - 1] : 0, ends[i])`, for i < count. `bytes`
   * and `ends` are reused: valid only during the call. Returns the number of
   * records.
   */
  consumeBatches(onBatch: (bytes: Uint8Array, ends: Uint32Array, count: number) => void): number {
    let total = 0
    for (;;) {
      const [n, buf] = this.fill(this.#scratch)
      this.#scratch = buf
      if (n === 0) return total
      onBatch(buf, this.#ends, n)
      total += n
    }
  }

  /** Every committed record now, as copies the caller may keep. */
  read(): Uint8Array[] {
    const out: Uint8Array[] = []
    for (;;) {
      // A fresh buffer per batch: the records returned are views into it.
      const [n, buf] = this.fill(new Uint8Array(Math.max(this.pending, 8)))
      if (n === 0) return out
      let start = 0
      for (let i = 0; i < n; i++) {
        const end = this.#ends[i]
        out.push(new Uint8Array(buf.buffer, buf.byteOffset + start, end - start))
        start = end
      }
    }
  }

  /**
   * Records as they arrive, waiting on the event loop in between. Ends when
   * `signal` aborts or the ring buffer (or its map) is closed.
   */
  records(options: RecordsOptions = {}): AsyncGenerator<Uint8Array, void, undefined> {
    return recordStream(options, () => this.#ring !== undefined, () => this.read(), (signal) => this.wait(signal))
  }

  [Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    return this.records()
  }

  /**
   * Resolves true when records are ready, false when aborted or when the
   * reader (or its map) is closed while waiting. The wait polls the ring's
   * own dup of the map's fd, so nothing done to the map's fd number can
   * break it. Errors (as rejections): EBADF for a closed reader, TypeError
   * while another wait is pending, SyscallError 'poll' when polling fails.
   */
  wait(signal?: AbortSignal): Promise<boolean> {
    const h = this.#ring
    return this.#waiter.wait(signal, h && { start: (onReady) => native.ringbufWait(h, onReady), cancel: () => this.#ring && native.ringbufCancel(this.#ring) })
  }


  /** Stops a pending wait (it resolves false) and unmaps. Closing twice is a no-op. */
  close(): void {
    if (!this.#ring) return
    const ring = this.#ring
    this.#ring = undefined
    // Native closes the poll before its fd and the mappings; the waiter
    // then hears false rather than waiting forever.
    native.ringbufClose(ring)
    this.#waiter.end()
    this.#onClose()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  // Copies a batch of records into `buf`, or into a larger buffer when the
  // next record alone does not fit; returns the count and the buffer used.
  private fill(buf: Uint8Array): [number, Uint8Array] {
    const ring = this.live()
    const n = native.ringbufConsume(ring, buf, this.#ends)
    if (n >= 0) return [n, buf]
    const bigger = new Uint8Array(-n)
    return [native.ringbufConsume(ring, bigger, this.#ends), bigger]
  }

  private live(): RingbufHandle {
    if (!this.#ring) throw closedError('ring buffer')
    return this.#ring
  }
}
