// The BPF Type Format's fixed facts: header, kind numbers, encodings and
// linkages, and the shapes of members, parameters and section entries. Shared
// by the builder and the reader.

export const BTF_MAGIC = 0xeb9f
export const BTF_VERSION = 1
export const BTF_HEADER_SIZE = 24

/** BTF kinds (BTF_KIND_*). */
export const BtfKind = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8,
  VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14,
  DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
} as const
export type BtfKindName = keyof typeof BtfKind

/** BTF_INT_* encoding bits of an INT. */
export const BtfIntEncoding = { SIGNED: 1, CHAR: 2, BOOL: 4 } as const

export const funcLinkages = { static: 0, global: 1, extern: 2 } as const
export const varLinkages = { static: 0, global: 1, extern: 2 } as const
export type FuncLinkage = keyof typeof funcLinkages
export type VarLinkage = keyof typeof varLinkages

export interface BtfMember {
  name: string
  type: number
  /** Byte offset; with neither this nor bitOffset, the next naturally aligned offset. */
  offset?: number
  /** Bit offset from the start of the struct (takes precedence over offset). */
  bitOffset?: number
  /** Width of a bitfield member in bits; absent for ordinary members. */
  bitSize?: number
}

export interface BtfParam {
  name?: string
  type: number
}

export interface BtfSecInfo {
  /** A VAR (or FUNC) type id. */
  type: number
  offset: number
  size: number
}

/** u32 words each kind's record carries after its 12-byte header, given vlen; -1 for a kind this library does not know. */
export function extraWords(kind: number, vlen: number): number {
  switch (kind) {
    case BtfKind.INT: case BtfKind.VAR: case BtfKind.DECL_TAG: return 1
    case BtfKind.ARRAY: return 3
    case BtfKind.STRUCT: case BtfKind.UNION: case BtfKind.DATASEC: case BtfKind.ENUM64: return 3 * vlen
    case BtfKind.ENUM: case BtfKind.FUNC_PROTO: return 2 * vlen
    case BtfKind.PTR: case BtfKind.FWD: case BtfKind.TYPEDEF: case BtfKind.VOLATILE: case BtfKind.CONST:
    case BtfKind.RESTRICT: case BtfKind.FUNC: case BtfKind.FLOAT: case BtfKind.TYPE_TAG: return 0
    default: return -1
  }
}
