// Builds raw BTF (the kernel's BPF Type Format) in TypeScript: the header,
// the type section and the string table, ready for `Btf.load`. Every kind the
// kernel knows is here (INT .. ENUM64); type ids count from 1, 0 is void.
//
//   const b = new BtfBuilder()
//   const u32 = b.int('unsigned int', 4)
//   const pair = b.struct('pair', [{ name: 'a', type: u32 }, { name: 'b', type: u32 }])
//   const btf = await Btf.load(b.bytes())
//
// Layout rules are those of the C ABI on 64-bit targets, the one BPF uses:
// pointers are 8 bytes, scalars are aligned to their size (at most 8), a
// struct is aligned to its most aligned member and padded to a multiple of it.
// Minimum kernels for the kinds: INT..FUNC_PROTO 4.18 (FUNC, FUNC_PROTO 5.0),
// VAR and DATASEC 5.2, FLOAT 5.13, DECL_TAG 5.16, TYPE_TAG 5.17, ENUM64 6.0.
import { findEnumName } from '../sys/names.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BTF_HEADER_SIZE, BTF_MAGIC, BTF_VERSION, BtfIntEncoding, BtfKind, funcLinkages, varLinkages, type BtfKindName, type BtfMember, type BtfParam, type BtfSecInfo, type FuncLinkage, type VarLinkage } from './format.js'
import { MAX_U32, enumValuesArg, idArg, listArg, nameArg, numberArg, u32 } from './builder-args.js'

export { BTF_MAGIC, BTF_VERSION, BTF_HEADER_SIZE, BtfKind, BtfIntEncoding } from './format.js'
export type { BtfKindName, BtfMember, BtfParam, BtfSecInfo, FuncLinkage, VarLinkage } from './format.js'

// One encoded type: the common 12-byte header plus what its kind appends.
interface TypeRecord {
  kind: number
  name: string
  nameOff: number
  vlen: number
  kindFlag: boolean
  /** `size` for sized kinds, `type` for the referring ones. */
  sizeOrType: number
  /** The words (u32, or i32 where the kernel reads signed) after the header. */
  extra: number[]
  /** Type ids this record refers to, checked when the blob is made. */
  refs: number[]
}

const MAX_VLEN = 0xffff
// Kinds that only qualify or rename another type (VAR: a variable has its type's size).
const modifierKinds = new Set<number>([BtfKind.TYPEDEF, BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT, BtfKind.TYPE_TAG, BtfKind.VAR])

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a
}

/** Raw BTF assembled type by type. Methods return the new type's id. */
export class BtfBuilder {
  readonly #types: TypeRecord[] = []
  readonly #aligns = new Map<number, number>()
  readonly #strings: string[] = ['']
  readonly #stringOffsets = new Map<string, number>([['', 0]])
  #stringBytes = 1

  /** Number of types added so far (the id of the last one). */
  get count(): number {
    return this.#types.length
  }

  /** Offset of `s` in the string table, adding it once. */
  string(s: string): number {
    if (typeof s !== 'string') throw new TypeError(`BTF names must be strings, got ${typeof s}`)
    const known = this.#stringOffsets.get(s)
    if (known !== undefined) return known
    if (s.includes('\0')) throw new TypeError(`BTF name contains NUL: ${JSON.stringify(s)}`)
    const off = this.#stringBytes
    this.#strings.push(s)
    this.#stringOffsets.set(s, off)
    this.#stringBytes += Buffer.byteLength(s, 'utf8') + 1
    return off
  }

  #add(kind: number, name: string, sizeOrType: number, extra: number[] = [], opts: { vlen?: number; kindFlag?: boolean; refs?: number[] } = {}): number {
    const vlen = opts.vlen ?? 0
    if (vlen > MAX_VLEN) throw new RangeError(`BTF type has ${vlen} members; at most ${MAX_VLEN}`)
    const rec: TypeRecord = {
      kind, name, nameOff: this.string(name), vlen, kindFlag: opts.kindFlag ?? false,
      sizeOrType: u32('size or type', sizeOrType), extra, refs: opts.refs ?? [],
    }
    this.#types.push(rec)
    return this.#types.length
  }

  #record(id: number): TypeRecord {
    const rec = this.#types[id - 1]
    if (!Number.isInteger(id) || id < 1 || rec === undefined) throw new RangeError(`no BTF type with id ${id}`)
    return rec
  }

  /** An integer of `size` bytes (1, 2, 4, 8 or 16). */
  int(name: string, size: number, options: { signed?: boolean; char?: boolean; bool?: boolean; bits?: number; bitOffset?: number } = {}): number {
    nameArg('int', 'name', name)
    numberArg('int', 'size', size)
    checkOptions('BtfBuilder.int', options, ['signed', 'char', 'bool', 'bits', 'bitOffset'], { types: { bits: 'number', bitOffset: 'number' } })
    if (![1, 2, 4, 8, 16].includes(size)) throw new RangeError(`BTF int size must be 1, 2, 4, 8 or 16 bytes, got ${size}`)
    const bits = options.bits ?? size * 8
    const bitOffset = options.bitOffset ?? 0
    if (!Number.isInteger(bits) || bits < 1 || bits > 128 || !Number.isInteger(bitOffset) || bitOffset < 0 || bits + bitOffset > size * 8) {
      throw new RangeError(`BTF int ${name}: ${bits} bits at bit ${bitOffset} do not fit in ${size} bytes`)
    }
    // The kernel takes one encoding at most: a char is neither signed nor unsigned to it.
    const flags = [options.signed && 'signed', options.char && 'char', options.bool && 'bool'].filter(Boolean)
    if (flags.length > 1) throw new TypeError(`BTF int ${name}: only one of signed, char and bool may be set, got ${flags.join(' and ')}`)
    const encoding = (options.signed ? BtfIntEncoding.SIGNED : 0) | (options.char ? BtfIntEncoding.CHAR : 0) | (options.bool ? BtfIntEncoding.BOOL : 0)
    return this.#add(BtfKind.INT, name, size, [((encoding << 24) | (bitOffset << 16) | bits) >>> 0])
  }

  /** A floating point type of 2, 4, 8, 12 or 16 bytes (Linux 5.13+). */
  float(name: string, size: number): number {
    nameArg('float', 'name', name)
    numberArg('float', 'size', size)
    if (![2, 4, 8, 12, 16].includes(size)) throw new RangeError(`BTF float size must be 2, 4, 8, 12 or 16 bytes, got ${size}`)
    return this.#add(BtfKind.FLOAT, name, size)
  }

  /** A pointer to `target` (0 for void *). */
  ptr(target: number): number {
    idArg('ptr', 'target', target)
    return this.#add(BtfKind.PTR, '', target, [], { refs: [target] })
  }

  /**
   * An array of `length` elements of `elem`. The index type is an int; one is
   * added (named like clang's `__ARRAY_SIZE_TYPE__`) unless given.
   */
  array(elem: number, length: number, indexType?: number): number {
    idArg('array', 'elem', elem)
    u32('array length', numberArg('array', 'length', length))
    if (indexType !== undefined) idArg('array', 'indexType', indexType)
    const index = indexType ?? this.#arrayIndexType()
    return this.#add(BtfKind.ARRAY, '', 0, [elem, index, length], { refs: [elem, index] })
  }

  #indexType = 0
  #arrayIndexType(): number {
    if (this.#indexType === 0) this.#indexType = this.int('__ARRAY_SIZE_TYPE__', 4)
    return this.#indexType
  }

  /**
   * A struct. Members without an offset follow each other at their natural
   * alignment; `size` defaults to the end of the last member padded to the
   * struct's alignment. Bitfield members (bitSize) set the kind flag.
   */
  struct(name: string, members: readonly BtfMember[], options: { size?: number } = {}): number {
    checkOptions('BtfBuilder.struct', options, ['size'], { types: { size: 'number' } })
    return this.#composite(BtfKind.STRUCT, name, members, options.size)
  }

  /** A union: every member at offset 0 unless placed otherwise. */
  union(name: string, members: readonly BtfMember[], options: { size?: number } = {}): number {
    checkOptions('BtfBuilder.union', options, ['size'], { types: { size: 'number' } })
    listArg('union', 'members', members, 'members { name, type }')
    return this.#composite(BtfKind.UNION, name, members.map((m) => (m.offset === undefined && m.bitOffset === undefined ? { ...m, bitOffset: 0 } : m)), options.size)
  }

  #composite(kind: number, name: string, members: readonly BtfMember[], size: number | undefined): number {
    const where = kind === BtfKind.UNION ? 'union' : 'struct'
    nameArg(where, 'name', name)
    listArg(where, 'members', members, 'members { name, type }')
    members.forEach((m, i) => {
      nameArg(where, `members[${i}].name`, m.name)
      idArg(where, `members[${i}].type`, m.type)
      for (const k of ['offset', 'bitOffset', 'bitSize'] as const) if (m[k] !== undefined) numberArg(where, `members[${i}].${k}`, m[k])
    })
    const bitfields = members.some((m) => m.bitSize !== undefined)
    let end = 0
    let align = 1
    const extra: number[] = []
    const refs: number[] = []
    const names = new Set<string>()
    for (const m of members) {
      if (m.name !== '' && names.has(m.name)) throw new TypeError(`BTF ${name || 'anonymous type'}: duplicate member '${m.name}'`)
      names.add(m.name)
      let bitOffset: number
      if (m.bitOffset !== undefined) bitOffset = u32('member bit offset', m.bitOffset)
      else if (m.offset !== undefined) bitOffset = u32('member offset', m.offset) * 8
      else bitOffset = alignUp(end, this.alignOf(m.type)) * 8
      let memberEnd: number
      if (m.bitSize !== undefined) {
        if (!Number.isInteger(m.bitSize) || m.bitSize < 1 || m.bitSize > 255) throw new RangeError(`bitfield '${m.name}' must be 1..255 bits, got ${m.bitSize}`)
        if (bitOffset > 0xffffff) throw new RangeError(`bitfield '${m.name}' starts beyond bit 2^24`)
        memberEnd = Math.ceil((bitOffset + m.bitSize) / 8)
      } else {
        if (bitfields && bitOffset > 0xffffff) throw new RangeError(`member '${m.name}' starts beyond bit 2^24 in a struct with bitfields`)
        memberEnd = bitOffset / 8 + this.sizeOf(m.type)
      }
      end = Math.max(end, memberEnd)
      align = Math.max(align, this.alignOf(m.type))
      extra.push(this.string(m.name), m.type, bitfields ? (((m.bitSize ?? 0) << 24) | bitOffset) >>> 0 : bitOffset)
      refs.push(m.type)
    }
    const total = size ?? alignUp(end, align)
    if (total < end) throw new RangeError(`BTF ${name || 'anonymous type'}: size ${total} is smaller than its members (${end} bytes)`)
    return this.#add(kind, name, total, extra, { vlen: members.length, kindFlag: bitfields, refs })
  }

  /** A forward declaration of a struct or union. */
  fwd(name: string, kind: 'struct' | 'union' = 'struct'): number {
    nameArg('fwd', 'name', name)
    if (kind !== 'struct' && kind !== 'union') throw new TypeError(`BtfBuilder.fwd: kind must be 'struct' or 'union', got ${describeValue(kind)}`)
    return this.#add(BtfKind.FWD, name, 0, [], { kindFlag: kind === 'union' })
  }

  /** A 32-bit (or smaller) enum; values must fit its size. */
  enum(name: string, values: ReadonlyArray<readonly [string, number]>, options: { size?: 1 | 2 | 4; signed?: boolean } = {}): number {
    nameArg('enum', 'name', name)
    enumValuesArg('enum', values, 'number')
    checkOptions('BtfBuilder.enum', options, ['size', 'signed'], { types: { size: 'number', signed: 'boolean' } })
    const size = options.size ?? 4
    const extra: number[] = []
    for (const [n, v] of values) {
      if (!Number.isInteger(v) || v < -0x80000000 || v > MAX_U32) throw new RangeError(`enum ${name}: ${n} = ${v} does not fit 32 bits; use enum64`)
      extra.push(this.string(n), v >>> 0)
    }
    return this.#add(BtfKind.ENUM, name, size, extra, { vlen: values.length, kindFlag: options.signed ?? values.some(([, v]) => v < 0) })
  }

  /** A 64-bit enum (Linux 6.0+). */
  enum64(name: string, values: ReadonlyArray<readonly [string, bigint]>, options: { size?: 1 | 2 | 4 | 8; signed?: boolean } = {}): number {
    nameArg('enum64', 'name', name)
    enumValuesArg('enum64', values, 'bigint')
    checkOptions('BtfBuilder.enum64', options, ['size', 'signed'], { types: { size: 'number', signed: 'boolean' } })
    const extra: number[] = []
    for (const [n, v] of values) {
      const bits = BigInt.asUintN(64, v)
      extra.push(this.string(n), Number(bits & 0xffffffffn), Number(bits >> 32n))
    }
    return this.#add(BtfKind.ENUM64, name, options.size ?? 8, extra, { vlen: values.length, kindFlag: options.signed ?? values.some(([, v]) => v < 0n) })
  }

  typedef(name: string, target: number): number {
    nameArg('typedef', 'name', name)
    idArg('typedef', 'target', target)
    return this.#add(BtfKind.TYPEDEF, name, target, [], { refs: [target] })
  }

  const(target: number): number {
    idArg('const', 'target', target)
    return this.#add(BtfKind.CONST, '', target, [], { refs: [target] })
  }

  volatile(target: number): number {
    idArg('volatile', 'target', target)
    return this.#add(BtfKind.VOLATILE, '', target, [], { refs: [target] })
  }

  restrict(target: number): number {
    idArg('restrict', 'target', target)
    return this.#add(BtfKind.RESTRICT, '', target, [], { refs: [target] })
  }

  /** A function prototype; `ret` 0 is void. Parameter names may be empty. */
  funcProto(ret: number, params: readonly BtfParam[]): number {
    idArg('funcProto', 'ret', ret)
    listArg<BtfParam>('funcProto', 'params', params, 'parameters { name?, type }').forEach((p, i) => {
      if (p.name !== undefined) nameArg('funcProto', `params[${i}].name`, p.name)
      idArg('funcProto', `params[${i}].type`, p.type)
    })
    const extra: number[] = []
    for (const p of params) extra.push(this.string(p.name ?? ''), p.type)
    return this.#add(BtfKind.FUNC_PROTO, '', ret, extra, { vlen: params.length, refs: [ret, ...params.map((p) => p.type)] })
  }

  /** A function of prototype `proto` (Linux 5.0+; global linkage 5.6+). */
  func(name: string, proto: number, linkage: FuncLinkage = 'static'): number {
    nameArg('func', 'name', name)
    idArg('func', 'proto', proto)
    if (!Object.hasOwn(funcLinkages, linkage)) throw new TypeError(`unknown function linkage '${linkage}'`)
    return this.#add(BtfKind.FUNC, name, proto, [], { vlen: funcLinkages[linkage], refs: [proto] })
  }

  /** A variable (Linux 5.2+). */
  var(name: string, type: number, linkage: VarLinkage = 'static'): number {
    nameArg('var', 'name', name)
    idArg('var', 'type', type)
    if (!Object.hasOwn(varLinkages, linkage)) throw new TypeError(`unknown variable linkage '${linkage}'`)
    return this.#add(BtfKind.VAR, name, type, [varLinkages[linkage]], { refs: [type] })
  }

  /** A data section ('.data', '.bss', ...) placing variables (Linux 5.2+). */
  datasec(name: string, vars: readonly BtfSecInfo[], size?: number): number {
    nameArg('datasec', 'name', name)
    listArg<BtfSecInfo>('datasec', 'vars', vars, 'entries { type, offset, size }').forEach((v, i) => {
      idArg('datasec', `vars[${i}].type`, v.type)
      numberArg('datasec', `vars[${i}].offset`, v.offset)
      numberArg('datasec', `vars[${i}].size`, v.size)
    })
    if (size !== undefined) numberArg('datasec', 'size', size)
    const extra: number[] = []
    let end = 0
    for (const v of vars) {
      extra.push(v.type, u32('var offset', v.offset), u32('var size', v.size))
      end = Math.max(end, v.offset + v.size)
    }
    return this.#add(BtfKind.DATASEC, name, size ?? end, extra, { vlen: vars.length, refs: vars.map((v) => v.type) })
  }

  /** A declaration tag on a type, or on one of its members or parameters (componentIdx; -1 for the type itself). Linux 5.16+. */
  declTag(name: string, target: number, componentIdx = -1): number {
    nameArg('declTag', 'name', name)
    idArg('declTag', 'target', target)
    if (!Number.isInteger(componentIdx) || componentIdx < -1) throw new RangeError(`componentIdx must be -1 or a member index, got ${componentIdx}`)
    return this.#add(BtfKind.DECL_TAG, name, target, [componentIdx >>> 0], { refs: [target] })
  }

  /** A type tag (e.g. 'user', 'percpu') on a pointee (Linux 5.17+). */
  typeTag(name: string, target: number): number {
    nameArg('typeTag', 'name', name)
    idArg('typeTag', 'target', target)
    return this.#add(BtfKind.TYPE_TAG, name, target, [], { refs: [target] })
  }

  /** The kind of type `id`. */
  kindOf(id: number): BtfKindName {
    const k = this.#record(id).kind
    return findEnumName(BtfKind, k) as BtfKindName
  }

  // Follows typedefs, qualifiers and variables to the type that has a size.
  #resolve(id: number): { id: number; t: TypeRecord } {
    for (let depth = 0; depth < 64; depth++) {
      const t = this.#record(id)
      if (!modifierKinds.has(t.kind)) return { id, t }
      id = t.sizeOrType
    }
    throw new RangeError(`BTF type ${id}: modifier chain too deep`)
  }

  /** Size in bytes of type `id`, through typedefs and modifiers. */
  sizeOf(id: number): number {
    const r = this.#resolve(id)
    switch (r.t.kind) {
      case BtfKind.INT: case BtfKind.FLOAT: case BtfKind.STRUCT: case BtfKind.UNION:
      case BtfKind.ENUM: case BtfKind.ENUM64: case BtfKind.DATASEC:
        return r.t.sizeOrType
      case BtfKind.PTR:
        return 8
      case BtfKind.ARRAY:
        return this.sizeOf(r.t.extra[0]) * r.t.extra[2]
      default:
        throw new TypeError(`BTF type ${r.id} (${this.kindOf(r.id)}) has no size`)
    }
  }

  /** Natural alignment of type `id` in bytes. */
  alignOf(id: number): number {
    const r = this.#resolve(id)
    switch (r.t.kind) {
      case BtfKind.INT: case BtfKind.FLOAT: case BtfKind.ENUM: case BtfKind.ENUM64:
        return Math.min(r.t.sizeOrType, 8)
      case BtfKind.PTR:
        return 8
      case BtfKind.ARRAY:
        return this.alignOf(r.t.extra[0])
      case BtfKind.STRUCT: case BtfKind.UNION: {
        // Remembered per aggregate: a type used by several members at every level would cost 2^depth walks.
        let a = this.#aligns.get(r.id)
        if (a === undefined) {
          a = 1
          for (let i = 0; i < r.t.vlen; i++) a = Math.max(a, this.alignOf(r.t.extra[i * 3 + 1]))
          this.#aligns.set(r.id, a)
        }
        return a
      }
      default:
        throw new TypeError(`BTF type ${r.id} (${this.kindOf(r.id)}) has no alignment`)
    }
  }

  /** The raw BTF: header, types, strings (little-endian, as BPF targets are here). */
  bytes(): Uint8Array {
    const n = this.#types.length
    let typeLen = 0
    for (const [i, t] of this.#types.entries()) {
      for (const r of t.refs) {
        if (!Number.isInteger(r) || r < 0 || r > n) throw new RangeError(`BTF type ${i + 1} refers to type ${r}, which does not exist (${n} types)`)
      }
      typeLen += 12 + 4 * t.extra.length
    }
    const out = new Uint8Array(BTF_HEADER_SIZE + typeLen + this.#stringBytes)
    const v = new DataView(out.buffer)
    v.setUint16(0, BTF_MAGIC, true)
    v.setUint8(2, BTF_VERSION)
    v.setUint8(3, 0)
    v.setUint32(4, BTF_HEADER_SIZE, true)
    v.setUint32(8, 0, true)
    v.setUint32(12, typeLen, true)
    v.setUint32(16, typeLen, true)
    v.setUint32(20, this.#stringBytes, true)
    let at = BTF_HEADER_SIZE
    for (const t of this.#types) {
      v.setUint32(at, t.nameOff, true)
      v.setUint32(at + 4, ((t.kindFlag ? 1 << 31 : 0) | (t.kind << 24) | t.vlen) >>> 0, true)
      v.setUint32(at + 8, t.sizeOrType, true)
      at += 12
      for (const w of t.extra) {
        v.setUint32(at, w >>> 0, true)
        at += 4
      }
    }
    for (const s of this.#strings) {
      const b = Buffer.from(s, 'utf8')
      out.set(b, at)
      at += b.length + 1
    }
    return out
  }
}
