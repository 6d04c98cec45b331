// CO-RE relocation (lib/btf/core.ts) of test/fixtures/bpf/core.bpf.o, a real
// clang object with every relocation kind: against small target BTFs built
// with BtfBuilder, where every value is known, and against this host's
// vmlinux BTF, checked against what BtfReader says of the same types.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { CoreError, POISON_HELPER, relocateCore, type CoreResult, type CoreTargets } from '../../lib/btf/core.js'
import { readBtfExt, type CoreReloRecord } from '../../lib/btf/ext.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { ElfFile, STT } from '../../lib/collection/elf.js'

const elf = ElfFile.fromFile(join(__dirname, '..', 'fixtures', 'bpf', 'core.bpf.o'))
const local = new BtfReader(elf.data(elf.section('.BTF')!))
const relos = readBtfExt(elf.data(elf.section('.BTF.ext')!), local).coreRelos.get('syscall')!
const section = elf.section('syscall')!
const programs = new Map(elf.symbols.filter((s) => s.shndx === section.index && s.type === STT.FUNC).map((s) => [s.name, s]))

interface Run {
  insns: Uint8Array
  results: CoreResult[]
  /** The relocations of program `prog`, in instruction order, optionally of one kind and access string. */
  of(prog: string, kind?: string, access?: string): CoreResult[]
  /** The 8 bytes of the instruction a result patched. */
  insn(r: CoreResult, second?: boolean): Insn
}
interface Insn { code: number; dst: number; src: number; off: number; imm: number; bytes: string }

function run(targets: CoreTargets, patch?: (insns: Uint8Array, relos: readonly CoreReloRecord[]) => void): Run {
  const insns = new Uint8Array(elf.data(section))
  patch?.(insns, relos)
  const results = relocateCore('syscall', insns, relos, local, targets)
  const v = new DataView(insns.buffer)
  return {
    insns,
    results,
    of(prog, kind, access) {
      const p = programs.get(prog)!
      return results.filter((r) => r.insnOff >= p.value && r.insnOff < p.value + p.size && (kind === undefined || r.kind === kind) && (access === undefined || r.accessStr === access))
    },
    insn(r, second = false) {
      const at = r.insnOff + (second ? 8 : 0)
      return {
        code: insns[at], dst: insns[at + 1] & 0xf, src: insns[at + 1] >> 4, off: v.getInt16(at + 2, true), imm: v.getInt32(at + 4, true),
        bytes: Buffer.from(insns.subarray(at, at + 8)).toString('hex'),
      }
    },
  }
}

const one = (rs: CoreResult[]): CoreResult => {
  expect(rs).toHaveLength(1)
  return rs[0]
}
const POISON_BYTES = '850000001023ad0b' // call 0xbad2310
const ldImm64 = (r: Run, res: CoreResult) => BigInt.asUintN(32, BigInt(r.insn(res).imm)) | (BigInt.asUintN(32, BigInt(r.insn(res, true).imm)) << 32n)

// The target every local type relocates to, with the layout changed: fields
// moved, a u32 widened to u64, bitfields reordered, an anonymous union, enum
// values renumbered, the flavored core_legacy___old's target.
function movedTarget(tweak: (b: BtfBuilder, t: { int: number; uint: number; u64: number; long: number }) => void = () => {}) {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const uint = b.int('unsigned int', 4)
  const u64 = b.int('unsigned long', 8)
  const long = b.int('long', 8, { signed: true })
  tweak(b, { int, uint, u64, long })
  return { b, int, uint, u64, long }
}

function standardTypes(b: BtfBuilder, t: { int: number; uint: number; u64: number; long: number }, skip: string[] = []) {
  const ids: Record<string, number> = {}
  const add = (name: string, make: () => number) => {
    if (!skip.includes(name)) ids[name] = make()
  }
  add('core_point', () => b.struct('core_point', [{ name: 'pad', type: t.int }, { name: 'y', type: t.int }, { name: 'x', type: t.int }, { name: 'z', type: t.int }]))
  add('core_flags', () => b.struct('core_flags', [
    { name: 'hi', type: t.uint, bitOffset: 0, bitSize: 10 }, { name: 'lo', type: t.uint, bitOffset: 10, bitSize: 3 }, { name: 'mid', type: t.int, bitOffset: 13, bitSize: 5 },
  ], { size: 4 }))
  add('core_sized', () => b.struct('core_sized', [{ name: 'count', type: t.u64 }, { name: 'sval', type: t.int }]))
  add('core_outer', () => {
    const inner = b.struct('core_inner', [{ name: 'v', type: t.int }])
    const anon = b.union('', [{ name: 'raw', type: t.int }, { name: 'in', type: inner }])
    return b.struct('core_outer', [{ name: 'pad', type: t.u64 }, { name: '', type: anon }, { name: 'arr', type: b.array(t.int, 4) }, { name: 'flex', type: b.array(t.int, 0) }])
  })
  add('core_legacy', () => b.struct('core_legacy', [{ name: 'other', type: t.int }, { name: 'value', type: t.int }]))
  add('core_mode', () => b.enum('core_mode', [['CORE_MODE_A', 10], ['CORE_MODE_B', 20]]))
  add('core_big', () => b.enum64('core_big', [['CORE_BIG', 0x500000000n]]))
  return ids
}

function target(skip: string[] = [], tweak?: Parameters<typeof movedTarget>[0]) {
  const m = movedTarget(tweak)
  const ids = standardTypes(m.b, m, skip)
  return { vmlinux: new BtfReader(m.b.bytes()), ids }
}

describe('relocateCore against a BTF with moved fields', () => {
  const { vmlinux, ids } = target()
  const r = run({ vmlinux })

  test('one result per relocation, in order, each with its kind, type and access string', () => {
    expect(r.results).toHaveLength(relos.length)
    r.results.forEach((res, i) => {
      expect(res.index).toBe(i)
      expect(res.insnOff).toBe(relos[i].insnOff)
      expect(res.accessStr).toBe(relos[i].accessStr)
    })
    expect(r.of('legacy_read')[0]).toMatchObject({ kind: 'FIELD_BYTE_OFFSET', localType: 'struct core_legacy___old', accessStr: '0:0' })
  })

  test('direct loads get the target offsets (LDX off patched)', () => {
    const y = one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:1'))
    const x = one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:0'))
    expect([x.targetValue, y.targetValue]).toEqual([8, 4])
    expect([r.insn(x).code, r.insn(x).off]).toEqual([0x61, 8])
    expect([r.insn(y).code, r.insn(y).off]).toEqual([0x61, 4])
    expect(x.poisoned || y.poisoned).toBe(false)
  })

  test('BPF_CORE_READ: the offset is an ALU add immediate', () => {
    const y = one(r.of('point_probed', 'FIELD_BYTE_OFFSET'))
    expect(r.insn(y).code & 0x07).toBe(0x07) // alu64
    expect(r.insn(y).imm).toBe(4)
  })

  test('a guarded field that exists: exists is 1 and the load is patched', () => {
    expect(one(r.of('point_guarded', 'FIELD_EXISTS')).targetValue).toBe(1)
    const z = one(r.of('point_guarded', 'FIELD_BYTE_OFFSET'))
    expect(r.insn(z).off).toBe(12)
  })

  test('bitfields: offset, size, signedness and both shifts of each field', () => {
    const values = (access: string) => Object.fromEntries(r.of('flags_read', undefined, access).map((x) => [x.kind, x.targetValue]))
    // lo: bits 10..12 of a u32; mid: bits 13..17, signed; hi: bits 0..9.
    expect(values('0:0')).toEqual({ FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 4, FIELD_LSHIFT_U64: 51, FIELD_SIGNED: 0, FIELD_RSHIFT_U64: 61 })
    expect(values('0:1')).toEqual({ FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 4, FIELD_LSHIFT_U64: 46, FIELD_SIGNED: 1, FIELD_RSHIFT_U64: 59 })
    expect(values('0:2')).toEqual({ FIELD_BYTE_OFFSET: 0, FIELD_BYTE_SIZE: 4, FIELD_LSHIFT_U64: 54, FIELD_SIGNED: 0, FIELD_RSHIFT_U64: 54 })
    for (const x of r.of('flags_read', 'FIELD_LSHIFT_U64')) expect(r.insn(x).imm).toBe(x.targetValue)
  })

  test('a u32 that became a u64: the load widens from W to DW', () => {
    const count = one(r.of('sized_read', 'FIELD_BYTE_OFFSET'))
    expect(count.targetValue).toBe(0)
    expect(r.insn(count).code).toBe(0x79) // ldxdw, was ldxw (0x61)
  })

  test('through an anonymous union, a fixed array and a flexible array', () => {
    const off = (a: string) => r.insn(one(r.of('outer_read', 'FIELD_BYTE_OFFSET', a))).off
    expect(off('0:1:0:0')).toBe(8) // in.v: after the u64 pad
    expect(off('0:2:2')).toBe(12 + 8) // arr[2]
    expect(off('0:3:1')).toBe(28 + 4) // flex[1], past the 0-length array's end
  })

  test('a flavored local type (core_legacy___old) relocates to core_legacy', () => {
    expect(r.insn(one(r.of('legacy_read'))).off).toBe(4)
  })

  test('type and enum relocations', () => {
    const q = (kind: string, access = '0') => r.of('local_queries', kind, access)
    expect(one(q('TYPE_EXISTS')).targetValue).toBe(1)
    expect(one(q('TYPE_SIZE')).targetValue).toBe(16)
    expect(one(q('TYPE_MATCHES')).targetValue).toBe(1)
    expect(one(q('TYPE_ID_LOCAL')).targetValue).toBe(local.find('core_point', 'STRUCT'))
    const targetId = one(q('TYPE_ID_TARGET'))
    expect(targetId).toMatchObject({ targetValue: ids.core_point, targetBtf: 'vmlinux' })
    expect(ldImm64(r, targetId)).toBe(BigInt(ids.core_point))
    expect(one(q('ENUMVAL_EXISTS', '1')).targetValue).toBe(1)
    const modeB = one(q('ENUMVAL_VALUE', '1'))
    expect(modeB.targetValue).toBe(20)
    expect(ldImm64(r, modeB)).toBe(20n)
    const big = one(q('ENUMVAL_VALUE', '0'))
    expect(big.targetValue).toBe(0x500000000)
    expect([r.insn(big).imm, r.insn(big, true).imm]).toEqual([0, 5]) // ENUM64: both halves of ld_imm64
    expect(one(q('FIELD_SIGNED', '0:1')).targetValue).toBe(1)
    expect(one(q('FIELD_EXISTS', '0:2')).targetValue).toBe(1)
    expect(one(q('FIELD_BYTE_SIZE', '0:0')).targetValue).toBe(8)
    expect(r.results.every((x) => !x.poisoned || x.localType.includes('___core'))).toBe(true)
  })

  test('the kernel-only programs poison their field loads and zero their existence checks', () => {
    const offset = one(r.of('kernel_queries', 'FIELD_BYTE_OFFSET', '0:0').filter((x) => x.localType === 'struct task_struct___core'))
    expect(offset).toMatchObject({ poisoned: true, reason: "no type 'struct task_struct' in the target BTF" })
    expect(r.insn(offset).bytes).toBe(POISON_BYTES)
    expect(r.of('kernel_queries', 'FIELD_EXISTS').map((x) => x.targetValue)).toEqual([0, 0])
    expect(r.of('kernel_queries', 'TYPE_EXISTS').map((x) => x.targetValue)).toEqual([0, 0])
  })
})

describe('relocateCore when the target differs', () => {
  test('a renamed field is poisoned, with the reason; its neighbours are patched', () => {
    const { vmlinux } = target(['core_point'], (b, t) => {
      b.struct('core_point', [{ name: 'xx', type: t.int }, { name: 'y', type: t.int }, { name: 'z', type: t.int }])
    })
    const r = run({ vmlinux })
    const x = one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:0'))
    expect(x).toMatchObject({ poisoned: true, reason: "field 'x' not found in 'struct core_point'" })
    expect(x.targetValue).toBeUndefined()
    expect(r.insn(x)).toMatchObject({ code: 0x85, dst: 0, src: 0, off: 0, imm: POISON_HELPER })
    expect(r.insn(one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:1'))).off).toBe(4)
    // TYPE_MATCHES needs every local member: x is missing; TYPE_EXISTS only the name and kind.
    expect(one(r.of('local_queries', 'TYPE_MATCHES')).targetValue).toBe(0)
    expect(one(r.of('local_queries', 'TYPE_EXISTS')).targetValue).toBe(1)
  })

  test('a field whose type changed kind is poisoned as incompatible', () => {
    const { vmlinux } = target(['core_point'], (b, t) => {
      const s = b.struct('other', [{ name: 'a', type: t.int }])
      b.struct('core_point', [{ name: 'x', type: s }, { name: 'y', type: t.int }, { name: 'z', type: t.int }])
    })
    const x = one(run({ vmlinux }).of('point_sum', 'FIELD_BYTE_OFFSET', '0:0'))
    expect(x.poisoned).toBe(true)
    expect(x.reason).toMatch(/^field 'x' of 'struct core_point' has an incompatible type \(struct other, locally int\)$/)
  })

  test('a signed field of another size cannot be resized: the load is poisoned', () => {
    const { vmlinux } = target(['core_sized'], (b, t) => {
      b.struct('core_sized', [{ name: 'count', type: t.uint }, { name: 'sval', type: t.long }])
    })
    const r = run({ vmlinux })
    const sval = one(r.of('sized_signed', 'FIELD_BYTE_OFFSET'))
    expect(sval.poisoned).toBe(true)
    expect(sval.reason).toMatch(/^field 'sval' is 4 bytes locally and 8 bytes in the target.*cannot be resized$/)
    expect(r.insn(sval).bytes).toBe(POISON_BYTES)
    // The unsigned count kept its size: plain patch, no resize.
    expect(r.insn(one(r.of('sized_read', 'FIELD_BYTE_OFFSET'))).code).toBe(0x61)
  })

  test('a plain field that became a bitfield cannot be loaded directly: poisoned', () => {
    const { vmlinux } = target(['core_sized'], (b, t) => {
      b.struct('core_sized', [{ name: 'count', type: t.uint, bitOffset: 0, bitSize: 20 }, { name: 'sval', type: t.int, bitOffset: 32 }])
    })
    const r = run({ vmlinux })
    expect(one(r.of('sized_read', 'FIELD_BYTE_OFFSET'))).toMatchObject({ poisoned: true, reason: expect.stringMatching(/^field 'count' is 4 bytes locally and a bitfield in the target/) })
    expect(r.insn(one(r.of('sized_signed', 'FIELD_BYTE_OFFSET'))).off).toBe(4)
  })

  test('an index past a shorter target array is poisoned', () => {
    const { vmlinux } = target(['core_outer'], (b, t) => {
      b.struct('core_outer', [{ name: 'pad', type: t.int }, { name: 'arr', type: b.array(t.int, 2) }])
    })
    const r = run({ vmlinux })
    expect(one(r.of('outer_read', 'FIELD_BYTE_OFFSET', '0:2:2'))).toMatchObject({ poisoned: true, reason: "index 2 of field 'arr' is past its 2 elements in 'struct core_outer'" })
    expect(one(r.of('outer_read', 'FIELD_BYTE_OFFSET', '0:1:0:0')).reason).toBe("field 'in' not found in 'struct core_outer'")
  })

  test('a missing enum value: exists is 0, the value load (ld_imm64, both halves) is poisoned', () => {
    const { vmlinux } = target(['core_mode'], (b) => {
      b.enum('core_mode', [['CORE_MODE_A', 1]])
    })
    const r = run({ vmlinux })
    expect(one(r.of('local_queries', 'ENUMVAL_EXISTS', '1')).targetValue).toBe(0)
    const value = one(r.of('local_queries', 'ENUMVAL_VALUE', '1'))
    expect(value).toMatchObject({ poisoned: true, reason: "enum value 'CORE_MODE_B' not found in 'enum core_mode'" })
    expect([r.insn(value).bytes, r.insn(value, true).bytes]).toEqual([POISON_BYTES, POISON_BYTES])
  })

  test('a type size change and a bitfield moved into another word', () => {
    const { vmlinux } = target(['core_point', 'core_flags'], (b, t) => {
      b.struct('core_point', [{ name: 'x', type: t.int }, { name: 'y', type: t.int }, { name: 'z', type: t.int }, { name: 'w', type: t.long }])
      b.struct('core_flags', [{ name: 'pad', type: t.u64 }, { name: 'lo', type: t.uint, bitOffset: 64 + 30, bitSize: 3 }, { name: 'mid', type: t.int, bitOffset: 96, bitSize: 5 }, { name: 'hi', type: t.uint, bitOffset: 101, bitSize: 10 }])
    })
    const r = run({ vmlinux })
    expect(one(r.of('local_queries', 'TYPE_SIZE')).targetValue).toBe(24)
    // lo straddles bits 30..32 of the second word: read as a u64 at 8.
    const lo = Object.fromEntries(r.of('flags_read', undefined, '0:0').map((x) => [x.kind, x.targetValue]))
    expect(lo).toEqual({ FIELD_BYTE_OFFSET: 8, FIELD_BYTE_SIZE: 8, FIELD_LSHIFT_U64: 64 - 33, FIELD_SIGNED: 0, FIELD_RSHIFT_U64: 61 })
    expect(Object.fromEntries(r.of('flags_read', undefined, '0:1').map((x) => [x.kind, x.targetValue]))).toMatchObject({ FIELD_BYTE_OFFSET: 12, FIELD_BYTE_SIZE: 4, FIELD_LSHIFT_U64: 59 })
  })

  test('flavors that agree are fine; flavors that disagree are ambiguous (CoreError)', () => {
    const same = target(['core_legacy'], (b, t) => {
      b.struct('core_legacy', [{ name: 'pad', type: t.int }, { name: 'value', type: t.int }])
      b.struct('core_legacy___new', [{ name: 'other', type: t.int }, { name: 'value', type: t.uint }])
    })
    expect(run({ vmlinux: same.vmlinux }).insn(one(run({ vmlinux: same.vmlinux }).of('legacy_read'))).off).toBe(4)
    const differ = target(['core_legacy'], (b, t) => {
      b.struct('core_legacy', [{ name: 'pad', type: t.int }, { name: 'value', type: t.int }])
      b.struct('core_legacy___new', [{ name: 'pad', type: t.u64 }, { name: 'value', type: t.int }])
    })
    const err = (() => {
      try {
        run({ vmlinux: differ.vmlinux })
      } catch (e) {
        return e
      }
    })() as CoreError
    expect(err).toBeInstanceOf(CoreError)
    expect(err.code).toBe('EINVAL')
    expect(err.section).toBe('syscall')
    const index = relos.findIndex((x) => local.type(x.typeId).name === 'core_legacy___old')
    expect(err.relocation).toBe(index)
    expect(err.message).toMatch(new RegExp(`^CO-RE relocation #${index} in section syscall: 'struct core_legacy___old' is ambiguous: candidates \\[\\d+\\] struct core_legacy, \\[\\d+\\] struct core_legacy___new give different offsets \\(4, 8\\)`))
  })

  test('the instruction must hold the local value: a mismatch is a CoreError', () => {
    const { vmlinux } = target()
    const i = relos.findIndex((x) => x.accessStr === '0:1' && local.type(x.typeId).name === 'core_point' && x.kind === 0)
    expect(() => run({ vmlinux }, (insns) => {
      new DataView(insns.buffer).setInt16(relos[i].insnOff + 2, 40, true)
    })).toThrow(new RegExp(`^CO-RE relocation #${i} in section syscall: FIELD_BYTE_OFFSET of 'struct core_point' \\(access 0:1\\): instruction #\\d+ \\(LDX/ST/STX\\) has offset 40, expected the local value 4`))
  })

  test('malformed records: a misaligned or out-of-range offset, a bad access string', () => {
    const { vmlinux } = target()
    const bytes = new Uint8Array(elf.data(section))
    const rec = relos[0]
    expect(() => relocateCore('syscall', bytes, [{ ...rec, insnOff: 3 }], local, { vmlinux })).toThrow(/#0 in section syscall.*not a multiple of 8/)
    expect(() => relocateCore('syscall', bytes, [{ ...rec, insnOff: bytes.length }], local, { vmlinux })).toThrow(/past the section/)
    expect(() => relocateCore('syscall', bytes, [{ ...rec, accessStr: '0:99' }], local, { vmlinux })).toThrow(/has no member #99/)
    expect(() => relocateCore('syscall', bytes, [{ ...rec, accessStr: 'x' }], local, { vmlinux })).toThrow(CoreError)
    expect(() => relocateCore('syscall', bytes, relos, local, null as never)).toThrow(TypeError)
  })
})

describe('candidate pruning (libbpf\'s per-object candidate cache)', () => {
  // core_point___v2 has no y, and x and z elsewhere. The first core_point
  // relocation in the section (point_sum's y) matches only core_point, which
  // narrows the candidates for every later one: x and z are not ambiguous.
  const { vmlinux, ids } = target([], (b, t) => {
    b.struct('core_point___v2', [{ name: 'x', type: t.int }, { name: 'z', type: t.int }])
  })

  test('one call: later relocations only see the candidates earlier ones matched', () => {
    const r = run({ vmlinux })
    expect(r.insn(one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:0'))).off).toBe(8)
    expect(one(r.of('local_queries', 'TYPE_ID_TARGET')).targetValue).toBe(ids.core_point)
  })

  test('calls that share options.cache narrow it the same way; without it, x is ambiguous', () => {
    const i = relos.findIndex((x) => x.accessStr === '0:0' && local.type(x.typeId).name === 'core_point')
    const y = relos.findIndex((x) => x.accessStr === '0:1' && local.type(x.typeId).name === 'core_point')
    const bytes = new Uint8Array(elf.data(section))
    expect(() => relocateCore('syscall', bytes, [relos[i]], local, { vmlinux })).toThrow(/'struct core_point' is ambiguous: candidates \[\d+\] struct core_point___v2, \[\d+\] struct core_point give different offsets \(0, 8\)/)
    const cache = new Map()
    relocateCore('syscall', bytes, [relos[y]], local, { vmlinux }, { cache })
    expect(cache.get(relos[y].typeId).map((c: { id: number }) => c.id)).toEqual([ids.core_point])
    expect(relocateCore('syscall', bytes, [relos[i]], local, { vmlinux }, { cache })[0].targetValue).toBe(8)
  })
})

test('include: only the chosen relocations are applied, with their section indices; an ambiguous one left out does not fail', () => {
  const { vmlinux } = target(['core_legacy'], (b, t) => {
    b.struct('core_legacy', [{ name: 'pad', type: t.int }, { name: 'value', type: t.int }])
    b.struct('core_legacy___new', [{ name: 'pad', type: t.u64 }, { name: 'value', type: t.int }])
  })
  const sum = programs.get('point_sum')!
  const insns = new Uint8Array(elf.data(section))
  const results = relocateCore('syscall', insns, relos, local, { vmlinux }, { include: (off) => off >= sum.value && off < sum.value + sum.size })
  expect(results.map((x) => x.accessStr)).toEqual(['0:1', '0:0'])
  expect(results.map((x) => x.index)).toEqual(results.map((x) => relos.findIndex((y) => y.insnOff === x.insnOff)))
  const legacy = relos.find((x) => local.type(x.typeId).name === 'core_legacy___old')!
  expect(Buffer.from(insns.subarray(legacy.insnOff, legacy.insnOff + 8))).toEqual(Buffer.from(elf.data(section).subarray(legacy.insnOff, legacy.insnOff + 8)))
})

describe('module BTF', () => {
  test('modules are asked only when vmlinux has no candidate; TYPE_ID_TARGET names the module', () => {
    const core = target()
    const empty = new BtfReader(new BtfBuilder().bytes())
    let asked = 0
    const modules = () => {
      asked++
      return [{ name: 'core_mod', btf: core.vmlinux }]
    }
    const r = run({ vmlinux: empty, modules })
    expect(asked).toBeGreaterThan(0)
    expect(one(r.of('local_queries', 'TYPE_ID_TARGET'))).toMatchObject({ targetValue: core.ids.core_point, targetBtf: 'core_mod' })
    expect(one(r.of('point_sum', 'FIELD_BYTE_OFFSET', '0:0')).targetValue).toBe(8)
    asked = 0
    const withVmlinux = run({ vmlinux: core.vmlinux, modules })
    expect(one(withVmlinux.of('local_queries', 'TYPE_ID_TARGET')).targetBtf).toBe('vmlinux')
    // Only the kernel types (not in this vmlinux) sent the search to the modules.
    expect(asked).toBeGreaterThan(0)
    expect(one(withVmlinux.of('kernel_queries', 'FIELD_BYTE_OFFSET', '0:0').filter((x) => x.localType.includes('task'))).reason).toBe("no type 'struct task_struct' in vmlinux or any module")
  })
})

const hostBtf = '/sys/kernel/btf/vmlinux'
describe.skipIf(!existsSync(hostBtf))('relocateCore against this host\'s vmlinux', () => {
  const vmlinux = BtfReader.fromFile(hostBtf)
  const start = performance.now()
  const r = run({ vmlinux })
  const elapsed = performance.now() - start

  // Where a member sits, through anonymous members, computed here independently of lib/btf/core.ts.
  function member(structName: string, name: string): { bitOffset: number; bitSize: number; type: number } {
    const find = (id: number, base: number): { bitOffset: number; bitSize: number; type: number } | undefined => {
      for (const m of vmlinux.members(vmlinux.resolve(id))) {
        if (m.name === name) return { ...m, bitOffset: base + m.bitOffset }
        if (m.name === '') {
          const inner = find(m.type, base + m.bitOffset)
          if (inner) return inner
        }
      }
      return undefined
    }
    return find(vmlinux.find(structName, 'STRUCT')!, 0)!
  }

  test('kernel_queries gets task_struct, list_head, bpf_func_id and sk_buff facts', () => {
    const task = vmlinux.find('task_struct', 'STRUCT')!
    const q = (kind: string, access?: string) => r.of('kernel_queries', kind, access)
    const taskQ = (kind: string, access?: string) => one(q(kind, access).filter((x) => x.localType === 'struct task_struct___core'))
    expect(taskQ('FIELD_BYTE_OFFSET', '0:0').targetValue).toBe(member('task_struct', 'pid').bitOffset / 8)
    expect(taskQ('FIELD_BYTE_SIZE', '0:2').targetValue).toBe(vmlinux.sizeof(member('task_struct', 'comm').type))
    expect(q('FIELD_EXISTS').map((x) => x.targetValue)).toEqual([1, 0])
    expect(taskQ('FIELD_SIGNED').targetValue).toBe(1)
    expect(q('TYPE_EXISTS').map((x) => x.targetValue)).toEqual([1, 0])
    expect(taskQ('TYPE_SIZE').targetValue).toBe(vmlinux.sizeof(task))
    expect(one(q('TYPE_MATCHES')).targetValue).toBe(1)
    const funcId = vmlinux.enumValues(vmlinux.type(vmlinux.find('bpf_func_id', 'ENUM')!)).find((e) => e.name === 'BPF_FUNC_get_current_task')!
    expect(q('ENUMVAL_EXISTS').map((x) => x.targetValue)).toEqual([1, 0])
    expect(one(q('ENUMVAL_VALUE')).targetValue).toBe(Number(funcId.value))
    expect(taskQ('TYPE_ID_TARGET')).toMatchObject({ targetValue: task, targetBtf: 'vmlinux' })
    expect(taskQ('TYPE_ID_LOCAL').targetValue).toBe(local.find('task_struct___core', 'STRUCT'))
    const pktType = member('sk_buff', 'pkt_type')
    const skb = (kind: string) => one(q(kind).filter((x) => x.localType === 'struct sk_buff___core'))
    const byteOff = Math.floor(pktType.bitOffset / 8)
    expect(skb('FIELD_BYTE_OFFSET').targetValue).toBe(byteOff)
    expect(skb('FIELD_LSHIFT_U64').targetValue).toBe(64 - (pktType.bitOffset + pktType.bitSize - byteOff * 8))
    for (const x of q('FIELD_BYTE_OFFSET')) expect(r.insn(x).imm).toBe(x.targetValue)
  })

  test('kernel_tgid: BPF_CORE_READ adds the offset of task_struct.tgid', () => {
    const tgid = one(r.of('kernel_tgid', 'FIELD_BYTE_OFFSET'))
    expect(tgid.targetValue).toBe(member('task_struct', 'tgid').bitOffset / 8)
    expect(r.insn(tgid).imm).toBe(tgid.targetValue)
  })

  test('the local-only programs: loads poisoned, the guarded one left loadable', () => {
    const sum = r.of('point_sum')
    expect(sum.every((x) => x.poisoned && x.reason === "no type 'struct core_point' in the target BTF")).toBe(true)
    expect(one(r.of('point_guarded', 'FIELD_EXISTS')).targetValue).toBe(0)
    expect(r.insn(one(r.of('point_guarded', 'FIELD_EXISTS'))).imm).toBe(0)
    expect(r.insn(one(r.of('point_guarded', 'FIELD_BYTE_OFFSET'))).bytes).toBe(POISON_BYTES)
  })

  test(`the whole object relocates in well under a second (took ${Math.round(elapsed)} ms, vmlinux name index included)`, () => {
    expect(elapsed).toBeLessThan(1000)
  })
})
