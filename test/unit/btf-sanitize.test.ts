// sanitizeBtf: each replacement, on BtfBuilder-made BTF with every kind and
// flag an old kernel may lack, decoded back with BtfReader record by record.
// (test/kernel/btf-sanitize.test.ts loads the results on the kernel.)
import { describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { RawBtf } from '../../lib/btf/fixup.js'
import { BtfKind } from '../../lib/btf/format.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { ENUM64_PLACEHOLDER, FULL_BTF_SUPPORT, btfSupportKeys, sanitizeBtf, type BtfSupport } from '../../lib/btf/sanitize.js'

/** BTF with every kind and flag sanitizeBtf knows, and the ids of the interesting types. */
function everyKindBtf() {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const u64 = b.int('unsigned long long', 8)
  const ids = {
    int,
    proto: b.funcProto(int, [{ name: 'ctx', type: int }, { type: u64 }]),
    staticFunc: 0, globalFunc: 0, float: 0, varA: 0, varB: 0, data: 0, qmark: 0,
    declTag: 0, declAttr: 0, userTag: 0, attrTag: 0, ptrAttr: 0, ptrUser: 0, attrTag2: 0, signedEnum: 0, unsignedEnum: 0,
    enum64: 0, enum64b: 0, holder: 0,
  }
  ids.staticFunc = b.func('helper', ids.proto, 'static')
  ids.globalFunc = b.func('entry', ids.proto, 'global')
  ids.float = b.float('double', 8)
  ids.varA = b.var('counter', u64, 'global')
  ids.varB = b.var('entry.msg', b.array(int, 3), 'static')
  ids.data = b.datasec('.data.x', [{ type: ids.varA, offset: 0, size: 8 }, { type: ids.varB, offset: 8, size: 12 }], 24)
  ids.qmark = b.datasec('?.struct_ops', [{ type: b.var('ops', int, 'global'), offset: 0, size: 4 }], 4)
  ids.declTag = b.declTag('arg:ctx', ids.globalFunc, 0)
  ids.declAttr = b.declTag('aligned(8)', ids.varA)
  // ptr -> attribute(kflag) -> 'user' -> int, and ptr -> 'user' -> attribute(kflag) -> int.
  ids.userTag = b.typeTag('user', int)
  ids.attrTag = b.typeTag('noderef', ids.userTag)
  ids.ptrAttr = b.ptr(ids.attrTag)
  ids.attrTag2 = b.typeTag('noderef', int)
  const user2 = b.typeTag('user', ids.attrTag2)
  ids.ptrUser = b.ptr(user2)
  ids.signedEnum = b.enum('sign', [['NEG', -1], ['POS', 1]])
  ids.unsignedEnum = b.enum('plain', [['A', 1]])
  ids.enum64 = b.enum64('big', [['BIG', 1n << 40n], ['SMALL', 1n]])
  ids.enum64b = b.enum64('neg', [['MINUS', -2n]])
  ids.holder = b.struct('holder', [{ name: 'p', type: ids.ptrAttr }, { name: 'q', type: ids.ptrUser }, { name: 'e', type: ids.enum64 }, { name: 'f', type: ids.float }])
  const raw = new RawBtf(b.bytes())
  for (const id of [ids.declAttr, ids.attrTag, ids.attrTag2]) raw.setInfo(id, raw.kind(id), 0, true)
  return { bytes: raw.bytes(), ids, count: b.count }
}

const without = (...keys: Array<keyof BtfSupport>): BtfSupport => ({ ...FULL_BTF_SUPPORT, ...Object.fromEntries(keys.map((k) => [k, false])) })

describe('sanitizeBtf', () => {
  const { bytes, ids, count } = everyKindBtf()
  const input = new BtfReader(bytes)
  const sane = (...keys: Array<keyof BtfSupport>) => new BtfReader(sanitizeBtf(bytes, without(...keys)))
  const summary = (r: BtfReader, id: number) => {
    const t = r.type(id)
    return { kind: t.kind, name: t.name, vlen: t.vlen, kindFlag: t.kindFlag, sizeOrType: t.sizeOrType }
  }

  test('a kernel with everything gets the same bytes, in a copy', () => {
    const out = sanitizeBtf(bytes, FULL_BTF_SUPPORT)
    expect(out).toEqual(bytes)
    expect(out).not.toBe(bytes)
  })

  test('the input is never changed, and only the ENUM64 placeholder is ever added', () => {
    const copy = Uint8Array.from(bytes)
    for (const k of btfSupportKeys) {
      const r = sane(k)
      expect(r.count, k).toBe(k === 'enum64' ? count + 1 : count)
    }
    sanitizeBtf(bytes, without(...btfSupportKeys))
    expect(bytes).toEqual(copy)
  })

  test('each replacement touches only its own records', () => {
    const touched: Record<keyof BtfSupport, number[]> = {
      // The decl tag on a parameter of 'entry', now a TYPEDEF, goes too.
      func: [ids.proto, ids.staticFunc, ids.globalFunc, ids.declTag],
      funcGlobal: [ids.globalFunc],
      // The attribute on 'counter', now an INT, goes too.
      datasec: [ids.varA, ids.varB, ids.data, ids.qmark, ids.qmark - 1, ids.declAttr],
      qmarkDatasec: [ids.qmark],
      float: [ids.float],
      declTag: [ids.declTag, ids.declAttr],
      declTagKindFlag: [ids.declAttr],
      typeTag: [ids.userTag, ids.attrTag, ids.attrTag2, ids.attrTag2 + 1],
      typeTagKindFlag: [ids.attrTag, ids.attrTag2, ids.ptrAttr, ids.attrTag2 + 1],
      enum64: [ids.signedEnum, ids.enum64, ids.enum64b],
      layout: [],
    }
    for (const k of btfSupportKeys) {
      const r = sane(k)
      const changed = [...input.types()].filter((t) => JSON.stringify(r.type(t.id)) !== JSON.stringify(t)).map((t) => t.id)
      expect(changed.sort((a, b) => a - b), k).toEqual([...touched[k]].sort((a, b) => a - b))
    }
  })

  test('no VAR/DATASEC: VARs are 1-byte ints, a DATASEC the struct of its variables', () => {
    const r = sane('datasec')
    for (const id of [ids.varA, ids.varB]) {
      expect(summary(r, id), `${id}`).toMatchObject({ kind: 'INT', name: input.type(id).name, sizeOrType: 1 })
      expect(r.intEncoding(r.type(id))).toEqual({ signed: false, bool: false, bits: 8 })
    }
    const s = r.type(ids.data)
    expect(summary(r, ids.data)).toEqual({ kind: 'STRUCT', name: '_data_x', vlen: 2, kindFlag: false, sizeOrType: 24 })
    // 'entry.msg', clang's name for a function's static, is no C identifier: old kernels refuse it as a member name.
    expect(r.members(s)).toEqual([
      { name: 'counter', type: ids.varA, bitOffset: 0, bitSize: 0 },
      { name: 'entry_msg', type: ids.varB, bitOffset: 64, bitSize: 0 },
    ])
    expect(summary(r, ids.qmark)).toMatchObject({ kind: 'STRUCT', name: '__struct_ops', sizeOrType: 4 })
  })

  test("no '?' in DATASEC names: '_' instead; the DATASEC stays", () => {
    expect(summary(sane('qmarkDatasec'), ids.qmark)).toEqual({ kind: 'DATASEC', name: '_.struct_ops', vlen: 1, kindFlag: false, sizeOrType: 4 })
  })

  test('decl tags whose target is replaced by a kind they cannot tag become 1-byte ints', () => {
    expect(summary(sane('func'), ids.declTag)).toEqual({ kind: 'INT', name: 'arg:ctx', vlen: 0, kindFlag: false, sizeOrType: 1 })
    expect(summary(sane('datasec'), ids.declAttr)).toEqual({ kind: 'INT', name: 'aligned(8)', vlen: 0, kindFlag: false, sizeOrType: 1 })
  })

  test('no FUNC: prototypes are 4-byte ENUMs of their parameters (all named), functions TYPEDEFs', () => {
    const r = sane('func')
    const e = r.type(ids.proto)
    expect(summary(r, ids.proto)).toEqual({ kind: 'ENUM', name: '', vlen: 2, kindFlag: false, sizeOrType: 4 })
    expect(r.enumValues(e)).toEqual([{ name: 'ctx', value: BigInt(ids.int) }, { name: 'param1', value: 2n }])
    for (const id of [ids.staticFunc, ids.globalFunc]) expect(summary(r, id)).toEqual({ kind: 'TYPEDEF', name: input.type(id).name, vlen: 0, kindFlag: false, sizeOrType: ids.proto })
  })

  test('no global FUNC: global functions are static', () => {
    const r = sane('funcGlobal')
    expect(summary(r, ids.globalFunc)).toEqual({ kind: 'FUNC', name: 'entry', vlen: 0, kindFlag: false, sizeOrType: ids.proto })
    expect(summary(r, ids.staticFunc)).toMatchObject({ kind: 'FUNC', vlen: 0 })
  })

  test('no FLOAT: an anonymous empty struct of the same size', () => {
    expect(summary(sane('float'), ids.float)).toEqual({ kind: 'STRUCT', name: '', vlen: 0, kindFlag: false, sizeOrType: 8 })
  })

  test('no DECL_TAG: every decl tag a 1-byte int; no attribute decl tags: only those', () => {
    const r = sane('declTag')
    for (const id of [ids.declTag, ids.declAttr]) expect(summary(r, id)).toMatchObject({ kind: 'INT', name: input.type(id).name, sizeOrType: 1, kindFlag: false })
    const a = sane('declTagKindFlag')
    expect(summary(a, ids.declAttr)).toEqual({ kind: 'INT', name: 'aligned(8)', vlen: 0, kindFlag: false, sizeOrType: 1 })
    expect(summary(a, ids.declTag)).toEqual(summary(input, ids.declTag))
  })

  test('no TYPE_TAG: every type tag an anonymous CONST of the same type', () => {
    const r = sane('typeTag')
    for (const id of [ids.userTag, ids.attrTag, ids.attrTag2, ids.attrTag2 + 1]) {
      expect(summary(r, id)).toEqual({ kind: 'CONST', name: '', vlen: 0, kindFlag: false, sizeOrType: input.type(id).sizeOrType })
    }
  })

  test('no attribute type tags: they drop out of their pointer chains, tags stay', () => {
    const r = sane('typeTagKindFlag')
    // ptr -> (attribute) -> 'user' -> int is now ptr -> 'user' -> int.
    expect(summary(r, ids.ptrAttr)).toMatchObject({ kind: 'PTR', sizeOrType: ids.userTag })
    // 'user' -> (attribute) -> int is now 'user' -> int.
    expect(summary(r, ids.attrTag2 + 1)).toEqual({ kind: 'TYPE_TAG', name: 'user', vlen: 0, kindFlag: false, sizeOrType: ids.int })
    // The attribute records stay as plain tags nothing refers to.
    for (const id of [ids.attrTag, ids.attrTag2]) expect(summary(r, id)).toEqual({ ...summary(input, id), kindFlag: false })
    const refs = [...r.types()].filter((t) => t.kind !== 'STRUCT' && t.kind !== 'DATASEC').map((t) => t.sizeOrType)
    expect(refs).not.toContain(ids.attrTag)
    expect(refs).not.toContain(ids.attrTag2)
    expect(summary(r, ids.userTag)).toEqual(summary(input, ids.userTag))
  })

  test('no ENUM64: 64-bit enums are unions of 1-byte ints named as the enumerators; signed enums unsigned', () => {
    const r = sane('enum64')
    const placeholder = r.type(count + 1)
    expect(summary(r, count + 1)).toEqual({ kind: 'INT', name: ENUM64_PLACEHOLDER, vlen: 0, kindFlag: false, sizeOrType: 1 })
    expect(r.intEncoding(placeholder).bits).toBe(8)
    expect(summary(r, ids.enum64)).toEqual({ kind: 'UNION', name: 'big', vlen: 2, kindFlag: false, sizeOrType: 8 })
    expect(r.members(r.type(ids.enum64))).toEqual([
      { name: 'BIG', type: count + 1, bitOffset: 0, bitSize: 0 },
      { name: 'SMALL', type: count + 1, bitOffset: 0, bitSize: 0 },
    ])
    expect(summary(r, ids.enum64b)).toEqual({ kind: 'UNION', name: 'neg', vlen: 1, kindFlag: false, sizeOrType: 8 })
    expect(summary(r, ids.signedEnum)).toEqual({ kind: 'ENUM', name: 'sign', vlen: 2, kindFlag: false, sizeOrType: 4 })
    expect(r.enumValues(r.type(ids.signedEnum))).toEqual([{ name: 'NEG', value: 0xffffffffn }, { name: 'POS', value: 1n }])
    expect(summary(r, ids.unsignedEnum)).toEqual(summary(input, ids.unsignedEnum))
  })

  test('no layout section: dropped, the rest unchanged; kept where the kernel knows it', () => {
    const raw = new RawBtf(bytes)
    raw.layout = Uint8Array.from({ length: 4 * 20 }, (_, i) => (i % 4 === 0 ? 4 : 0))
    const withLayout = raw.bytes()
    const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)
    expect(view(withLayout).getUint32(4, true)).toBe(32)
    const dropped = sanitizeBtf(withLayout, without('layout'))
    expect(view(dropped).getUint32(4, true)).toBe(24)
    expect(dropped).toEqual(bytes)
    const kept = sanitizeBtf(withLayout, FULL_BTF_SUPPORT)
    expect(kept).toEqual(withLayout)
    expect(new BtfReader(kept).count).toBe(count)
  })

  test('everything missing at once: no kind the oldest BTF kernels lack is left', () => {
    const r = sane(...btfSupportKeys)
    const kinds = new Set([...r.types()].map((t) => t.kind))
    for (const k of ['VAR', 'DATASEC', 'FUNC', 'FUNC_PROTO', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64'] as const) expect(kinds.has(k), k).toBe(false)
    for (const t of r.types()) if (t.kind === 'ENUM') expect(t.kindFlag, t.name).toBe(false)
    expect(BtfKind.ENUM64).toBe(19)
  })

  test('bad arguments: TypeError naming the field; not BTF', () => {
    expect(() => sanitizeBtf(bytes, null as never)).toThrow(/sanitizeBtf: supported must be a BtfSupport object/)
    const { float: _, ...noFloat } = FULL_BTF_SUPPORT
    expect(() => sanitizeBtf(bytes, noFloat as never)).toThrow(new TypeError('sanitizeBtf: supported.float must be a boolean, got undefined'))
    expect(() => sanitizeBtf(new Uint8Array(24), FULL_BTF_SUPPORT)).toThrow(TypeError)
  })
})
