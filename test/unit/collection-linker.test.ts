// The static linker on real clang objects: programs are their entry
// function plus every function reached by calls and callbacks, each placed
// once, with call offsets rewritten for the new layout and func/line info
// moved with the instructions.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decode } from '../../lib/asm/assemble.js'
import { ElfError } from '../../lib/collection/elf.js'
import { ParsedObject } from '../../lib/collection/object.js'

const fixture = (name: string) => new ParsedObject(readFileSync(join(__dirname, '..', 'fixtures', 'bpf', name)), name)

// Every bpf-to-bpf call and function pointer lands on the first instruction of a placed function.
function callTargets(p: ReturnType<ParsedObject['link']>): number[] {
  const insns = p.insns
  const v = new DataView(insns.buffer)
  const out: number[] = []
  for (let i = 0; i < insns.length / 8; i++) {
    const src = insns[i * 8 + 1] >> 4
    if ((insns[i * 8] === 0x85 && src === 1) || (insns[i * 8] === 0x18 && src === 4)) out.push(i + v.getInt32(i * 8 + 4, true) + 1)
    if (insns[i * 8] === 0x18) i++
  }
  return out
}

describe('linker', () => {
  it('appends each called function once, and calls land on function starts', () => {
    const obj = fixture('subprogs.bpf.o')
    for (const name of obj.programs.keys()) {
      const p = obj.link(name)
      const starts = new Set(p.layout.map((f) => f.at))
      expect(p.layout[0]).toMatchObject({ at: 0, fn: { name } })
      expect(new Set(p.layout.map((f) => f.fn.name)).size).toBe(p.layout.length)
      for (const t of callTargets(p)) expect(starts.has(t), `${name}: call to ${t}`).toBe(true)
      expect(p.insns.length / 8).toBe(p.layout.reduce((n, f) => n + f.fn.count, 0))
    }
    const nested = obj.link('nested_calls')
    expect(nested.layout.map((f) => f.fn.name).sort()).toEqual(['add_scaled', 'chain', 'global_mul', 'nested_calls'])
  })

  it('moves func_info to each function and line_info with its instructions', () => {
    const p = fixture('subprogs.bpf.o').link('nested_calls')
    expect(p.funcInfo.map((f) => f.insnOff)).toEqual(p.layout.map((f) => f.at))
    expect(p.lineInfo.length).toBeGreaterThan(0)
    for (const l of p.lineInfo) expect(l.insnOff).toBeLessThan(p.insns.length / 8)
    expect(p.lineInfo.some((l) => l.line.includes('chain('))).toBe(true)
  })

  it('links calls into functions of other executable sections', () => {
    const obj = fixture('subprogs-other.bpf.o')
    for (const name of obj.programs.keys()) {
      const p = obj.link(name)
      const starts = new Set(p.layout.map((f) => f.at))
      for (const t of callTargets(p)) expect(starts.has(t)).toBe(true)
    }
  })

  it('lists map, data and extern references for the loader', () => {
    const refs = (name: string) => {
      const obj = fixture(name)
      return [...obj.programs.keys()].flatMap((p) => obj.link(p).references.map((r) => r.ref))
    }
    expect(refs('minimal.bpf.o')).toEqual(expect.arrayContaining([{ kind: 'map', map: 'counts' }, expect.objectContaining({ kind: 'data', section: '.data' })]))
    const data = refs('data.bpf.o')
    expect(new Set(data.filter((r) => r.kind === 'data').map((r) => (r as { section: string }).section))).toEqual(new Set(['.data', '.rodata', '.bss', '.data.custom', '.rodata.custom', '.rodata.str1.1']))
    expect(refs('externs.bpf.o').some((r) => r.kind === 'extern')).toBe(true)
    // Every reference sits on an ld_imm64 or a call.
    const obj = fixture('data.bpf.o')
    for (const p of obj.programs.keys()) {
      const l = obj.link(p)
      for (const { index } of l.references) expect([0x18, 0x85]).toContain(l.insns[index * 8])
      expect(decode(l.insns).length).toBeGreaterThan(0)
    }
  })

  it('refuses a call to an instruction that starts no function, naming section and offset', () => {
    const bytes = new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'bpf', 'subprogs.bpf.o')))
    const obj = new ParsedObject(bytes, 'x')
    const p = obj.programs.get('nested_calls')!
    const code = obj.code()
    const sec = code.get(p.fn.section.index)!
    const v = new DataView(sec.buffer)
    // Find the program's first pc-relative or relocated call and point it one instruction further.
    for (let i = p.fn.start; i < p.fn.start + p.fn.count; i++) {
      if (sec[i * 8] === 0x85 && sec[i * 8 + 1] >> 4 === 1) {
        v.setInt32(i * 8 + 4, v.getInt32(i * 8 + 4, true) + 1, true)
        break
      }
    }
    expect(() => obj.link('nested_calls', code)).toThrow(ElfError)
    expect(() => obj.link('nested_calls', code)).toThrow(/starts no function.*section/)
  })
})
