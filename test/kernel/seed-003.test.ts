// The pattern from seed 003: user space creates and pre-populates a map, a
// program refers to it (by fd, fixed up at load, no global ids), reads and
// updates it, and user space reads the result.
import { expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram } from '../../lib/index.js'

test('user space seeds a map, a program reads and updates it, user space reads the result', async () => {
  using counts = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 16, name: 'seed003' })
  counts.set(1, 40n) // the increment, configured by user space
  counts.set(2, 2n) // the total
  const { R0, R1, R2, R6, R10 } = asm
  const lookup = (key: number) => [
    asm.stW(R10, -4, key), asm.ldMapFd(R1, counts), asm.mov64Reg(R2, R10), asm.add64Imm(R2, -4),
    asm.call('map_lookup_elem'), asm.jeqImm(R0, 0, 'miss'),
  ]
  using prog = await BpfProgram.load({
    type: 'socket_filter', license: 'GPL', name: 'seed003',
    insns: [
      ...lookup(1), asm.ldxDW(R6, R0, 0), // r6 = counts[1]
      ...lookup(2), asm.atomic('add', 64, R0, R6, 0), // counts[2] += r6
      asm.mov64Imm(R0, 1), asm.exit(),
      asm.label('miss'), asm.mov64Imm(R0, 0), asm.exit(),
    ],
  })
  const run = await prog.testRun({ data: new Uint8Array(64), repeat: 10 })
  expect(run.retval).toBe(1)
  expect(counts.get(2)).toBe(2n + 40n * 10n)
  counts.delete(1)
  expect((await prog.testRun({ data: new Uint8Array(64) })).retval).toBe(0) // the program sees the deletion
  expect(prog.info().mapIds).toEqual([counts.id])
})
