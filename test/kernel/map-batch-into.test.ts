// lookupBatchInto: the whole map read into the caller's buffers, packed as
// lookupBatchBytes gives it; buffers too small are refused before any call.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'

const packU32 = (xs: number[]) => new Uint8Array(new Uint32Array(xs).buffer)
const u32s = (b: Uint8Array, n: number) => [...new Uint32Array(b.buffer, b.byteOffset, n)]

test('reads every entry into the buffers from their start, leaves the rest, in batches of any size', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 128 })
  const n = 100
  m.updateBatchBytes(packU32(Array.from({ length: n }, (_, i) => i)), packU32(Array.from({ length: n }, (_, i) => i * 3)))
  for (const batchSize of [undefined, 7, 1000]) {
    const keys = new Uint8Array(4 * 128).fill(0xee)
    const values = new Uint8Array(4 * 128).fill(0xee)
    expect(m.lookupBatchInto(keys, values, batchSize === undefined ? {} : { batchSize })).toBe(n)
    const k = u32s(keys, n)
    expect(new Set(k)).toEqual(new Set(Array.from({ length: n }, (_, i) => i)))
    expect(u32s(values, n)).toEqual(k.map((x) => x * 3))
    expect(keys.subarray(4 * n).every((b) => b === 0xee)).toBe(true)
    expect(values.subarray(4 * n).every((b) => b === 0xee)).toBe(true)
  }
  expect(m.lookupBatchBytes().count).toBe(n)
})

test('arrays give maxEntries entries; per-CPU values take valueBytes each', () => {
  using a = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 16 })
  a.updateBatch(Array.from({ length: 16 }, (_, i) => [i, i + 1] as const))
  const keys = new Uint8Array(64)
  const values = new Uint8Array(64)
  expect(a.lookupBatchInto(keys, values)).toBe(16)
  expect(u32s(values, 16)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1))
  using p = BpfMap.create({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 4 })
  // One byte short of maxEntries per-CPU values (valueSize alone would be too few on any machine with more than one CPU).
  expect(() => p.lookupBatchInto(new Uint8Array(16), new Uint8Array(4 * p.valueBytes - 1))).toThrow(RangeError)
  expect(p.lookupBatchInto(new Uint8Array(16), new Uint8Array(4 * p.valueBytes))).toBe(4)
})

test('delete: true empties the map as it reads it', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 32 })
  m.updateBatch(Array.from({ length: 20 }, (_, i) => [i, i] as const))
  expect(m.lookupBatchInto(new Uint8Array(4 * 32), new Uint8Array(4 * 32), { delete: true })).toBe(20)
  expect(m.lookupBatchBytes().count).toBe(0)
})

test('buffers without room for maxEntries, or not Uint8Arrays, are refused and the map is untouched', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 8 })
  m.updateBatch([[1, 1], [2, 2]])
  expect(() => m.lookupBatchInto(new Uint8Array(28), new Uint8Array(32), { delete: true })).toThrow(/room for maxEntries \(8\) entries, 32 and 32 bytes, got 28 and 32/)
  expect(() => m.lookupBatchInto(new Uint8Array(32), new Uint8Array(31), { delete: true })).toThrow(RangeError)
  expect(() => m.lookupBatchInto([] as never, new Uint8Array(32))).toThrow(TypeError)
  expect(() => m.lookupBatchInto(new Uint8Array(32), new Uint8Array(32), { onBatch: () => {} } as never)).toThrow(/unknown option 'onBatch'/)
  expect(m.lookupBatchBytes().count).toBe(2)
  m.close()
  expect(() => m.lookupBatchInto(new Uint8Array(32), new Uint8Array(32))).toThrow(/already closed/)
})

test('a map type without batch commands (devmap: ENOTSUPP) is read by single lookups into the same buffers', () => {
  using m = BpfMap.create({ type: 'devmap', keySize: 4, valueSize: 4, maxEntries: 4 })
  m.update(packU32([2]), packU32([1])) // slot 2: the loopback device
  const keys = new Uint8Array(16).fill(0xee)
  const values = new Uint8Array(16).fill(0xee)
  expect(m.lookupBatchInto(keys, values)).toBe(1)
  expect(u32s(keys, 1)).toEqual([2])
  expect(u32s(values, 1)).toEqual([1])
  expect(keys.subarray(4).every((b) => b === 0xee)).toBe(true)
})

test('a map without a maxEntries bound (cgroup storage) is refused: there is nothing to size the buffers by', () => {
  using m = BpfMap.create({ type: 'cgroup_storage', keySize: 8, valueSize: 8, maxEntries: 0 })
  expect(() => m.lookupBatchInto(new Uint8Array(0), new Uint8Array(0))).toThrow(/no maxEntries to size the buffers by: use lookupBatchBytes/)
})
