// BpfProgram.load and loadSync take a ProgramSpec as well as options; map
// references in its instructions are read at each load.
import { expect, test } from 'vitest'
import { BpfMap, BpfProgram, ProgramSpec, asm } from '../../lib/index.js'

test('one spec loads several programs, sync and async', async () => {
  const spec = ProgramSpec.from({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL', name: 'spec_prog' })
  using a = BpfProgram.loadSync(spec)
  using b = await BpfProgram.load(spec)
  expect(a.info()).toMatchObject({ name: 'spec_prog', type: 'socket_filter' })
  expect(a.id).not.toBe(b.id)
  expect(b.info().tag).toBe(a.info().tag)
})

test('map references are read at load: a map closed after the spec was made is refused then', async () => {
  const map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1 })
  const spec = ProgramSpec.from({
    type: 'socket_filter', license: 'GPL',
    insns: [asm.ldMapFd(asm.R1, map), asm.mov64Imm(asm.R0, 0), asm.exit()],
  })
  {
    using p = BpfProgram.loadSync(spec)
    expect(p.info().mapIds).toEqual([map.id])
  }
  map.close()
  await expect(BpfProgram.load(spec)).rejects.toThrow(/instruction 0: the map's fd cannot be read: .*already closed/)
})
