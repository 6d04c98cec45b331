// Legacy map definitions (legacy-maps.bpf.c): struct bpf_map_def in
// SEC("maps"), as iproute2, bcc and pre-1.0 libbpf objects declare them. No
// BTF describes these maps, so the spec has sizes only and the loaded maps
// take and give bytes.
import { describe, expect, test } from 'vitest'
import { features, mapFlags } from '../../lib/index.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)
const u64 = (n: bigint) => new Uint8Array(new BigUint64Array([n]).buffer)

describe('legacy-maps.bpf.c: the spec', () => {
  test('each struct bpf_map_def becomes a MapSpec with its type, sizes, entries and flags', () => {
    const { maps } = fixtureSpec('legacy-maps')
    expect(maps.legacy_array).toMatchObject({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4, flags: 0 })
    expect(maps.legacy_hash).toMatchObject({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 16, flags: mapFlags.no_prealloc })
  })
})

describe('legacy-maps.bpf.c: loaded and run', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('the program updates both maps: legacy_array[1] * 100 + legacy_hash[7]', async () => {
    using coll = await fixtureSpec('legacy-maps').load()
    // legacy_array[1] = 5, legacy_hash[7] = 10
    expect(await retval(coll.programs.use_legacy)).toBe(510)
    // legacy_array[1] = 10, legacy_hash[7] = 20
    expect(await retval(coll.programs.use_legacy)).toBe(1020)
    expect(coll.maps.legacy_array.get(u32(1))).toEqual(u64(10n))
    expect(coll.maps.legacy_hash.get(u32(7))).toEqual(u32(20))
  })

  test('user space writes bytes the program reads', async () => {
    using coll = await fixtureSpec('legacy-maps').load()
    coll.maps.legacy_array.set(u32(1), u64(95n))
    // legacy_array[1] = 100, legacy_hash[7] = 200: 100 * 100 + 200
    expect(await retval(coll.programs.use_legacy)).toBe(10200)
  })

  test('the kernel objects have the definitions, under their C names', async () => {
    using coll = await fixtureSpec('legacy-maps').load()
    expect(coll.maps.legacy_hash.info()).toMatchObject({ name: 'legacy_hash', type: 'hash', keySize: 4, valueSize: 4, maxEntries: 16 })
    expect(new Set(coll.programs.use_legacy.info().mapIds)).toEqual(new Set([coll.maps.legacy_array.id, coll.maps.legacy_hash.id]))
  })
})
