// Collection: the kernel objects a CollectionSpec loaded: its maps (keys and
// values decoded by codecs derived from the object's BTF), its programs and
// its global variables, live in the data maps' memory. close() (or `using`)
// closes everything the load made; maps given as replacements stay open.
import type { BpfMap } from '../map/map.js'
import type { MappedArray } from '../map/mmap.js'
import type { Codec } from '../map/codec.js'
import type { BpfProgram } from '../prog/program.js'
import type { AnyCollectionShape, CollectionShape } from './shape.js'
import { attachPrograms, type AttachTargets, type CollectionLinks } from './attach.js'

/** A global variable of a loaded collection, read and written in its data map. */
export class Variable<T = unknown> {
  readonly name: string
  readonly section: string
  readonly offset: number
  readonly size: number
  /** .rodata (frozen at load) and .kconfig: get() only. */
  readonly readonly: boolean
  readonly #map: BpfMap
  readonly #mapped: MappedArray | undefined
  readonly #codec: Codec<unknown>

  /** @internal Made by CollectionSpec.load. */
  constructor(init: { name: string; section: string; offset: number; readonly: boolean; map: BpfMap; mapped: MappedArray | undefined; codec: Codec<unknown> }) {
    this.name = init.name
    this.section = init.section
    this.offset = init.offset
    this.size = init.codec.size
    this.readonly = init.readonly
    this.#map = init.map
    this.#mapped = init.mapped
    this.#codec = init.codec
  }

  /** The current value: a read of the mapped memory (or a map lookup on kernels without mmapable arrays). */
  get(): T {
    const bytes = this.#section()
    return this.#codec.decode(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), this.offset) as T
  }

  /** Writes the value the programs see. Errors: TypeError for a read-only variable; TypeError/RangeError for a value that does not fit. */
  set(value: T): void {
    if (this.readonly) throw new TypeError(`variable '${this.name}' is in ${this.section}, which is frozen once loaded: set it on the CollectionSpec before load`)
    const scratch = new Uint8Array(this.size)
    this.#codec.encode(value, new DataView(scratch.buffer), 0)
    if (this.#mapped) {
      ;(this.#mapped.get(0) as Uint8Array).set(scratch, this.offset)
    } else {
      const bytes = this.#section()
      bytes.set(scratch, this.offset)
      this.#map.update(new Uint8Array(4), bytes)
    }
  }

  #section(): Uint8Array {
    return (this.#mapped ? this.#mapped.get(0) : this.#map.lookup(new Uint8Array(4))) as Uint8Array
  }
}

type Maps<S extends CollectionShape> = { readonly [K in keyof S['maps']]: BpfMap<S['maps'][K]['key'], S['maps'][K]['value']> }
  & { readonly [section: `.${string}`]: BpfMap }
type Programs<S extends CollectionShape> = { readonly [K in S['programs']]: BpfProgram }
type Variables<S extends CollectionShape> = { readonly [K in keyof S['variables']]: Variable<S['variables'][K]> }

export class Collection<S extends CollectionShape = AnyCollectionShape> {
  readonly maps: Maps<S>
  readonly programs: Programs<S>
  readonly variables: Variables<S>
  readonly #owned: { close(): void }[]

  /** @internal Made by CollectionSpec.load; `owned` is what close() closes, in order. */
  constructor(maps: Record<string, BpfMap>, programs: Record<string, BpfProgram>, variables: Record<string, Variable>, owned: { close(): void }[]) {
    this.maps = Object.freeze(maps) as Maps<S>
    this.programs = Object.freeze(programs) as Programs<S>
    this.variables = Object.freeze(variables) as Variables<S>
    this.#owned = owned
    Object.freeze(this)
  }

  /**
   * Attaches every loaded program whose section says where it goes, as a
   * libbpf skeleton's __attach does: kprobes, uprobes with a BINARY:FUNCTION
   * section, tracepoints, raw tracepoints, fentry/fexit/fmod_ret/lsm/tp_btf,
   * iterators. Programs whose hook the section cannot name are attached to
   * `targets` (xdp and tc interfaces, a cgroup, a network namespace, a
   * sockmap), or skipped: `skipped` says why for each. The links are closed
   * with the collection (or earlier by their own close()). Errors: the first
   * attach that fails, after closing the links made so far.
   */
  async attach(targets: AttachTargets = {}): Promise<CollectionLinks> {
    const links = attachPrograms(this.programs, this.maps as unknown as Record<string, BpfMap>, targets)
    this.#owned.push(links)
    return links
  }

  /** Closes the links attach() made, the programs, the maps the load created and the variables' mappings. Idempotent. */
  close(): void {
    closeAll(this.#owned.splice(0))
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** Closes each of `objects`, last made first; the first error is thrown after all are closed. */
export function closeAll(objects: readonly { close(): void }[]): void {
  let first: unknown
  for (const o of [...objects].reverse()) {
    try {
      o.close()
    } catch (e) {
      first ??= e
    }
  }
  if (first !== undefined) throw first
}
