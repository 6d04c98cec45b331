// KeySet (lib/map/key-set.ts): the walk's record of keys given, as integers
// below 2^48. Every id is added once, whatever its high bits, through growth.
import { expect, test } from 'vitest'
import { KeySet } from '../../lib/map/key-set.js'

test('adds each id once, high and low bits alike, through growth', () => {
  const s = new KeySet()
  const ids: number[] = []
  for (let i = 0; i < 3000; i++) ids.push(i, i * 2 ** 32, 2 ** 48 - 1 - i, i * 65537 * 4096)
  const distinct = new Set(ids)
  let added = 0
  for (const id of ids) if (s.add(id)) added++
  expect(added).toBe(distinct.size)
  expect(s.size).toBe(distinct.size)
  for (const id of distinct) expect(s.add(id)).toBe(false)
  expect(s.size).toBe(distinct.size)
})
