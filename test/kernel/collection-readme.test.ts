// The README's "Objects from C" example, end to end: counter.bpf.c is the
// README's C, and this is its TypeScript, with the types `bpfkit gen types`
// writes for the object, so the README's path from .bpf.c to a running
// program keeps working.
import { describe, expect, test } from 'vitest'
import { CollectionSpec, type CollectionShape } from '../../lib/index.js'
import { fixture } from './helpers/collection.js'

// What `bpfkit gen types counter.bpf.o` writes (test/unit/cli-gen-types.test.ts checks the generator itself).
interface Counter extends CollectionShape {
  programs: 'count_packets'
  maps: { counts: { key: number; value: bigint } }
  variables: { packets: bigint; threshold: number }
}

describe('README: counter.bpf.c from source to a running program', () => {
  test('spec, set before load, load, run, read maps and globals', async () => {
    const spec = CollectionSpec.fromFile<Counter>(fixture('counter.bpf.o'))
    expect(spec.programs.count_packets).toMatchObject({ type: 'socket_filter', section: 'socket' })
    expect(spec.maps.counts).toMatchObject({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1 })
    expect(spec.maps['.rodata']).toBeDefined()
    spec.variables.threshold.set(1)
    using coll = await spec.load()
    // The first packet passes whole (skb->len: 64 bytes less the 14 of the Ethernet header), the second is dropped: threshold 1.
    expect((await coll.programs.count_packets.testRun({ data: new Uint8Array(64) })).retval).toBe(50)
    expect((await coll.programs.count_packets.testRun({ data: new Uint8Array(64) })).retval).toBe(0)
    expect(coll.maps.counts.get(0)).toBe(2n)
    expect(coll.variables.packets.get()).toBe(2n)
    coll.variables.packets.set(0n)
    expect((await coll.programs.count_packets.testRun({ data: new Uint8Array(64) })).retval).toBe(50)
    expect(coll.variables.threshold.get()).toBe(1)
    expect(() => coll.variables.threshold.set(5)).toThrow(/frozen/)
  })
})
