// A CollectionSpec links every program when the object is read (a malformed
// one fails there), and makes each program's ProgramSpec on first use.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { CollectionSpec, ElfError, ProgramSpec } from '../../lib/index.js'
import { ElfFile } from '../../lib/collection/elf.js'

const fixture = (name: string) => new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'bpf', name)))

test('program specs: made on first use, the same object after, every program listed', () => {
  const spec = CollectionSpec.fromBuffer(fixture('subprogs.bpf.o'))
  const names = Object.keys(spec.programs)
  expect(names.length).toBeGreaterThan(1)
  for (const name of names) {
    const p = spec.programs[name]
    expect(p).toBeInstanceOf(ProgramSpec)
    expect(spec.programs[name]).toBe(p)
  }
  expect(Object.isFrozen(spec.programs)).toBe(true)
  expect(() => { (spec.programs as Record<string, unknown>)[names[0]] = null }).toThrow(TypeError)
})

test('a program ending in half an ld_imm64 is refused when the object is read, not when it is loaded', () => {
  const bytes = fixture('minimal.bpf.o')
  const socket = new ElfFile(bytes).section('socket')!
  bytes[socket.offset + socket.size - 8] = 0x18
  expect(() => CollectionSpec.fromBuffer(bytes)).toThrow(ElfError)
  expect(() => CollectionSpec.fromBuffer(bytes)).toThrow(/ld_imm64 at the end of function 'count_packets' has no second half/)
})

test('a spec derived from a spec keeps its line and func info records as they are', () => {
  const p = CollectionSpec.fromBuffer(fixture('subprogs.bpf.o')).programs
  const first = Object.values(p).find((s) => s.lineInfo?.length)!
  const derived = ProgramSpec.from({ ...first, name: 'other' })
  expect(derived.lineInfo).toBe(first.lineInfo)
  expect(derived.funcInfo).toBe(first.funcInfo)
  // Records from elsewhere are still checked, and copied.
  const given = [{ ...first.lineInfo![0] }]
  const copied = ProgramSpec.from({ ...first, lineInfo: given }).lineInfo!
  expect(copied).not.toBe(given)
  expect(Object.isFrozen(copied[0])).toBe(true)
  expect(() => ProgramSpec.from({ ...first, lineInfo: [{ ...given[0], lineNum: -1 }] })).toThrow(/lineInfo\[0\]\.lineNum must be an integer/)
})
