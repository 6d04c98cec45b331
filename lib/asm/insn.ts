// Instruction values and their builders. An instruction is a plain object; a
// jump or bpf-to-bpf call may name a label instead of an offset, and an
// ld_imm64 may hold a map reference, both resolved by `assemble`.
import { enumValue, kernel, type HelperName } from '../sys/index.js'
import { aluOps, atomicCmpxchg, atomicFetch, atomicLoadAcq, atomicOps, atomicStoreRel, atomicXchg, cls, endBe, endLe, jmpOps, mode, pseudo, size, source,
  type AluOp, type AtomicOp, type CondOp } from './opcodes.js'
// describeValue, not String(): String() of an object without a prototype throws (npm run fuzz).
import { describeValue } from '../sys/options.js'

export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10
export const R0: Reg = 0, R1: Reg = 1, R2: Reg = 2, R3: Reg = 3, R4: Reg = 4, R5: Reg = 5
export const R6: Reg = 6, R7: Reg = 7, R8: Reg = 8, R9: Reg = 9, R10: Reg = 10
/** The read-only frame pointer. */
export const FP: Reg = 10

/** Anything with the fd of a map: a BpfMap, an Fd. Read when the program is assembled. */
export interface MapRef {
  readonly fd: number
}

export interface Insn {
  code: number
  dst: number
  src: number
  off: number
  imm: number
  /** ld_imm64 only: the full 64-bit constant (the second slot holds its upper half). */
  imm64?: bigint
  /** ld_imm64 of a map fd or map value: the map, resolved to its fd. */
  map?: MapRef
  /** Jump or bpf-to-bpf call target, resolved to an offset. */
  target?: string
}

/** Marks a position that jumps can name. Emits no instruction. */
export interface Label {
  label: string
}

export type Item = Insn | Label

export const isLabel = (x: Item): x is Label => x !== null && typeof x === 'object' && typeof (x as Label).label === 'string'

function reg(r: number, what = 'register'): number {
  if (!Number.isInteger(r) || r < 0 || r > 10) throw new RangeError(`${what} must be r0..r10, got ${describeValue(r)}`)
  return r
}

function s16(n: number, what: string): number {
  if (!Number.isInteger(n) || n < -0x8000 || n > 0x7fff) throw new RangeError(`${what} must fit in 16 signed bits, got ${describeValue(n)}`)
  return n
}

function i32(n: number, what = 'immediate'): number {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0xffffffff) throw new RangeError(`${what} must fit in 32 bits, got ${describeValue(n)}`)
  return n | 0
}

const make = (code: number, dst: number, src: number, off: number, imm: number): Insn =>
  ({ code, dst: reg(dst, 'dst'), src: reg(src, 'src'), off: s16(off, 'offset'), imm: i32(imm) })

export const label = (name: string): Label => {
  if (typeof name !== 'string' || name === '') throw new TypeError('a label needs a non-empty name')
  return { label: name }
}

// ---- ALU ----

type AluBuilders = {
  [K in `${AluOp}${'64' | '32'}${'Imm' | 'Reg'}`]: K extends `${string}Imm` ? (dst: Reg, imm: number) => Insn : (dst: Reg, src: Reg) => Insn
}

function aluFamily(): AluBuilders {
  const out: Record<string, unknown> = {}
  for (const [name, op] of Object.entries(aluOps)) {
    if (name === 'neg' || name === 'end') continue
    for (const [width, c] of [['64', cls.alu64], ['32', cls.alu]] as const) {
      out[`${name}${width}Imm`] = (dst: Reg, imm: number) => make(c | op | source.k, dst, 0, 0, imm)
      out[`${name}${width}Reg`] = (dst: Reg, src: Reg) => make(c | op | source.x, dst, src, 0, 0)
    }
  }
  return out as AluBuilders
}

export const alu = aluFamily()
export const neg64 = (dst: Reg) => make(cls.alu64 | aluOps.neg, dst, 0, 0, 0)
export const neg32 = (dst: Reg) => make(cls.alu | aluOps.neg, dst, 0, 0, 0)
/** Signed division and modulo (Linux 6.6+): off = 1. */
export const sdiv64Reg = (dst: Reg, src: Reg) => ({ ...alu.div64Reg(dst, src), off: 1 })
export const sdiv64Imm = (dst: Reg, imm: number) => ({ ...alu.div64Imm(dst, imm), off: 1 })
export const smod64Reg = (dst: Reg, src: Reg) => ({ ...alu.mod64Reg(dst, src), off: 1 })
export const smod64Imm = (dst: Reg, imm: number) => ({ ...alu.mod64Imm(dst, imm), off: 1 })
export const sdiv32Reg = (dst: Reg, src: Reg) => ({ ...alu.div32Reg(dst, src), off: 1 })
export const sdiv32Imm = (dst: Reg, imm: number) => ({ ...alu.div32Imm(dst, imm), off: 1 })
export const smod32Reg = (dst: Reg, src: Reg) => ({ ...alu.mod32Reg(dst, src), off: 1 })
export const smod32Imm = (dst: Reg, imm: number) => ({ ...alu.mod32Imm(dst, imm), off: 1 })
/** Sign-extending move from the low `bits` of src (Linux 6.6+). */
export const movsx64Reg = (dst: Reg, src: Reg, bits: 8 | 16 | 32) => ({ ...alu.mov64Reg(dst, src), off: bits })
export const movsx32Reg = (dst: Reg, src: Reg, bits: 8 | 16) => ({ ...alu.mov32Reg(dst, src), off: bits })

function widthImm(bits: number): number {
  if (bits !== 16 && bits !== 32 && bits !== 64) throw new RangeError(`byte swap width must be 16, 32 or 64, got ${describeValue(bits)}`)
  return bits
}
/** Converts the low `bits` of dst to little / big endian. */
export const le = (dst: Reg, bits: 16 | 32 | 64) => make(cls.alu | aluOps.end | endLe, dst, 0, 0, widthImm(bits))
export const be = (dst: Reg, bits: 16 | 32 | 64) => make(cls.alu | aluOps.end | endBe, dst, 0, 0, widthImm(bits))
/** Unconditional byte swap (Linux 6.6+). */
export const bswap = (dst: Reg, bits: 16 | 32 | 64) => make(cls.alu64 | aluOps.end | endLe, dst, 0, 0, widthImm(bits))

// ---- jumps ----

type Target = string | number

function jump(code: number, dst: number, src: number, imm: number, target: Target): Insn {
  if (typeof target === 'number') return make(code, dst, src, target, imm)
  return { ...make(code, dst, src, 0, imm), target }
}

type JmpBuilders = {
  [K in `${CondOp}${'' | '32'}${'Imm' | 'Reg'}`]: K extends `${string}Imm` ? (dst: Reg, imm: number, target: Target) => Insn : (dst: Reg, src: Reg, target: Target) => Insn
}

function jmpFamily(): JmpBuilders {
  const out: Record<string, unknown> = {}
  for (const [name, op] of Object.entries(jmpOps)) {
    if (name === 'ja' || name === 'call' || name === 'exit' || name === 'jcond') continue
    for (const [width, c] of [['', cls.jmp], ['32', cls.jmp32]] as const) {
      out[`${name}${width}Imm`] = (dst: Reg, imm: number, t: Target) => jump(c | op | source.k, dst, 0, imm, t)
      out[`${name}${width}Reg`] = (dst: Reg, src: Reg, t: Target) => jump(c | op | source.x, dst, src, 0, t)
    }
  }
  return out as JmpBuilders
}

export const jmp = jmpFamily()
/** goto: a label or a relative offset in instruction slots. */
export const ja = (target: Target) => jump(cls.jmp | jmpOps.ja, 0, 0, 0, target)
export const exit = () => make(cls.jmp | jmpOps.exit, 0, 0, 0, 0)
/** gotol: an unconditional jump with a 32-bit offset, held in imm (Linux 6.6+). */
export const ja32 = (target: Target): Insn =>
  typeof target === 'number' ? make(cls.jmp32 | jmpOps.ja, 0, 0, 0, target) : { ...make(cls.jmp32 | jmpOps.ja, 0, 0, 0, 0), target }
/** may_goto: jumps once the kernel's loop budget for the program is spent (Linux 6.9+). */
export const mayGoto = (target: Target) => jump(cls.jmp | jmpOps.jcond, 0, pseudo.mayGoto, 0, target)

/** Calls a helper by the kernel's name ('map_lookup_elem', with or without 'bpf_') or id. */
export function call(helper: HelperName | `bpf_${HelperName}` | number): Insn {
  const name = typeof helper === 'string' && helper.startsWith('bpf_') ? helper.slice(4) : helper
  return make(cls.jmp | jmpOps.call, 0, 0, 0, enumValue(kernel.helpers, 'helper', name))
}

/** A bpf-to-bpf call of the function starting at `target`. */
export const callLocal = (target: Target): Insn =>
  // A call's offset lives in imm, not off.
  typeof target === 'number' ? make(cls.jmp | jmpOps.call, 0, pseudo.call, 0, target) : jump(cls.jmp | jmpOps.call, 0, pseudo.call, 0, target)

/** Calls a kernel function (kfunc) by its BTF id; `btfObjIndex` picks a module BTF from fd_array (0: vmlinux). */
export const callKfunc = (btfId: number, btfObjIndex = 0) => make(cls.jmp | jmpOps.call, 0, pseudo.kfuncCall, btfObjIndex, btfId)

// ---- memory ----

type Size = keyof typeof size
const sizes = Object.keys(size) as Size[]

function memFamily() {
  const out: Record<string, unknown> = {}
  for (const sz of sizes) {
    const S = sz.toUpperCase()
    out[`ldx${S}`] = (dst: Reg, src: Reg, off: number) => make(cls.ldx | mode.mem | size[sz], dst, src, off, 0)
    out[`stx${S}`] = (dst: Reg, src: Reg, off: number) => make(cls.stx | mode.mem | size[sz], dst, src, off, 0)
    out[`st${S}`] = (dst: Reg, off: number, imm: number) => make(cls.st | mode.mem | size[sz], dst, 0, off, imm)
    if (sz !== 'dw') out[`ldxs${S}`] = (dst: Reg, src: Reg, off: number) => make(cls.ldx | mode.memsx | size[sz], dst, src, off, 0)
  }
  return out as {
    [K in `ldx${Uppercase<Size>}` | `stx${Uppercase<Size>}`]: (dst: Reg, src: Reg, off: number) => Insn
  } & { [K in `st${Uppercase<Size>}`]: (dst: Reg, off: number, imm: number) => Insn }
    & { [K in `ldxs${'B' | 'H' | 'W'}`]: (dst: Reg, src: Reg, off: number) => Insn }
}

export const mem = memFamily()

function atomicSize(bits: 32 | 64): number {
  if (bits !== 32 && bits !== 64) throw new RangeError(`atomic width must be 32 or 64, got ${describeValue(bits)}`)
  return bits === 64 ? size.dw : size.w
}

/** *(dst + off) op= src; with fetch, src receives the old value. */
export const atomic = (op: AtomicOp, bits: 32 | 64, dst: Reg, src: Reg, off: number, options: { fetch?: boolean } = {}) => {
  if (typeof op !== 'string' || !Object.hasOwn(atomicOps, op)) throw new TypeError(`unknown atomic op ${describeValue(op)} (known: ${Object.keys(atomicOps).join(', ')})`)
  return make(cls.stx | mode.atomic | atomicSize(bits), dst, src, off, atomicOps[op] | (options.fetch ? atomicFetch : 0))
}
/** src = xchg(*(dst + off), src) */
export const xchg = (bits: 32 | 64, dst: Reg, src: Reg, off: number) => make(cls.stx | mode.atomic | atomicSize(bits), dst, src, off, atomicXchg)
/** r0 = cmpxchg(*(dst + off), r0, src) */
export const cmpxchg = (bits: 32 | 64, dst: Reg, src: Reg, off: number) => make(cls.stx | mode.atomic | atomicSize(bits), dst, src, off, atomicCmpxchg)

/** dst = load_acquire((size *)(src + off)) (Linux 6.15+). */
export const loadAcquire = (sz: Size, dst: Reg, src: Reg, off: number) => make(cls.stx | mode.atomic | sizeCode(sz), dst, src, off, atomicLoadAcq)
/** store_release((size *)(dst + off), src) (Linux 6.15+). */
export const storeRelease = (sz: Size, dst: Reg, src: Reg, off: number) => make(cls.stx | mode.atomic | sizeCode(sz), dst, src, off, atomicStoreRel)

function sizeCode(sz: Size): number {
  if (typeof sz !== 'string' || !Object.hasOwn(size, sz)) throw new TypeError(`size must be 'b', 'h', 'w' or 'dw', got ${describeValue(sz)}`)
  return size[sz]
}

// ---- 64-bit loads ----

/** dst = a 64-bit constant (two instruction slots). */
export function ldImm64(dst: Reg, value: bigint | number): Insn {
  if (typeof value !== 'bigint' && !Number.isInteger(value)) throw new TypeError(`ld_imm64 value must be a bigint or an integer, got ${typeof value === 'number' ? value : typeof value}`)
  if (BigInt(value) < -(1n << 63n) || BigInt(value) >= 1n << 64n) throw new RangeError(`ld_imm64 value must fit in 64 bits, got ${value}`)
  const v = BigInt.asUintN(64, BigInt(value))
  return { ...make(cls.ld | mode.imm | size.dw, dst, 0, 0, Number(BigInt.asIntN(32, v))), imm64: v }
}

/** dst = the map (its fd, resolved when assembled). */
export const ldMapFd = (dst: Reg, map: MapRef): Insn => ({ ...ldImm64(dst, 0), src: pseudo.mapFd, map })

/** dst = address of the map's value at `offset` (arrays; first element). */
export function ldMapValue(dst: Reg, map: MapRef, offset = 0): Insn {
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) throw new RangeError(`map value offset must be a u32, got ${describeValue(offset)}`)
  return { ...ldImm64(dst, BigInt(offset) << 32n), src: pseudo.mapValue, map }
}

/** Legacy packet loads for socket filters: r0 = *(size *)skb[imm] / skb[src + imm]. */
export const ldAbs = (sz: 'b' | 'h' | 'w', imm: number) => make(cls.ld | mode.abs | size[sz], 0, 0, 0, imm)
export const ldInd = (sz: 'b' | 'h' | 'w', src: Reg, imm: number) => make(cls.ld | mode.ind | size[sz], 0, src, 0, imm)
