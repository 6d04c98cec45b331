// Raw values over 64 bytes come from a shared slab (lib/map/bytes.ts): each
// lookup's value must still be its own, never changed by later lookups, and
// readable through its own byteOffset as a wider typed array.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'

const key = (i: number) => new Uint8Array(new Uint32Array([i]).buffer)
const pattern = (size: number, seed: number) => Uint8Array.from({ length: size }, (_, i) => (i * 7 + seed) & 0xff)

test.each([65, 256, 4096, 4097])('values of %i bytes stay their own across lookups', (size) => {
  using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: size, maxEntries: 3 })
  for (let i = 0; i < 3; i++) m.update(key(i), pattern(size, i))
  // More lookups than one 64 KiB slab holds, so that values span slabs.
  const got = Array.from({ length: 600 }, (_, j) => m.lookup(key(j % 3))!)
  const expected = [0, 1, 2].map((i) => Buffer.from(pattern(size, i)))
  // (vitest's toEqual over 600 large arrays takes seconds: compared as Buffers)
  const wrong = got.filter((v, j) => v.byteLength !== size || v.byteOffset % 8 !== 0 ||
    !Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(expected[j % 3]))
  expect(wrong.length).toBe(0)
  // Writing one value changes no other.
  got[0].fill(0xee)
  expect(got[3]).toEqual(pattern(size, 0))
  expect(m.lookup(key(0))).toEqual(pattern(size, 0))
  const words = new BigUint64Array(got[1].buffer, got[1].byteOffset, Math.floor(size / 8))
  expect(words[0]).toBe(new DataView(pattern(size, 1).buffer).getBigUint64(0, true))
})

test('lookupBatch gives raw keys and values as views of their own bytes', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 12, maxEntries: 64 })
  for (let i = 0; i < 40; i++) m.update(key(i), pattern(12, i))
  const entries = m.lookupBatch({ batchSize: 16 })
  expect(entries.length).toBe(40)
  for (const [k, v] of entries) {
    const i = new DataView(k.buffer, k.byteOffset, k.byteLength).getUint32(0, true)
    expect([k.byteLength, v.byteLength]).toEqual([4, 12])
    expect(v).toEqual(pattern(12, i))
  }
  // Changing one entry's bytes changes no other entry's, nor the map.
  entries[0][1].fill(0xee)
  entries[0][0].fill(0xee)
  expect(entries[1][1]).not.toEqual(new Uint8Array(12).fill(0xee))
  expect(new Set(entries.map(([k]) => Buffer.from(k).toString('hex'))).size).toBe(40)
  expect(m.lookupBatch({ batchSize: 64 }).every(([k, v]) => !v.every((b) => b === 0xee) && !k.every((b) => b === 0xee))).toBe(true)
})
