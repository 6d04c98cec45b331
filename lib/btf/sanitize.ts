// BTF for an older kernel: every kind or flag it does not know replaced by
// one it does, as libbpf's bpf_object__sanitize_btf does, so that an object
// built by a new clang still loads its BTF (and with it func and line info)
// on an old kernel. Records keep their length and so type ids never change;
// what is replaced only loses meaning the old kernel could not use anyway.
//
//   kernel lacks               becomes (libbpf's choice unless noted)
//   VAR, DATASEC (5.2)         INT of 1 byte; STRUCT of the variables, names made identifiers
//   FUNC, FUNC_PROTO (5.0)     TYPEDEF; ENUM of 4 bytes (one enumerator a parameter, unnamed ones named)
//   global FUNC (5.6)          static FUNC
//   FLOAT (5.13)               anonymous empty STRUCT of the same size
//   DECL_TAG (5.16)            INT of 1 byte
//   TYPE_TAG (5.17)            anonymous CONST
//   ENUM64 (6.0)               UNION of 1-byte ints named as the enumerators; signed ENUMs unsigned
//   '?' DATASEC names (6.9)    '_' for the '?'
//   tag kind_flag (6.15)       attribute decl tags as missing decl tags; attribute type tags
//                              skipped by whatever referred to them (bpfkit's: libbpf has none)
//   (any of the above)         decl tags whose target became a kind they cannot tag: 1-byte INTs
//   layout section (7.1)       dropped
//
// Beyond libbpf: the replacements are checked against what old kernels'
// btf.c accepts, so names that would be refused are fixed too: 4.20+ checks
// that enumerators and struct members are C identifiers, and clang names
// function-local statics 'func.var' and leaves parameters of prototypes
// unnamed.
import { describeValue } from '../sys/options.js'
import { BtfKind, funcLinkages } from './format.js'
import { RawBtf } from './fixup.js'

/** What the kernel's BTF loader knows (see lib/features/btf-kinds.ts, btfSupport()). */
export interface BtfSupport {
  /** BTF_KIND_FUNC and FUNC_PROTO (Linux 5.0). */
  func: boolean
  /** FUNC with global linkage (5.6). */
  funcGlobal: boolean
  /** BTF_KIND_VAR and DATASEC (5.2). */
  datasec: boolean
  /** DATASEC names starting with '?' (6.9). */
  qmarkDatasec: boolean
  /** BTF_KIND_FLOAT (5.13). */
  float: boolean
  /** BTF_KIND_DECL_TAG (5.16). */
  declTag: boolean
  /** DECL_TAG with kind_flag: an __attribute__ rather than a tag (6.15). */
  declTagKindFlag: boolean
  /** BTF_KIND_TYPE_TAG (5.17). */
  typeTag: boolean
  /** TYPE_TAG with kind_flag: an __attribute__ (6.15). */
  typeTagKindFlag: boolean
  /** BTF_KIND_ENUM64 and signed enums (6.0). */
  enum64: boolean
  /** The header's layout section (7.1). */
  layout: boolean
}

export const btfSupportKeys = ['func', 'funcGlobal', 'datasec', 'qmarkDatasec', 'float', 'declTag', 'declTagKindFlag', 'typeTag', 'typeTagKindFlag', 'enum64', 'layout'] as const satisfies ReadonlyArray<keyof BtfSupport>

/** Everything supported: sanitizeBtf then changes nothing. */
export const FULL_BTF_SUPPORT: Readonly<BtfSupport> = Object.freeze(Object.fromEntries(btfSupportKeys.map((k) => [k, true])) as unknown as BtfSupport)

/** The name libbpf gives the int the members of a replaced ENUM64 point to. */
export const ENUM64_PLACEHOLDER = 'enum64_placeholder'

// BTF_INT_ENC(0, 0, 8): an unsigned 8-bit int.
const INT_8BITS = 8

/**
 * A copy of `btf` that a kernel supporting only `supported` accepts (see the
 * table above). The input is not changed. Errors: TypeError for a bad
 * `supported` or bytes that are not BTF; RangeError for malformed BTF.
 */
export function sanitizeBtf(btf: Uint8Array, supported: BtfSupport): Uint8Array {
  supportArg(supported)
  const s = supported
  const raw = new RawBtf(btf)
  if (!s.layout) raw.layout = undefined
  const n = raw.count
  let enum64Int = 0
  const skippedTags = new Map<number, number>()
  for (let id = 1; id <= n; id++) {
    const kind = raw.kind(id)
    const kflag = raw.kindFlag(id)
    if ((kind === BtfKind.VAR && !s.datasec) || (kind === BtfKind.DECL_TAG && (!s.declTag || (kflag && !s.declTagKindFlag)))) {
      // Size 1: the smallest an int can be, so it fits wherever the original did.
      raw.setInfo(id, BtfKind.INT, 0)
      raw.setSizeOrType(id, 1)
      raw.setWord(id, 0, INT_8BITS)
    } else if (kind === BtfKind.DATASEC && (!s.datasec || raw.vlen(id) === 0)) {
      // An empty DATASEC (a section of unnamed constants) is refused by older
      // kernels ("vlen == 0", 5.10); as an empty struct of its size every kernel takes it.
      datasecToStruct(raw, id)
    } else if (kind === BtfKind.DATASEC && !s.qmarkDatasec && raw.name(id).startsWith('?')) {
      raw.setNameOff(id, raw.addString(`_${raw.name(id).slice(1)}`))
    } else if (kind === BtfKind.FUNC_PROTO && !s.func) {
      // ENUM entries are (name, value) pairs as parameters are (name, type); every enumerator needs a name.
      for (let j = 0; j < raw.vlen(id); j++) {
        const name = raw.string(raw.word(id, 2 * j))
        const fixed = identifier(name, `param${j}`)
        if (fixed !== name) raw.setWord(id, 2 * j, raw.addString(fixed))
      }
      raw.setInfo(id, BtfKind.ENUM, raw.vlen(id))
      raw.setSizeOrType(id, 4)
    } else if (kind === BtfKind.FUNC && !s.func) {
      raw.setInfo(id, BtfKind.TYPEDEF, 0)
    } else if (kind === BtfKind.FUNC && !s.funcGlobal && raw.vlen(id) !== funcLinkages.static) {
      raw.setInfo(id, BtfKind.FUNC, funcLinkages.static)
    } else if (kind === BtfKind.FLOAT && !s.float) {
      raw.setNameOff(id, 0)
      raw.setInfo(id, BtfKind.STRUCT, 0)
    } else if (kind === BtfKind.TYPE_TAG && !s.typeTag) {
      raw.setNameOff(id, 0)
      raw.setInfo(id, BtfKind.CONST, 0)
    } else if (kind === BtfKind.TYPE_TAG && kflag && !s.typeTagKindFlag) {
      skippedTags.set(id, raw.sizeOrType(id))
      raw.setInfo(id, BtfKind.TYPE_TAG, 0)
    } else if (kind === BtfKind.ENUM && !s.enum64 && kflag) {
      raw.setInfo(id, BtfKind.ENUM, raw.vlen(id))
    } else if (kind === BtfKind.ENUM64 && !s.enum64) {
      enum64Int ||= raw.addType([raw.addString(ENUM64_PLACEHOLDER), BtfKind.INT << 24, 1, INT_8BITS])
      const vlen = raw.vlen(id)
      raw.setInfo(id, BtfKind.UNION, vlen)
      for (let j = 0; j < vlen; j++) {
        const name = raw.string(raw.word(id, 3 * j))
        if (!isIdentifier(name)) raw.setWord(id, 3 * j, raw.addString(identifier(name, `value${j}`)))
        raw.setWord(id, 3 * j + 1, enum64Int)
        raw.setWord(id, 3 * j + 2, 0)
      }
    }
  }
  if (skippedTags.size > 0) skipTypeTags(raw, n, skippedTags)
  dropStrandedDeclTags(raw, n)
  return raw.bytes()
}

// A decl tag whose target was replaced by a kind it cannot tag (a VAR now an
// INT, a FUNC now a TYPEDEF tagged on a parameter) goes the way of missing
// decl tags. No real kernel has decl tags without FUNC or VAR, but a
// BtfSupport may say so, and the result must still load.
function dropStrandedDeclTags(raw: RawBtf, n: number): void {
  for (let id = 1; id <= n; id++) {
    if (raw.kind(id) !== BtfKind.DECL_TAG) continue
    const target = raw.sizeOrType(id)
    const component = raw.word(id, 0) | 0
    const kind = target >= 1 && target <= n ? raw.kind(target) : -1
    let ok: boolean
    if (component === -1) {
      ok = kind === BtfKind.STRUCT || kind === BtfKind.UNION || kind === BtfKind.FUNC || kind === BtfKind.VAR || kind === BtfKind.TYPEDEF
    } else if (kind === BtfKind.STRUCT || kind === BtfKind.UNION) {
      ok = component < raw.vlen(target)
    } else if (kind === BtfKind.FUNC) {
      const proto = raw.sizeOrType(target)
      ok = proto >= 1 && proto <= n && raw.kind(proto) === BtfKind.FUNC_PROTO && component < raw.vlen(proto)
    } else {
      ok = false
    }
    if (!ok) {
      raw.setInfo(id, BtfKind.INT, 0)
      raw.setSizeOrType(id, 1)
      raw.setWord(id, 0, INT_8BITS)
    }
  }
}

// A DATASEC becomes a STRUCT of its variables (now 1-byte ints) at their offsets.
function datasecToStruct(raw: RawBtf, id: number): void {
  raw.setNameOff(id, raw.addString(identifier(raw.name(id), 'datasec')))
  const vlen = raw.vlen(id)
  raw.setInfo(id, BtfKind.STRUCT, vlen)
  for (let j = 0; j < vlen; j++) {
    const type = raw.word(id, 3 * j)
    const offset = raw.word(id, 3 * j + 1)
    const name = type >= 1 && type <= raw.count ? raw.name(type) : ''
    raw.setWord(id, 3 * j, raw.addString(identifier(name, `var${j}`)))
    raw.setWord(id, 3 * j + 1, type)
    raw.setWord(id, 3 * j + 2, offset * 8)
  }
}

// Attribute type tags an old kernel would misread as tags: everything that
// referred to one refers to what it tagged instead, so it drops out of every
// pointer chain (a CONST in its place would break the rule that tags precede
// modifiers). The record itself stays, a plain type tag nothing refers to
// (the kernel checks the chains of unreferenced records too, so it cannot
// become a CONST in front of a tag either).
function skipTypeTags(raw: RawBtf, n: number, skipped: Map<number, number>): void {
  const target = (t: number): number => {
    for (let hops = 0; skipped.has(t) && hops <= skipped.size; hops++) t = skipped.get(t) as number
    return t
  }
  for (let id = 1; id <= n; id++) {
    if (skipped.has(id)) continue
    const kind = raw.kind(id)
    const vlen = raw.vlen(id)
    switch (kind) {
      case BtfKind.PTR: case BtfKind.TYPEDEF: case BtfKind.VOLATILE: case BtfKind.CONST: case BtfKind.RESTRICT:
      case BtfKind.TYPE_TAG: case BtfKind.FUNC: case BtfKind.VAR: case BtfKind.DECL_TAG: case BtfKind.FUNC_PROTO:
        raw.setSizeOrType(id, target(raw.sizeOrType(id)))
        break
    }
    if (kind === BtfKind.ARRAY) {
      raw.setWord(id, 0, target(raw.word(id, 0)))
      raw.setWord(id, 1, target(raw.word(id, 1)))
    } else if (kind === BtfKind.STRUCT || kind === BtfKind.UNION) {
      for (let j = 0; j < vlen; j++) raw.setWord(id, 3 * j + 1, target(raw.word(id, 3 * j + 1)))
    } else if (kind === BtfKind.FUNC_PROTO) {
      for (let j = 0; j < vlen; j++) raw.setWord(id, 2 * j + 1, target(raw.word(id, 2 * j + 1)))
    } else if (kind === BtfKind.DATASEC) {
      for (let j = 0; j < vlen; j++) raw.setWord(id, 3 * j, target(raw.word(id, 3 * j)))
    }
  }
}

function isIdentifier(s: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(s)
}

// A C identifier for `name` (what btf.c's btf_name_valid_identifier takes): other characters become '_'.
function identifier(name: string, fallback: string): string {
  if (isIdentifier(name)) return name
  if (name === '') return fallback
  const s = name.replace(/[^A-Za-z0-9_]/g, '_')
  return /^[0-9]/.test(s) ? `_${s}` : s
}

function supportArg(s: unknown): void {
  if (s === null || typeof s !== 'object') throw new TypeError(`sanitizeBtf: supported must be a BtfSupport object, got ${describeValue(s)}`)
  for (const k of btfSupportKeys) {
    const v = (s as Record<string, unknown>)[k]
    if (typeof v !== 'boolean') throw new TypeError(`sanitizeBtf: supported.${k} must be a boolean, got ${describeValue(v)}`)
  }
}
