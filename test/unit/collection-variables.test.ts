// Globals of a clang-built object (test/fixtures/bpf/globals.bpf.c), typed
// from BTF and set before load.
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ElfFile } from '../../lib/collection/elf.js'
import { isDataSection, readDataSections } from '../../lib/collection/variables.js'
import { BtfReader } from '../../lib/btf/reader.js'

const elf = ElfFile.fromFile(join(__dirname, '..', 'fixtures', 'bpf', 'globals.bpf.o'))
const btf = new BtfReader(elf.data(elf.section('.BTF')!))

describe('readDataSections', () => {
  it('knows which sections hold globals', () => {
    for (const s of ['.data', '.bss', '.rodata', '.data.custom', '.rodata.cfg']) expect(isDataSection(s), s).toBe(true)
    for (const s of ['.rodata.str1.1', '.rodata.cst16', '.maps', '.text', '.kconfig', 'data']) expect(isDataSection(s), s).toBe(false)
  })

  it('reads every variable with its section, initial value and type', () => {
    const { variables, contents } = readDataSections(elf, btf)
    expect([...contents.keys()].sort()).toEqual(['.bss', '.data', '.data.custom', '.rodata'])
    expect(variables.get('packets')!.get()).toBe(3n)
    expect(variables.get('threshold')).toMatchObject({ section: '.rodata', readonly: true })
    expect(variables.get('threshold')!.get()).toBe(100)
    expect(variables.get('limits')!.get()).toEqual({ lo: 1, hi: 2, mode: 'MODE_ON' })
    expect(variables.get('seen')).toMatchObject({ section: '.bss', readonly: false })
    expect(variables.get('seen')!.get()).toBe(0)
    expect(variables.get('custom')).toMatchObject({ section: '.data.custom' })
    expect(variables.get('custom')!.get()).toBe(9)
  })

  it('set() writes the section copy the maps will be created from, and a bad value changes nothing', () => {
    const { variables, contents } = readDataSections(elf, btf)
    const limits = variables.get('limits')!
    limits.set({ lo: 7, hi: 8, mode: 'MODE_OFF' })
    expect(limits.get()).toEqual({ lo: 7, hi: 8, mode: 'MODE_OFF' })
    expect(new DataView(contents.get('.rodata')!.buffer).getUint32(limits.offset, true)).toBe(7)
    expect(() => limits.set({ lo: 1, hi: 70000, mode: 'MODE_ON' })).toThrow(RangeError)
    expect(limits.get()).toEqual({ lo: 7, hi: 8, mode: 'MODE_OFF' })
    // The ELF file's own bytes are untouched.
    expect(readDataSections(elf, btf).variables.get('limits')!.get()).toEqual({ lo: 1, hi: 2, mode: 'MODE_ON' })
  })
})
