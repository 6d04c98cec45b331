// CO-RE access specifications: what a relocation's access string ("0:1:2")
// means in the object's own BTF, and whether (and where) the same access
// exists in a candidate target type. The rules are libbpf's (relo_core.c:
// parsing a spec, matching it to a candidate, field and type compatibility,
// type matching), restated here so that an object relocates the same way
// under bpfkit as under libbpf.
import { essentialName, type BtfReader, type BtfTypeRecord } from './reader.js'

/** enum bpf_core_relo_kind, by name. */
export const CoreReloKind = {
  FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 1, FIELD_EXISTS: 2, FIELD_SIGNED: 3, FIELD_LSHIFT_U64: 4, FIELD_RSHIFT_U64: 5,
  TYPE_ID_LOCAL: 6, TYPE_ID_TARGET: 7, TYPE_EXISTS: 8, TYPE_SIZE: 9, ENUMVAL_EXISTS: 10, ENUMVAL_VALUE: 11, TYPE_MATCHES: 12,
} as const
export type CoreReloKindName = keyof typeof CoreReloKind
const K = CoreReloKind

export const kindName = (kind: number): CoreReloKindName | undefined =>
  (Object.keys(CoreReloKind) as CoreReloKindName[]).find((k) => CoreReloKind[k] === kind)
export const isFieldKind = (kind: number): boolean => kind >= K.FIELD_BYTE_OFFSET && kind <= K.FIELD_RSHIFT_U64
export const isTypeKind = (kind: number): boolean =>
  kind === K.TYPE_ID_LOCAL || kind === K.TYPE_ID_TARGET || kind === K.TYPE_EXISTS || kind === K.TYPE_SIZE || kind === K.TYPE_MATCHES
export const isEnumvalKind = (kind: number): boolean => kind === K.ENUMVAL_EXISTS || kind === K.ENUMVAL_VALUE

/** A relocation that cannot be processed at all (libbpf fails the load); `code` is the errno libbpf returns. */
export class CoreSpecError extends Error {
  constructor(message: string, readonly code: 'EINVAL' | 'E2BIG' | 'ERANGE' | 'EOPNOTSUPP' = 'EINVAL', readonly bare = false) {
    super(message)
  }
}

// libbpf's BPF_CORE_SPEC_MAX_LEN: accessors deeper than this are refused.
const SPEC_MAX_LEN = 64
// Recursion bounds of the type comparisons (libbpf's depth and level limits).
const MAX_DEPTH = 32

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

const VOID_KIND = 'VOID' as BtfTypeRecord['kind']
const VOID: BtfTypeRecord = { id: 0, kind: VOID_KIND, name: '', vlen: 0, kindFlag: false, sizeOrType: 0, extra: new Uint32Array(0) }
const typeOf = (btf: BtfReader, id: number): BtfTypeRecord => (id === 0 ? VOID : btf.type(id))
const modifiers = new Set(['TYPEDEF', 'VOLATILE', 'CONST', 'RESTRICT', 'TYPE_TAG'])

/** The type `id` names once modifiers and typedefs are skipped (its record carries its id). */
export function skipMods(btf: BtfReader, id: number): BtfTypeRecord {
  let t = typeOf(btf, id)
  for (let hops = 0; modifiers.has(t.kind); hops++) {
    if (hops > 64) throw new CoreSpecError(`BTF type ${id}: a loop of typedefs or qualifiers`)
    t = typeOf(btf, t.sizeOrType)
  }
  return t
}

export const isComposite = (t: BtfTypeRecord) => t.kind === 'STRUCT' || t.kind === 'UNION'
export const isAnyEnum = (t: BtfTypeRecord) => t.kind === 'ENUM' || t.kind === 'ENUM64'
/** libbpf's btf_kind_core_compat: the same kind, or any two enums. */
export const kindCompat = (a: BtfTypeRecord, b: BtfTypeRecord) => a.kind === b.kind || (isAnyEnum(a) && isAnyEnum(b))
const intOffset = (t: BtfTypeRecord) => (t.extra[0] >>> 16) & 0xff
export const intSigned = (t: BtfTypeRecord) => ((t.extra[0] >>> 24) & 1) !== 0
const memberBitOffset = (t: BtfTypeRecord, i: number) => (t.kindFlag ? t.extra[3 * i + 2] & 0xffffff : t.extra[3 * i + 2])
export const memberBitSize = (t: BtfTypeRecord, i: number) => (t.kindFlag ? t.extra[3 * i + 2] >>> 24 : 0)
export const memberType = (t: BtfTypeRecord, i: number) => t.extra[3 * i + 1]
const memberName = (btf: BtfReader, t: BtfTypeRecord, i: number) => btf.string(t.extra[3 * i])
const enumName = (btf: BtfReader, t: BtfTypeRecord, i: number) => btf.string(t.extra[(t.kind === 'ENUM' ? 2 : 3) * i])
export const arrayOf = (t: BtfTypeRecord) => ({ type: t.extra[0], nelems: t.extra[2] })

/** libbpf's btf__resolve_size: bytes of a type, -1 when it has none (void, functions, forward declarations). */
export function resolveSize(btf: BtfReader, id: number): number {
  let nelems = 1
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const t = typeOf(btf, id)
    switch (t.kind) {
      case 'INT': case 'STRUCT': case 'UNION': case 'ENUM': case 'ENUM64': case 'DATASEC': case 'FLOAT':
        return nelems * t.sizeOrType
      case 'PTR':
        return nelems * 8
      case 'TYPEDEF': case 'VOLATILE': case 'CONST': case 'RESTRICT': case 'VAR': case 'DECL_TAG': case 'TYPE_TAG':
        id = t.sizeOrType
        break
      case 'ARRAY': {
        const a = arrayOf(t)
        nelems *= a.nelems
        if (nelems > 0xffffffff) return -1
        id = a.type
        break
      }
      default:
        return -1
    }
  }
  return -1
}

/** 'struct task_struct', 'enum foo', 'u32': how a type is named in messages. */
export function describeType(btf: BtfReader, id: number): string {
  const t = typeOf(btf, id)
  const name = t.name === '' ? '<anon>' : t.name
  switch (t.kind) {
    case 'STRUCT': return `struct ${name}`
    case 'UNION': return `union ${name}`
    case 'ENUM': case 'ENUM64': return `enum ${name}`
    case 'FWD': return `${t.kindFlag ? 'union' : 'struct'} ${name}`
    case VOID_KIND: return 'void'
    default: return t.name === '' ? t.kind.toLowerCase() : t.name
  }
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

// libbpf's fields-are-compatible rule: a field's type may differ in size and
// signedness, not in kind.
function fieldsAreCompat(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number): boolean {
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const l = skipMods(lbtf, lid)
    const t = skipMods(tbtf, tid)
    if (isComposite(l) && isComposite(t)) return true
    if (!kindCompat(l, t)) return false
    switch (l.kind) {
      case 'PTR': case 'FLOAT':
        return true
      case 'FWD': case 'ENUM': case 'ENUM64':
        // One of them anonymous, or both with the same name but for flavors.
        return l.name === '' || t.name === '' || essentialName(l.name) === essentialName(t.name)
      case 'INT':
        return intOffset(l) === 0 && intOffset(t) === 0
      case 'ARRAY':
        lid = arrayOf(l).type
        tid = arrayOf(t).type
        continue
      default:
        return false
    }
  }
  throw new CoreSpecError(`types ${lid} and ${tid} nest deeper than ${MAX_DEPTH}`)
}

// libbpf's types-are-compatible rule (TYPE_EXISTS, TYPE_SIZE,
// TYPE_ID_TARGET): names were matched by the candidate search; below the
// root only kinds count.
function typesAreCompat(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number, level: number): boolean {
  if (!kindCompat(typeOf(lbtf, lid), typeOf(tbtf, tid))) return false
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const l = skipMods(lbtf, lid)
    const t = skipMods(tbtf, tid)
    if (!kindCompat(l, t)) return false
    switch (l.kind) {
      case VOID_KIND: case 'STRUCT': case 'UNION': case 'ENUM': case 'ENUM64': case 'FWD':
        return true
      case 'INT':
        return intOffset(l) === 0 && intOffset(t) === 0
      case 'PTR':
        lid = l.sizeOrType
        tid = t.sizeOrType
        continue
      case 'ARRAY':
        lid = arrayOf(l).type
        tid = arrayOf(t).type
        continue
      case 'FUNC_PROTO': {
        if (l.vlen !== t.vlen) return false
        for (let i = 0; i < l.vlen; i++) {
          if (level <= 0) throw new CoreSpecError('function prototypes nest too deep')
          if (!typesAreCompat(lbtf, skipMods(lbtf, l.extra[2 * i + 1]).id, tbtf, skipMods(tbtf, t.extra[2 * i + 1]).id, level - 1)) return false
        }
        lid = skipMods(lbtf, l.sizeOrType).id
        tid = skipMods(tbtf, t.sizeOrType).id
        continue
      }
      default:
        return false
    }
  }
  throw new CoreSpecError(`types ${lid} and ${tid} nest deeper than ${MAX_DEPTH}`)
}

// libbpf's name rule for type matching: an anonymous target matches only an anonymous local.
function namesMatch(l: string, t: string): boolean {
  if (t === '') return l === ''
  return essentialName(l) === essentialName(t)
}

// libbpf's types-match rule (TYPE_MATCHES): a stricter, structural comparison.
function typesMatch(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number, behindPtr: boolean, level: number): boolean {
  if (level <= 0) throw new CoreSpecError('types nest too deep to match')
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const l = skipMods(lbtf, lid)
    const t = skipMods(tbtf, tid)
    if (!namesMatch(l.name, t.name)) return false
    switch (l.kind) {
      case VOID_KIND:
        return t.kind === l.kind
      case 'FWD':
        if (behindPtr && t.kind !== 'FWD') return (t.kind === 'STRUCT' && !l.kindFlag) || (t.kind === 'UNION' && l.kindFlag)
        return t.kind === 'FWD' && l.kindFlag === t.kindFlag
      case 'ENUM': case 'ENUM64':
        return isAnyEnum(t) && enumsMatch(lbtf, l, tbtf, t)
      case 'STRUCT': case 'UNION':
        if (behindPtr) {
          if (l.kind === t.kind) return true
          return t.kind === 'FWD' && (l.kind === 'UNION') === t.kindFlag
        }
        return l.kind === t.kind && compositesMatch(lbtf, l, tbtf, t, behindPtr, level)
      case 'INT':
        return t.kind === 'INT' && l.sizeOrType === t.sizeOrType && intSigned(l) === intSigned(t)
      case 'PTR':
        if (t.kind !== 'PTR') return false
        behindPtr = true
        lid = l.sizeOrType
        tid = t.sizeOrType
        continue
      case 'ARRAY':
        if (t.kind !== 'ARRAY' || arrayOf(l).nelems !== arrayOf(t).nelems) return false
        lid = arrayOf(l).type
        tid = arrayOf(t).type
        continue
      case 'FUNC_PROTO': {
        if (t.kind !== 'FUNC_PROTO' || l.vlen !== t.vlen) return false
        for (let i = 0; i < l.vlen; i++) {
          if (!typesMatch(lbtf, l.extra[2 * i + 1], tbtf, t.extra[2 * i + 1], behindPtr, level - 1)) return false
        }
        lid = l.sizeOrType
        tid = t.sizeOrType
        continue
      }
      default:
        return false
    }
  }
  throw new CoreSpecError(`types ${lid} and ${tid} nest deeper than ${MAX_DEPTH}`)
}

// Same size (an enum may match an enum64), and every local enumerator named in the target.
function enumsMatch(lbtf: BtfReader, l: BtfTypeRecord, tbtf: BtfReader, t: BtfTypeRecord): boolean {
  if (l.sizeOrType !== t.sizeOrType || l.vlen > t.vlen) return false
  const targNames = Array.from({ length: t.vlen }, (_, j) => enumName(tbtf, t, j))
  for (let i = 0; i < l.vlen; i++) {
    const name = enumName(lbtf, l, i)
    if (!targNames.some((tn) => namesMatch(name, tn))) return false
  }
  return true
}

// Every local member has a same-named member in the target whose type matches.
function compositesMatch(lbtf: BtfReader, l: BtfTypeRecord, tbtf: BtfReader, t: BtfTypeRecord, behindPtr: boolean, level: number): boolean {
  if (l.vlen > t.vlen) return false
  for (let i = 0; i < l.vlen; i++) {
    const lname = memberName(lbtf, l, i)
    let matched = false
    for (let j = 0; j < t.vlen && !matched; j++) {
      if (!namesMatch(lname, memberName(tbtf, t, j))) continue
      matched = typesMatch(lbtf, memberType(l, i), tbtf, memberType(t, j), behindPtr, level - 1)
    }
    if (!matched) return false
  }
  return true
}
