// A collection owns the maps and programs it made: close() and `using` free
// every fd, objects are unusable afterwards, a second close is a no-op, and
// a load that fails part-way closes whatever it had already made.
import { describe, expect, test } from 'vitest'
import { BpfMap, features } from '../../lib/index.js'
import { expectNoNewFds, fixtureSpec, ownedFds, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

describe('collection lifetime', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('close() frees every map and program fd, data maps included', async () => {
    const before = ownedFds()
    const coll = await fixtureSpec('data').load()
    expect(ownedFds().size).toBeGreaterThan(before.size)
    coll.close()
    expectNoNewFds(before)
  })

  test('`using` closes the collection at the end of the block', async () => {
    const before = ownedFds()
    {
      using coll = await fixtureSpec('map-init').load()
      expect(coll.maps.jumps).toBeDefined()
    }
    expectNoNewFds(before)
  })

  test('after close() programs and maps throw "already closed"; a second close() is a no-op', async () => {
    const coll = await fixtureSpec('legacy-maps').load()
    const { use_legacy } = coll.programs
    const { legacy_hash } = coll.maps
    coll.close()
    await expect(retval(use_legacy)).rejects.toThrow(/already closed/)
    expect(() => legacy_hash.get(new Uint8Array(4))).toThrow(/already closed/)
    expect(() => coll.close()).not.toThrow()
    expect(() => coll[Symbol.dispose]()).not.toThrow()
  })

  test('programs keep the maps they use alive after the collection closed its own fds', async () => {
    // The kernel holds a reference from program to map: closing the
    // collection's map fd does not free the map while a program we kept open uses it.
    const coll = await fixtureSpec('data').load({ programs: ['write_bss'] })
    const bssId = coll.maps['.bss'].id
    using bss = BpfMap.fromId(bssId)
    coll.close()
    expect(bss.info().id).toBe(bssId)
  })

  test('a load that fails in the kernel closes what it made before the failure', async () => {
    const before = ownedFds()
    // legacy_array's values are written by use_legacy: a replacement that
    // programs may not write makes the load fail, at the loader's check or
    // in the verifier, after other maps (legacy_hash) exist.
    using readOnly = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4, flags: ['rdonly_prog'] })
    const mine = ownedFds()
    await expect(fixtureSpec('legacy-maps').load({ mapReplacements: { legacy_array: readOnly } })).rejects.toThrow()
    expectNoNewFds(mine)
    expect(ownedFds().size).toBe(before.size + 1)
  })

  test('a load asked for an unknown program fails before making anything', async () => {
    const before = ownedFds()
    await expect(fixtureSpec('data').load({ programs: ['read_data', 'nope'] })).rejects.toThrow(/nope/)
    expectNoNewFds(before)
  })

  test('many loads and closes leave nothing behind', async () => {
    const before = ownedFds()
    for (let i = 0; i < 5; i++) {
      using coll = await fixtureSpec('data').load()
      expect(await retval(coll.programs.read_custom)).toBe(1113)
    }
    expectNoNewFds(before)
  })
})
