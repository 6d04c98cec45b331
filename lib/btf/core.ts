// CO-RE relocation ("compile once, run everywhere"): clang records, in
// .BTF.ext, every instruction whose immediate or offset depends on a kernel
// type's layout (a field's offset or size, a type's existence or id, an enum
// value). Before load, each is recomputed against the target kernel's BTF and
// the instruction patched, as libbpf does (tools/lib/bpf/relo_core.c and
// bpf_object__relocate_core in libbpf.c):
//
// - candidates are the target's types with the local type's name, flavors
//   (`___suffix`) ignored, of a compatible kind; vmlinux first, module BTFs
//   only when vmlinux has none;
// - each candidate is matched against the local access path; all matching
//   candidates must agree, or the relocation is ambiguous (an error);
// - with no match, existence checks become 0, and any other instruction is
//   "poisoned": replaced by a call to helper 0xbad2310, which the verifier
//   rejects only if the instruction is reachable (so guarded code loads);
// - the instruction must hold the local value before it is patched (the
//   check that the .BTF.ext record and the code agree).
import { describeValue } from '../sys/options.js'
import type { CoreReloRecord } from './ext.js'
import { essentialName, type BtfReader } from './reader.js'
import { matchSpec, parseSpec, type Spec } from './core-spec.js'
import { INSN_SIZE, patchInsn, type CoreRes } from './core-patch.js'
import {
  CoreReloKind, CoreSpecError, arrayOf, describeType, intSigned, isAnyEnum, isEnumvalKind, isFieldKind, kindCompat, kindName,
  memberBitSize, memberType, resolveSize, skipMods, type CoreReloKindName,
} from './core-types.js'

export { CoreReloKind, type CoreReloKindName } from './core-types.js'
export { POISON_HELPER } from './core-patch.js'

/** The BTF relocations are computed against: vmlinux and, when it has no candidate, module BTFs. */
export interface CoreTargets {
  vmlinux: BtfReader
  /** Module BTFs (split on vmlinux), asked for only when vmlinux has no candidate for a type. */
  modules?: () => Iterable<{ name: string; btf: BtfReader }>
}

/** A target type a local type may relocate to. */
export interface CoreCandidate {
  btf: BtfReader
  /** 'vmlinux' or the module's name. */
  btfName: string
  id: number
}

/**
 * Candidates by local type id, shared by all relocations of one object (as
 * libbpf's cache is): each relocation that matches narrows the list for the
 * ones after it. Pass one Map to every relocateCore call of an object load.
 */
export type CoreCandidateCache = Map<number, CoreCandidate[]>

export interface CoreResult {
  /** The relocation's index in its section's list, 0-based. */
  index: number
  /** Byte offset of the instruction in the section. */
  insnOff: number
  kind: CoreReloKindName
  /** 'struct task_struct': the local type the access starts from. */
  localType: string
  accessStr: string
  /** The instruction was replaced by a call to the invalid helper 0xbad2310. */
  poisoned: boolean
  /** Why it was poisoned ("field 'pid' not found in 'struct task_struct'"). */
  reason?: string
  /** The value patched in (offset, size, id, 0/1, enum value); absent when poisoned. */
  targetValue?: number | bigint
  /** For TYPE_ID_TARGET: the BTF the id belongs to, 'vmlinux' or a module's name. */
  targetBtf?: string
}

/** A relocation that cannot be applied: ambiguous candidates, a malformed record, an instruction that disagrees with it. */
export class CoreError extends Error {
  readonly code: string
  /** Relocation index in its section. */
  readonly relocation: number
  readonly section: string

  constructor(message: string, where: { section: string; relocation: number }, code = 'EINVAL') {
    super(message)
    this.name = 'CoreError'
    this.code = code
    this.section = where.section
    this.relocation = where.relocation
  }
}

const K = CoreReloKind

/**
 * Applies `relos` (one ELF section's CO-RE records from readBtfExt) to that
 * section's instruction bytes, in place. Returns one result per relocation
 * applied (all, unless `include` says otherwise), in order.
 * Errors: CoreError (code EINVAL, E2BIG, ERANGE or EOPNOTSUPP, libbpf's
 * errno) naming the relocation, the section and the local type.
 */
export function relocateCore(
  section: string, insns: Uint8Array, relos: readonly CoreReloRecord[], local: BtfReader, targets: CoreTargets,
  options: {
    cache?: CoreCandidateCache
    /** Which relocations to apply, by their instruction's byte offset (libbpf skips programs that are not loaded); default all. */
    include?: (insnOff: number) => boolean
  } = {},
): CoreResult[] {
  if (typeof section !== 'string') throw new TypeError(`relocateCore: section must be a string, got ${describeValue(section)}`)
  if (!(insns instanceof Uint8Array)) throw new TypeError(`relocateCore: insns must be a Uint8Array, got ${describeValue(insns)}`)
  if (!Array.isArray(relos)) throw new TypeError(`relocateCore: relos must be an array of CO-RE records, got ${describeValue(relos)}`)
  if (targets === null || typeof targets !== 'object' || targets.vmlinux === undefined) throw new TypeError(`relocateCore: targets must be { vmlinux, modules? }, got ${describeValue(targets)}`)
  const cache = options.cache ?? new Map()
  const view = new DataView(insns.buffer, insns.byteOffset, insns.byteLength)
  const results: CoreResult[] = []
  relos.forEach((relo, index) => {
    if (options.include !== undefined && !options.include(relo.insnOff)) return
    const where = { section, relocation: index }
    let localType = `type ${relo.typeId}`
    try {
      localType = describeType(local, relo.typeId)
      results.push(relocateOne(view, relo, index, local, targets, cache, localType))
    } catch (e) {
      if (e instanceof CoreError) throw e
      const code = e instanceof CoreSpecError ? e.code : 'EINVAL'
      const context = e instanceof CoreSpecError && e.bare ? '' : ` ${kindName(relo.kind) ?? `kind ${relo.kind}`} of '${localType}' (access ${relo.accessStr}):`
      throw new CoreError(`CO-RE relocation #${index} in section ${section}:${context} ${(e as Error).message}`, where, code)
    }
  })
  return results
}

function relocateOne(view: DataView, relo: CoreReloRecord, index: number, local: BtfReader, targets: CoreTargets, cache: CoreCandidateCache, localType: string): CoreResult {
  const kind = kindName(relo.kind)
  if (relo.insnOff % INSN_SIZE !== 0) throw new CoreSpecError(`instruction offset ${relo.insnOff} is not a multiple of ${INSN_SIZE}`)
  if (relo.insnOff + INSN_SIZE > view.byteLength) throw new CoreSpecError(`instruction offset ${relo.insnOff} is past the section's ${view.byteLength} bytes`)
  const localSpec = parseSpec(local, relo.typeId, relo.accessStr, relo.kind)
  const base = { index, insnOff: relo.insnOff, kind: kind!, localType, accessStr: relo.accessStr }

  let res: CoreRes
  let targetBtf: string | undefined
  if (relo.kind === K.TYPE_ID_LOCAL) {
    // No candidates: the id is the object's own. Not validated, as linking may renumber ids.
    const id = BigInt(relo.typeId)
    res = { origVal: id, newVal: id, poison: false, validate: false, failMemsz: false, origSz: 0, newSz: 0 }
  } else {
    const name = local.type(relo.typeId).name
    if (name === '') throw new CoreSpecError(`relocations of anonymous types are not supported`, 'EOPNOTSUPP')
    const cands = candidates(local, relo.typeId, targets, cache)
    let first: { cand: CoreCandidate; spec: Spec; res: CoreRes } | undefined
    const matched: CoreCandidate[] = []
    let miss: string | undefined
    for (const cand of cands) {
      const m = matchSpec(localSpec, cand.btf, cand.id)
      if ('miss' in m) {
        miss ??= m.miss
        continue
      }
      const r = calc(relo.kind, localSpec, m.spec)
      if (first === undefined) {
        first = { cand, spec: m.spec, res: r }
      } else if (m.spec.bitOffset !== first.spec.bitOffset) {
        throw ambiguous(localType, first.cand, cand, `different offsets (${bitsText(first.spec.bitOffset)}, ${bitsText(m.spec.bitOffset)})`, relo)
      } else if (r.poison !== first.res.poison || r.newVal !== first.res.newVal) {
        throw ambiguous(localType, first.cand, cand, `different results (${resText(first.res)}, ${resText(r)})`, relo)
      }
      matched.push(cand)
    }
    if (first !== undefined) {
      cache.set(relo.typeId, matched)
      res = first.res
      targetBtf = first.cand.btfName
    } else {
      res = calc(relo.kind, localSpec, undefined)
      if (res.poison) res.reason = miss ?? `no type '${describeEssential(local, relo.typeId)}' in ${targets.modules ? 'vmlinux or any module' : 'the target BTF'}`
    }
  }
  const patched = patchInsn(view, relo.insnOff, res, localSpec)
  const out: CoreResult = { ...base, poisoned: patched.poisoned }
  if (patched.poisoned) {
    out.reason = patched.reason ?? res.reason
  } else {
    out.targetValue = res.newVal <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(res.newVal) : res.newVal
    if (relo.kind === K.TYPE_ID_TARGET && targetBtf !== undefined) out.targetBtf = targetBtf
  }
  return out
}

// The local type's name with its flavor removed, as candidates are looked up.
function describeEssential(btf: BtfReader, id: number): string {
  const t = btf.type(id)
  return describeType(btf, id).replace(t.name, essentialName(t.name))
}

function candidates(local: BtfReader, localId: number, targets: CoreTargets, cache: CoreCandidateCache): CoreCandidate[] {
  const known = cache.get(localId)
  if (known !== undefined) return known
  const lt = local.type(localId)
  const want = essentialName(lt.name)
  const out: CoreCandidate[] = []
  const add = (btf: BtfReader, btfName: string) => {
    for (const id of btf.withEssentialName(want)) if (kindCompat(btf.type(id), lt)) out.push({ btf, btfName, id })
  }
  add(targets.vmlinux, 'vmlinux')
  if (out.length === 0 && targets.modules !== undefined) for (const m of targets.modules()) add(m.btf, m.name)
  cache.set(localId, out)
  return out
}

function ambiguous(localType: string, a: CoreCandidate, b: CoreCandidate, what: string, relo: CoreReloRecord): CoreSpecError {
  const name = (c: CoreCandidate) => `[${c.id}] ${describeType(c.btf, c.id)}${c.btfName === 'vmlinux' ? '' : ` (${c.btfName})`}`
  return new CoreSpecError(`'${localType}' is ambiguous: candidates ${name(a)}, ${name(b)} give ${what} (${kindName(relo.kind)}, access ${relo.accessStr})`, 'EINVAL', true)
}
const bitsText = (bits: number) => (bits % 8 === 0 ? String(bits / 8) : `bit ${bits}`)
const resText = (r: CoreRes) => (r.poison ? 'not found' : String(r.newVal))

// libbpf's bpf_core_calc_relo: the local (expected) and target values.
function calc(kind: number, localSpec: Spec, targSpec: Spec | undefined): CoreRes {
  const res: CoreRes = { origVal: 0n, newVal: 0n, poison: false, validate: true, failMemsz: false, origSz: 0, newSz: 0 }
  if (isFieldKind(kind)) {
    const l = fieldValue(kind, localSpec)
    res.origVal = l.val
    res.origSz = l.sz
    res.validate = l.validate
    if (targSpec === undefined) {
      if (kind !== K.FIELD_EXISTS) res.poison = true
      return res
    }
    const t = fieldValue(kind, targSpec)
    res.newVal = t.val
    res.newSz = t.sz
    if (res.origSz !== res.newSz) {
      // Only pointers (a 32-bit kernel's) and unsigned integers stay right when the load is resized.
      // Type 0 (a bitfield on one side) is void: neither pointer nor integer.
      const lt = l.typeId === 0 ? undefined : localSpec.btf.type(l.typeId)
      const tt = t.typeId === 0 ? undefined : targSpec.btf.type(t.typeId)
      if (lt === undefined || tt === undefined) {
        res.failMemsz = true
        return res
      }
      const bothPtr = lt.kind === 'PTR' && tt.kind === 'PTR'
      const bothUnsigned = lt.kind === 'INT' && tt.kind === 'INT' && !intSignedOnly(lt) && !intSignedOnly(tt)
      res.failMemsz = !bothPtr && !bothUnsigned
    }
    return res
  }
  if (isEnumvalKind(kind)) {
    res.origVal = enumValue(kind, localSpec)
    if (targSpec === undefined) {
      if (kind === K.ENUMVAL_VALUE) res.poison = true
      return res
    }
    res.newVal = enumValue(kind, targSpec)
    return res
  }
  // Type kinds; a missing type is 0 (TYPE_ID_TARGET is not validated: linking renumbers ids).
  res.origVal = typeValue(kind, localSpec)
  if (kind === K.TYPE_ID_TARGET) res.validate = false
  res.newVal = targSpec === undefined ? 0n : typeValue(kind, targSpec)
  return res
}

// libbpf compares the whole encoding with BTF_INT_SIGNED: a "signed char" (SIGNED|CHAR) counts as not signed there.
const intSignedOnly = (t: { extra: Uint32Array }) => t.extra[0] >>> 24 === 1

function typeValue(kind: number, spec: Spec): bigint {
  switch (kind) {
    case K.TYPE_ID_TARGET: return BigInt(spec.rootId)
    case K.TYPE_EXISTS: case K.TYPE_MATCHES: return 1n
    case K.TYPE_SIZE: {
      const sz = resolveSize(spec.btf, spec.rootId)
      if (sz < 0) throw new CoreSpecError(`${describeType(spec.btf, spec.rootId)} has no size`)
      return BigInt(sz)
    }
    default: throw new CoreSpecError(`unknown relocation kind ${kind}`, 'EOPNOTSUPP')
  }
}

function enumValue(kind: number, spec: Spec): bigint {
  if (kind === K.ENUMVAL_EXISTS) return 1n
  const acc = spec.acc[0]
  const t = spec.btf.type(acc.typeId)
  if (t.kind === 'ENUM') {
    // libbpf reads the 32-bit value as signed and widens it to u64.
    return BigInt.asUintN(64, BigInt(t.extra[2 * acc.idx + 1] | 0))
  }
  return (BigInt(t.extra[3 * acc.idx + 2]) << 32n) | BigInt(t.extra[3 * acc.idx + 1])
}

// libbpf's bpf_core_calc_field_relo for one side. `sz`/`typeId`: the memory
// access size and type a byte-offset relocation implies (0 for bitfields).
function fieldValue(kind: number, spec: Spec): { val: bigint; sz: number; typeId: number; validate: boolean } {
  if (kind === K.FIELD_EXISTS) return { val: 1n, sz: 0, typeId: 0, validate: true }
  const acc = spec.acc[spec.acc.length - 1]
  const btf = spec.btf
  if (acc.name === undefined) {
    // An array element (or the root): only its offset and size are defined.
    if (kind === K.FIELD_BYTE_OFFSET) {
      const sz = resolveSize(btf, elementOf(btf, acc.typeId))
      if (sz < 0) throw new CoreSpecError(`${describeType(btf, acc.typeId)} has no size`)
      return { val: BigInt(spec.bitOffset / 8), sz, typeId: acc.typeId, validate: true }
    }
    if (kind === K.FIELD_BYTE_SIZE) {
      const sz = resolveSize(btf, acc.typeId)
      if (sz < 0) throw new CoreSpecError(`${describeType(btf, acc.typeId)} has no size`)
      return { val: BigInt(sz), sz: 0, typeId: 0, validate: true }
    }
    throw new CoreSpecError(`${kindName(kind)} cannot be applied to an array element`)
  }
  const st = btf.type(acc.typeId)
  const mt = skipMods(btf, memberType(st, acc.idx))
  const bitOff = spec.bitOffset
  let bitSz = memberBitSize(st, acc.idx)
  const bitfield = bitSz > 0
  let byteSz: number
  let byteOff: number
  if (bitfield) {
    // The smallest naturally aligned load, from the member type's size up, that covers the bits.
    byteSz = mt.sizeOrType
    byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz
    while (bitOff + bitSz - byteOff * 8 > byteSz * 8) {
      if (byteSz >= 8) throw new CoreSpecError(`bitfield '${acc.name}' of ${describeType(btf, st.id)} cannot be read with one 64-bit load`, 'E2BIG')
      byteSz *= 2
      byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz
    }
  } else {
    byteSz = resolveSize(btf, mt.id)
    if (byteSz < 0) throw new CoreSpecError(`field '${acc.name}' of ${describeType(btf, st.id)} has no size`)
    byteOff = bitOff / 8
    bitSz = byteSz * 8
  }
  // The compiler's view of a bitfield may differ from ours: only signedness and the right shift are checked.
  let validate = !bitfield
  switch (kind) {
    case K.FIELD_BYTE_OFFSET: {
      if (bitfield) return { val: BigInt(byteOff), sz: 0, typeId: 0, validate }
      const sz = resolveSize(btf, elementOf(btf, mt.id))
      if (sz < 0) throw new CoreSpecError(`field '${acc.name}' of ${describeType(btf, st.id)} has no size`)
      return { val: BigInt(byteOff), sz, typeId: mt.id, validate }
    }
    case K.FIELD_BYTE_SIZE:
      return { val: BigInt(byteSz), sz: 0, typeId: 0, validate }
    case K.FIELD_SIGNED:
      validate = true
      return { val: (isAnyEnum(mt) && mt.kindFlag) || (mt.kind === 'INT' && intSigned(mt)) ? 1n : 0n, sz: 0, typeId: 0, validate }
    case K.FIELD_LSHIFT_U64:
      // Little-endian: shift the field's top bit up to bit 63.
      return { val: BigInt(64 - (bitOff + bitSz - byteOff * 8)), sz: 0, typeId: 0, validate }
    case K.FIELD_RSHIFT_U64:
      return { val: BigInt(64 - bitSz), sz: 0, typeId: 0, validate: true }
    default:
      throw new CoreSpecError(`unknown relocation kind ${kind}`, 'EOPNOTSUPP')
  }
}

// For arrays, loads and stores touch one element: the innermost element type.
function elementOf(btf: BtfReader, id: number): number {
  let t = skipMods(btf, id)
  for (let depth = 0; t.kind === 'ARRAY' && depth < 64; depth++) t = skipMods(btf, arrayOf(t).type)
  return t.id
}
