// TypeScript types for BTF (lib/collection/ts-types.ts): each C shape gives
// the type of what codecFromBtf decodes, checked against the decoded values
// themselves; names are disambiguated and quoted; output is deterministic.
// test/unit/cli-gen-types.test.ts runs the TypeScript compiler on the output.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { collectionTypesInput } from '../../lib/cli/gen-types.js'
import { readFileSync } from 'node:fs'
import { interfaceNameFor, propertyName, renderCollectionTypes, tsTypeForBtf } from '../../lib/collection/ts-types.js'
import { codecFromBtf } from '../../lib/map/btf-codec.js'
import { kernel } from '../../lib/sys/index.js'

const fixture = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'bpf', name))
const types = collectionTypesInput(fixture('types.bpf.o'), 'Types', 'types.bpf.o')
const btf = types.btf

function memberTypes(structName: string): Record<string, number> {
  const t = btf.type(btf.find(structName, 'STRUCT')!)
  return Object.fromEntries(btf.members(t).map((m) => [m.name, m.type]))
}

function decodeZeros(b: BtfReader, id: number): unknown {
  const codec = codecFromBtf(b, id)
  return codec.decode(new DataView(new ArrayBuffer(codec.size)), 0)
}

describe('tsTypeForBtf', () => {
  const event = memberTypes('event')

  it('types each member of struct event as the codec decodes it', () => {
    const expected: Record<string, string> = {
      kind: 'number', inner: '{ depth: number }', comm: 'Uint8Array', raw: 'Uint8Array',
      pts: '{ x: number; y: number }[]', matrix: 'number[][]', names: 'Uint8Array[]', ok: 'boolean', oks: 'boolean[]',
      ratio: 'number', mean: 'number', huge: 'bigint', uhuge: 'bigint', ptr: 'bigint', callback: 'bigint',
      mode: "'MODE_OFF' | 'MODE_ON' | number", sign: "'NEGATIVE' | 'POSITIVE' | number", wide: "'WIDE_SMALL' | 'WIDE_BIG' | bigint",
    }
    for (const [name, ts] of Object.entries(expected)) expect(tsTypeForBtf(btf, event[name]), name).toBe(ts)
  })

  it('merges anonymous members and types bitfields by their declared width', () => {
    const id = btf.find('event', 'STRUCT')!
    const text = tsTypeForBtf(btf, id)
    expect(text).toMatch(/^\{ kind: number; x: number; y: number; xy: bigint; inner: \{ depth: number \};/)
    expect(tsTypeForBtf(btf, btf.find('flags', 'STRUCT')!)).toBe('{ low: number; mid: number; big: bigint; neg: number; on: number; m: number }')
    // The decoded value has exactly these properties, of these kinds.
    const value = decodeZeros(btf, id) as Record<string, unknown>
    expect(Object.keys(value)).toEqual(['kind', 'x', 'y', 'xy', 'inner', 'comm', 'raw', 'pts', 'matrix', 'names', 'ok', 'oks', 'ratio', 'mean',
      'huge', 'uhuge', 'ptr', 'callback', 'mode', 'sign', 'wide', 'flags'])
    expect(value.flags).toEqual({ low: 0, mid: 0, big: 0n, neg: 0, on: 0, m: 0 })
    expect(value.mode).toBe('MODE_OFF')
    expect(value.wide).toBe(0n)
    expect(value.comm).toBeInstanceOf(Uint8Array)
  })

  it('uses names given for structs, unions and enums, and parenthesizes inline enums in arrays', () => {
    const b = new BtfBuilder()
    const u32 = b.int('unsigned int', 4)
    const color = b.enum('', [['RED', 0], ['GREEN', 1]])
    const arr = b.array(color, 3)
    const s = b.struct('s', [{ name: 'colors', type: arr }, { name: 'x', type: u32 }])
    const r = new BtfReader(b.bytes())
    expect(tsTypeForBtf(r, arr)).toBe("('RED' | 'GREEN' | number)[]")
    expect(tsTypeForBtf(r, s, new Map([[s, 'S']]))).toBe('S')
    expect(tsTypeForBtf(r, arr, new Map([[color, 'Color']]))).toBe('Color[]')
    expect(decodeZeros(r, arr)).toEqual(['RED', 'RED', 'RED'])
  })

  it('covers the widths the fixtures lack: 1- and 2-byte enums, 8-byte int bitfields, long double, empty structs, padding', () => {
    const b = new BtfBuilder()
    const u8 = b.int('unsigned char', 1)
    const i16 = b.int('short', 2, { signed: true })
    const u64 = b.int('unsigned long long', 8)
    const small = b.enum('small', [['S0', 0]], { size: 1 })
    const none = b.enum('none', [], { size: 2 })
    const ld = b.float('long double', 16)
    const empty = b.struct('empty', [])
    const inner = b.union('', [{ name: 'a', type: u8 }, { name: 'b', type: i16 }])
    const s = b.struct('s', [
      { name: 'e', type: small }, { name: '', type: u8, bitSize: 3, bitOffset: 8 }, { name: 'wide', type: u64, bitSize: 33, bitOffset: 11 },
      { name: '', type: inner, offset: 8 }, { name: 'n', type: none, offset: 10 }, { name: 'ld', type: ld, offset: 16 }, { name: 'z', type: empty, offset: 32 },
    ])
    const r = new BtfReader(b.bytes())
    expect(tsTypeForBtf(r, s)).toBe("{ e: 'S0' | number; wide: bigint; a: number; b: number; n: number; ld: Uint8Array; z: {} }")
    const v = decodeZeros(r, s) as Record<string, unknown>
    expect(Object.keys(v)).toEqual(['e', 'wide', 'a', 'b', 'n', 'ld', 'z'])
    expect([v.wide, v.n, v.z]).toEqual([0n, 0, {}])
    expect(v.ld).toBeInstanceOf(Uint8Array)
  })

  it('leaves out a member named __proto__, which the decoded object never gets', () => {
    const b = new BtfBuilder()
    const u32 = b.int('unsigned int', 4)
    const s = b.struct('s', [{ name: '__proto__', type: u32 }, { name: 'x', type: u32 }])
    const r = new BtfReader(b.bytes())
    expect(tsTypeForBtf(r, s)).toBe('{ x: number }')
    expect(Object.keys(decodeZeros(r, s) as object)).toEqual(['x'])
  })
})

describe('renderCollectionTypes', () => {
  const text = renderCollectionTypes(types)

  it('says where it comes from and imports the shape', () => {
    expect(text.split('\n').slice(0, 3)).toEqual([
      '// Generated by `bpfkit gen types` from types.bpf.o. Do not edit: generate it',
      '// again when the object changes. Use it as CollectionSpec.fromFile<Types>(path).',
      "import type { CollectionShape } from 'bpfkit'",
    ])
    expect(text).toContain('export interface Types extends CollectionShape {')
  })

  it('lists programs, maps and variables sorted by name, quoting reserved words', () => {
    expect(text).toContain("  programs:\n    | 'handle'\n    | 'maybe_xdp'\n")
    const maps = text.slice(text.indexOf('  maps: {'), text.indexOf('  variables: {'))
    expect(maps.split('\n').slice(1, -2)).toEqual([
      "    'delete': { key: NumberUnion; value: TypesStruct }",
      '    events: { key: FlowT; value: Event }',
      '    pairs: { key: PairT; value: PairTStruct }',
      '    per_cpu: { key: number; value: bigint[] }',
      '    ring: { key: Uint8Array; value: Uint8Array }',
      '    sized: { key: Uint8Array; value: Uint8Array }',
    ])
    expect(text).toContain("    'class': number\n    corners: Point[]\n")
  })

  it('declares each named type it uses, once, disambiguating clashes', () => {
    const declared = [...text.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1])
    expect(declared).toEqual(['Types', 'Event', 'Flags', 'FlowT', 'Mode', 'NumberUnion', 'PairT', 'PairTStruct', 'Point', 'Sign', 'TypesStruct', 'Uint8ArrayStruct', 'Wide'])
    expect(text).toContain("export interface TypesStruct {\n  'class': number\n  'new': number\n  'in': number\n}")
    expect(text).toContain("/** C enum wide: WIDE_SMALL = 1, WIDE_BIG = 4294967296. */\nexport type Wide = 'WIDE_SMALL' | 'WIDE_BIG' | bigint")
    expect(text).toContain('/** C union number (4 bytes): every member, each read from offset 0. */\nexport interface NumberUnion {')
    // Types the programs use but no map or variable holds are not declared.
    expect(text).not.toMatch(/SkBuff|XdpMd/)
  })

  it('is deterministic and independent of input order', () => {
    const shuffled = { ...types, programs: [...types.programs].reverse(), maps: [...types.maps].reverse(), variables: [...types.variables].reverse() }
    expect(renderCollectionTypes(shuffled)).toBe(text)
    expect(renderCollectionTypes(collectionTypesInput(fixture('types.bpf.o'), 'Types', 'types.bpf.o'))).toBe(text)
  })

  it('writes never and {} for an object with nothing in it, and reads per-CPU / fd-valued map types by name or number', () => {
    const b = new BtfBuilder()
    const u32 = b.int('unsigned int', 4)
    const arr = b.array(u32, 2)
    const r = new BtfReader(b.bytes())
    const empty = renderCollectionTypes({ name: 'Empty', btf: r, programs: [], maps: [], variables: [] })
    expect(empty).toContain('  programs: never\n  maps: {}\n  variables: {}\n}\n')
    const maps = renderCollectionTypes({
      name: 'M', btf: r, programs: ['p'], variables: [],
      maps: [
        { name: 'a', type: 'percpu_hash', keyTypeId: u32, valueTypeId: arr },
        { name: 'b', type: kernel.mapTypes.prog_array, keyTypeId: u32 },
        { name: 'c', type: 'lru_percpu_hash', keyTypeId: u32 },
        { name: 'd', type: 'hash', keyTypeId: u32, valueTypeId: arr },
      ],
    })
    expect(maps).toContain("  programs: 'p'\n")
    expect(maps).toContain('    a: { key: number; value: number[][] }\n    b: { key: number; value: number }\n    c: { key: number; value: Uint8Array[] }\n    d: { key: number; value: number[] }\n')
  })

  it('numbers a third clash and names a typedef\'d anonymous struct after its typedef', () => {
    const b = new BtfBuilder()
    const u32 = b.int('unsigned int', 4)
    const one = b.struct('a_b', [{ name: 'x', type: u32 }])
    const two = b.struct('aB', [{ name: 'y', type: u32 }])
    const three = b.struct('a__b', [{ name: 'z', type: u32 }])
    const anon = b.struct('', [{ name: 'w', type: u32 }])
    const td = b.typedef('anon_t', b.const(anon))
    const r = new BtfReader(b.bytes())
    const out = renderCollectionTypes({ name: 'T', btf: r, programs: [], maps: [], variables: [one, two, three, td].map((id, i) => ({ name: `v${i}`, typeId: id })) })
    expect(out).toContain('    v0: AB\n    v1: ABStruct\n    v2: ABStruct2\n    v3: AnonT\n')
    expect(out).toContain('/** C struct anon_t (4 bytes). */\nexport interface AnonT {\n  w: number\n}')
  })

  it('refuses a name that cannot be an interface, and names listed twice', () => {
    for (const name of ['', 'class', '1x', 'a-b', 'CollectionShape', 'Uint8Array']) {
      expect(() => renderCollectionTypes({ ...types, name }), name).toThrow(TypeError)
    }
    expect(() => renderCollectionTypes({ ...types, programs: ['a', 'a'] })).toThrow(/program 'a' is listed twice/)
    expect(() => renderCollectionTypes({ ...types, maps: [{ name: 'x', type: 'nope' }] })).toThrow(/unknown map type 'nope'/)
  })
})

describe('names', () => {
  it('makes interface names from object files', () => {
    expect(['counter.bpf.o', '/a/b/xdp-filter.o', 'tc_egress.bpf.o', '01.bpf.o'].map(interfaceNameFor)).toEqual(['Counter', 'XdpFilter', 'TcEgress', 'Bpf01'])
  })

  it('quotes property names that are reserved words or not identifiers', () => {
    expect(['x', '_y1', '$z', 'class', 'new', 'read_globals.msg', "it's", '1a'].map(propertyName)).toEqual(
      ['x', '_y1', '$z', "'class'", "'new'", "'read_globals.msg'", "'it\\'s'", "'1a'"])
  })
})
