// BpfMap.create takes a MapSpec as well as options: a spec is made once and
// creates as many maps as wanted, with the same result as the options.
import { expect, test } from 'vitest'
import { BpfMap, MapSpec, ids } from '../../lib/index.js'

test('one spec creates several maps, typed as its options say', () => {
  const spec = MapSpec.from({ type: 'hash', key: 'u32', value: { struct: [['n', 'u64']] }, maxEntries: 4, name: 'spec_twice' })
  using a = BpfMap.create(spec)
  using b = BpfMap.create(spec)
  a.set(1, { n: 5n })
  expect(a.get(1)).toEqual({ n: 5n })
  expect(b.get(1)).toBeUndefined()
  expect(a.info()).toMatchObject({ name: 'spec_twice', type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })
  expect(a.id).not.toBe(b.id)
})

test('a spec with btf: true loads its BTF at each create and does not keep it open', () => {
  const spec = MapSpec.from({ type: 'array', key: 'u32', value: 'u64', maxEntries: 2, btf: true })
  using m = BpfMap.create(spec)
  expect(m.info().btfId).toBeGreaterThan(0)
  m.set(0, 9n)
  expect(m.get(0)).toBe(9n)
  // A second map from the same spec gets BTF of its own (the BTF fd made for
  // the first was closed; the file's leak check would see it otherwise).
  using again = BpfMap.create(spec)
  expect(again.info().btfId).toBeGreaterThan(0)
})

test('an inner map template in a spec is made with the outer map and closed after', () => {
  const spec = MapSpec.from({ type: 'array_of_maps', key: 'u32', maxEntries: 2, innerMap: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })
  using outer = BpfMap.create(spec)
  using inner = BpfMap.create(spec.innerMap as MapSpec)
  outer.set(0, inner)
  expect(outer.get(0)).toBe(inner.id)
})

test('a map-of-maps without an inner map is refused before the syscall, creating nothing', () => {
  const count = () => [...ids.maps()].filter((i) => i.name === 'no_inner').length
  expect(() => BpfMap.create({ type: 'hash_of_maps', keySize: 4, maxEntries: 1, name: 'no_inner' } as never)).toThrow(/hash_of_maps needs innerMap/)
  expect(count()).toBe(0)
})
