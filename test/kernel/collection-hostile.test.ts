// Loading objects whose names collide with JavaScript's own: a map named
// 'valueOf' is created, filled and closed like any other map.
import { readFileSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { CollectionSpec, type BpfMap } from '../../lib/index.js'
import { fixture } from './helpers/collection.js'

describe('hostile names', () => {
  test('a map named like an Object.prototype member loads and is closed with the collection', async () => {
    const bytes = new Uint8Array(readFileSync(fixture('map-init.bpf.o')))
    // 'inner_a' and 'valueOf' have the same length: rename it in the string tables.
    const from = Buffer.from('inner_a\0'), to = Buffer.from('valueOf\0')
    const buf = Buffer.from(bytes.buffer)
    for (let at = buf.indexOf(from); at >= 0; at = buf.indexOf(from, at + 1)) to.copy(buf, at)
    // One tc program: the object's syscall program needs Linux 5.14.
    const coll = await CollectionSpec.fromBuffer(bytes, { name: 'map-init' }).load({ mapReplacements: {}, programs: ['tail_entry'] })
    expect(Object.hasOwn(coll.maps, 'valueOf')).toBe(true)
    // Read as a record: to TypeScript, .valueOf is Object.prototype's.
    const map = (coll.maps as Record<string, BpfMap>)['valueOf']
    expect(map.info().maxEntries).toBeGreaterThan(0)
    coll.close()
    expect(map.closed).toBe(true)
  })
})
