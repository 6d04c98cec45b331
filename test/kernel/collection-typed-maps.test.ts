// Map keys and values typed from the object's BTF (typed-maps.bpf.c): a
// struct key, a struct value with a signed field, an enum and an array. The
// loaded map decodes them to objects, enums by name, u64 as bigint.
import { describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const flow = { addr: 10, port: 80, proto: 6 }

describe('typed-maps.bpf.c', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('the spec knows the sizes from BTF, padding included', () => {
    // struct flow: 4 + 2 + 1 (+ 1 padding); struct stats: 8 + 4 + 4 + 6 (+ 2)
    expect(fixtureSpec('typed-maps').maps.flows).toMatchObject({ type: 'hash', keySize: 8, valueSize: 24, maxEntries: 16 })
  })

  test('what the program inserts decodes to an object', async () => {
    using coll = await fixtureSpec('typed-maps').load()
    // No entry yet: the program inserts { packets 1, state BUSY } and returns 1.
    expect(await retval(coll.programs.bump_flow)).toBe(1)
    expect([...coll.maps.flows.keys()]).toEqual([flow])
    expect(coll.maps.flows.get(flow)).toEqual({ packets: 1n, delta: 0, state: 'BUSY', hist: [0, 0, 0] })
  })

  test('a struct user space writes is what the program updates', async () => {
    using coll = await fixtureSpec('typed-maps').load()
    coll.maps.flows.set(flow, { packets: 41n, delta: 1, state: 'IDLE', hist: [1, 2, 3] })
    // packets 42, hist[1] 7: 42 * 100 + 7
    expect(await retval(coll.programs.bump_flow)).toBe(4207)
    expect(coll.maps.flows.get(flow)).toEqual({ packets: 42n, delta: -1, state: 'DONE', hist: [1, 7, 3] })
    expect(coll.maps.flows.get({ addr: 10, port: 80, proto: 17 })).toBeUndefined()
  })
})
