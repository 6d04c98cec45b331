// Every instruction form's encoding against the bytes the kernel's BPF_*
// macros (include/linux/filter.h) produce: code, dst | src << 4, off (le16),
// imm (le32). Complements asm.test.ts, which checks a sample.
import { expect, test } from 'vitest'
import { asm, type Insn } from '../../lib/index.js'

const { R0, R1, R2, R3, R6, R10 } = asm
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const slot = (code: number, regs: number, off: number, imm: number) => {
  const b = Buffer.alloc(8)
  b.writeUInt8(code, 0)
  b.writeUInt8(regs, 1)
  b.writeInt16LE(off, 2)
  b.writeInt32LE(imm, 4)
  return b.toString('hex')
}

const cases: Array<[string, Insn, string]> = [
  ['BPF_MOV64_IMM(R0, 0)', asm.mov64Imm(R0, 0), 'b700000000000000'],
  ['BPF_MOV64_REG(R6, R1)', asm.mov64Reg(R6, R1), 'bf16000000000000'],
  ['BPF_MOV32_IMM(R1, -1)', asm.mov32Imm(R1, -1), 'b4010000ffffffff'],
  ['BPF_ALU64_IMM(BPF_ADD, R2, -8)', asm.add64Imm(R2, -8), '07020000f8ffffff'],
  ['BPF_ALU32_REG(BPF_SUB, R1, R2)', asm.sub32Reg(R1, R2), '1c21000000000000'],
  ['BPF_ALU64_IMM(BPF_MUL, R1, 3)', asm.mul64Imm(R1, 3), '2701000003000000'],
  ['BPF_ALU64_REG(BPF_DIV, R1, R2)', asm.div64Reg(R1, R2), '3f21000000000000'],
  ['BPF_ALU64_IMM(BPF_OR, R1, 0x10)', asm.or64Imm(R1, 0x10), '4701000010000000'],
  ['BPF_ALU32_IMM(BPF_AND, R1, 0xff)', asm.and32Imm(R1, 0xff), '54010000ff000000'],
  ['BPF_ALU64_IMM(BPF_LSH, R1, 32)', asm.lsh64Imm(R1, 32), '6701000020000000'],
  ['BPF_ALU64_REG(BPF_RSH, R1, R2)', asm.rsh64Reg(R1, R2), '7f21000000000000'],
  ['BPF_ALU64_IMM(BPF_NEG, R1, 0)', asm.neg64(R1), '8701000000000000'],
  ['BPF_ALU32_IMM(BPF_NEG, R3, 0)', asm.neg32(R3), '8403000000000000'],
  ['BPF_ALU64_REG(BPF_MOD, R1, R2)', asm.mod64Reg(R1, R2), '9f21000000000000'],
  ['BPF_ALU32_REG(BPF_XOR, R1, R2)', asm.xor32Reg(R1, R2), 'ac21000000000000'],
  ['BPF_ALU32_IMM(BPF_ARSH, R1, 4)', asm.arsh32Imm(R1, 4), 'c401000004000000'],
  ['BPF_ALU64_REG(BPF_ARSH, R1, R2)', asm.arsh64Reg(R1, R2), 'cf21000000000000'],
  ['sdiv: BPF_ALU64_IMM with off 1', asm.sdiv64Imm(R1, 3), slot(0x37, 0x01, 1, 3)],
  ['smod32: BPF_ALU32_REG with off 1', asm.smod32Reg(R1, R2), slot(0x9c, 0x21, 1, 0)],
  ['BPF_MOVSX64_REG(R1, R2, 8)', asm.movsx64Reg(R1, R2, 8), slot(0xbf, 0x21, 8, 0)],
  ['BPF_MOVSX32_REG(R1, R2, 16)', asm.movsx32Reg(R1, R2, 16), slot(0xbc, 0x21, 16, 0)],
  ['BPF_ENDIAN(BPF_TO_BE, R1, 16)', asm.be(R1, 16), 'dc01000010000000'],
  ['BPF_ENDIAN(BPF_TO_LE, R1, 64)', asm.le(R1, 64), 'd401000040000000'],
  ['BPF_BSWAP(R1, 32)', asm.bswap(R1, 32), 'd701000020000000'],
  ['BPF_JMP_IMM(BPF_JEQ, R0, 0, 2)', asm.jeqImm(R0, 0, 2), '1500020000000000'],
  ['BPF_JMP_REG(BPF_JGT, R1, R2, -3)', asm.jgtReg(R1, R2, -3), '2d21fdff00000000'],
  ['BPF_JMP_IMM(BPF_JGE, R1, 1, 1)', asm.jgeImm(R1, 1, 1), '3501010001000000'],
  ['BPF_JMP_IMM(BPF_JSET, R1, 4, 1)', asm.jsetImm(R1, 4, 1), '4501010004000000'],
  ['BPF_JMP32_IMM(BPF_JNE, R1, 5, 1)', asm.jne32Imm(R1, 5, 1), '5601010005000000'],
  ['BPF_JMP_REG(BPF_JSGT, R1, R2, 1)', asm.jsgtReg(R1, R2, 1), '6d21010000000000'],
  ['BPF_JMP_IMM(BPF_JSGE, R1, -1, 1)', asm.jsgeImm(R1, -1, 1), '75010100ffffffff'],
  ['BPF_JMP_IMM(BPF_JLT, R1, 9, 1)', asm.jltImm(R1, 9, 1), 'a501010009000000'],
  ['BPF_JMP32_REG(BPF_JLE, R1, R2, 1)', asm.jle32Reg(R1, R2, 1), 'be21010000000000'],
  ['BPF_JMP_IMM(BPF_JSLT, R1, 0, 1)', asm.jsltImm(R1, 0, 1), 'c501010000000000'],
  ['BPF_JMP32_IMM(BPF_JSLE, R1, 0, 1)', asm.jsle32Imm(R1, 0, 1), 'd601010000000000'],
  ['BPF_JMP_A(4)', asm.ja(4), '0500040000000000'],
  ['BPF_JMP32_A(70000) (gotol)', asm.ja32(70000), slot(0x06, 0, 0, 70000)],
  ['may_goto +1', asm.mayGoto(1), slot(0xe5, 0, 1, 0)],
  ['BPF_EMIT_CALL(BPF_FUNC_map_lookup_elem)', asm.call('map_lookup_elem'), '8500000001000000'],
  ['BPF_CALL_REL(3)', asm.callLocal(3), '8510000003000000'],
  ['kfunc call', asm.callKfunc(1234), slot(0x85, 0x20, 0, 1234)],
  ['BPF_EXIT_INSN()', asm.exit(), '9500000000000000'],
  ['BPF_LDX_MEM(BPF_W, R0, R1, 4)', asm.ldxW(R0, R1, 4), '6110040000000000'],
  ['BPF_LDX_MEM(BPF_B, R0, R1, 0)', asm.ldxB(R0, R1, 0), '7110000000000000'],
  ['BPF_LDX_MEM(BPF_H, R0, R1, 2)', asm.ldxH(R0, R1, 2), '6910020000000000'],
  ['BPF_LDX_MEM(BPF_DW, R0, R10, -8)', asm.ldxDW(R0, R10, -8), '79a0f8ff00000000'],
  ['BPF_LDX_MEMSX(BPF_B, R1, R2, 0)', asm.ldxsB(R1, R2, 0), '9121000000000000'],
  ['BPF_LDX_MEMSX(BPF_W, R1, R2, 4)', asm.ldxsW(R1, R2, 4), '8121040000000000'],
  ['BPF_STX_MEM(BPF_DW, R10, R1, -8)', asm.stxDW(R10, R1, -8), '7b1af8ff00000000'],
  ['BPF_STX_MEM(BPF_B, R10, R1, -1)', asm.stxB(R10, R1, -1), '731affff00000000'],
  ['BPF_ST_MEM(BPF_W, R10, -4, 0)', asm.stW(R10, -4, 0), '620afcff00000000'],
  ['BPF_ST_MEM(BPF_H, R10, -2, 7)', asm.stH(R10, -2, 7), '6a0afeff07000000'],
  ['BPF_ATOMIC_OP(BPF_DW, BPF_ADD, R10, R1, -8)', asm.atomic('add', 64, R10, R1, -8), 'db1af8ff00000000'],
  ['BPF_ATOMIC_OP(BPF_W, BPF_OR, R1, R2, 0)', asm.atomic('or', 32, R1, R2, 0), 'c321000040000000'],
  ['BPF_ATOMIC_OP(BPF_DW, BPF_ADD | BPF_FETCH, R10, R1, -8)', asm.atomic('add', 64, R10, R1, -8, { fetch: true }), 'db1af8ff01000000'],
  ['BPF_ATOMIC_OP(BPF_W, BPF_XOR | BPF_FETCH, R1, R2, 0)', asm.atomic('xor', 32, R1, R2, 0, { fetch: true }), 'c3210000a1000000'],
  ['BPF_ATOMIC_OP(BPF_DW, BPF_XCHG, R10, R1, -8)', asm.xchg(64, R10, R1, -8), 'db1af8ffe1000000'],
  ['BPF_ATOMIC_OP(BPF_W, BPF_CMPXCHG, R10, R1, -4)', asm.cmpxchg(32, R10, R1, -4), 'c31afcfff1000000'],
  ['load_acquire u64', asm.loadAcquire('dw', R0, R1, 0), slot(0xdb, 0x10, 0, 0x100)],
  ['store_release u32', asm.storeRelease('w', R1, R2, 0), slot(0xc3, 0x21, 0, 0x110)],
  ['BPF_LD_ABS(BPF_B, 23)', asm.ldAbs('b', 23), '3000000017000000'],
  ['BPF_LD_ABS(BPF_W, 26)', asm.ldAbs('w', 26), '200000001a000000'],
  ['BPF_LD_IND(BPF_H, R6, 2)', asm.ldInd('h', R6, 2), '4860000002000000'],
]
test.each(cases)('%s', (_name, insn, bytes) => {
  expect(hex(asm.assemble([insn]))).toBe(bytes)
})
