// fixupObjectBtf: what a loader fills into clang's .BTF before BTF_LOAD. On a
// real clang object (globals.bpf.o) and on BtfBuilder-made BTF for the
// externs; every changed record decoded back with BtfReader.
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { KSYM_PLACEHOLDER, fixupObjectBtf, type BtfFixupFacts } from '../../lib/btf/fixup.js'
import { BtfReader, type BtfTypeRecord } from '../../lib/btf/reader.js'
import { ElfFile, STT } from '../../lib/collection/elf.js'

const fixtures = join(__dirname, '..', 'fixtures', 'bpf')

function factsOf(elf: ElfFile): BtfFixupFacts {
  const symbol = (section: string, name: string) => {
    const s = elf.section(section)
    return s && elf.symbols.find((y) => y.shndx === s.index && y.name === name && y.type === STT.OBJECT)
  }
  return { sectionSize: (name) => elf.section(name)?.size, symbolOffset: (section, name) => symbol(section, name)?.value }
}

const noFacts: BtfFixupFacts = { sectionSize: () => undefined, symbolOffset: () => undefined }

// A DATASEC's entries as [variable name, offset, size].
function entries(r: BtfReader, sec: BtfTypeRecord): Array<[string, number, number]> {
  return Array.from({ length: sec.vlen }, (_, i) => [r.type(sec.extra[3 * i]).name, sec.extra[3 * i + 1], sec.extra[3 * i + 2]])
}

function datasec(r: BtfReader, name: string): BtfTypeRecord {
  const id = r.find(name, 'DATASEC')
  if (id === undefined) throw new Error(`no DATASEC ${name}`)
  return r.type(id)
}

describe('fixupObjectBtf on globals.bpf.o', () => {
  const elf = ElfFile.fromFile(join(fixtures, 'globals.bpf.o'))
  const input = Uint8Array.from(elf.data(elf.section('.BTF')!))
  const before = new BtfReader(input)
  const copy = Uint8Array.from(input)
  const out = fixupObjectBtf(input, factsOf(elf))
  const after = new BtfReader(out)

  test('clang left every DATASEC at size 0 (what there is to fix)', () => {
    for (const t of before.types()) if (t.kind === 'DATASEC') expect(t.sizeOrType, t.name).toBe(0)
  })

  test('each DATASEC has its section\'s size', () => {
    for (const name of ['.bss', '.data', '.data.custom', '.rodata', 'license']) {
      expect(datasec(after, name).sizeOrType, name).toBe(elf.section(name)!.size)
    }
  })

  test('each global variable sits at its symbol\'s offset, sorted by offset; the static one keeps clang\'s', () => {
    const sym = (n: string) => elf.symbols.find((y) => y.name === n && y.type === STT.OBJECT)!.value
    expect(entries(after, datasec(after, '.rodata'))).toEqual([
      ['threshold', sym('threshold'), 4],
      ['limits', sym('limits'), 12],
      ['read_globals.msg', 16, 9],
    ])
    expect(sym('limits')).toBeGreaterThan(0)
    expect(entries(after, datasec(after, '.data'))).toEqual([['packets', sym('packets'), 8]])
    expect(entries(after, datasec(after, '.data.custom'))).toEqual([['custom', 0, 4]])
  })

  test('type ids and every other record are unchanged, and the input is not touched', () => {
    expect(input).toEqual(copy)
    expect(after.count).toBe(before.count)
    for (const t of before.types()) {
      const u = after.type(t.id)
      expect([u.kind, u.name, u.vlen], `type ${t.id}`).toEqual([t.kind, t.name, t.vlen])
      if (t.kind !== 'DATASEC') expect(u, `type ${t.id}`).toEqual(t)
    }
  })

  test('hidden globals become static variables', () => {
    const hidden = fixupObjectBtf(input, { ...factsOf(elf), hiddenVariable: (sec, v) => sec === '.data' && v === 'packets' })
    const r = new BtfReader(hidden)
    const linkage = (n: string) => r.type(r.find(n, 'VAR')!).extra[0]
    expect(linkage('packets')).toBe(0)
    expect(linkage('seen')).toBe(1)
  })

  test('a DATASEC of a section the object lacks: RangeError naming it', () => {
    expect(() => fixupObjectBtf(input, { ...factsOf(elf), sectionSize: (n) => (n === '.bss' ? undefined : elf.section(n)?.size) }))
      .toThrow(new RangeError("BTF DATASEC '.bss' names a section the object does not have"))
  })

  test('a global without a symbol: RangeError naming section and variable', () => {
    expect(() => fixupObjectBtf(input, { ...factsOf(elf), symbolOffset: (s, v) => (v === 'limits' ? undefined : factsOf(elf).symbolOffset(s, v)) }))
      .toThrow(new RangeError("BTF DATASEC '.rodata': variable 'limits' has no symbol in the section"))
  })

  test('a variable past its section\'s end: RangeError naming both', () => {
    expect(() => fixupObjectBtf(input, { ...factsOf(elf), symbolOffset: (s, v) => (v === 'seen' ? 2 : factsOf(elf).symbolOffset(s, v)) }))
      .toThrow(/BTF DATASEC '\.bss': variable 'seen' \(4 bytes at 2\) runs past the section's 4 bytes/)
  })
})

describe('fixupObjectBtf on built BTF', () => {
  test('a DATASEC that already has a size (a static linker\'s output) keeps its offsets', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4)
    b.datasec('.data', [{ type: b.var('b', int, 'global'), offset: 4, size: 4 }, { type: b.var('a', int, 'global'), offset: 0, size: 4 }], 8)
    const r = new BtfReader(fixupObjectBtf(b.bytes(), { sectionSize: () => 8, symbolOffset: () => 0 }))
    expect(entries(r, datasec(r, '.data'))).toEqual([['a', 0, 4], ['b', 4, 4]])
  })

  test('.kconfig: laid out at natural alignment in BTF order, or as the facts say; linkage allocated', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const bool = b.int('_Bool', 1, { bool: true })
    const str = b.array(b.int('char', 1), 10)
    b.datasec('.kconfig', [
      { type: b.var('CONFIG_A', bool, 'extern'), offset: 0, size: 1 },
      { type: b.var('CONFIG_B', int, 'extern'), offset: 0, size: 4 },
      { type: b.var('CONFIG_C', str, 'extern'), offset: 0, size: 10 },
    ], 0)
    const own = new BtfReader(fixupObjectBtf(b.bytes(), noFacts))
    const sec = datasec(own, '.kconfig')
    expect(entries(own, sec)).toEqual([['CONFIG_A', 0, 1], ['CONFIG_B', 4, 4], ['CONFIG_C', 8, 10]])
    expect(sec.sizeOrType).toBe(18)
    for (const n of ['CONFIG_A', 'CONFIG_B', 'CONFIG_C']) expect(own.type(own.find(n, 'VAR')!).extra[0], n).toBe(1)

    const offsets: Record<string, number> = { CONFIG_A: 14, CONFIG_B: 8, CONFIG_C: 0 }
    const given = new BtfReader(fixupObjectBtf(b.bytes(), { sectionSize: (n) => (n === '.kconfig' ? 24 : undefined), symbolOffset: (s, v) => (s === '.kconfig' ? offsets[v] : undefined) }))
    expect(entries(given, datasec(given, '.kconfig'))).toEqual([['CONFIG_C', 0, 10], ['CONFIG_B', 8, 4], ['CONFIG_A', 14, 1]])
    expect(datasec(given, '.kconfig').sizeOrType).toBe(24)
    expect(() => fixupObjectBtf(b.bytes(), { sectionSize: () => 8, symbolOffset: () => undefined })).toThrow(/'\.kconfig': its size 8 is less than the 18 bytes/)
  })

  test('.ksyms: 4-byte int slots; functions behind one placeholder variable, named parameters, global linkage', () => {
    const b = new BtfBuilder()
    const u64 = b.int('unsigned long long', 8)
    const typed = b.var('runqueues', b.const(u64), 'extern')
    const untyped = b.var('schedule', b.const(0), 'extern')
    const proto = b.funcProto(u64, [{ type: u64 }, { name: 'flags', type: u64 }])
    const kfunc = b.func('bpf_kfunc', proto, 'extern')
    const kfunc2 = b.func('bpf_kfunc2', b.funcProto(0, []), 'extern')
    b.datasec('.ksyms', [{ type: typed, offset: 0, size: 8 }, { type: kfunc, offset: 0, size: 0 }, { type: untyped, offset: 0, size: 1 }, { type: kfunc2, offset: 0, size: 0 }], 0)
    const n = b.count
    const r = new BtfReader(fixupObjectBtf(b.bytes(), noFacts))
    // No 32-bit int in the input: one is appended, then the placeholder variable.
    expect(r.count).toBe(n + 2)
    const int = r.type(n + 1)
    expect([int.kind, int.name, r.intEncoding(int)]).toEqual(['INT', 'int', { signed: true, bool: false, bits: 32 }])
    const placeholder = r.type(n + 2)
    expect([placeholder.kind, placeholder.name, placeholder.sizeOrType, placeholder.extra[0]]).toEqual(['VAR', KSYM_PLACEHOLDER, n + 1, 1])
    const sec = datasec(r, '.ksyms')
    expect(entries(r, sec)).toEqual([['runqueues', 0, 4], [KSYM_PLACEHOLDER, 4, 4], ['schedule', 8, 4], [KSYM_PLACEHOLDER, 12, 4]])
    expect(sec.sizeOrType).toBe(16)
    for (const v of [typed, untyped]) expect([r.type(v).sizeOrType, r.type(v).extra[0]]).toEqual([n + 1, 1])
    for (const f of [kfunc, kfunc2]) expect([r.type(f).kind, r.type(f).vlen]).toEqual(['FUNC', 1])
    const p = r.type(proto)
    expect([r.string(p.extra[0]), p.extra[1], r.string(p.extra[2]), p.extra[3]]).toEqual([KSYM_PLACEHOLDER, u64, 'flags', u64])
  })

  test('.ksyms with a 32-bit int already there uses it', () => {
    const b = new BtfBuilder()
    const int = b.int('unsigned int', 4)
    b.datasec('.ksyms', [{ type: b.var('x', b.const(0), 'extern'), offset: 0, size: 1 }], 0)
    const n = b.count
    const r = new BtfReader(fixupObjectBtf(b.bytes(), noFacts))
    expect(r.count).toBe(n)
    expect(r.type(r.find('x', 'VAR')!).sizeOrType).toBe(int)
  })

  test('extern functions outside .ksyms become global; hidden global subprograms static; others stay', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4)
    const proto = b.funcProto(int, [{ name: 'a', type: int }])
    const kfunc = b.func('bpf_other_kfunc', proto, 'extern')
    const hidden = b.func('helper', proto, 'global')
    const visible = b.func('entry', proto, 'global')
    const local = b.func('local', proto, 'static')
    const r = new BtfReader(fixupObjectBtf(b.bytes(), { ...noFacts, hiddenSubprogram: (n) => n === 'helper' }))
    expect([kfunc, hidden, visible, local].map((id) => r.type(id).vlen)).toEqual([1, 0, 1, 0])
  })

  test('a DATASEC entry that is not a variable, or a .ksyms entry neither variable nor function: RangeError', () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4)
    b.datasec('.data', [{ type: int, offset: 0, size: 4 }], 0)
    expect(() => fixupObjectBtf(b.bytes(), { sectionSize: () => 4, symbolOffset: () => 0 })).toThrow(new RangeError("BTF DATASEC '.data' entry 0 is type 1, not a variable"))
    const k = new BtfBuilder()
    k.datasec('.ksyms', [{ type: k.int('int', 4), offset: 0, size: 4 }], 0)
    expect(() => fixupObjectBtf(k.bytes(), noFacts)).toThrow(new RangeError("BTF DATASEC '.ksyms' entry 0 is type 1, neither a variable nor a function"))
  })

  test('bad arguments: TypeError for what is not BTF or not facts, RangeError for cut-off BTF', () => {
    const bytes = new BtfBuilder().bytes()
    expect(() => fixupObjectBtf('btf' as never, noFacts)).toThrow(TypeError)
    expect(() => fixupObjectBtf(new Uint8Array(30), noFacts)).toThrow(new TypeError('not BTF: bad magic (only little-endian BTF is read)'))
    expect(() => fixupObjectBtf(bytes, {} as never)).toThrow(/fixupObjectBtf: facts must be/)
    const b = new BtfBuilder()
    b.int('int', 4)
    expect(() => fixupObjectBtf(b.bytes().subarray(0, 30), noFacts)).toThrow(RangeError)
  })
})
