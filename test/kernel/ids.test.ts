// Discovery by global ID: every kind is listed, and objects freed while a walk
// is under way are skipped, never reported half-read or as an error.
import { expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, Btf, BtfBuilder, ids } from '../../lib/index.js'

test('maps freed during the walk are skipped; the others are all listed', () => {
  const made = Array.from({ length: 20 }, (_, i) => BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: `vanish_${i}` }))
  const idOf = made.map((m) => m.id)
  const mine = new Set(idOf)
  const listed: number[] = []
  try {
    for (const info of ids.maps()) {
      if (!mine.has(info.id)) continue
      listed.push(info.id)
      expect(info.name).toBe(`vanish_${idOf.indexOf(info.id)}`)
      // Once the walk stands on the first of ours, free every odd-numbered one
      // (the kernel frees a map's id as its last fd closes).
      if (listed.length === 1) made.forEach((m, i) => { if (i % 2 === 1 && idOf[i] !== info.id) m.close() })
    }
  } finally {
    for (const m of made) m.close()
  }
  const survivors = idOf.filter((id, i) => i % 2 === 0 || id === listed[0])
  expect(listed.sort((a, b) => a - b)).toEqual(survivors.sort((a, b) => a - b))
})

test('programs and BTF objects are listed by their walks (links: link.test.ts)', async () => {
  const b = new BtfBuilder()
  b.int('ids_int', 4)
  using btf = await Btf.load(b.bytes())
  using prog = await BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL', name: 'ids_prog' })
  expect([...ids.programs()].find((i) => i.id === prog.id)?.name).toBe('ids_prog')
  expect([...ids.programIds()]).toContain(prog.id)
  expect([...ids.btfs()].some((i) => i.id === btf.id)).toBe(true)
})
