// The static linker of a clang-built object: it turns the functions of the
// executable sections into whole programs, as libbpf does before load. Each
// program is its entry function followed by every function it reaches
// through bpf-to-bpf calls and function pointers (callbacks), each appended
// once; call offsets are rewritten for the new layout, and BTF func_info and
// line_info follow their instructions. What needs the kernel (map fds, data
// addresses, externs) is not resolved here: each such instruction is listed
// as a Reference for the loader, with its index in the linked program.
import type { BtfExt } from '../btf/ext.js'
import { pseudo } from '../asm/opcodes.js'
import { ElfError, SHF_EXECINSTR, STB, STT, type ElfFile, type ElfSection, type ElfSymbol } from './elf.js'

const INSN = 8
const LD_IMM64 = 0x18
const CALL = 0x85
const MAX_FUNCTIONS = 256

/** A function of the object: a FUNC symbol's instructions in its section. */
export interface ElfFunction {
  name: string
  section: ElfSection
  /** First instruction, as an index into the section. */
  start: number
  count: number
  global: boolean
  /** STV_* of its symbol: hidden globals are verified as static functions. */
  visibility: number
}

/** An instruction the loader must complete. */
export type Reference =
  /** ld_imm64 of a map's fd: the BTF-defined or legacy map by name. */
  | { kind: 'map'; map: string }
  /** ld_imm64 of an address in a data section's map (.data, .rodata.str1.1, ...). */
  | { kind: 'data'; section: string; offset: number }
  /** An undefined symbol: a .kconfig value, a ksym, or a kfunc (`call`: a call rather than an ld_imm64). */
  | { kind: 'extern'; name: string; call: boolean }

export interface LinkedFunction {
  fn: ElfFunction
  /** Where its first instruction sits in the linked program. */
  at: number
}

export interface LinkedProgram {
  entry: ElfFunction
  insns: Uint8Array
  references: { index: number; ref: Reference }[]
  /** The functions in program order, entry first. */
  layout: LinkedFunction[]
  /** bpf_func_info: instruction index and BTF FUNC type of each function. */
  funcInfo: { insnOff: number; typeId: number }[]
  /** bpf_line_info, instruction indices, string offsets in the object's .BTF. */
  lineInfo: { insnOff: number; fileNameOff: number; lineOff: number; lineNum: number; column: number; fileName: string; line: string }[]
}

/** Finds map names for ld_imm64 relocations against map sections. */
export interface MapLocator {
  /** The map whose definition starts at `offset` in `section`, or undefined. */
  mapAt(section: ElfSection, offset: number): string | undefined
}

/** Sections whose bytes are a data map ('.data', '.rodata.str1.1', ...). */
export const isDataMapSection = (name: string): boolean => /^\.(data|bss|rodata)(\..+)?$/.test(name)

/** The functions of every executable section, in section and address order. Errors: ElfError. */
export function readFunctions(elf: ElfFile): ElfFunction[] {
  const out: ElfFunction[] = []
  for (const s of elf.sections) {
    if ((s.flags & BigInt(SHF_EXECINSTR)) === 0n || s.size === 0) continue
    if (s.size % INSN !== 0) throw new ElfError(`executable section size ${s.size} is not a whole number of instructions`, { section: s.name })
    const syms = elf.symbols.filter((y) => y.shndx === s.index && y.type === STT.FUNC).sort((a, b) => a.value - b.value)
    if (syms.length === 0) throw new ElfError('executable section has no FUNC symbol: build with clang -target bpf -g -O2', { section: s.name })
    for (const y of syms) {
      if (y.value % INSN !== 0 || y.size % INSN !== 0 || y.size === 0 || y.value + y.size > s.size) {
        throw new ElfError(`function '${y.name}' (${y.size} bytes at ${y.value}) is not whole instructions inside its section`, { section: s.name, offset: y.value })
      }
      const prev = out.at(-1)
      if (prev && prev.section === s && prev.start + prev.count > y.value / INSN) {
        throw new ElfError(`functions '${prev.name}' and '${y.name}' overlap`, { section: s.name, offset: y.value })
      }
      out.push({ name: y.name, section: s, start: y.value / INSN, count: y.size / INSN, global: y.bind !== STB.LOCAL, visibility: y.visibility })
    }
  }
  return out
}

interface Relocated { symbol: ElfSymbol; offset: number }

// Each section's relocations by instruction index, read once per file: every
// program of a section is linked against the same ones (twenty programs in
// one SEC("socket") read them twenty times, twice: for the spec and the load).
const relocationCache = new WeakMap<ElfSection, Map<number, Relocated>>()

function sectionRelocations(elf: ElfFile, s: ElfSection): Map<number, Relocated> {
  let m = relocationCache.get(s)
  if (!m) {
    m = new Map()
    for (const r of elf.relocations(s)) {
      if (r.offset % INSN !== 0) throw new ElfError(`relocation at ${r.offset} is not at an instruction`, { section: s.name, offset: r.offset })
      m.set(r.offset / INSN, { symbol: r.symbol, offset: r.offset })
    }
    relocationCache.set(s, m)
  }
  return m
}

// Where an instruction sits, for errors (made only when one is thrown).
const where = (fn: ElfFunction, i: number) => ({ section: fn.section.name, offset: i * INSN })

/**
 * Links the program that starts at `entry`. `code` holds each executable
 * section's instruction bytes (already CO-RE relocated: libbpf also applies
 * CO-RE per section, before linking). Errors: ElfError naming the section
 * and offset of an instruction that cannot be linked.
 */
export function linkProgram(elf: ElfFile, functions: readonly ElfFunction[], code: ReadonlyMap<number, Uint8Array>, entry: ElfFunction, maps: MapLocator, ext: BtfExt | undefined): LinkedProgram {
  const relocsOf = (s: ElfSection) => sectionRelocations(elf, s)
  const starts = new Map(functions.map((f) => [`${f.section.index}:${f.start}`, f]))
  const functionAt = (s: ElfSection, index: number, from: ElfSection, off: number): ElfFunction => {
    const f = starts.get(`${s.index}:${index}`)
    if (!f) throw new ElfError(`call or function pointer to instruction ${index} of ${s.name}, which starts no function`, { section: from.name, offset: off })
    return f
  }

  const layout: LinkedFunction[] = [{ fn: entry, at: 0 }]
  const placed = new Map<ElfFunction, number>([[entry, 0]])
  let total = entry.count

  const patches: { index: number; target: ElfFunction; form: 'call' | 'func' }[] = []
  const references: { index: number; ref: Reference }[] = []
  // A function is appended when first called and walked at once (depth
  // first), so programs come out in libbpf's order, instruction for instruction.
  const place = (f: ElfFunction): ElfFunction => {
    if (!placed.has(f)) {
      // The kernel's own limit (BPF_MAX_SUBPROGS); it also bounds this walk's depth.
      if (layout.length >= MAX_FUNCTIONS) throw new ElfError(`program '${entry.name}' reaches more than ${MAX_FUNCTIONS} functions, the kernel's limit`, { section: entry.section.name })
      const at = total
      placed.set(f, at)
      layout.push({ fn: f, at })
      total += f.count
      visit(f, at)
    }
    return f
  }
  const visit = (fn: ElfFunction, at: number): void => {
    const bytes = code.get(fn.section.index)!
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const rel = relocsOf(fn.section)
    for (let i = fn.start; i < fn.start + fn.count; i++) {
      const op = bytes[i * INSN]
      const src = bytes[i * INSN + 1] >> 4
      const imm = v.getInt32(i * INSN + 4, true)
      const r = rel.get(i)
      const index = at + (i - fn.start)
      if (op === LD_IMM64 && i + 1 >= fn.start + fn.count) throw new ElfError(`ld_imm64 at the end of function '${fn.name}' has no second half`, where(fn, i))
      // clang marks kfunc calls as bpf-to-bpf calls too: an undefined symbol makes them externs.
      if (op === CALL && src === pseudo.call && r?.symbol.shndx !== 0) {
        // A call with no relocation is pc-relative within its own section.
        const target = r ? symbolTarget(elf, r.symbol, imm + 1, where(fn, i)) : { section: fn.section, index: i + imm + 1 }
        patches.push({ index, target: place(functionAt(target.section, target.index, fn.section, i * INSN)), form: 'call' })
        continue
      }
      if (!r) {
        if (op === LD_IMM64) i++
        continue
      }
      const sym = r.symbol
      if (sym.shndx === 0) {
        if (op !== LD_IMM64 && op !== CALL) throw new ElfError(`extern '${sym.name}' is used by instruction 0x${op.toString(16)}, neither a call nor ld_imm64`, where(fn, i))
        if (sym.name === '') throw new ElfError('relocation against an unnamed undefined symbol', where(fn, i))
        references.push({ index, ref: { kind: 'extern', name: sym.name, call: op === CALL } })
      } else if (op !== LD_IMM64) {
        throw new ElfError(`relocation against '${sym.name || symbolSectionName(elf, sym)}' on instruction 0x${op.toString(16)}, which is not ld_imm64 or a call`, where(fn, i))
      } else {
        const s = elf.sections[sym.shndx]
        if (s === undefined) throw new ElfError(`relocation against symbol '${sym.name}' of section ${sym.shndx}, which does not exist`, where(fn, i))
        if ((s.flags & BigInt(SHF_EXECINSTR)) !== 0n) {
          // A function pointer: clang puts its byte offset in imm.
          if ((sym.value + imm) % INSN !== 0) throw new ElfError(`function pointer to byte ${sym.value + imm} of ${s.name}, not an instruction`, where(fn, i))
          patches.push({ index, target: place(functionAt(s, (sym.value + imm) / INSN, fn.section, i * INSN)), form: 'func' })
        } else if (s.name === '.maps' || s.name === 'maps') {
          const name = maps.mapAt(s, sym.value + (sym.type === STT.SECTION ? imm : 0))
          if (name === undefined) throw new ElfError(`reference to ${s.name} at ${sym.value + imm}, where no map is defined`, where(fn, i))
          references.push({ index, ref: { kind: 'map', map: name } })
        } else if (isDataMapSection(s.name)) {
          references.push({ index, ref: { kind: 'data', section: s.name, offset: sym.value + imm } })
        } else {
          throw new ElfError(`reference to section ${s.name}, which is neither code, maps nor data`, where(fn, i))
        }
      }
      if (op === LD_IMM64) i++
    }
  }
  visit(entry, 0)

  const insns = new Uint8Array(total * INSN)
  for (const { fn, at } of layout) insns.set(code.get(fn.section.index)!.subarray(fn.start * INSN, (fn.start + fn.count) * INSN), at * INSN)
  const out = new DataView(insns.buffer)
  for (const p of patches) {
    const delta = placed.get(p.target)! - (p.index + 1)
    if (p.form === 'func') {
      insns[p.index * INSN + 1] = (insns[p.index * INSN + 1] & 0x0f) | (pseudo.func << 4)
      out.setInt32(p.index * INSN + 4, delta, true)
      out.setInt32(p.index * INSN + 12, 0, true)
    } else {
      out.setInt32(p.index * INSN + 4, delta, true)
    }
  }
  return { entry, insns, references, layout, ...btfInfo(layout, ext) }
}

// func_info and line_info of each placed function, moved to its place.
function btfInfo(layout: readonly LinkedFunction[], ext: BtfExt | undefined): Pick<LinkedProgram, 'funcInfo' | 'lineInfo'> {
  const funcInfo: LinkedProgram['funcInfo'] = []
  const lineInfo: LinkedProgram['lineInfo'] = []
  if (!ext) return { funcInfo, lineInfo }
  for (const { fn, at } of layout) {
    const inFn = (off: number) => off % INSN === 0 && off / INSN >= fn.start && off / INSN < fn.start + fn.count
    const move = (off: number) => at + off / INSN - fn.start
    const f = ext.funcInfo.get(fn.section.name)?.find((r) => r.insnOff === fn.start * INSN)
    if (f) funcInfo.push({ insnOff: at, typeId: f.typeId })
    for (const l of ext.lineInfo.get(fn.section.name) ?? []) if (inFn(l.insnOff)) lineInfo.push({ ...l, insnOff: move(l.insnOff) })
  }
  // The kernel wants func_info for every function or none.
  return { funcInfo: funcInfo.length === layout.length ? funcInfo : [], lineInfo: funcInfo.length === layout.length ? lineInfo : [] }
}

// The function a relocated call names: the symbol's offset plus the call's
// own imm + 1 (global functions: imm -1 and the FUNC symbol; static ones:
// the section symbol and the instruction index in imm).
function symbolTarget(elf: ElfFile, sym: ElfSymbol, delta: number, where: { section: string; offset: number }): { section: ElfSection; index: number } {
  const s = elf.sections[sym.shndx]
  if (sym.shndx === 0 || s === undefined || (s.flags & BigInt(SHF_EXECINSTR)) === 0n) {
    throw new ElfError(`call to '${sym.name || symbolSectionName(elf, sym)}', which is not a function of this object`, where)
  }
  if (sym.value % INSN !== 0) throw new ElfError(`call target '${sym.name}' is not at an instruction`, where)
  return { section: s, index: sym.value / INSN + delta }
}

function symbolSectionName(elf: ElfFile, sym: ElfSymbol): string {
  return elf.sections[sym.shndx]?.name ?? `section ${sym.shndx}`
}
