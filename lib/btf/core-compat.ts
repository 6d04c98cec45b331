// The type comparisons of CO-RE relocation, as libbpf defines them
// (relo_core.c): when a field's type in the target is compatible with the
// local one, when two types are compatible (TYPE_EXISTS, TYPE_SIZE,
// TYPE_ID_TARGET), and when they match (TYPE_MATCHES, stricter).
import { essentialName, type BtfReader, type BtfTypeRecord } from './reader.js'
import {
  CoreSpecError, MAX_DEPTH, VOID_KIND, arrayOf, enumName, intOffset, intSigned, isAnyEnum, isComposite, kindCompat, memberName, memberType, skipMods, typeOf,
} from './core-types.js'

// libbpf's fields-are-compatible rule: a field's type may differ in size and
// signedness, not in kind.
export function fieldsAreCompat(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number): boolean {
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
export function typesAreCompat(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number, level: number): boolean {
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
export function typesMatch(lbtf: BtfReader, lid: number, tbtf: BtfReader, tid: number, behindPtr: boolean, level: number): boolean {
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
