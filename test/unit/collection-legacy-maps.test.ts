// Legacy SEC("maps") definitions read from clang-built objects, and each
// malformed definition refused with an ElfError naming map and offset. The
// malformed ones are the real objects with one symbol or byte changed.
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { ElfError, ElfFile, SHT } from '../../lib/collection/elf.js'
import { readLegacyMaps } from '../../lib/collection/legacy-maps.js'

const fixture = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'bpf', name))
const unit = () => new ElfFile(Uint8Array.from(fixture('legacy-unit.bpf.o')))

const base = { keyTypeId: undefined, valueTypeId: undefined, mapExtra: undefined, pinning: 0, slots: 0 }

// A copy of legacy-unit.bpf.o with symbol `name`'s st_value / st_size replaced.
function withSymbol(name: string, change: { value?: number; size?: number }): ElfFile {
  const elf = unit()
  const bytes = Uint8Array.from(elf.bytes)
  const v = new DataView(bytes.buffer)
  const tab = elf.sections.find((s) => s.type === SHT.SYMTAB)!
  const sym = elf.symbols.find((s) => s.name === name)!
  const at = tab.offset + 24 * sym.index
  if (change.value !== undefined) v.setBigUint64(at + 8, BigInt(change.value), true)
  if (change.size !== undefined) v.setBigUint64(at + 16, BigInt(change.size), true)
  return new ElfFile(bytes)
}

// A copy with the u32 at `offset` in the maps section set to `value`.
function withWord(offset: number, value: number): ElfFile {
  const elf = unit()
  const bytes = Uint8Array.from(elf.bytes)
  new DataView(bytes.buffer).setUint32(elf.section('maps')!.offset + offset, value, true)
  return new ElfFile(bytes)
}

function refusal(elf: ElfFile): ElfError {
  try {
    readLegacyMaps(elf)
  } catch (e) {
    expect(e).toBeInstanceOf(ElfError)
    return e as ElfError
  }
  throw new Error('readLegacyMaps accepted a malformed definition')
}

describe('readLegacyMaps', () => {
  test('legacy-maps.bpf.o: libbpf\'s five fields', () => {
    const defs = readLegacyMaps(ElfFile.fromFile(join(__dirname, '..', 'fixtures', 'bpf', 'legacy-maps.bpf.o')))
    expect(defs).toEqual([
      { ...base, name: 'legacy_array', type: 2, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0, numaNode: undefined, inner: undefined },
      { ...base, name: 'legacy_hash', type: 1, keySize: 4, valueSize: 4, maxEntries: 16, flags: 1, numaNode: undefined, inner: undefined },
    ])
  })

  test('legacy-unit.bpf.o: four and seven fields, inner_map_idx, numa_node, a static definition; in section order', () => {
    const defs = readLegacyMaps(unit())
    const inner = { ...base, name: 'inner_array', type: 2, keySize: 4, valueSize: 8, maxEntries: 2, flags: 0, numaNode: undefined, inner: undefined }
    expect(defs).toEqual([
      inner,
      { ...base, name: 'short_hash', type: 1, keySize: 8, valueSize: 16, maxEntries: 32, flags: 0, numaNode: undefined, inner: undefined },
      { ...base, name: 'outer', type: 12, keySize: 4, valueSize: 4, maxEntries: 3, flags: 0, numaNode: undefined, inner },
      { ...base, name: 'numa_hash', type: 1, keySize: 4, valueSize: 4, maxEntries: 8, flags: 4, numaNode: 1, inner: undefined },
      // inner_map_idx of a map that holds no maps is ignored, as bpf_load.c ignored it.
      { ...base, name: 'local_array', type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: undefined, inner: undefined },
    ])
  })

  test('an object without a maps section has none', () => {
    expect(readLegacyMaps(ElfFile.fromFile(join(__dirname, '..', 'fixtures', 'bpf', 'maps.bpf.o')))).toEqual([])
  })

  test('a definition whose size is not a multiple of 4', () => {
    const e = refusal(withSymbol('short_hash', { size: 18 }))
    expect(e.message).toMatch(/legacy map 'short_hash': definition of 18 bytes is not a whole number of u32 fields/)
    expect(e.section).toBe('maps')
    expect(e.offset).toBe(0x1c)
  })

  test('a definition shorter than the four required fields', () => {
    const e = refusal(withSymbol('short_hash', { size: 12 }))
    expect(e.message).toMatch(/legacy map 'short_hash': definition of 12 bytes is shorter than type, key_size, value_size and max_entries/)
    expect(e.offset).toBe(0x1c)
  })

  test('a definition that runs past the section', () => {
    const e = refusal(withSymbol('local_array', { value: 0x70 }))
    expect(e.message).toMatch(/legacy map 'local_array': definition of 28 bytes at 112 runs past the section's 128 bytes/)
    expect(e.offset).toBe(0x70)
    expect(refusal(withSymbol('inner_array', { value: 2 ** 40 })).message).toMatch(/'inner_array'.* runs past the section/)
  })

  test('non-zero bytes past the known fields', () => {
    // numa_hash grown to 32 bytes takes local_array's first word (type 2) as an eighth field.
    const e = refusal(withSymbol('numa_hash', { size: 32 }))
    expect(e.message).toMatch(/legacy map 'numa_hash': non-zero bytes at 28 past the fields bpfkit knows/)
    expect(e.offset).toBe(0x48)
  })

  test('zero bytes past the known fields are accepted', () => {
    // inner_array grown to 32 bytes over short_hash's first word, which is zeroed first.
    const bytes = Uint8Array.from(withWord(0x1c, 0).bytes)
    const elf = new ElfFile(bytes)
    const tab = elf.sections.find((s) => s.type === SHT.SYMTAB)!
    const sym = elf.symbols.find((s) => s.name === 'inner_array')!
    new DataView(bytes.buffer).setBigUint64(tab.offset + 24 * sym.index + 16, 32n, true)
    expect(readLegacyMaps(new ElfFile(bytes))[0]).toMatchObject({ name: 'inner_array', type: 2, keySize: 4, valueSize: 8, maxEntries: 2 })
  })

  test('an inner_map_idx that names no other map', () => {
    const outer = 0x2c
    expect(refusal(withWord(outer + 20, 9)).message).toMatch(/legacy map 'outer': inner_map_idx 9 names no other map \(5 in the section\)/)
    expect(refusal(withWord(outer + 20, 2)).message).toMatch(/legacy map 'outer': inner_map_idx 2 names no other map/)
  })
})
