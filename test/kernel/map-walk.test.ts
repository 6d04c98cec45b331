// Iteration over keys and entries, including deletions during the walk.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'

function filled(n: number, type: 'hash' | 'lru_hash' = 'hash') {
  const m = BpfMap.create({ type, key: 'u32', value: 'u32', maxEntries: n * 2 })
  for (let i = 0; i < n; i++) m.set(i, i * 2)
  return m
}

test('keys, values and entries see every element once', () => {
  using m = filled(100)
  expect([...m.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
  expect(new Map(m.entries()).get(42)).toBe(84)
  expect([...m.values()].reduce((a, b) => a + b, 0)).toBe(99 * 100)
  expect([...m]).toHaveLength(100)
})

test('an empty map iterates nothing', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4 })
  expect([...m.keys()]).toEqual([])
})

test('deleting the current key during the walk repeats nothing and ends', () => {
  using m = filled(500)
  const seen: number[] = []
  for (const k of m.keys()) {
    seen.push(k)
    m.delete(k) // the kernel restarts from the first key: already-given keys must be skipped
  }
  expect(new Set(seen).size).toBe(seen.length)
  expect(seen).toHaveLength(500)
  expect([...m.keys()]).toEqual([])
})

test('deleting other keys during the walk never yields a key twice', () => {
  using m = filled(300)
  const seen = new Set<number>()
  for (const [k] of m) {
    expect(seen.has(k)).toBe(false)
    seen.add(k)
    m.delete((k + 7) % 300) // may be ahead of or behind the cursor
    if (k % 3 === 0) m.delete(k)
  }
  // Every key still in the map was given; deleted ones may or may not have been.
  for (const k of m.keys()) expect(seen.has(k)).toBe(true)
})

test('entries skip a key deleted between the walk and its lookup', () => {
  using m = filled(10)
  const it = m.entries()
  const first = it.next().value!
  for (const k of [...m.keys()]) if (k !== first[0]) m.delete(k)
  expect([...it]).toEqual([])
})

test('array walks never restart: every index, in order', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u8', maxEntries: 1000 })
  expect([...m.keys()]).toEqual(Array.from({ length: 1000 }, (_, i) => i))
})

test('deleting every other key as it is given keeps the walk linear', () => {
  // The next key is fetched before a key is given out, so deleting the given
  // key never sends the kernel back to the first key: a restart per deletion
  // would re-walk every kept key each time (quadratic, minutes at this size,
  // and the test times out).
  const n = 20_000
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u8', maxEntries: n })
  m.updateBatch(Array.from({ length: n }, (_, i) => [i, 1] as [number, number]))
  let given = 0
  for (const k of m.keys()) {
    if (k % 2 === 1) expect(m.delete(k)).toBe(true)
    given++
  }
  expect(given).toBe(n)
  expect([...m.keys()].length).toBe(n / 2)
})

test('walks of keys over 6 bytes, across many chunks, see every key once', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u64', value: 'u8', maxEntries: 1000 })
  for (let i = 0; i < 700; i++) m.set(BigInt(i) << 40n, 1)
  const seen = [...m.keys()]
  expect(seen.length).toBe(700)
  expect(new Set(seen).size).toBe(700)
  // Deleting every key as it is given: the walk still ends, each key once.
  const given: bigint[] = []
  for (const k of m.keys()) {
    given.push(k)
    m.delete(k)
  }
  expect(given.length).toBe(700)
})
