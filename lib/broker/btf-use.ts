// Which BTF object a map or program uses (its btf_id), read once per object.
// A tenant's maps and programs make its BTF its own too (scope.ts): the kernel
// pins no BTF, so the registry cannot keep one, and without this a
// collection's BTF would leave its owner's view as soon as no task of the
// tenant held the fd. An object's btf_id never changes while it lives, so
// the answer is kept until the object is in no one's view (keepOnly).
import { mapInfoByFd, native, progInfoByFd } from '../sys/index.js'
import type { Ref } from './discovery.js'

export class BtfUse {
  // 0: the object uses no BTF. Objects that could not be read are not kept (asked again next time).
  readonly #known = new Map<Ref, number>()

  /** The BTF id `ref` (a map or program) uses, or undefined: none, another kind, or gone. */
  of(ref: Ref): number | undefined {
    let id = this.#known.get(ref)
    if (id === undefined) {
      id = readBtfId(ref)
      if (id === undefined) return undefined
      this.#known.set(ref, id)
    }
    return id === 0 ? undefined : id
  }

  /** Forgets every object for which `live` says no (ids come round again, much later). */
  keepOnly(live: (ref: Ref) => boolean): void {
    for (const ref of this.#known.keys()) if (!live(ref)) this.#known.delete(ref)
  }
}

function readBtfId(ref: Ref): number | undefined {
  const [kind, text] = ref.split(':')
  if (kind !== 'map' && kind !== 'prog') return undefined
  let fd: number
  try {
    fd = kind === 'map' ? native.mapGetFdById(Number(text)) : native.progGetFdById(Number(text))
  } catch {
    return undefined // gone since the pass that found it
  }
  try {
    return (kind === 'map' ? mapInfoByFd(fd) : progInfoByFd(fd)).btfId
  } finally {
    native.closeFd(fd)
  }
}
