// eBPF instruction encoding (RFC 9669, "BPF Instruction Set Architecture").
// These are the ISA's fixed opcode bits, not kernel enums: kernel BTF does not
// carry them, and they never change between kernels.

export const cls = { ld: 0x00, ldx: 0x01, st: 0x02, stx: 0x03, alu: 0x04, jmp: 0x05, jmp32: 0x06, alu64: 0x07 } as const
export const size = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 } as const
export const mode = { imm: 0x00, abs: 0x20, ind: 0x40, mem: 0x60, memsx: 0x80, atomic: 0xc0 } as const
export const source = { k: 0x00, x: 0x08 } as const

export const aluOps = {
  add: 0x00, sub: 0x10, mul: 0x20, div: 0x30, or: 0x40, and: 0x50, lsh: 0x60, rsh: 0x70,
  neg: 0x80, mod: 0x90, xor: 0xa0, mov: 0xb0, arsh: 0xc0, end: 0xd0,
} as const
export type AluOp = Exclude<keyof typeof aluOps, 'neg' | 'end'>

export const jmpOps = {
  ja: 0x00, jeq: 0x10, jgt: 0x20, jge: 0x30, jset: 0x40, jne: 0x50, jsgt: 0x60, jsge: 0x70,
  call: 0x80, exit: 0x90, jlt: 0xa0, jle: 0xb0, jslt: 0xc0, jsle: 0xd0, jcond: 0xe0,
} as const
export type CondOp = Exclude<keyof typeof jmpOps, 'ja' | 'call' | 'exit' | 'jcond'>

export const atomicOps = { add: 0x00, or: 0x40, and: 0x50, xor: 0xa0 } as const
export const atomicFetch = 0x01
export const atomicXchg = 0xe0 | atomicFetch
export const atomicCmpxchg = 0xf0 | atomicFetch
/** Acquire loads and release stores, also in the atomic class (Linux 6.15+). */
export const atomicLoadAcq = 0x100
export const atomicStoreRel = 0x110
export type AtomicOp = keyof typeof atomicOps

/** src_reg values of ld_imm64 and call with special meanings. */
export const pseudo = { mapFd: 1, mapValue: 2, btfId: 3, func: 4, mapIdx: 5, mapIdxValue: 6, call: 1, kfuncCall: 2, mayGoto: 0 } as const

export const endLe = 0x00
export const endBe = 0x08
