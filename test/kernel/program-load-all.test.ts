// BpfProgram.loadAll: several programs in one worker round trip, in order;
// every spec checked before any load; a refusal closes what was loaded.
import { expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, ProgramSpec, VerifierError } from '../../lib/index.js'
import { fdTable, opened } from './helpers/fds.js'

const { R0, R1, R2 } = asm
const returns = (n: number) => ({ type: 'socket_filter' as const, insns: [asm.mov64Imm(R0, n), asm.exit()], license: 'GPL' })
const data = new Uint8Array(64)

test('loads each program, in order, as load would', async () => {
  const before = fdTable()
  const ps = await BpfProgram.loadAll([returns(1), ProgramSpec.from({ ...returns(2), name: 'second' }), { ...returns(3), logLevel: 2 }])
  expect(ps.map((p) => p.testRunSync({ data }).retval)).toEqual([1, 2, 3])
  expect(ps[1].info().name).toBe('second')
  expect(ps.map((p) => p.type)).toEqual(['socket_filter', 'socket_filter', 'socket_filter'])
  expect(ps[2].log).toMatch(/processed 2 insns/)
  expect(ps[0].log).toBe('')
  for (const p of ps) p.close()
  expect(opened(before, fdTable())).toEqual([])
  expect(await BpfProgram.loadAll([])).toEqual([])
})

test('a refusal closes the programs loaded before it, loads none after it, and says which', async () => {
  const before = fdTable()
  const bad = { type: 'socket_filter' as const, insns: [asm.ldxW(R0, R2, 0), asm.exit()], license: 'GPL' } // r2 is not initialised
  const err = await BpfProgram.loadAll([returns(1), bad, returns(3)]).catch((e) => e)
  expect(err).toBeInstanceOf(VerifierError)
  expect(err.index).toBe(1)
  expect(err.log.join('\n')).toMatch(/R2 !read_ok/)
  expect(opened(before, fdTable())).toEqual([])
})

test('bad input is refused before anything is loaded', async () => {
  const before = fdTable()
  await expect(BpfProgram.loadAll(returns(1) as never)).rejects.toThrow(/expected an array/)
  await expect(BpfProgram.loadAll([returns(1), { type: 'socket_filter' } as never])).rejects.toThrow(/either insns or bytes/)
  await expect(BpfProgram.loadAll([returns(1), { ...returns(2), colour: 1 } as never])).rejects.toThrow(/unknown option 'colour'/)
  // A policy refusal of the last spec: the first was not loaded either.
  const refuse = { assertProgram: () => { throw new Error('not this one') } }
  await expect(BpfProgram.loadAll([returns(1), { ...returns(2), policy: refuse }])).rejects.toThrow('not this one')
  expect(opened(before, fdTable())).toEqual([])
})

test('a map closed while the batch waits for the worker: the programs still get the map they named', async () => {
  const m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
  const id = m.id
  const withMap = { type: 'socket_filter' as const, insns: [asm.ldMapFd(R1, m), asm.mov64Imm(R0, 0), asm.exit()], license: 'GPL' }
  const pending = BpfProgram.loadAll([withMap, withMap])
  m.close()
  const ps = await pending
  expect(ps.map((p) => p.info().mapIds)).toEqual([[id], [id]])
  for (const p of ps) p.close()
})
