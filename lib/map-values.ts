// Turning keys and values into the bytes the kernel reads, and back. Raw maps
// hand the caller's Uint8Array straight to the native layer (which checks its
// length); typed maps encode into a scratch buffer reused by every call, so a
// lookup costs one syscall and one decode, not an allocation per field.
import { codecFor, type Codec, type TypeDesc } from './codec.js'

/** Something that owns a BPF object's fd: a BpfMap, a BpfProgram, an Fd. */
export interface FdRef {
  readonly fd: number
}

/** One side of a map (key or value): its size and how it is encoded. */
export class Side {
  readonly codec: Codec<unknown> | undefined
  readonly scratch: Uint8Array
  readonly isArray: boolean
  private readonly view: DataView

  constructor(readonly what: 'key' | 'value', readonly size: number, desc: TypeDesc | undefined) {
    this.codec = desc === undefined ? undefined : codecFor(desc)
    if (this.codec && this.codec.size !== size) {
      throw new RangeError(`${what} type is ${this.codec.size} bytes but the map's ${what} size is ${size}`)
    }
    this.isArray = typeof desc === 'object' && 'array' in desc
    this.scratch = new Uint8Array(size)
    this.view = new DataView(this.scratch.buffer)
  }

  /** Bytes for `x`: the caller's own bytes when raw, else the scratch buffer. */
  encode(x: unknown): Uint8Array {
    if (x instanceof Uint8Array) {
      if (x.length !== this.size) throw new RangeError(`${this.what} must be ${this.size} bytes, got ${x.length}`)
      return x
    }
    if (!this.codec) throw new TypeError(`${this.what} must be a Uint8Array of ${this.size} bytes (the map has no ${this.what} type)`)
    this.codec.encode(x, this.view, 0)
    return this.scratch
  }

  /** Encodes `x` into `dst` at `offset` (batches). */
  encodeInto(x: unknown, dst: Uint8Array, offset: number): void {
    if (x instanceof Uint8Array || !this.codec) {
      dst.set(this.encode(x), offset)
      return
    }
    this.codec.encode(x, new DataView(dst.buffer, dst.byteOffset, dst.byteLength), offset)
  }

  /** A value the caller may keep: a copy when raw. */
  decode(bytes: Uint8Array, offset = 0): unknown {
    if (!this.codec) return bytes.slice(offset, offset + this.size)
    return this.codec.decode(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset)
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
  encode(x: unknown): Uint8Array {
    if (x instanceof Uint8Array && x.length === this.total && this.total !== this.side.size) return x
    const out = new Uint8Array(this.total)
    // When the value type is itself an array, only an array of arrays is per-CPU.
    if (Array.isArray(x) && (!this.side.isArray || Array.isArray(x[0]))) {
      if (x.length !== this.cpus) throw new RangeError(`per-CPU value needs one entry per possible CPU (${this.cpus}), got ${x.length}`)
      x.forEach((v, cpu) => this.side.encodeInto(v, out, cpu * this.stride))
    } else {
      const one = this.side.encode(x)
      for (let cpu = 0; cpu < this.cpus; cpu++) out.set(one, cpu * this.stride)
    }
    return out
  }

  decode(bytes: Uint8Array): unknown[] {
    const out = new Array(this.cpus)
    for (let cpu = 0; cpu < this.cpus; cpu++) out[cpu] = this.side.decode(bytes, cpu * this.stride)
    return out
  }
}

/** The u32 an fd-valued map stores on update: the fd of the object given. */
export function fdValue(x: unknown, scratch: Uint8Array): Uint8Array {
  if (x instanceof Uint8Array) return x
  const fd = typeof x === 'number' ? x : (x as FdRef | null)?.fd
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw new TypeError('value must be a program, a map, an Fd or an fd number')
  }
  new DataView(scratch.buffer, scratch.byteOffset, 4).setUint32(0, fd, true)
  return scratch
}
