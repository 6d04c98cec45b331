// Batch lookup, update and delete, and the fallback to single operations.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'

test('updateBatch, lookupBatch and deleteBatch on a hash map', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 5000 })
  const entries = Array.from({ length: 3000 }, (_, i) => [i, BigInt(i) * 3n] as const)
  expect(m.updateBatch(entries)).toBe(3000)
  const got = m.lookupBatch({ batchSize: 64 })
  expect(got).toHaveLength(3000)
  expect(new Map(got).get(2999)).toBe(8997n)
  expect(m.deleteBatch([1, 2, 3])).toBe(3)
  expect(m.deleteBatch([4, 1, 5])).toBe(1) // stops at the first missing key
  expect(m.get(2)).toBeUndefined()
  expect(m.lookupBatch()).toHaveLength(2996)
})

test('a batch smaller than a hash bucket grows instead of failing (ENOSPC)', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 4096 })
  m.updateBatch(Array.from({ length: 4096 }, (_, i) => [i, i] as const))
  expect(m.lookupBatch({ batchSize: 1 })).toHaveLength(4096)
})

test('lookup-and-delete batch empties the map', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 100 })
  m.updateBatch(Array.from({ length: 100 }, (_, i) => [i, i + 1] as const))
  const got = m.lookupBatch({ delete: true, batchSize: 16 })
  expect(got.map(([k, v]) => v - k)).toEqual(Array(100).fill(1))
  expect([...m.keys()]).toEqual([])
})

test('per-CPU batches carry one value per CPU', () => {
  const cpus = native.possibleCpus()
  using m = BpfMap.create({ type: 'percpu_hash', key: 'u32', value: 'u32', maxEntries: 10 })
  m.updateBatch([[1, Array(cpus).fill(7)], [2, Array(cpus).fill(8)]])
  expect(new Map(m.lookupBatch()).get(2)).toEqual(Array(cpus).fill(8))
})

test('array batches', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 10 })
  expect(m.updateBatch([[3, 30], [4, 40]])).toBe(2)
  expect(m.lookupBatch({ batchSize: 3 }).filter(([, v]) => v)).toEqual([[3, 30], [4, 40]])
})

test('map types without batch ops fall back to single operations', () => {
  // devmap has no batch ops (the kernel answers ENOTSUPP). Its values are
  // ifindexes; loopback (1) is only referenced by the map, nothing is attached.
  using d = BpfMap.create({ type: 'devmap', key: 'u32', value: 'u32', maxEntries: 4 })
  expect(() => native.mapUpdateBatch(d.fd, new Uint8Array(4), new Uint8Array([1, 0, 0, 0]), 1)).toThrow(expect.objectContaining({ code: 'ENOTSUPP' }))
  expect(d.updateBatch([[0, 1], [2, 1]])).toBe(2)
  expect(d.lookupBatch()).toEqual([[0, 1], [2, 1]])
  expect(d.deleteBatch([0])).toBe(1)
  expect(d.lookupBatch()).toEqual([[2, 1]])
})

test('bad batch input changes nothing', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 4 })
  expect(() => m.updateBatch([[1, 1], [2, -1]])).toThrow(RangeError)
  expect([...m.keys()]).toEqual([])
  expect(() => m.lookupBatch({ batchSize: 0 })).toThrow(RangeError)
  expect(() => m.lookupBatch({ size: 3 } as never)).toThrow(/unknown option 'size'/)
  expect(m.updateBatch([])).toBe(0)
})
