// Encodings checked against the bytes the kernel's own macros produce
// (include/linux/filter.h: BPF_MOV64_IMM, BPF_LDX_MEM, BPF_LD_MAP_FD, ...).
import { expect, test } from 'vitest'
import { asm } from '../../lib/index.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const one = (i: ReturnType<typeof asm.exit>) => hex(asm.assemble([i]))

test('instruction encodings', () => {
  expect(one(asm.mov64Imm(asm.R0, 0))).toBe('b700000000000000')
  expect(one(asm.exit())).toBe('9500000000000000')
  expect(one(asm.ldxW(asm.R0, asm.R1, 4))).toBe('6110040000000000')
  expect(one(asm.call('map_lookup_elem'))).toBe('8500000001000000')
  expect(one(asm.call('bpf_ktime_get_ns'))).toBe('8500000005000000')
  expect(one(asm.add64Reg(asm.R1, asm.R2))).toBe('0f21000000000000')
  expect(one(asm.add32Imm(asm.R1, -1))).toBe('04010000ffffffff')
  expect(one(asm.stxDW(asm.R10, asm.R1, -8))).toBe('7b1af8ff00000000')
  expect(one(asm.stW(asm.R10, -4, 7))).toBe('620afcff07000000')
  expect(one(asm.ldxsB(asm.R0, asm.R1, 0))).toBe('9110000000000000')
  expect(one(asm.atomic('add', 64, asm.R10, asm.R1, -8, { fetch: true }))).toBe('db1af8ff01000000')
  expect(one(asm.atomic('or', 32, asm.R10, asm.R1, -8))).toBe('c31af8ff40000000')
  expect(one(asm.xchg(64, asm.R10, asm.R1, -8))).toBe('db1af8ffe1000000')
  expect(one(asm.cmpxchg(64, asm.R10, asm.R1, -8))).toBe('db1af8fff1000000')
  expect(one(asm.jne32Imm(asm.R1, 5, 1))).toBe('5601010005000000')
  expect(one(asm.jsgtReg(asm.R1, asm.R2, -2))).toBe('6d21feff00000000')
  expect(one(asm.be(asm.R1, 16))).toBe('dc01000010000000')
  expect(one(asm.le(asm.R1, 32))).toBe('d401000020000000')
  expect(one(asm.bswap(asm.R1, 64))).toBe('d701000040000000')
  expect(one(asm.sdiv64Reg(asm.R1, asm.R2))).toBe('3f21010000000000')
  expect(one(asm.movsx64Reg(asm.R1, asm.R2, 8))).toBe('bf21080000000000')
  expect(one(asm.neg64(asm.R3))).toBe('8703000000000000')
  expect(one(asm.ldAbs('b', 12))).toBe('300000000c000000')
  expect(one(asm.ldInd('h', asm.R1, 2))).toBe('4810000002000000')
})

test('ld_imm64: constants, map fds and map values take two slots', () => {
  expect(hex(asm.assemble([asm.ldImm64(asm.R1, 0x1122334455667788n)]))).toBe('1801000088776655' + '0000000044332211')
  expect(hex(asm.assemble([asm.ldImm64(asm.R1, -1)]))).toBe('18010000ffffffff' + '00000000ffffffff')
  const map = { fd: 5 }
  expect(hex(asm.assemble([asm.ldMapFd(asm.R1, map)]))).toBe('1811000005000000' + '0000000000000000')
  expect(hex(asm.assemble([asm.ldMapValue(asm.R2, map, 16)]))).toBe('1822000005000000' + '0000000010000000')
  expect(() => asm.assemble([asm.ldMapFd(asm.R1, { fd: -1 })])).toThrow(/no valid fd/)
})

test('labels resolve to offsets, counting ld_imm64 as two slots', () => {
  const prog = [
    asm.jeqImm(asm.R1, 0, 'out'),
    asm.ldImm64(asm.R2, 1),
    asm.ja('out'),
    asm.mov64Imm(asm.R0, 1),
    asm.label('out'),
    asm.callLocal('fn'),
    asm.exit(),
    asm.label('fn'),
    asm.mov64Imm(asm.R0, 2),
    asm.exit(),
  ]
  const insns = asm.decode(asm.assemble(prog))
  expect(insns[0].off).toBe(4) // 0 -> 5: over ld_imm64 (2), ja, mov
  expect(insns[2].off).toBe(1)
  expect(insns[4].imm).toBe(1) // call at 5 -> fn at 7
  expect(asm.toString(prog)).toBe([
    '   0: if r1 == 0x0 goto pc+4',
    '   1: r2 = 0x1',
    '   3: goto pc+1',
    '   4: r0 = 1',
    'out:',
    '   5: call pc+1',
    '   6: exit',
    'fn:',
    '   7: r0 = 2',
    '   8: exit',
  ].join('\n'))
})

test('label errors', () => {
  expect(() => asm.assemble([asm.ja('nowhere'), asm.exit()])).toThrow(/unknown label 'nowhere'/)
  expect(() => asm.assemble([asm.label('a'), asm.label('a'), asm.exit()])).toThrow(/defined twice/)
  expect(() => asm.call('no_such_helper' as never)).toThrow(/unknown helper 'no_such_helper'/)
  expect(() => asm.mov64Imm(11 as never, 0)).toThrow(RangeError)
  expect(() => asm.mov64Imm(asm.R0, 2 ** 33)).toThrow(RangeError)
  expect(() => asm.ldxW(asm.R0, asm.R1, 40000)).toThrow(RangeError)
})

test('disassembly reads like the verifier log', () => {
  const lines = asm.disassemble(asm.assemble([
    asm.mov64Reg(asm.R6, asm.R1),
    asm.ldxW(asm.R0, asm.R1, 4),
    asm.stxDW(asm.R10, asm.R0, -8),
    asm.stB(asm.R10, -9, 3),
    asm.add64Imm(asm.R0, 5),
    asm.mov32Imm(asm.R1, -1),
    asm.arsh64Imm(asm.R1, 3),
    asm.jgtImm(asm.R1, 5, 2),
    asm.jsleReg(asm.R1, asm.R2, -3),
    asm.jeq32Imm(asm.R1, 1, 0),
    asm.call('map_lookup_elem'),
    asm.atomic('add', 64, asm.R10, asm.R1, -8),
    asm.atomic('xor', 64, asm.R10, asm.R1, -8, { fetch: true }),
    asm.xchg(32, asm.R10, asm.R1, -4),
    asm.cmpxchg(64, asm.R10, asm.R1, -8),
    asm.be(asm.R1, 16),
    asm.bswap(asm.R1, 32),
    asm.movsx64Reg(asm.R1, asm.R2, 16),
    asm.smod64Reg(asm.R1, asm.R2),
    asm.ldxsH(asm.R0, asm.R1, 2),
    asm.ldAbs('w', 0),
    asm.ldMapFd(asm.R1, { fd: 7 }),
    asm.exit(),
  ]))
  expect(lines).toEqual([
    'r6 = r1',
    'r0 = *(u32 *)(r1 +4)',
    '*(u64 *)(r10 -8) = r0',
    '*(u8 *)(r10 -9) = 3',
    'r0 += 5',
    'w1 = -1',
    'r1 s>>= 3',
    'if r1 > 0x5 goto pc+2',
    'if r1 s<= r2 goto pc-3',
    'if w1 == 0x1 goto pc+0',
    'call bpf_map_lookup_elem#1',
    'lock *(u64 *)(r10 -8) += r1',
    'r1 = atomic64_fetch_xor((u64 *)(r10 -8), r1)',
    'r1 = atomic_xchg((u32 *)(r10 -4), r1)', // the kernel names rN at every width
    'r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r1)',
    'r1 = be16 r1',
    'r1 = bswap32 r1',
    'r1 = (s16)r2',
    'r1 s%= r2',
    'r0 = *(s16 *)(r1 +2)',
    'r0 = *(u32 *)skb[0]',
    'r1 = map[fd:7]',
    'exit',
  ])
})
