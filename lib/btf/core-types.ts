// The BTF facts CO-RE relocation works with: relocation kinds, the errors
// that fail a relocation, and small readers of type records (modifiers
// skipped, members, enumerators, sizes as libbpf computes them, names for
// messages). Shared by core-spec.ts, core-compat.ts and core.ts.
import type { BtfReader, BtfTypeRecord } from './reader.js'

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
export const SPEC_MAX_LEN = 64
// Recursion bounds of the type comparisons (libbpf's depth and level limits).
export const MAX_DEPTH = 32

export const VOID_KIND = 'VOID' as BtfTypeRecord['kind']
const VOID: BtfTypeRecord = { id: 0, kind: VOID_KIND, name: '', vlen: 0, kindFlag: false, sizeOrType: 0, extra: new Uint32Array(0) }
export const typeOf = (btf: BtfReader, id: number): BtfTypeRecord => (id === 0 ? VOID : btf.type(id))
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
export const intOffset = (t: BtfTypeRecord) => (t.extra[0] >>> 16) & 0xff
export const intSigned = (t: BtfTypeRecord) => ((t.extra[0] >>> 24) & 1) !== 0
export const memberBitOffset = (t: BtfTypeRecord, i: number) => (t.kindFlag ? t.extra[3 * i + 2] & 0xffffff : t.extra[3 * i + 2])
export const memberBitSize = (t: BtfTypeRecord, i: number) => (t.kindFlag ? t.extra[3 * i + 2] >>> 24 : 0)
export const memberType = (t: BtfTypeRecord, i: number) => t.extra[3 * i + 1]
export const memberName = (btf: BtfReader, t: BtfTypeRecord, i: number) => btf.string(t.extra[3 * i])
export const enumName = (btf: BtfReader, t: BtfTypeRecord, i: number) => btf.string(t.extra[(t.kind === 'ENUM' ? 2 : 3) * i])
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
