// MapSpec: create options checked once into plain, frozen data that a
// create (or the ELF loader) can use as is. No syscall is made here.
import { expect, test } from 'vitest'
import { MapSpec, kernel } from '../../lib/index.js'
import { btfForMap } from '../../lib/map/btf.js'
import { codecFor, type TypeDesc } from '../../lib/map/codec.js'

test('a spec holds every create field, sizes derived from the type descriptions', () => {
  const spec = MapSpec.from({ type: 'hash', key: 'u32', value: { struct: [['a', 'u8'], ['b', 'u64']] }, maxEntries: 8, name: 'spec_t', flags: ['no_prealloc'], numaNode: 0 })
  expect(spec).toMatchObject({ type: 'hash', keySize: 4, valueSize: 16, maxEntries: 8, name: 'spec_t', numaNode: 0 })
  expect(spec.typeId).toBe(kernel.mapTypes.hash)
  expect(spec.flags).toBe(kernel.flags.BPF_F_NO_PREALLOC | kernel.flags.BPF_F_NUMA_NODE)
  // Keyless and fd-valued types imply their sizes.
  expect(MapSpec.from({ type: 'queue', valueSize: 4, maxEntries: 2 }).keySize).toBe(0)
  expect(MapSpec.from({ type: 'ringbuf', maxEntries: 4096 })).toMatchObject({ keySize: 0, valueSize: 0 })
  expect(MapSpec.from({ type: 'prog_array', keySize: 4, maxEntries: 2 }).valueSize).toBe(4)
  // A number this kernel's BTF has no name for is kept as given.
  expect(MapSpec.from({ type: 999, keySize: 4, valueSize: 4, maxEntries: 1 }).type).toBe(999)
  expect(MapSpec.from({ type: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 1 }).type).toBe('array')
})

test('a spec is frozen, its descriptions are its own, and it derives new specs by spreading', () => {
  const value: { struct: [string, TypeDesc][] } = { struct: [['a', 'u32']] }
  const spec = MapSpec.from({ type: 'array', key: 'u32', value, maxEntries: 4 })
  expect(Object.isFrozen(spec)).toBe(true)
  value.struct.push(['b', 'u64'])
  expect(spec.value).toEqual({ struct: [['a', 'u32']] })
  expect(Object.isFrozen(spec.value)).toBe(true)
  expect(() => { (spec as { maxEntries: number }).maxEntries = 9 }).toThrow(TypeError)
  expect(MapSpec.from(spec)).toBe(spec)
  const bigger = MapSpec.from({ ...spec, maxEntries: 64 })
  expect(bigger).toMatchObject({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 64, value: { struct: [['a', 'u32']] } })
})

test('type descriptions are checked once, by one validator, for codecs and BTF alike', () => {
  const spec = MapSpec.from({ type: 'hash', key: { struct: [['ip', 'u32'], ['port', 'u16']] }, value: 'u64', maxEntries: 1 })
  // The spec's frozen description keeps its codec: opening the map reuses it.
  expect(codecFor(spec.key!)).toBe(codecFor(spec.key!))
  // The same rule and the same message from codecs, BTF and specs.
  const bad = { struct: [['bad name', 'u8']] } as TypeDesc
  expect(() => codecFor(bad)).toThrow(/type: field name 'bad name' is not a C identifier/)
  expect(() => btfForMap('u32', bad)).toThrow(/value: field name 'bad name' is not a C identifier/)
  expect(() => MapSpec.from({ type: 'hash', key: 'u32', value: bad, maxEntries: 1 })).toThrow(/value: field name 'bad name' is not a C identifier/)
  expect(() => MapSpec.from({ type: 'hash', key: { struct: [['a', 'u128' as never]] }, value: 'u8', maxEntries: 1 })).toThrow(/key\.a: unknown type 'u128'/)
})

test('bad options are named before anything is made', () => {
  expect(() => MapSpec.from(null as never)).toThrow(/options must be an object/)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, bogus: 1 } as never)).toThrow(/unknown option 'bogus'/)
  expect(() => MapSpec.from({ type: 'hash', key: 'u32', keySize: 8, value: 'u8', maxEntries: 1 })).toThrow(/key type is 4 bytes but the map's key size is 8/)
  expect(() => MapSpec.from({ type: 'hash', valueSize: 4, maxEntries: 1 })).toThrow(/give keySize or key/)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: -1 })).toThrow(RangeError)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, mapExtra: -1 })).toThrow(/mapExtra must be a u64/)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, flags: ['fast' as never] })).toThrow(/unknown map flag 'fast'/)
  expect(() => MapSpec.from({ type: 'ringbuf', maxEntries: 5000 })).toThrow(/power of two/)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, btf: true })).toThrow(/btf: true needs key and value/)
})

test('maps of maps need an inner map, and only they take one', () => {
  expect(() => MapSpec.from({ type: 'array_of_maps', keySize: 4, maxEntries: 1 })).toThrow(/array_of_maps needs innerMap/)
  expect(() => MapSpec.from({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, innerMap: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })).toThrow(/innerMap is for array_of_maps and hash_of_maps, not hash/)
  const outer = MapSpec.from({ type: 'hash_of_maps', keySize: 4, maxEntries: 2, innerMap: { type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, flags: ['rdonly_prog'] } })
  // A template becomes a spec of its own, checked with the outer one.
  expect(outer.innerMap).toBeInstanceOf(MapSpec)
  expect(outer.innerMap).toMatchObject({ type: 'array', valueSize: 8, flags: kernel.flags.BPF_F_RDONLY_PROG })
  expect(() => MapSpec.from({ type: 'hash_of_maps', keySize: 4, maxEntries: 2, innerMap: { type: 'array', keySize: 4, maxEntries: 1 } as never })).toThrow(/give valueSize or value/)
})

test('btf: true keeps the BTF bytes in the spec, loaded only at create', () => {
  const spec = MapSpec.from({ type: 'hash', key: 'u32', value: { struct: [['n', 'u64']] }, maxEntries: 1, btf: true })
  const made = btfForMap('u32', { struct: [['n', 'u64']] })
  expect(spec.typedBtf).toEqual({ bytes: made.bytes, keyTypeId: made.keyTypeId, valueTypeId: made.valueTypeId })
  expect(MapSpec.from({ type: 'hash', key: 'u32', value: 'u8', maxEntries: 1 }).typedBtf).toBeUndefined()
})
