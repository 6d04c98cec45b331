// Which struct_ops member each program of an object fills. A struct_ops
// object declares variables of the kernel's ops struct in a .struct_ops
// (or .struct_ops.link) section, e.g. `.dispatch = (void *)my_dispatch`;
// each function pointer is a relocation at the member's offset. The member a
// program serves decides what it may do (sched_ext's dispatch vs cpu_release),
// so policies match on it. Read only: loading struct_ops maps is another step.
import type { BtfReader } from '../btf/reader.js'
import { STT, type ElfFile } from './elf.js'

const INSN = 8

/** Sections libbpf reads struct_ops variables from: .struct_ops, .struct_ops.link, and their .<suffix> forms. */
export const isStructOpsSection = (name: string): boolean => /^\.struct_ops(\..+)?$/.test(name)

/** A struct_ops member a function fills: the ops struct's name ('sched_ext_ops') and the member ('dispatch'). */
export interface StructOpsSlot {
  type: string
  member: string
}

/**
 * For each function a struct_ops variable points at (by `${section index}:${instruction}`),
 * the members it fills, in order, without repeats. Without BTF nothing is known: empty.
 */
export function structOpsSlots(elf: ElfFile, btf: BtfReader | undefined): Map<string, StructOpsSlot[]> {
  const out = new Map<string, StructOpsSlot[]>()
  if (!btf) return out
  for (const s of elf.sections) {
    if (!isStructOpsSection(s.name)) continue
    const sec = btf.find(s.name, 'DATASEC')
    if (sec === undefined) continue
    const t = btf.type(sec)
    const vars: { offset: number; size: number; type: number }[] = []
    for (let i = 0; i < t.vlen; i++) {
      const v = btf.type(t.extra[3 * i])
      vars.push({ type: v.sizeOrType, offset: t.extra[3 * i + 1], size: t.extra[3 * i + 2] })
    }
    const data = elf.data(s)
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    for (const r of elf.relocations(s)) {
      const v = vars.find((x) => r.offset >= x.offset && r.offset < x.offset + x.size)
      if (!v) continue
      const struct = btf.resolve(v.type)
      if (struct.kind !== 'STRUCT') continue
      const member = btf.members(struct).find((m) => m.bitSize === 0 && m.bitOffset === (r.offset - v.offset) * 8)
      if (!member) continue
      // A FUNC symbol names the function; a section symbol leaves its offset in the pointer's bytes (REL).
      const sym = r.symbol
      let at: number
      if (sym.type === STT.FUNC) at = sym.value
      else if (sym.type === STT.SECTION && r.offset + 8 <= data.length) at = Number(view.getBigUint64(r.offset, true))
      else continue
      if (at % INSN !== 0) continue
      const key = `${sym.shndx}:${at / INSN}`
      const list = out.get(key) ?? []
      if (!list.some((x) => x.type === struct.name && x.member === member.name)) list.push({ type: struct.name, member: member.name })
      out.set(key, list)
    }
  }
  return out
}
