// Maps a collection does not create itself (pinning.bpf.c): LIBBPF_PIN_BY_NAME
// maps pinned in (or reused from) a pinPath, and mapReplacements given by the
// caller. Pins go to a private bpffs the test mounts, never to the host's
// /sys/fs/bpf.
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BpfMap, features } from '../../lib/index.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateBpffs } from './helpers/scratch.js'

/** What a test pinned: a fresh bpffs also lists the kernel's maps.debug and progs.debug iterators. */
function pins(dir: string): string[] {
  return readdirSync(dir).filter((n) => !n.endsWith('.debug'))
}

describe('pinning.bpf.c: pinPath', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('the first load pins shared_runs at <pinPath>/shared_runs; own_runs is not pinned', async () => {
    using fs = privateBpffs()
    using coll = await fixtureSpec('pinning').load({ pinPath: fs.path })
    expect(pins(fs.path)).toEqual(['shared_runs'])
    using pinned = BpfMap.fromPin(join(fs.path, 'shared_runs'))
    expect(pinned.id).toBe(coll.maps.shared_runs.id)
    // shared 1 * 100 + own 1
    expect(await retval(coll.programs.count_runs)).toBe(101)
  })

  test('a second load reuses the pinned map and creates its own unpinned one', async () => {
    using fs = privateBpffs()
    using first = await fixtureSpec('pinning').load({ pinPath: fs.path })
    using second = await fixtureSpec('pinning').load({ pinPath: fs.path })
    expect(second.maps.shared_runs.id).toBe(first.maps.shared_runs.id)
    expect(second.maps.own_runs.id).not.toBe(first.maps.own_runs.id)
    expect(await retval(first.programs.count_runs)).toBe(101)
    // shared 2 * 100 + its own 1
    expect(await retval(second.programs.count_runs)).toBe(201)
    expect(await retval(first.programs.count_runs)).toBe(302)
  })

  test('the pin outlives the collection, with what the programs wrote', async () => {
    using fs = privateBpffs()
    {
      using coll = await fixtureSpec('pinning').load({ pinPath: fs.path })
      await retval(coll.programs.count_runs)
      await retval(coll.programs.count_runs)
    }
    using pinned = BpfMap.fromPin(join(fs.path, 'shared_runs'), { key: 'u32', value: 'u64' })
    expect(pinned.get(0)).toBe(2n)
    // A later load picks up the count: shared 3 * 100 + own 1
    using again = await fixtureSpec('pinning').load({ pinPath: fs.path })
    expect(await retval(again.programs.count_runs)).toBe(301)
  })

  test('a pinned map that does not match the definition is refused, naming the map', async () => {
    using fs = privateBpffs()
    using wrong = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 1, name: 'shared_runs' })
    wrong.pin(join(fs.path, 'shared_runs'))
    await expect(fixtureSpec('pinning').load({ pinPath: fs.path })).rejects.toThrow(/shared_runs/)
  })

  test('without pinPath nothing is pinned on the host', async () => {
    // libbpf's default pin root is /sys/fs/bpf: a pin-by-name map must not land there unasked.
    const hostPin = '/sys/fs/bpf/shared_runs'
    const before = existsSync(hostPin)
    try {
      using coll = await fixtureSpec('pinning').load()
      expect(await retval(coll.programs.count_runs)).toBe(101)
      expect(existsSync(hostPin)).toBe(before)
    } finally {
      // Only a pin this test made: there was none before it.
      if (!before && existsSync(hostPin)) rmSync(hostPin)
    }
  })
})

describe('pinning.bpf.c: mapReplacements', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test("the program uses the caller's map instead of creating its own", async () => {
    using mine = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 1, name: 'my_runs' })
    mine.set(0, 41n)
    {
      using coll = await fixtureSpec('pinning').load({ mapReplacements: { own_runs: mine } })
      expect(coll.maps.own_runs.id).toBe(mine.id)
      expect(coll.programs.count_runs.info().mapIds).toContain(mine.id)
      // shared 1 * 100 + own 41 + 1
      expect(await retval(coll.programs.count_runs)).toBe(142)
    }
    // The replacement stays the caller's: still open after the collection closed.
    expect(mine.get(0)).toBe(42n)
  })

  test('a replacement that does not match the definition is refused, naming the map', async () => {
    // own_runs has 8-byte values; this one has 4.
    using wrong = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 1 })
    await expect(fixtureSpec('pinning').load({ mapReplacements: { own_runs: wrong } })).rejects.toThrow(/own_runs/)
    expect(wrong.get(0)).toBe(0)
  })

  test('a replacement for a map the object does not have is an error naming it', async () => {
    using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 1 })
    await expect(fixtureSpec('pinning').load({ mapReplacements: { no_such_map: m } })).rejects.toThrow(/no_such_map/)
  })
})
