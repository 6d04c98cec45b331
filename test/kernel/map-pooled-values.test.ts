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
