// BTF map definitions read from clang-built objects (test/fixtures/bpf/maps.bpf.c).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ElfError, ElfFile } from '../../lib/collection/elf.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { readMapDefinitions } from '../../lib/collection/map-defs.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { kernel } from '../../lib/sys/index.js'

const btfOf = (file: string) => {
  const elf = ElfFile.fromFile(join(__dirname, '..', 'fixtures', 'bpf', file))
  return new BtfReader(elf.data(elf.section('.BTF')!))
}

describe('readMapDefinitions', () => {
  const btf = btfOf('maps.bpf.o')
  const defs = new Map(readMapDefinitions(btf).map((d) => [d.name, d]))

  it('reads sizes from __type, flags and pinning', () => {
    const d = defs.get('pairs')!
    expect(d).toMatchObject({ type: kernel.mapTypes.hash, keySize: 4, valueSize: 16, maxEntries: 64, flags: 1, pinning: 1 })
    expect(btf.resolve(d.valueTypeId!)).toMatchObject({ kind: 'STRUCT', name: 'pair' })
  })

  it('reads sizes given as numbers', () => {
    expect(defs.get('sized')).toMatchObject({ type: kernel.mapTypes.array, keySize: 4, valueSize: 16, maxEntries: 4, keyTypeId: undefined, pinning: 0 })
  })

  it('reads the inner definition of a map-in-map, and prog_array slots', () => {
    expect(defs.get('outer')).toMatchObject({ type: kernel.mapTypes.hash_of_maps, keySize: 4, maxEntries: 8 })
    expect(defs.get('outer')!.inner).toMatchObject({ type: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 2 })
    expect(defs.get('jumps')).toMatchObject({ type: kernel.mapTypes.prog_array, keySize: 4, maxEntries: 2, inner: undefined })
  })

  it("reads the minimal fixture's one map", () => {
    expect(readMapDefinitions(btfOf('minimal.bpf.o')).map((d) => [d.name, d.type, d.keySize, d.valueSize])).toEqual([['counts', kernel.mapTypes.array, 4, 8]])
  })

  it('refuses definitions libbpf would not accept, naming the map and member', () => {
    const bad = (members: (b: BtfBuilder) => { name: string; type: number }[]) => {
      const b = new BtfBuilder()
      const def = b.struct('', members(b))
      b.datasec('.maps', [{ type: b.var('m', def, 'global'), offset: 0, size: b.sizeOf(def) }])
      return () => readMapDefinitions(new BtfReader(b.bytes()))
    }
    const uint = (b: BtfBuilder, n: number) => b.ptr(b.array(b.int('int', 4, { signed: true }), n))
    expect(bad((b) => [{ name: 'max_entries', type: uint(b, 1) }])).toThrow(/map 'm' has no type/)
    expect(bad((b) => [{ name: 'type', type: uint(b, 1) }, { name: 'colour', type: uint(b, 1) }])).toThrow(ElfError)
    expect(bad((b) => [{ name: 'type', type: b.int('int', 4) }])).toThrow(/map 'm' member 'type' must be __uint/)
    expect(bad((b) => [{ name: 'type', type: uint(b, 1) }, { name: 'key', type: b.ptr(b.int('int', 4)) }, { name: 'key_size', type: uint(b, 8) }]))
      .toThrow(/key_size 8 disagrees with the size of its __type \(4\)/)
  })
})
