// Instructions as text, in the style of the kernel verifier's log
// (kernel/bpf/disasm.c), so a dump reads like what `bpftool prog dump xlated`
// and the verifier print.
import { enumName, kernel } from '../sys/index.js'
import {
  aluOps, atomicCmpxchg, atomicFetch, atomicLoadAcq, atomicOps, atomicStoreRel, atomicXchg, cls, endBe, jmpOps, mode, pseudo, size, source,
} from './opcodes.js'
import { decode, resolve, slots } from './assemble.js'
import type { Insn, Item } from './insn.js'
import { describeValue } from '../sys/options.js'

const aluSym: Record<number, string> = {
  [aluOps.add]: '+=', [aluOps.sub]: '-=', [aluOps.mul]: '*=', [aluOps.div]: '/=', [aluOps.or]: '|=',
  [aluOps.and]: '&=', [aluOps.lsh]: '<<=', [aluOps.rsh]: '>>=', [aluOps.mod]: '%=', [aluOps.xor]: '^=',
  [aluOps.mov]: '=', [aluOps.arsh]: 's>>=',
}
const jmpSym: Record<number, string> = {
  [jmpOps.jeq]: '==', [jmpOps.jgt]: '>', [jmpOps.jge]: '>=', [jmpOps.jset]: '&', [jmpOps.jne]: '!=',
  [jmpOps.jsgt]: 's>', [jmpOps.jsge]: 's>=', [jmpOps.jlt]: '<', [jmpOps.jle]: '<=', [jmpOps.jslt]: 's<', [jmpOps.jsle]: 's<=',
}
const sizeName: Record<number, string> = { [size.b]: 'u8', [size.h]: 'u16', [size.w]: 'u32', [size.dw]: 'u64' }
const atomicName: Record<number, string> = { [atomicOps.add]: 'add', [atomicOps.or]: 'or', [atomicOps.and]: 'and', [atomicOps.xor]: 'xor' }

// The kernel prints a jump's immediate as an unsigned 32-bit hex number.
const hex = (n: number) => `0x${(n >>> 0).toString(16)}`
const signedOff = (n: number) => (n < 0 ? `${n}` : `+${n}`)
const pcRel = (n: number) => `pc${n < 0 ? n : `+${n}`}`

function alu(i: Insn): string {
  const is64 = (i.code & 0x07) === cls.alu64
  const r = is64 ? 'r' : 'w'
  const op = i.code & 0xf0
  const usesReg = (i.code & 0x08) === source.x
  if (op === aluOps.neg) return `${r}${i.dst} = -${r}${i.dst}`
  if (op === aluOps.end) {
    if (is64) return `r${i.dst} = bswap${i.imm} r${i.dst}`
    return `r${i.dst} = ${(i.code & 0x08) === endBe ? 'be' : 'le'}${i.imm} r${i.dst}`
  }
  if (op === aluOps.mov && usesReg && (i.off === 8 || i.off === 16 || i.off === 32)) return `${r}${i.dst} = (s${i.off})${r}${i.src}`
  const sym = (i.off === 1 && (op === aluOps.div || op === aluOps.mod) ? 's' : '') + (aluSym[op] ?? `alu?${op}`)
  return `${r}${i.dst} ${sym} ${usesReg ? `${r}${i.src}` : i.imm}`
}

function jmp(i: Insn): string {
  const op = i.code & 0xf0
  const is32 = (i.code & 0x07) === cls.jmp32
  if (op === jmpOps.exit) return 'exit'
  if (op === jmpOps.call) {
    if (i.src === pseudo.call) return `call ${pcRel(i.imm)}`
    if (i.src === pseudo.kfuncCall) return `call kernel-function#${i.imm}`
    const name = i.src === 0 ? enumName(kernel.helpers, i.imm) : 'unknown('
    return `call ${name.startsWith('unknown(') ? 'unknown' : `bpf_${name}`}#${i.imm}`
  }
  if (op === jmpOps.ja) return is32 ? `gotol ${pcRel(i.imm)}` : `goto ${pcRel(i.off)}`
  if (op === jmpOps.jcond && !is32 && i.src === pseudo.mayGoto) return `may_goto ${pcRel(i.off)}`
  const r = is32 ? 'w' : 'r'
  const rhs = (i.code & 0x08) === source.x ? `${r}${i.src}` : hex(i.imm)
  return `if ${r}${i.dst} ${jmpSym[op] ?? `jmp?${op}`} ${rhs} goto ${pcRel(i.off)}`
}

function memory(i: Insn): string {
  const c = i.code & 0x07
  const m = i.code & 0xe0
  const sz = sizeName[i.code & 0x18]
  const at = `(${sz} *)(r${c === cls.ldx ? i.src : i.dst} ${signedOff(i.off)})`
  if (c === cls.ldx) return m === mode.memsx ? `r${i.dst} = *(s${sz.slice(1)} *)(r${i.src} ${signedOff(i.off)})` : `r${i.dst} = *${at}`
  if (c === cls.st) return `*${at} = ${i.imm}`
  if (m === mode.atomic) {
    // The kernel names registers rN here whatever the width.
    const w = (i.code & 0x18) === size.dw ? '64' : ''
    if (i.imm === atomicXchg) return `r${i.src} = atomic${w}_xchg(${at}, r${i.src})`
    if (i.imm === atomicCmpxchg) return `r0 = atomic${w}_cmpxchg(${at}, r0, r${i.src})`
    if (i.imm === atomicLoadAcq) return `r${i.dst} = load_acquire((${sz} *)(r${i.src} ${signedOff(i.off)}))`
    if (i.imm === atomicStoreRel) return `store_release(${at}, r${i.src})`
    const name = atomicName[i.imm & ~atomicFetch]
    if (name === undefined || (i.imm & ~(atomicFetch | 0xf0)) !== 0) return `BUG_${i.code.toString(16).padStart(2, '0')}`
    if (i.imm & atomicFetch) return `r${i.src} = atomic${w}_fetch_${name}(${at}, r${i.src})`
    const sym = { add: '+=', or: '|=', and: '&=', xor: '^=' }[name]
    return `lock *${at} ${sym} r${i.src}`
  }
  return `*${at} = r${i.src}`
}

/**
 * How to print map references: 'fd' for instructions about to be loaded,
 * 'id' for translated instructions read back from the kernel (which puts the
 * map's id there, printed map[id:N] as bpftool does).
 */
export interface FormatOptions {
  maps?: 'fd' | 'id'
}

function ld(i: Insn, o: FormatOptions): string {
  const m = i.code & 0xe0
  const key = o.maps ?? 'fd'
  if (m === mode.imm) {
    if (i.src === pseudo.mapFd) return `r${i.dst} = map[${key}:${i.map ? safeFd(i.map) : i.imm}]`
    if (i.src === pseudo.mapValue) return `r${i.dst} = map[${key}:${i.map ? safeFd(i.map) : i.imm}][0]+${Number((i.imm64 ?? 0n) >> 32n)}`
    return `r${i.dst} = 0x${(i.imm64 ?? BigInt(i.imm >>> 0)).toString(16)}`
  }
  const sz = sizeName[i.code & 0x18]
  if (m === mode.abs) return `r0 = *(${sz} *)skb[${i.imm}]`
  return `r0 = *(${sz} *)skb[r${i.src} + ${i.imm}]`
}

function safeFd(m: { readonly fd: number }): string {
  try {
    return String(m.fd)
  } catch {
    return 'closed'
  }
}

/** One instruction as the verifier prints it. */
export function format(i: Insn, options: FormatOptions = {}): string {
  if (i === null || typeof i !== 'object' || typeof i.code !== 'number') throw new TypeError(`format: expected an instruction, got ${describeValue(i)}`)
  switch (i.code & 0x07) {
    case cls.alu:
    case cls.alu64:
      return alu(i)
    case cls.jmp:
    case cls.jmp32:
      return jmp(i)
    case cls.ld:
      return ld(i, options)
    default:
      return memory(i)
  }
}

/** A listing with slot numbers, e.g. "   0: r0 = 0". Labels are shown where they stand. */
export function toString(items: readonly Item[] | Uint8Array, options: FormatOptions = {}): string {
  const insns = items instanceof Uint8Array ? decode(items) : resolve(items)
  const lines: string[] = []
  let pc = 0
  const labels = new Map<number, string[]>()
  if (!(items instanceof Uint8Array)) {
    let p = 0
    for (const x of items) {
      if ('label' in x) labels.set(p, [...(labels.get(p) ?? []), x.label])
      else p += slots(x)
    }
  }
  for (const i of insns) {
    for (const l of labels.get(pc) ?? []) lines.push(`${l}:`)
    lines.push(`${String(pc).padStart(4)}: ${format(i, options)}`)
    pc += slots(i)
  }
  return lines.join('\n')
}

/** Bytes back to text lines, one per instruction. */
export function disassemble(bytes: Uint8Array, options: FormatOptions = {}): string[] {
  return decode(bytes).map((i) => format(i, options))
}
