// A BPF_F_MMAPABLE array seen through its memory mapping: element reads and
// writes are plain memory accesses, no syscall. Elements sit
// round_up(valueSize, 8) bytes apart, as the kernel lays out array values.
import { endianness } from 'node:os'
import { closedError, native } from '../sys/index.js'
import { describeValue } from '../sys/options.js'
import type { Side } from './values.js'

type ElementArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array

const scalarArrays: Record<string, new (b: ArrayBuffer) => ElementArray> = {
  u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array, i32: Int32Array,
  u64: BigUint64Array, i64: BigInt64Array, f32: Float32Array, f64: Float64Array,
}

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
  // Scalar values: a typed array over the mapping reads element i at
  // index i * #step, with no DataView call and no codec in between.
  readonly #elems: ElementArray | undefined
  readonly #step: number

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
    const Elems = side.scalar !== undefined && endianness() === 'LE' ? scalarArrays[side.scalar] : undefined
    this.#elems = Elems ? new Elems(this.#buffer) : undefined
    this.#step = this.stride / side.size
    // Every view gets an own `get`, so that all views keep one shape; not
    // enumerable, as the prototype's method it stands for.
    const get = Elems ? MappedArray.#scalarGets[side.scalar!] : MappedArray.prototype.get
    Object.defineProperty(this, 'get', { value: get, writable: true, configurable: true, enumerable: false })
  }

  /**
   * The mapped memory; detached (length 0) once closed. Writable mappings
   * only: JavaScript has no read-only ArrayBuffer, and a write into a
   * read-only mapping would kill the process with SIGSEGV (TypeError).
   */
  get buffer(): ArrayBuffer {
    const buffer = this.live()
    if (!this.writable) throw new TypeError('mmap: a read-only mapping does not hand out its memory (a write would fault the process); read with get(), or map it writable')
    return buffer
  }

  /**
   * Element `i`, decoded; raw maps give a view into a writable mapping (no
   * copy), and a copy from a read-only one, whose pages a write would fault.
   */
  get(i: number): V {
    // Scalar views have their element type's own get (#scalarGets) instead.
    return this.getSlow(i)
  }

  // One function literal per element type, set as the view's own get(): each
  // literal has its own type feedback, so its keyed load sees one typed array
  // kind whatever else the process reads. One shared load, fed a
  // BigUint64Array and then a Uint32Array, went polymorphic: a u32 read took
  // 2.6 ns after a u64 view had been read, 1.9 ns before (issue 17). Each is
  // kept small enough for V8 to inline into the caller's loop.
  static readonly #scalarGets: Record<string, (this: MappedArray<unknown>, i: number) => unknown> = {
    u8(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Uint8Array)[k] : this.getSlow(i) },
    i8(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Int8Array)[k] : this.getSlow(i) },
    u16(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Uint16Array)[k] : this.getSlow(i) },
    i16(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Int16Array)[k] : this.getSlow(i) },
    u32(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Uint32Array)[k] : this.getSlow(i) },
    i32(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Int32Array)[k] : this.getSlow(i) },
    u64(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as BigUint64Array)[k] : this.getSlow(i) },
    i64(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as BigInt64Array)[k] : this.getSlow(i) },
    f32(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Float32Array)[k] : this.getSlow(i) },
    f64(i) { const k = this.#index(i); return k >= 0 ? (this.#elems as Float64Array)[k] : this.getSlow(i) },
  }

  /** The typed array index of element `i`, or -1 for the slow path (closed, bad index: it throws). */
  #index(i: number): number {
    return this.#buffer !== undefined && Number.isInteger(i) && i >= 0 && i < this.length ? i * this.#step : -1
  }

  private getSlow(i: number): V {
    this.live()
    const off = this.offset(i)
    if (!this.#side.codec) {
      const bytes = new Uint8Array(this.#buffer!, off, this.#side.size)
      return (this.writable ? bytes : bytes.slice()) as V
    }
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
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`index must be an integer in 0..${this.length - 1}, got ${describeValue(i)}`)
    return i * this.stride
  }

  private live(): ArrayBuffer {
    if (!this.#buffer) throw closedError('mmap: the mapping')
    return this.#buffer
  }
}
