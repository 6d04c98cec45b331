// Turning keys and values into the bytes the kernel reads, and back. Single
// element operations write straight into the map's slot buffers (allocated
// natively, sized by the kernel), so a lookup costs one syscall, one copy in
// and one decode out, with no per-call buffer checks in the native layer.
import { codecFor, type Codec, type TypeDesc } from './codec.js'
import { copyBytes, copyOut } from './bytes.js'

/** Something that owns a BPF object's fd: a BpfMap, a BpfProgram, an Fd. */
export interface FdRef {
  readonly fd: number
}

/** One side of a map (key or value): its size and how it is encoded. */
const isCodec = (d: TypeDesc | Codec<unknown>): d is Codec<unknown> => typeof d === 'object' && typeof (d as Codec<unknown>).decode === 'function'

export class Side {
  readonly codec: Codec<unknown> | undefined
  readonly isArray: boolean
  /** The scalar type name ('u32', 'f64', ...) when the side is one scalar. */
  readonly scalar: string | undefined

  /** `desc` is a type description, or a codec already made (from BTF, for a collection's maps). */
  constructor(readonly what: 'key' | 'value', readonly size: number, desc: TypeDesc | Codec<unknown> | undefined) {
    this.codec = desc === undefined ? undefined : isCodec(desc) ? desc : codecFor(desc)
    if (this.codec && this.codec.size !== size) {
      throw new RangeError(`${what} type is ${this.codec.size} bytes but the map's ${what} size is ${size}`)
    }
    this.isArray = typeof desc === 'object' && 'array' in desc
    this.scalar = typeof desc === 'string' ? desc : undefined
  }

  /** Writes `x` at `offset` of `dst` (whose DataView is `view`). Raw bytes must be exactly `size` long. */
  write(x: unknown, dst: Uint8Array, view: DataView, offset = 0): void {
    if (x instanceof Uint8Array) {
      if (x.length !== this.size) throw new RangeError(`${this.what} must be ${this.size} bytes, got ${x.length}`)
      copyBytes(x, 0, dst, offset, this.size)
      return
    }
    if (!this.codec) throw new TypeError(`${this.what} must be a Uint8Array of ${this.size} bytes (the map has no ${this.what} type)`)
    this.codec.encode(x, view, offset)
  }

  /** A value the caller may keep: a copy when raw. */
  read(src: Uint8Array, view: DataView, offset = 0): unknown {
    if (!this.codec) return copyOut(src, offset, this.size)
    return this.codec.decode(view, offset)
  }
}

/**
 * Values of per-CPU maps: one per possible CPU, each in a slot of
 * round_up(size, 8) bytes, as the kernel copies them.
 */
export class PerCpuValues {
  readonly stride: number
  readonly total: number

  constructor(readonly side: Side, readonly cpus: number) {
    this.stride = Math.ceil(side.size / 8) * 8
    this.total = this.stride * cpus
  }

  /** An array of one value per CPU, or one value for every CPU. */
  write(x: unknown, dst: Uint8Array, view: DataView, offset = 0): void {
    if (x instanceof Uint8Array && x.length === this.total && this.total !== this.side.size) {
      dst.set(x, offset)
      return
    }
    // When the value type is itself an array, only an array of arrays is per-CPU.
    const perCpu = Array.isArray(x) && (!this.side.isArray || Array.isArray(x[0]))
    if (perCpu && x.length !== this.cpus) throw new RangeError(`per-CPU value needs one entry per possible CPU (${this.cpus}), got ${x.length}`)
    dst.fill(0, offset, offset + this.total)
    for (let cpu = 0; cpu < this.cpus; cpu++) this.side.write(perCpu ? x[cpu] : x, dst, view, offset + cpu * this.stride)
  }

  read(src: Uint8Array, view: DataView, offset = 0): unknown[] {
    const out = new Array(this.cpus)
    for (let cpu = 0; cpu < this.cpus; cpu++) out[cpu] = this.side.read(src, view, offset + cpu * this.stride)
    return out
  }
}

/** fd-valued maps store the fd (u32) of the object given on update and answer its ID on lookup. */
export class FdValues {
  write(x: unknown, dst: Uint8Array, view: DataView, offset = 0): void {
    if (x instanceof Uint8Array) {
      if (x.length !== 4) throw new RangeError(`value must be 4 bytes, got ${x.length}`)
      dst.set(x, offset)
      return
    }
    const fd = typeof x === 'number' ? x : (x as FdRef | null)?.fd
    if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
      throw new TypeError('value must be a program, a map, an Fd or an fd number')
    }
    view.setUint32(offset, fd, true)
  }

  read(_src: Uint8Array, view: DataView, offset = 0): number {
    return view.getUint32(offset, true)
  }
}

/** How a map's values are written and read. */
export interface ValueCodec {
  write(x: unknown, dst: Uint8Array, view: DataView, offset?: number): void
  read(src: Uint8Array, view: DataView, offset?: number): unknown
}
