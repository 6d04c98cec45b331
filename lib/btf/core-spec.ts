// CO-RE access specifications: what a relocation's access string ("0:1:2")
// means in the object's own BTF, and whether (and where) the same access
// exists in a candidate target type. The rules are libbpf's (relo_core.c:
// parsing a spec and matching it to a candidate), restated here so that an
// object relocates the same way under bpfkit as under libbpf.
import { essentialName, type BtfReader } from './reader.js'
import { fieldsAreCompat, typesAreCompat, typesMatch } from './core-compat.js'
import {
  CoreReloKind as K, CoreSpecError, MAX_DEPTH, SPEC_MAX_LEN, arrayOf, describeType, enumName, isAnyEnum, isComposite, isEnumvalKind, isFieldKind, isTypeKind,
  memberBitOffset, memberName, memberType, resolveSize, skipMods,
} from './core-types.js'

/** A struct/union member (name set) or array element (no name) on the access path. */
export interface Accessor {
  /** The struct/union for a member, the element type for an array index. */
  typeId: number
  idx: number
  name?: string
}

/** One side of a relocation: the local access, or where it lands in a candidate. */
export interface Spec {
  btf: BtfReader
  rootId: number
  kind: number
  /** Raw access indices, anonymous members included. */
  raw: number[]
  /** High-level accessors: named members and array indices. */
  acc: Accessor[]
  bitOffset: number
}

/** Parses `accessStr` against the local BTF (libbpf's bpf_core_parse_spec). Throws CoreSpecError. */
export function parseSpec(btf: BtfReader, rootId: number, accessStr: string, kind: number): Spec {
  const spec: Spec = { btf, rootId, kind, raw: [], acc: [], bitOffset: 0 }
  const bad = (why: string) => new CoreSpecError(`cannot parse access string '${accessStr}' of ${describeType(btf, rootId)}: ${why}`)
  if (accessStr === '' || accessStr.startsWith(':')) throw bad('empty')
  if (isTypeKind(kind)) {
    if (accessStr !== '0') throw bad('a type relocation takes "0"')
    return spec
  }
  for (const part of accessStr.split(':')) {
    if (!/^\d+$/.test(part)) throw bad(`'${part}' is not an index`)
    if (spec.raw.length === SPEC_MAX_LEN) throw new CoreSpecError(`access string '${accessStr}' is deeper than ${SPEC_MAX_LEN}`, 'E2BIG')
    spec.raw.push(Number(part))
  }
  let t = skipMods(btf, rootId)
  let id = t.id
  const first = spec.raw[0]
  spec.acc.push({ typeId: id, idx: first })
  if (isEnumvalKind(kind)) {
    if (!isAnyEnum(t)) throw bad(`${describeType(btf, rootId)} is not an enum`)
    if (spec.raw.length > 1 || first >= t.vlen) throw bad(`no enumerator #${first}`)
    spec.acc[0].name = enumName(btf, t, first)
    return spec
  }
  if (!isFieldKind(kind)) throw bad(`unknown relocation kind ${kind}`)
  const sz = resolveSize(btf, id)
  if (sz < 0) throw bad(`${describeType(btf, id)} has no size`)
  spec.bitOffset = first * sz * 8
  for (let i = 1; i < spec.raw.length; i++) {
    t = skipMods(btf, id)
    id = t.id
    const idx = spec.raw[i]
    if (isComposite(t)) {
      if (idx >= t.vlen) throw bad(`${describeType(btf, id)} has no member #${idx}`)
      spec.bitOffset += memberBitOffset(t, idx)
      // Anonymous members are walked through; only named ones become accessors.
      if (t.extra[3 * idx] !== 0) {
        const name = memberName(btf, t, idx)
        if (name === '') throw bad('a member has an empty name')
        spec.acc.push({ typeId: id, idx, name })
      }
      id = memberType(t, idx)
    } else if (t.kind === 'ARRAY') {
      const a = arrayOf(t)
      const elem = skipMods(btf, a.type)
      id = elem.id
      if (!isFlexArray(btf, spec.acc[spec.acc.length - 1], a.nelems) && idx >= a.nelems) throw bad(`index ${idx} is past the ${a.nelems} elements`)
      spec.acc.push({ typeId: id, idx })
      const esz = resolveSize(btf, id)
      if (esz < 0) throw bad(`${describeType(btf, id)} has no size`)
      spec.bitOffset += idx * esz * 8
    } else {
      throw bad(`index #${i} reaches ${describeType(btf, id)}, neither struct, union nor array`)
    }
  }
  return spec
}

// A zero-length array that is the last member of its struct may be indexed past its end.
function isFlexArray(btf: BtfReader, acc: Accessor | undefined, nelems: number): boolean {
  if (acc?.name === undefined || nelems > 0) return false
  return acc.idx === btf.type(acc.typeId).vlen - 1
}

/** Whether a candidate matched, and when not, why (for the poisoned instruction's reason). */
export type MatchResult = { spec: Spec } | { miss: string }

/** Finds the local access in candidate `targId` of `targ` (libbpf's bpf_core_spec_match). Throws CoreSpecError. */
export function matchSpec(local: Spec, targ: BtfReader, targId: number): MatchResult {
  const spec: Spec = { btf: targ, rootId: targId, kind: local.kind, raw: [], acc: [], bitOffset: 0 }
  if (isTypeKind(local.kind)) {
    const matches = local.kind === K.TYPE_MATCHES
    const ok = matches ? typesMatch(local.btf, local.rootId, targ, targId, false, MAX_DEPTH) : typesAreCompat(local.btf, local.rootId, targ, targId, MAX_DEPTH)
    return ok ? { spec } : { miss: `'${describeType(targ, targId)}' ${matches ? 'does not match' : 'is not compatible with'} local '${describeType(local.btf, local.rootId)}'` }
  }
  if (isEnumvalKind(local.kind)) {
    const t = skipMods(targ, targId)
    if (!isAnyEnum(t)) return { miss: `'${describeType(targ, targId)}' is not an enum` }
    const want = essentialName(local.acc[0].name!)
    for (let i = 0; i < t.vlen; i++) {
      const name = enumName(targ, t, i)
      if (essentialName(name) === want) {
        spec.acc.push({ typeId: t.id, idx: i, name })
        spec.raw.push(i)
        return { spec }
      }
    }
    return { miss: `enum value '${local.acc[0].name}' not found in '${describeType(targ, t.id)}'` }
  }
  let id = targId
  for (let i = 0; i < local.acc.length; i++) {
    const la = local.acc[i]
    const t = skipMods(targ, id)
    id = t.id
    if (la.name !== undefined) {
      const found = matchMember(local.btf, la, targ, id, spec)
      if (typeof found === 'string') return { miss: found }
      id = found
    } else {
      if (i > 0) {
        const where = describeAccess(local, i)
        if (t.kind !== 'ARRAY') return { miss: `${where} is not an array in '${describeType(targ, targId)}'` }
        const a = arrayOf(t)
        if (!isFlexArray(targ, spec.acc[spec.acc.length - 1], a.nelems) && la.idx >= a.nelems) {
          return { miss: `index ${la.idx} of ${where} is past its ${a.nelems} elements in '${describeType(targ, targId)}'` }
        }
        id = skipMods(targ, a.type).id
      }
      if (spec.raw.length === SPEC_MAX_LEN) throw new CoreSpecError(`access in ${describeType(targ, targId)} is deeper than ${SPEC_MAX_LEN}`, 'E2BIG')
      spec.acc.push({ typeId: id, idx: la.idx })
      spec.raw.push(la.idx)
      const sz = resolveSize(targ, id)
      if (sz < 0) throw new CoreSpecError(`${describeType(targ, id)} has no size`)
      spec.bitOffset += la.idx * sz * 8
    }
  }
  return { spec }
}

// "field 'a.b'" for messages: the named accessors before `upTo`.
function describeAccess(local: Spec, upTo: number): string {
  const names = local.acc.slice(0, upTo).filter((a) => a.name !== undefined).map((a) => a.name)
  return names.length === 0 ? 'the root' : `field '${names.join('.')}'`
}

// Finds the local member by name in target composite `targId`, through
// anonymous members (libbpf's bpf_core_match_member). Returns the member's
// type id, or why it is not there.
function matchMember(lbtf: BtfReader, la: Accessor, targ: BtfReader, targId: number, spec: Spec): number | string {
  const lname = la.name!
  const ltype = memberType(lbtf.type(la.typeId), la.idx)
  let incompatible: string | undefined
  // Returns the member's type id, or undefined to keep looking. A same-named
  // member of an incompatible type ends the search at the top level; inside an
  // anonymous member the search goes on after it, as libbpf's does.
  const search = (id: number, nested: boolean): number | undefined => {
    const t = skipMods(targ, id)
    if (!isComposite(t)) return undefined
    for (let i = 0; i < t.vlen; i++) {
      if (spec.raw.length === SPEC_MAX_LEN) throw new CoreSpecError(`access in ${describeType(targ, targId)} is deeper than ${SPEC_MAX_LEN}`, 'E2BIG')
      const bitOffset = memberBitOffset(t, i)
      spec.bitOffset += bitOffset
      spec.raw.push(i)
      const name = memberName(targ, t, i)
      if (name === '') {
        const found = search(memberType(t, i), true)
        if (found !== undefined) return found
      } else if (name === lname) {
        if (fieldsAreCompat(lbtf, ltype, targ, memberType(t, i))) {
          spec.acc.push({ typeId: t.id, idx: i, name })
          return memberType(t, i)
        }
        incompatible ??= `field '${lname}' of '${describeType(targ, t.id)}' has an incompatible type (${describeType(targ, memberType(t, i))}, locally ${describeType(lbtf, ltype)})`
        spec.bitOffset -= bitOffset
        spec.raw.pop()
        if (!nested) return undefined
        continue
      }
      spec.bitOffset -= bitOffset
      spec.raw.pop()
    }
    return undefined
  }
  if (!isComposite(skipMods(targ, targId))) return `'${describeType(targ, targId)}' is not a struct or union`
  return search(targId, false) ?? incompatible ?? `field '${lname}' not found in '${describeType(targ, targId)}'`
}
