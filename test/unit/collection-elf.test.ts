// The ELF reader on a clang-built object (test/fixtures/bpf/minimal.bpf.o)
// and on malformed copies of it: every malformed object is an ElfError (or
// reads as a well-formed one), never another exception, a crash or a hang;
// and the .BTF.ext reader on the same object.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ElfError, ElfFile, R_BPF, SHT, STT } from '../../lib/collection/elf.js'
import { readBtfExt } from '../../lib/btf/ext.js'
import { BtfReader } from '../../lib/btf/reader.js'

const fixture = readFileSync(join(__dirname, '..', 'fixtures', 'bpf', 'minimal.bpf.o'))

describe('ElfFile on a clang object', () => {
  const elf = new ElfFile(fixture)

  it('reads the sections clang wrote', () => {
    for (const name of ['socket', '.data', '.maps', 'license', '.BTF', '.BTF.ext', '.symtab']) expect(elf.section(name), name).toBeDefined()
    expect(elf.section('socket')!.type).toBe(SHT.PROGBITS)
    expect(Buffer.from(elf.data(elf.section('license')!)).toString()).toBe('GPL\0')
    // The program is whole instructions.
    expect(elf.section('socket')!.size % 8).toBe(0)
  })

  it('reads symbols: the program, the map and the global', () => {
    const byName = new Map(elf.symbols.map((s) => [s.name, s]))
    expect(byName.get('count_packets')).toMatchObject({ type: STT.FUNC, shndx: elf.section('socket')!.index })
    expect(byName.get('counts')).toMatchObject({ type: STT.OBJECT, shndx: elf.section('.maps')!.index })
    expect(byName.get('threshold')).toMatchObject({ type: STT.OBJECT, shndx: elf.section('.data')!.index, size: 8 })
  })

  it('reads the program relocations: ld_imm64 of the map and of the global', () => {
    const rels = elf.relocations(elf.section('socket')!)
    expect(rels.map((r) => [r.symbol.name, r.type])).toEqual([['counts', R_BPF['64_64']], ['threshold', R_BPF['64_64']]])
    for (const r of rels) expect(elf.data(elf.section('socket')!)[r.offset]).toBe(0x18) // BPF_LD|BPF_IMM|BPF_DW
  })
})

describe('ElfFile on malformed objects', () => {
  const bad = (mutate: (b: Uint8Array) => Uint8Array, message: RegExp) => {
    const copy = mutate(Uint8Array.from(fixture))
    expect(() => new ElfFile(copy)).toThrow(ElfError)
    expect(() => new ElfFile(copy)).toThrow(message)
  }

  it('names what is wrong', () => {
    bad((b) => b.subarray(0, 10), /shorter than the 64-byte ELF64 header/)
    bad((b) => { b[0] = 0; return b }, /bad magic/)
    bad((b) => { b[4] = 1; return b }, /not a 64-bit ELF/)
    bad((b) => { b[5] = 2; return b }, /big-endian/)
    bad((b) => { b[18] = 62; b[19] = 0; return b }, /machine 62, not BPF/)
    bad((b) => { b[16] = 2; return b }, /not a relocatable object/)
    bad((b) => b.subarray(0, b.length - 100), /run past the end of the file/)
  })

  it('refuses a relocation outside its section, naming the symbol', () => {
    const elf = new ElfFile(fixture)
    const rel = elf.section('.relsocket')!
    const copy = Uint8Array.from(fixture)
    new DataView(copy.buffer).setBigUint64(rel.offset, 1n << 20n, true)
    expect(() => new ElfFile(copy).relocations(elf.section('socket')!)).toThrow(/relocation against counts points at 1048576, outside socket/)
  })

  it('survives bit flips and truncation (bounded, seeded)', () => {
    let seed = 12345
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0)
    let refused = 0
    for (let i = 0; i < 3000; i++) {
      let copy = Uint8Array.from(fixture)
      if (i % 3 === 0) copy = copy.subarray(0, next() % copy.length)
      for (let k = 0; k < 1 + (next() % 4); k++) copy[next() % Math.max(copy.length, 1)] ^= 1 << (next() % 8)
      try {
        const elf = new ElfFile(copy)
        for (const s of elf.sections) { elf.relocations(s); elf.data(s) }
      } catch (err) {
        if (!(err instanceof ElfError)) throw new Error(`case ${i}: ${String(err)}`)
        refused++
      }
    }
    expect(refused).toBeGreaterThan(0)
  })
})

describe('readBtfExt on the clang object', () => {
  const elf = new ElfFile(fixture)
  const btf = new BtfReader(elf.data(elf.section('.BTF')!))
  const ext = readBtfExt(elf.data(elf.section('.BTF.ext')!), btf)

  it('gives the program its BTF function', () => {
    const [fi] = ext.funcInfo.get('socket')!
    expect(fi.insnOff).toBe(0)
    expect(btf.type(fi.typeId)).toMatchObject({ kind: 'FUNC', name: 'count_packets' })
  })

  it('gives instructions their C source lines', () => {
    const lines = ext.lineInfo.get('socket')!
    expect(lines.length).toBeGreaterThan(2)
    expect(lines.every((l) => l.fileName.endsWith('minimal.bpf.c') && l.insnOff % 8 === 0)).toBe(true)
    expect(lines.some((l) => l.line.includes('bpf_map_lookup_elem(&counts, &key)'))).toBe(true)
  })

  it('reads the CO-RE relocation: field byte offset of task_struct.pid', () => {
    const [r] = ext.coreRelos.get('socket')!
    expect(r).toMatchObject({ accessStr: '0:0', kind: 0 })
    expect(btf.resolve(r.typeId)).toMatchObject({ kind: 'STRUCT', name: 'task_struct' })
  })

  it('refuses malformed .BTF.ext with a RangeError, never anything else', () => {
    const good = elf.data(elf.section('.BTF.ext')!)
    expect(() => readBtfExt(good.subarray(0, 10), btf)).toThrow(/shorter than its 24-byte header/)
    let seed = 7
    const next = () => (seed = (seed * 1103515245 + 12345) >>> 0)
    for (let i = 0; i < 2000; i++) {
      const copy = Uint8Array.from(good)
      for (let k = 0; k < 1 + (next() % 3); k++) copy[next() % copy.length] ^= 1 << (next() % 8)
      try { readBtfExt(i % 4 === 0 ? copy.subarray(0, next() % copy.length) : copy, btf) } catch (err) {
        if (!(err instanceof RangeError)) throw new Error(`case ${i}: ${String(err)}`)
      }
    }
  })
})
