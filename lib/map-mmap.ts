// A BPF_F_MMAPABLE array seen through its memory mapping: element reads and
// writes are plain memory accesses, no syscall. Elements sit
// round_up(valueSize, 8) bytes apart, as the kernel lays out array values.
import { native } from './sys/index.js'
import type { Side } from './map-values.js'

export class MappedArray<V = Uint8Array> {
  readonly length: number
  /** Bytes from one element to the next. */
  readonly stride: number
  readonly writable: boolean
  #buffer: ArrayBuffer | undefined
  #view: DataView
  #bytes: Uint8Array
  readonly #side: Side
  readonly #onClose: () => void

  /** @internal Made by BpfMap.mmap. */
  constructor(fd: number, side: Side, length: number, writable: boolean, onClose: () => void) {
    this.#buffer = native.mapMmap(fd, writable)
    this.#view = new DataView(this.#buffer)
    this.#bytes = new Uint8Array(this.#buffer)
    this.#side = side
    this.length = length
    this.stride = Math.ceil(side.size / 8) * 8
    this.writable = writable
    this.#onClose = onClose
  }

  /** The mapped memory; detached (length 0) once closed. */
  get buffer(): ArrayBuffer {
    return this.live()
  }

  /** Element `i`, decoded; raw maps give a view into the mapping (no copy). */
  get(i: number): V {
    this.live()
    const off = this.offset(i)
    if (!this.#side.codec) return new Uint8Array(this.#buffer!, off, this.#side.size) as V
    return this.#side.read(this.#bytes, this.#view, off) as V
  }

  set(i: number, value: V): void {
    this.live()
    if (!this.writable) throw new TypeError('mmap: the mapping is read-only')
    const off = this.offset(i)
    this.#side.write(value, this.#bytes, this.#view, off)
  }

  /** Unmaps now; closing the map does this too. */
  close(): void {
    if (!this.#buffer) return
    native.mapUnmap(this.#buffer)
    this.#buffer = undefined
    this.#onClose()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  private offset(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`index ${i} is outside 0..${this.length - 1}`)
    return i * this.stride
  }

  private live(): ArrayBuffer {
    if (!this.#buffer) throw new TypeError('mmap: the mapping is closed')
    return this.#buffer
  }
}
