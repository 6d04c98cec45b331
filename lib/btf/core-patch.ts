// Patching one instruction for a CO-RE relocation, or poisoning it, with the
// checks libbpf makes (relo_core.c, bpf_core_patch_insn): ALU immediates,
// LDX/ST/STX offsets (and load/store size when the field's size changed),
// ld_imm64 values. Little-endian instructions, 8 bytes (ld_imm64 16).
import type { Spec } from './core-spec.js'
import { CoreSpecError } from './core-types.js'

/** The helper id a poisoned instruction calls: 0xbad2310, "bad relo" (the verifier says "invalid func unknown#195896080"). */
export const POISON_HELPER = 0xbad2310
export const INSN_SIZE = 8

// What one relocation computes: libbpf's bpf_core_relo_res.
export interface CoreRes {
  origVal: bigint
  newVal: bigint
  poison: boolean
  reason?: string
  /** Check that the instruction holds origVal before patching it. */
  validate: boolean
  /** A load/store whose size changes in a way that cannot be patched (signed, or not an integer or pointer). */
  failMemsz: boolean
  origSz: number
  newSz: number
}

const CLS = { ld: 0x00, ldx: 0x01, st: 0x02, stx: 0x03, alu: 0x04, alu64: 0x07 } as const
const LD_IMM64 = 0x18
const CALL = 0x85
const sizeBytes: Record<number, number> = { 0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1 }
const sizeCode: Record<number, number> = { 8: 0x18, 4: 0x00, 2: 0x08, 1: 0x10 }

// libbpf's bpf_core_patch_insn: checks the instruction holds the local value,
// then writes the target's (immediate, offset and load size, or ld_imm64).
export function patchInsn(view: DataView, off: number, res: CoreRes, localSpec: Spec): { poisoned: boolean; reason?: string } {
  const code = view.getUint8(off)
  const isLdImm64 = code === LD_IMM64
  if (isLdImm64 && off + 2 * INSN_SIZE > view.byteLength) throw new CoreSpecError(`ld_imm64 at byte ${off} is cut off by the end of the section`)
  const poison = (reason?: string) => {
    // The second half of ld_imm64 too, or the verifier reports "unknown opcode 00" instead.
    if (isLdImm64) poisonAt(view, off + INSN_SIZE)
    poisonAt(view, off)
    return { poisoned: true, reason }
  }
  if (res.poison) return poison()
  const insnNo = off / INSN_SIZE
  const cls = code & 0x07
  switch (cls) {
    case CLS.alu: case CLS.alu64: {
      if ((code & 0x08) !== 0) throw new CoreSpecError(`instruction #${insnNo} (ALU) takes a register, not an immediate`)
      const imm = view.getInt32(off + 4, true)
      if (res.validate && BigInt.asUintN(64, BigInt(imm)) !== res.origVal) {
        throw new CoreSpecError(`instruction #${insnNo} (ALU) holds ${imm}, expected the local value ${res.origVal} (to become ${res.newVal})`)
      }
      view.setInt32(off + 4, Number(BigInt.asIntN(32, res.newVal)), true)
      return { poisoned: false }
    }
    case CLS.ldx: case CLS.st: case CLS.stx: {
      const insnOff = view.getInt16(off + 2, true)
      if (res.validate && BigInt.asUintN(64, BigInt(insnOff)) !== res.origVal) {
        throw new CoreSpecError(`instruction #${insnNo} (LDX/ST/STX) has offset ${insnOff}, expected the local value ${res.origVal} (to become ${res.newVal})`)
      }
      if (res.newVal > 0x7fffn) throw new CoreSpecError(`instruction #${insnNo} (LDX/ST/STX): offset ${res.newVal} does not fit 16 bits`, 'ERANGE')
      if (res.failMemsz) {
        const acc = localSpec.acc[localSpec.acc.length - 1]
        const what = acc.name === undefined ? 'the array element' : `field '${acc.name}'`
        const size = (n: number) => (n === 0 ? 'a bitfield' : `${n} bytes`)
        return poison(`${what} is ${size(res.origSz)} locally and ${size(res.newSz)} in the target, and not an unsigned integer or pointer on both sides: the load or store cannot be resized`)
      }
      view.setInt16(off + 2, Number(res.newVal), true)
      if (res.newSz !== res.origSz) {
        const have = sizeBytes[code & 0x18]
        if (have !== res.origSz) throw new CoreSpecError(`instruction #${insnNo} (LDX/ST/STX) accesses ${have} bytes, expected ${res.origSz}`)
        const want = sizeCode[res.newSz]
        if (want === undefined) throw new CoreSpecError(`instruction #${insnNo} (LDX/ST/STX): the target's ${res.newSz}-byte field cannot be loaded in one instruction`)
        view.setUint8(off, (code & 0xe0) | want | cls)
      }
      return { poisoned: false }
    }
    case CLS.ld: {
      const regs = view.getUint8(off + 1)
      if (!isLdImm64 || (regs & 0xf0) !== 0 || view.getInt16(off + 2, true) !== 0 ||
        view.getUint8(off + 8) !== 0 || view.getUint8(off + 9) !== 0 || view.getInt16(off + 10, true) !== 0) {
        throw new CoreSpecError(`instruction #${insnNo} is not a plain ld_imm64`)
      }
      const imm = BigInt(view.getUint32(off + 4, true)) | (BigInt(view.getUint32(off + 12, true)) << 32n)
      if (res.validate && imm !== res.origVal) {
        throw new CoreSpecError(`instruction #${insnNo} (ld_imm64) holds ${imm}, expected the local value ${res.origVal} (to become ${res.newVal})`)
      }
      view.setUint32(off + 4, Number(res.newVal & 0xffffffffn), true)
      view.setUint32(off + 12, Number((res.newVal >> 32n) & 0xffffffffn), true)
      return { poisoned: false }
    }
    default:
      throw new CoreSpecError(`instruction #${insnNo} (opcode 0x${code.toString(16)}) cannot carry a CO-RE relocation`)
  }
}

function poisonAt(view: DataView, off: number): void {
  view.setUint8(off, CALL)
  view.setUint8(off + 1, 0)
  view.setInt16(off + 2, 0, true)
  view.setInt32(off + 4, POISON_HELPER, true)
}
