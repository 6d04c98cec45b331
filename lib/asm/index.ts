// The eBPF assembler: instruction builders, labels, map references, and a
// disassembler in the verifier's style.
import * as insn from './insn.js'
import { assemble, decode } from './assemble.js'
import { disassemble, format, toString } from './disasm.js'

export type { Insn, Item, Label, MapRef, Reg } from './insn.js'
export type { FormatOptions } from './disasm.js'

/**
 * asm.mov64Imm(asm.R0, 0), asm.jeqImm(asm.R1, 0, 'out'), asm.label('out'),
 * asm.call('map_lookup_elem'), asm.ldMapFd(asm.R1, map), asm.exit(), ...
 */
export const asm = {
  R0: insn.R0, R1: insn.R1, R2: insn.R2, R3: insn.R3, R4: insn.R4, R5: insn.R5,
  R6: insn.R6, R7: insn.R7, R8: insn.R8, R9: insn.R9, R10: insn.R10, FP: insn.FP,
  ...insn.alu,
  ...insn.jmp,
  ...insn.mem,
  neg64: insn.neg64, neg32: insn.neg32,
  sdiv64Reg: insn.sdiv64Reg, sdiv64Imm: insn.sdiv64Imm, smod64Reg: insn.smod64Reg, smod64Imm: insn.smod64Imm,
  sdiv32Reg: insn.sdiv32Reg, sdiv32Imm: insn.sdiv32Imm, smod32Reg: insn.smod32Reg, smod32Imm: insn.smod32Imm,
  movsx64Reg: insn.movsx64Reg, movsx32Reg: insn.movsx32Reg,
  le: insn.le, be: insn.be, bswap: insn.bswap,
  ja: insn.ja, ja32: insn.ja32, mayGoto: insn.mayGoto, exit: insn.exit, call: insn.call, callLocal: insn.callLocal,
  callKfunc: insn.callKfunc, label: insn.label,
  atomic: insn.atomic, xchg: insn.xchg, cmpxchg: insn.cmpxchg, loadAcquire: insn.loadAcquire, storeRelease: insn.storeRelease,
  ldImm64: insn.ldImm64, ldMapFd: insn.ldMapFd, ldMapValue: insn.ldMapValue, ldAbs: insn.ldAbs, ldInd: insn.ldInd,
  /** Bytes for BPF_PROG_LOAD; labels resolved, map references read their fd now. */
  assemble,
  /** Bytes back to instructions. */
  decode,
  /** Bytes to text, one line per instruction. */
  disassemble,
  /** One instruction as text. */
  format,
  /** A numbered listing of instructions or bytes. */
  toString,
} as const
