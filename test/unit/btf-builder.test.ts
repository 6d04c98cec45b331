// BTF encoding checked against known bytes (the foundation's hand-encoded int
// BTF and the blobs libbpf's feature probes use), read back with BtfReader,
// and laid out exactly as the codecs lay out map keys and values.
import { describe, expect, test } from 'vitest'
import { BtfBuilder, BtfKind } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { addTypeDesc, btfForMap } from '../../lib/map/btf.js'
import { codecFor, type TypeDesc } from '../../lib/map/codec.js'
import { intBtf } from '../kernel/helpers/raw.js'
import { walkArguments } from './walk-arguments.js'

// The type section as u32 words, and the string section as text.
function sections(bytes: Uint8Array): { words: number[]; strings: string } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const hdr = v.getUint32(4, true)
  const typeOff = hdr + v.getUint32(8, true)
  const typeLen = v.getUint32(12, true)
  const strOff = hdr + v.getUint32(16, true)
  const words = []
  for (let at = typeOff; at < typeOff + typeLen; at += 4) words.push(v.getUint32(at, true))
  return { words, strings: Buffer.from(bytes.subarray(strOff, strOff + v.getUint32(20, true))).toString('latin1') }
}

const info = (kind: number, vlen = 0, kindFlag = false) => ((kindFlag ? 1 << 31 : 0) | (kind << 24) | vlen) >>> 0

describe('BtfBuilder encoding', () => {
  test('a signed 32-bit int matches the hand-encoded blob byte for byte', () => {
    const b = new BtfBuilder()
    expect(b.int('int', 4, { signed: true })).toBe(1)
    expect(b.bytes()).toEqual(intBtf())
  })

  test('header: magic, version, lengths', () => {
    const b = new BtfBuilder()
    b.int('int', 4)
    const bytes = b.bytes()
    const v = new DataView(bytes.buffer)
    expect([v.getUint16(0, true), v.getUint8(2), v.getUint8(3), v.getUint32(4, true)]).toEqual([0xeb9f, 1, 0, 24])
    expect([v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true), v.getUint32(20, true)]).toEqual([0, 16, 16, 5])
    expect(bytes.length).toBe(24 + 16 + 5)
  })

  test("libbpf's BTF_KIND_FUNC probe: void x(int a)", () => {
    const b = new BtfBuilder()
    // libbpf's string table is "\0int\0x\0a"
    b.string('int')
    b.string('x')
    b.string('a')
    const int = b.int('int', 4, { signed: true })
    const proto = b.funcProto(0, [{ name: 'a', type: int }])
    b.func('x', proto)
    const { words, strings } = sections(b.bytes())
    expect(strings).toBe('\0int\0x\0a\0')
    expect(words).toEqual([
      1, info(BtfKind.INT), 4, (1 << 24) | 32,
      0, info(BtfKind.FUNC_PROTO, 1), 0, 7, 1,
      5, info(BtfKind.FUNC, 0), 2,
    ])
  })

  test("libbpf's DATASEC probe: static int x in .data", () => {
    const b = new BtfBuilder()
    const int = b.int('', 4, { signed: true })
    const x = b.var('x', int)
    b.datasec('.data', [{ type: x, offset: 0, size: 4 }])
    const { words, strings } = sections(b.bytes())
    expect(strings).toBe('\0x\0.data\0')
    expect(words).toEqual([
      0, info(BtfKind.INT), 4, (1 << 24) | 32,
      1, info(BtfKind.VAR), 1, 0,
      3, info(BtfKind.DATASEC, 1), 4, 2, 0, 4,
    ])
  })

  test('function linkage is the vlen of a FUNC; var linkage its extra word', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const proto = b.funcProto(int, [])
    b.func('g', proto, 'global')
    b.func('e', proto, 'extern')
    b.var('v', int, 'global')
    const r = new BtfReader(b.bytes())
    expect(r.type(3).vlen).toBe(1)
    expect(r.type(4).vlen).toBe(2)
    expect([...r.type(5).extra]).toEqual([1])
  })

  test('struct members: natural layout, explicit offsets, bitfields set the kind flag', () => {
    const b = new BtfBuilder()
    const u8 = b.int('unsigned char', 1)
    const u32 = b.int('unsigned int', 4)
    const u64 = b.int('unsigned long long', 8)
    const plain = b.struct('plain', [{ name: 'a', type: u8 }, { name: 'b', type: u64 }, { name: 'c', type: u32 }])
    expect(b.sizeOf(plain)).toBe(24)
    expect(b.alignOf(plain)).toBe(8)
    const placed = b.struct('placed', [{ name: 'a', type: u8, offset: 2 }, { name: 'b', type: u32, offset: 4 }], { size: 12 })
    const bits = b.struct('bits', [{ name: 'lo', type: u32, bitSize: 3 }, { name: 'hi', type: u32, bitSize: 5, bitOffset: 3 }, { name: 'n', type: u32, offset: 4 }])
    const r = new BtfReader(b.bytes())
    const p = r.type(plain)
    expect(p.kindFlag).toBe(false)
    expect([...p.extra]).toEqual([b.string('a'), u8, 0, b.string('b'), u64, 64, b.string('c'), u32, 128])
    expect(r.type(placed).sizeOrType).toBe(12)
    expect([...r.type(placed).extra].filter((_, i) => i % 3 === 2)).toEqual([16, 32])
    const bf = r.type(bits)
    expect(bf.kindFlag).toBe(true)
    expect([...bf.extra].filter((_, i) => i % 3 === 2)).toEqual([(3 << 24) | 0, (5 << 24) | 3, 32])
    expect(bf.sizeOrType).toBe(8)
  })

  test('unions overlay members at offset 0 and take the largest size', () => {
    const b = new BtfBuilder()
    const u8 = b.int('unsigned char', 1)
    const u64 = b.int('unsigned long long', 8)
    const un = b.union('u', [{ name: 'a', type: u8 }, { name: 'b', type: b.array(u8, 12) }, { name: 'c', type: u64 }])
    expect(b.sizeOf(un)).toBe(16)
    const r = new BtfReader(b.bytes())
    expect(r.type(un).kind).toBe('UNION')
    expect([...r.type(un).extra].filter((_, i) => i % 3 === 2)).toEqual([0, 0, 0])
  })

  test('arrays get one shared index type; enums record signedness; enum64 splits values', () => {
    const b = new BtfBuilder()
    const u8 = b.int('unsigned char', 1)
    const a1 = b.array(u8, 3)
    const a2 = b.array(a1, 2)
    expect(b.sizeOf(a2)).toBe(6)
    const en = b.enum('e', [['A', -1], ['B', 7]])
    const en64 = b.enum64('e64', [['BIG', 0x123456789n], ['NEG', -2n]])
    const r = new BtfReader(b.bytes())
    const index = r.type(a1).extra[1]
    expect(r.type(index)).toMatchObject({ kind: 'INT', name: '__ARRAY_SIZE_TYPE__', sizeOrType: 4 })
    expect(r.type(a2).extra[1]).toBe(index)
    expect(r.type(en)).toMatchObject({ kind: 'ENUM', kindFlag: true, vlen: 2, sizeOrType: 4 })
    expect(r.type(en).extra[1]).toBe(0xffffffff)
    expect([...r.type(en64).extra]).toEqual([b.string('BIG'), 0x23456789, 1, b.string('NEG'), 0xfffffffe, 0xffffffff])
    expect(r.type(en64).kindFlag).toBe(true)
  })

  test('modifiers, typedefs and tags resolve to their target size', () => {
    const b = new BtfBuilder()
    const u16 = b.int('unsigned short', 2)
    const t = b.typedef('port_t', b.const(b.volatile(u16)))
    expect(b.sizeOf(t)).toBe(2)
    expect(b.sizeOf(b.ptr(0))).toBe(8)
    expect(b.sizeOf(b.typeTag('user', u16))).toBe(2)
    expect(() => b.sizeOf(b.funcProto(0, []))).toThrow(/no size/)
    const tag = b.declTag('x', t)
    expect(new BtfReader(b.bytes()).type(tag).extra[0]).toBe(0xffffffff)
  })

  test('strings are stored once', () => {
    const b = new BtfBuilder()
    const u32 = b.int('u32', 4)
    b.typedef('u32', u32)
    b.struct('s', [{ name: 'u32', type: u32 }])
    expect(sections(b.bytes()).strings).toBe('\0u32\0s\0')
  })

  test('bad input is refused before anything is encoded', () => {
    const b = new BtfBuilder()
    expect(() => b.int('x', 3)).toThrow(RangeError)
    expect(() => b.int('x', 4, { bits: 33 })).toThrow(RangeError)
    expect(() => b.int('x', 1, { signed: true, char: true })).toThrow(/only one of/)
    expect(() => b.float('f', 3)).toThrow(RangeError)
    expect(() => b.enum('e', [['A', 2 ** 33]])).toThrow(/enum64/)
    expect(() => b.string('a\0b')).toThrow(/NUL/)
    expect(() => b.func('f', 1, 'weak' as never)).toThrow(/linkage/)
    expect(() => b.declTag('t', 1, -2)).toThrow(RangeError)
    expect(b.count).toBe(0)
    const u8 = b.int('unsigned char', 1)
    expect(() => b.struct('s', [{ name: 'a', type: u8 }, { name: 'a', type: u8 }])).toThrow(/duplicate/)
    expect(() => b.struct('s', [{ name: 'a', type: u8, bitSize: 0 }])).toThrow(RangeError)
    expect(() => b.struct('s', [{ name: 'a', type: u8, offset: 4 }], { size: 2 })).toThrow(/smaller/)
    expect(() => b.sizeOf(99)).toThrow(/no BTF type/)
    b.ptr(42)
    expect(() => b.bytes()).toThrow(/refers to type 42/)
  })
})

describe('BtfReader', () => {
  test('reads back every record and finds types by name and kind', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const s = b.struct('thing', [{ name: 'int', type: int }])
    b.typedef('thing', s)
    const r = new BtfReader(b.bytes())
    expect(r.count).toBe(3)
    expect(r.find('thing', 'STRUCT')).toBe(s)
    expect(r.find('thing', 'TYPEDEF')).toBe(3)
    expect(r.find('int', 'INT')).toBe(int)
    expect(r.find('thin', 'STRUCT')).toBeUndefined()
    expect(r.find('thing', 'UNION')).toBeUndefined()
    expect(r.type(int)).toMatchObject({ id: 1, kind: 'INT', name: 'int', sizeOrType: 4, vlen: 0, kindFlag: false })
    expect(() => r.type(4)).toThrow(RangeError)
    expect(() => new BtfReader(new Uint8Array(30))).toThrow(/magic/)
  })
})

describe('btfForMap', () => {
  const descs: TypeDesc[] = [
    'u8', 'u16', 'u32', 'u64', 'i8', 'i16', 'i32', 'i64', 'f32', 'f64',
    { bytes: 1 }, { bytes: 13 },
    { array: 'u16', length: 5 },
    { array: { struct: [['a', 'u8'], ['b', 'u32']] }, length: 3 },
    { struct: [['a', 'u8'], ['b', 'u64'], ['c', 'u16']] },
    { struct: [['a', 'u8'], ['b', { bytes: 3 }]] },
    { struct: [['x', { struct: [['p', 'u16'], ['q', 'u8']] }], ['y', 'u8'], ['z', { array: 'i32', length: 2 }]] },
  ]

  test.each(descs.map((d) => [JSON.stringify(d), d] as const))('%s is sized as the codec sizes it', (_, d) => {
    const m = btfForMap(d, d)
    expect(m.keySize).toBe(codecFor(d).size)
    expect(m.valueSize).toBe(codecFor(d).size)
    expect(m.keyTypeId).toBe(m.valueTypeId)
  })

  test('struct members sit where the codec writes them', () => {
    const d = { struct: [['a', 'u8'], ['b', 'u64'], ['c', 'u16'], ['d', 'i32']] } as const satisfies TypeDesc
    const m = btfForMap('u32', d)
    const r = new BtfReader(m.bytes)
    const st = r.type(m.valueTypeId)
    expect(st.kind).toBe('STRUCT')
    const codec = codecFor(d)
    const buf = new Uint8Array(codec.size)
    const view = new DataView(buf.buffer)
    codec.encode({ a: 0x11, b: 0x2222222222222222n, c: 0x3333, d: -4 }, view, 0)
    const at = (name: string) => {
      for (let i = 0; i < st.vlen; i++) if (r.string(st.extra[i * 3]) === name) return st.extra[i * 3 + 2] / 8
      throw new Error(name)
    }
    expect(view.getUint8(at('a'))).toBe(0x11)
    expect(view.getBigUint64(at('b'), true)).toBe(0x2222222222222222n)
    expect(view.getUint16(at('c'), true)).toBe(0x3333)
    expect(view.getInt32(at('d'), true)).toBe(-4)
  })

  test('scalars become C ints and floats with their signedness', () => {
    const m = btfForMap('i16', { struct: [['r', 'f64'], ['n', 'u64'], ['s', 'i8']] })
    const r = new BtfReader(m.bytes)
    expect(r.type(m.keyTypeId)).toMatchObject({ kind: 'INT', name: 'short', sizeOrType: 2 })
    expect(r.type(m.keyTypeId).extra[0]).toBe((1 << 24) | 16)
    expect(r.type(r.find('double', 'FLOAT') as number).sizeOrType).toBe(8)
    expect(r.type(r.find('unsigned long long', 'INT') as number).extra[0]).toBe(64)
    expect(r.type(r.find('signed char', 'INT') as number).extra[0]).toBe((1 << 24) | 8)
  })

  test('equal descriptions share a type; byte arrays are arrays of unsigned char', () => {
    const m = btfForMap({ bytes: 6 }, { struct: [['mac', { bytes: 6 }], ['vlan', 'u16']] })
    const r = new BtfReader(m.bytes)
    expect(r.type(m.keyTypeId).kind).toBe('ARRAY')
    expect(r.type(m.valueTypeId).extra[1]).toBe(m.keyTypeId)
    const elem = r.type(r.type(m.keyTypeId).extra[0])
    expect(elem).toMatchObject({ kind: 'INT', name: 'unsigned char', sizeOrType: 1 })
    expect(elem.extra[0]).toBe(8)
  })

  test('a keyless map gets key type 0', () => {
    const m = btfForMap(null, 'u64')
    expect(m).toMatchObject({ keyTypeId: 0, keySize: 0, valueSize: 8, valueTypeId: 1 })
  })

  test('malformed descriptions are TypeErrors or RangeErrors naming where', () => {
    expect(() => btfForMap('u128' as never, 'u8')).toThrow(/key: unknown type 'u128'/)
    expect(() => btfForMap('u32', { bytes: 0 })).toThrow(RangeError)
    expect(() => btfForMap('u32', { array: 'u8', length: -1 })).toThrow(RangeError)
    expect(() => btfForMap('u32', { struct: [] })).toThrow(/non-empty/)
    expect(() => btfForMap('u32', { struct: [['a', 'u8'], ['a', 'u8']] })).toThrow(/duplicate field 'a'/)
    expect(() => btfForMap('u32', { struct: [['bad name', 'u8']] })).toThrow(/not a C identifier/)
    expect(() => btfForMap('u32', { struct: [['a', { struct: [['b', 'x' as never]] }]] })).toThrow(/value\.a\.b: unknown type/)
    expect(() => btfForMap('u32', null as never)).toThrow(TypeError)
    expect(() => addTypeDesc(new BtfBuilder(), [] as never)).toThrow(TypeError)
  })
})

describe('bad arguments are named, never JavaScript internals', () => {
  test('every BtfBuilder method', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4)
    const v = b.var('v', int, 'global')
    const calls: Array<[string, (...a: unknown[]) => unknown, unknown[]]> = [
      ['int', (...a) => b.int(...(a as Parameters<BtfBuilder['int']>)), ['i', 4, {}]],
      ['float', (...a) => b.float(...(a as Parameters<BtfBuilder['float']>)), ['f', 4]],
      ['ptr', (...a) => b.ptr(...(a as Parameters<BtfBuilder['ptr']>)), [int]],
      ['array', (...a) => b.array(...(a as Parameters<BtfBuilder['array']>)), [int, 2]],
      ['struct', (...a) => b.struct(...(a as Parameters<BtfBuilder['struct']>)), ['s', [{ name: 'x', type: int }], {}]],
      ['union', (...a) => b.union(...(a as Parameters<BtfBuilder['union']>)), ['u', [{ name: 'x', type: int }], {}]],
      ['fwd', (...a) => b.fwd(...(a as Parameters<BtfBuilder['fwd']>)), ['f', 'struct']],
      ['enum', (...a) => b.enum(...(a as Parameters<BtfBuilder['enum']>)), ['e', [['A', 1]], {}]],
      ['enum64', (...a) => b.enum64(...(a as Parameters<BtfBuilder['enum64']>)), ['e', [['A', 1n]], {}]],
      ['typedef', (...a) => b.typedef(...(a as Parameters<BtfBuilder['typedef']>)), ['t', int]],
      ['const', (...a) => b.const(...(a as Parameters<BtfBuilder['const']>)), [int]],
      ['volatile', (...a) => b.volatile(...(a as Parameters<BtfBuilder['volatile']>)), [int]],
      ['restrict', (...a) => b.restrict(...(a as Parameters<BtfBuilder['restrict']>)), [int]],
      ['funcProto', (...a) => b.funcProto(...(a as Parameters<BtfBuilder['funcProto']>)), [int, [{ name: 'a', type: int }]]],
      ['func', (...a) => b.func(...(a as Parameters<BtfBuilder['func']>)), ['f', b.funcProto(int, []), 'static']],
      ['var', (...a) => b.var(...(a as Parameters<BtfBuilder['var']>)), ['v', int, 'static']],
      ['datasec', (...a) => b.datasec(...(a as Parameters<BtfBuilder['datasec']>)), ['.data', [{ type: v, offset: 0, size: 4 }], 4]],
      ['declTag', (...a) => b.declTag(...(a as Parameters<BtfBuilder['declTag']>)), ['t', int, -1]],
      ['typeTag', (...a) => b.typeTag(...(a as Parameters<BtfBuilder['typeTag']>)), ['t', int]],
      ['string', (...a) => b.string(...(a as Parameters<BtfBuilder['string']>)), ['s']],
      ['kindOf', (...a) => b.kindOf(...(a as Parameters<BtfBuilder['kindOf']>)), [int]],
      ['sizeOf', (...a) => b.sizeOf(...(a as Parameters<BtfBuilder['sizeOf']>)), [int]],
      ['alignOf', (...a) => b.alignOf(...(a as Parameters<BtfBuilder['alignOf']>)), [int]],
    ]
    for (const [name, call, valid] of calls) {
      for (const e of walkArguments(`BtfBuilder.${name}`, call, valid)) expect([TypeError, RangeError]).toContain(e.constructor)
    }
    expect(() => b.struct('s', null as never)).toThrow(new TypeError('BtfBuilder.struct: members must be an array of members { name, type }, got null'))
    expect(() => b.union('u', [null] as never)).toThrow(new TypeError('BtfBuilder.union: members[0] must be members { name, type }, got null'))
    expect(() => b.enum('e', [null] as never)).toThrow(new TypeError('BtfBuilder.enum: values[0] must be a [name, number] pair, got null'))
    expect(() => b.ptr(null as never)).toThrow(new TypeError('BtfBuilder.ptr: target must be a type id (a number), got null'))
    expect(() => b.int(null as never, 4)).toThrow(new TypeError('BtfBuilder.int: name must be a string, got null'))
    // The blob still holds only what the valid calls added, and reads back.
    expect(new BtfReader(b.bytes()).count).toBe(b.count)
  })

  test('BtfReader and its methods', () => {
    expect(() => new BtfReader(null as never)).toThrow(new TypeError('BtfReader: bytes must be a Uint8Array (raw BTF), got null'))
    expect(() => BtfReader.fromFile(null as never)).toThrow(new TypeError('BtfReader.fromFile: path must be a string, got null'))
    walkArguments('new BtfReader', (bytes) => new BtfReader(bytes as Uint8Array), [new BtfBuilder().bytes()])
    const b = new BtfBuilder()
    const int = b.int('int', 4)
    b.struct('s', [{ name: 'x', type: int }])
    const r = new BtfReader(b.bytes())
    walkArguments('BtfReader.find', (n, k) => r.find(n as string, k as never), ['s', 'STRUCT'])
    walkArguments('BtfReader.type', (id) => r.type(id as number), [1])
    walkArguments('BtfReader.string', (off) => r.string(off as number), [1])
    walkArguments('BtfReader.resolve', (id) => r.resolve(id as number), [1])
    walkArguments('BtfReader.sizeof', (id) => r.sizeof(id as number), [1])
    walkArguments('BtfReader.members', (t) => r.members(t as never), [r.type(2)])
    walkArguments('BtfReader.enumValues', (t) => r.enumValues(t as never), [r.type(1)])
    expect(r.members(r.type(2))).toEqual([{ name: 'x', type: 1, bitOffset: 0, bitSize: 0 }])
  })
})
