// lookupInto: the allocation-free lookup copies raw value bytes into the
// caller's buffer, for raw, typed and per-CPU maps alike.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'

test('lookupInto copies the value and reports misses without touching out', () => {
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 8 })
  m.set(1, 0x0102030405060708n)
  const out = new Uint8Array(8).fill(0xee)
  expect(m.lookupInto(1, out)).toBe(true)
  expect([...out]).toEqual([8, 7, 6, 5, 4, 3, 2, 1])
  out.fill(0xee)
  expect(m.lookupInto(2, out)).toBe(false)
  expect([...out]).toEqual(Array(8).fill(0xee))
})

test('lookupInto on large and per-CPU values', () => {
  using big = BpfMap.create({ type: 'array', keySize: 4, valueSize: 256, maxEntries: 2 })
  const v = Uint8Array.from({ length: 256 }, (_, i) => i)
  big.update(new Uint8Array(4), v)
  const out = new Uint8Array(256)
  expect(big.lookupInto(new Uint8Array(4), out)).toBe(true)
  expect(out).toEqual(v)
  const cpus = native.possibleCpus()
  using pc = BpfMap.create({ type: 'percpu_array', key: 'u32', value: 'u32', maxEntries: 1 })
  pc.set(0, Array.from({ length: cpus }, (_, i) => i + 1))
  const all = new Uint8Array(pc.valueBytes)
  expect(pc.lookupInto(0, all)).toBe(true)
  expect(new DataView(all.buffer).getUint32(8 * (cpus - 1), true)).toBe(cpus)
})

test('lookupInto refuses an out buffer of the wrong size', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 })
  expect(() => m.lookupInto(new Uint8Array(4), new Uint8Array(4))).toThrow(RangeError)
  expect(() => m.lookupInto(new Uint8Array(4), [0] as unknown as Uint8Array)).toThrow(RangeError)
})
