// Scalar values of mmap'd arrays are read through a typed array over the
// mapping: every scalar type, elements of a stride larger than the value,
// bounds and closed mappings behave as through the codec.
import { expect, test } from 'vitest'
import { BpfMap, type TypeDesc } from '../../lib/index.js'

const cases: [TypeDesc & string, number | bigint][] = [
  ['u8', 200], ['i8', -5], ['u16', 60000], ['i16', -30000], ['u32', 4000000000], ['i32', -2000000000],
  ['u64', 0xfedcba9876543210n], ['i64', -3n], ['f32', 1.5], ['f64', -2.25],
]

test.each(cases)('mmap get of %s values', (type, sample) => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: type, maxEntries: 5, flags: ['mmapable'] })
  m.set(3, sample as never)
  using view = m.mmap({ writable: false })
  expect(view.get(3)).toBe(sample)
  expect(view.get(4)).toBe(typeof sample === 'bigint' ? 0n : 0)
  expect(() => view.get(5)).toThrow(RangeError)
  expect(() => view.get(-1)).toThrow(RangeError)
  expect(() => view.get(1.5)).toThrow(RangeError)
})

test('typed mmap reads follow writes from either side, and stop when closed', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4, flags: ['mmapable'] })
  const view = m.mmap()
  view.set(2, 77)
  expect(m.get(2)).toBe(77)
  m.set(1, 5)
  expect(view.get(1)).toBe(5)
  expect(view.get(2)).toBe(77)
  view.close()
  expect(() => view.get(1)).toThrow(/closed/)
})

test('views of every scalar type read one after another in one process: each its own values, bad indexes and closed views throw as before', () => {
  // Each type has its own get (lib/map/mmap.ts): reading all of them in turn
  // must not mix their element arrays or their checks.
  const maps = cases.map(([type, sample]) => {
    const m = BpfMap.create({ type: 'array', key: 'u32', value: type, maxEntries: 3, flags: ['mmapable'] })
    m.set(1, sample as never)
    return m
  })
  try {
    const views = maps.map((m, i) => ({ view: m.mmap({ writable: false }), sample: cases[i][1] }))
    for (const { view, sample } of views) expect(view.get(1)).toBe(sample)
    for (const { view, sample } of views.reverse()) {
      expect(view.get(1)).toBe(sample)
      expect(() => view.get(3)).toThrow(/^index must be an integer in 0\.\.2, got number 3$/)
      expect(() => view.get(Number.NaN)).toThrow(RangeError)
      view.close()
      expect(() => view.get(1)).toThrow(/the mapping already closed/)
    }
  } finally {
    for (const m of maps) m.close()
  }
})

test("a view's own get is not enumerable: a scalar view's keys are those of a raw one", () => {
  using scalar = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 2, flags: ['mmapable'] })
  using raw = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, flags: ['mmapable'] })
  using a = scalar.mmap()
  using b = raw.mmap()
  expect(Object.keys(a)).toEqual(['length', 'stride', 'writable'])
  expect(Object.keys(b)).toEqual(['length', 'stride', 'writable'])
})
