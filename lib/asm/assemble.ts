// Labels to offsets, map references to fds, instructions to bytes.
import { cls, jmpOps, mode, pseudo, size } from './opcodes.js'
import { isLabel, type Insn, type Item } from './insn.js'
import { describeValue } from '../sys/options.js'

const isWide = (i: Insn) => i.code === (cls.ld | mode.imm | size.dw)

function field(x: Record<string, unknown>, name: string, min: number, max: number, pc: number): void {
  const v = x[name]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`instruction ${pc}: ${name} must be an integer in ${min}..${max}, got ${typeof v === 'number' ? v : typeof v}`)
  }
}

// An item that is not a label must be a whole instruction: a missing or
// mistyped field would otherwise be encoded as 0 without a word.
function checkInsn(x: unknown, pc: number): asserts x is Insn {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) {
    throw new TypeError(`instruction ${pc}: not an instruction or label: ${describeValue(x)}`)
  }
  const i = x as Record<string, unknown>
  if (typeof i.code !== 'number') throw new TypeError(`instruction ${pc}: not an instruction: ${JSON.stringify(x) ?? typeof x}`)
  field(i, 'code', 0, 0xff, pc)
  field(i, 'dst', 0, 15, pc)
  field(i, 'src', 0, 15, pc)
  field(i, 'off', -0x8000, 0x7fff, pc)
  field(i, 'imm', -0x80000000, 0xffffffff, pc)
  if (i.imm64 !== undefined && typeof i.imm64 !== 'bigint') throw new TypeError(`instruction ${pc}: imm64 must be a bigint, got ${typeof i.imm64}`)
  if (i.target !== undefined && typeof i.target !== 'string') throw new TypeError(`instruction ${pc}: target must be a label name, got ${typeof i.target}`)
  if (i.map !== undefined && (i.map === null || typeof i.map !== 'object')) throw new TypeError(`instruction ${pc}: map must be a map (an object with an fd), got ${describeValue(i.map)}`)
}

/** Instruction slots an item takes: 2 for ld_imm64, 0 for a label. */
export const slots = (x: Item): number => (isLabel(x) ? 0 : isWide(x) ? 2 : 1)

/**
 * Resolves labels to relative offsets. Errors: a jump to an unknown label, a
 * label defined twice, an offset that does not fit.
 */
export function resolve(items: readonly Item[]): Insn[] {
  if (!Array.isArray(items)) throw new TypeError(`instructions must be an array of instructions and labels, got ${describeValue(items)}`)
  const at = new Map<string, number>()
  let pc = 0
  for (const x of items) {
    if (isLabel(x)) {
      if (at.has(x.label)) throw new TypeError(`label '${x.label}' is defined twice`)
      at.set(x.label, pc)
    } else checkInsn(x, pc)
    pc += slots(x)
  }
  // A label after the last instruction names no instruction; a jump there
  // would leave the program.
  for (const [name, slot] of at) if (slot === pc) throw new TypeError(`label '${name}' is not followed by an instruction`)
  const out: Insn[] = []
  pc = 0
  for (const x of items) {
    if (isLabel(x)) continue
    if (x.target !== undefined) {
      const to = at.get(x.target)
      if (to === undefined) throw new TypeError(`instruction ${pc}: jump to unknown label '${x.target}'`)
      const rel = to - (pc + 1)
      // Calls and gotol carry the offset in imm, other jumps in off.
      const inImm = ((x.code & 0x07) === cls.jmp && (x.code & 0xf0) === jmpOps.call) || x.code === (cls.jmp32 | jmpOps.ja)
      if (inImm) out.push({ ...x, target: undefined, imm: rel })
      else {
        if (rel < -0x8000 || rel > 0x7fff) throw new RangeError(`instruction ${pc}: jump to '${x.target}' is too far (${rel})`)
        out.push({ ...x, target: undefined, off: rel })
      }
    } else out.push(x)
    pc += slots(x)
  }
  return out
}

function put(v: DataView, at: number, code: number, dst: number, src: number, off: number, imm: number) {
  v.setUint8(at, code)
  v.setUint8(at + 1, ((src & 0xf) << 4) | (dst & 0xf))
  v.setInt16(at + 2, off, true)
  v.setInt32(at + 4, imm | 0, true)
}

/**
 * The program's bytes, as BPF_PROG_LOAD reads them. Map references read their
 * fd now. Errors as resolve, and a TypeError for a map whose fd cannot be read.
 */
export function assemble(items: readonly Item[]): Uint8Array {
  return encode(resolve(items))
}

/** Bytes of instructions `resolve` has checked and whose labels it resolved. */
export function encode(insns: readonly Insn[]): Uint8Array {
  const n = insns.reduce((s, i) => s + slots(i), 0)
  const bytes = new Uint8Array(n * 8)
  const v = new DataView(bytes.buffer)
  let at = 0
  for (const i of insns) {
    if (isWide(i)) {
      let lo = i.imm
      let hi = i.imm64 !== undefined ? Number(BigInt.asIntN(32, i.imm64 >> 32n)) : 0
      if (i.map) {
        let fd: number
        try {
          fd = i.map.fd
        } catch (e) {
          throw new TypeError(`instruction ${at / 8}: the map's fd cannot be read: ${(e as Error).message}`, { cause: e })
        }
        if (!Number.isInteger(fd) || fd < 0) throw new TypeError(`instruction ${at / 8}: map reference has no valid fd`)
        lo = fd
        if (i.src !== pseudo.mapValue) hi = 0
      }
      put(v, at, i.code, i.dst, i.src, i.off, lo)
      put(v, at + 8, 0, 0, 0, 0, hi)
      at += 16
    } else {
      put(v, at, i.code, i.dst, i.src, i.off, i.imm)
      at += 8
    }
  }
  return bytes
}

/** Instructions read back from bytes (ld_imm64 as one instruction with imm64). */
export function decode(bytes: Uint8Array): Insn[] {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`program bytes must be a Uint8Array, got ${describeValue(bytes)}`)
  if (bytes.length % 8 !== 0) throw new RangeError(`program bytes must be a multiple of 8, got ${bytes.length}`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: Insn[] = []
  for (let at = 0; at < bytes.length; at += 8) {
    const regs = v.getUint8(at + 1)
    const i: Insn = { code: v.getUint8(at), dst: regs & 0xf, src: regs >> 4, off: v.getInt16(at + 2, true), imm: v.getInt32(at + 4, true) }
    if (isWide(i)) {
      if (at + 8 >= bytes.length) throw new RangeError(`ld_imm64 at slot ${at / 8} has no second slot`)
      const hi = v.getUint32(at + 12, true)
      i.imm64 = (BigInt(hi) << 32n) | BigInt(i.imm >>> 0)
      at += 8
    }
    out.push(i)
  }
  return out
}
