// Maps filled from their definitions at load (map-init.bpf.c): a prog_array
// whose slots name programs, reached by tail calls, and an array_of_maps and
// a hash_of_maps whose slots name inner maps of the same object.
import { describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import { fixtureSpec, retval, SKB_CTX_SIZE, slotId } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

/** A __sk_buff with `mark` (offset 8) set, for a tc test run. */
function skbWithMark(mark: number): Uint8Array {
  const ctx = new Uint8Array(SKB_CTX_SIZE)
  new DataView(ctx.buffer).setUint32(8, mark, true)
  return ctx
}

describe('map-init.bpf.c: the spec', () => {
  test('the outer maps know their inner map template', () => {
    const { maps } = fixtureSpec('map-init')
    expect(maps.jumps).toMatchObject({ type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: 4 })
    expect(maps.by_index).toMatchObject({ type: 'array_of_maps', maxEntries: 2 })
    expect(maps.by_index.innerMap).toMatchObject({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    expect(maps.by_key).toMatchObject({ type: 'hash_of_maps', maxEntries: 8 })
    expect(maps.inner_a).toMatchObject({ type: 'array', maxEntries: 1 })
  })
})

describe('map-init.bpf.c: prog_array slots and tail calls', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('sched_cls')))
  // The tc programs only: the object's syscall program needs Linux 5.14 (the map-in-map tests below).
  const tcPrograms = ['tail_entry', 'tail_one', 'tail_three', 'tail_fixed']

  test('jumps[1] and jumps[3] hold tail_one and tail_three after load; 0 and 2 stay empty', async () => {
    using coll = await fixtureSpec('map-init').load({ programs: tcPrograms })
    expect(slotId(coll.maps.jumps.get(1))).toBe(coll.programs.tail_one.id)
    expect(slotId(coll.maps.jumps.get(3))).toBe(coll.programs.tail_three.id)
    expect(coll.maps.jumps.get(0)).toBeUndefined()
    expect(coll.maps.jumps.get(2)).toBeUndefined()
  })

  test('a tail call through a fixed slot: tail_fixed jumps to tail_one (111)', async () => {
    using coll = await fixtureSpec('map-init').load({ programs: tcPrograms })
    expect(await retval(coll.programs.tail_fixed)).toBe(111)
  })

  test.each([
    // mark -> what tail_entry returns: the slot's program, or 7 when the slot is empty
    [0, 7],
    [1, 111],
    [2, 7],
    [3, 333],
    [4, 7], // past max_entries
  ])('tail_entry with skb->mark %i returns %i', async (mark, expected) => {
    using coll = await fixtureSpec('map-init').load({ programs: tcPrograms })
    expect(await retval(coll.programs.tail_entry, { ctx: skbWithMark(mark) })).toBe(expected)
  })

  test('the slots are only filled for programs that were loaded', async () => {
    // Without tail_three loaded, jumps[3] stays empty and mark 3 falls through.
    using coll = await fixtureSpec('map-init').load({ programs: ['tail_entry', 'tail_one'] })
    expect(coll.programs.tail_three).toBeUndefined()
    expect(coll.maps.jumps.get(3)).toBeUndefined()
    expect(await retval(coll.programs.tail_entry, { ctx: skbWithMark(3) })).toBe(7)
    expect(await retval(coll.programs.tail_entry, { ctx: skbWithMark(1) })).toBe(111)
  })

  test('user space can replace a slot after load', async () => {
    using coll = await fixtureSpec('map-init').load({ programs: tcPrograms })
    coll.maps.jumps.set(1, coll.programs.tail_three)
    expect(await retval(coll.programs.tail_fixed)).toBe(333)
  })
})

describe('map-init.bpf.c: map-in-map slots', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('by_index holds inner_a and inner_b, by_key holds inner_b under key 5', async () => {
    using coll = await fixtureSpec('map-init').load()
    expect(slotId(coll.maps.by_index.get(0))).toBe(coll.maps.inner_a.id)
    expect(slotId(coll.maps.by_index.get(1))).toBe(coll.maps.inner_b.id)
    expect(slotId(coll.maps.by_key.get(5))).toBe(coll.maps.inner_b.id)
    expect([...coll.maps.by_key.keys()]).toEqual([5])
  })

  test('the program writes through by_index and reads through by_key: 1 * 1000 + 2 * 100 + 99', async () => {
    using coll = await fixtureSpec('map-init').load({ programs: ['map_in_map'] })
    // inner_a[0] = 1 via by_index[0], inner_b[0] = 2 via by_index[1];
    // by_key[5] is inner_b (2), by_key[4] is missing (9999 % 100 = 99).
    expect(await retval(coll.programs.map_in_map)).toBe(1299)
    // The inner maps the program wrote are the collection's own.
    expect(coll.maps.inner_a.get(0)).toBe(1)
    expect(coll.maps.inner_b.get(0)).toBe(2)
  })
})
