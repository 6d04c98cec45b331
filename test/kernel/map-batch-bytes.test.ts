// Packed batches (lookupBatchBytes, updateBatchBytes) and the scratch
// buffers batch lookups reuse: results must not change under later calls.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'

const packU32 = (xs: number[]) => new Uint8Array(new Uint32Array(xs).buffer)

test('updateBatchBytes and lookupBatchBytes round-trip packed keys and values', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1024 })
  const n = 1000
  const keys = packU32(Array.from({ length: n }, (_, i) => i))
  const values = packU32(Array.from({ length: n }, (_, i) => i * 2))
  expect(m.updateBatchBytes(keys, values)).toBe(n)
  const got = m.lookupBatchBytes({ batchSize: 100 })
  expect(got.count).toBe(n)
  expect(got.keys.length).toBe(4 * n)
  expect(got.values.length).toBe(4 * n)
  const k = new Uint32Array(got.keys.buffer, got.keys.byteOffset, n)
  const v = new Uint32Array(got.values.buffer, got.values.byteOffset, n)
  for (let i = 0; i < n; i++) expect(v[i]).toBe(k[i] * 2)
})

test('results of one batch lookup survive the next (scratch buffers are copied out)', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 8 })
  m.updateBatch(Array.from({ length: 8 }, (_, i) => [i, 1] as const))
  const first = m.lookupBatch()
  const firstBytes = m.lookupBatchBytes()
  m.updateBatch(Array.from({ length: 8 }, (_, i) => [i, 2] as const))
  const second = m.lookupBatchBytes()
  expect(first.map(([, v]) => v)).toEqual(Array(8).fill(1))
  expect([...new Uint32Array(firstBytes.values.buffer, firstBytes.values.byteOffset, 8)]).toEqual(Array(8).fill(1))
  expect([...new Uint32Array(second.values.buffer, second.values.byteOffset, 8)]).toEqual(Array(8).fill(2))
})

test('updateBatchBytes refuses buffers that do not hold whole entries', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16 })
  expect(() => m.updateBatchBytes(new Uint8Array(6), new Uint8Array(8))).toThrow(RangeError)
  expect(() => m.updateBatchBytes(new Uint8Array(8), new Uint8Array(8))).toThrow(RangeError)
  expect(() => m.updateBatchBytes([1, 2] as unknown as Uint8Array, new Uint8Array(8))).toThrow(TypeError)
  expect(m.updateBatchBytes(new Uint8Array(0), new Uint8Array(0))).toBe(0)
})
