// consumeBatches: records as offsets in one buffer per batch, and the
// consumer position released in stretches (the producer must still see all
// space back once a drain ends).
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { producer } from './helpers/ringbuf-producer.js'

test('consumeBatches hands over every record once, as offsets', () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 1 << 16 })
  const p = producer(ring)
  try {
    const rb = ring.ringBuffer()
    p.runSync(3000) // 3000 x 16 bytes: more than one batch of 1,024
    let records = 0
    let batches = 0
    let sum = 0
    expect(rb.consumeBatches((bytes, ends, count) => {
      batches++
      let start = 0
      for (let i = 0; i < count; i++) {
        expect(ends[i] - start).toBe(8)
        sum += new DataView(bytes.buffer, bytes.byteOffset + start, 8).getUint32(0, true)
        start = ends[i]
        records++
      }
    })).toBe(3000)
    expect(records).toBe(3000)
    expect(batches).toBeGreaterThanOrEqual(3)
    expect(sum).toBe(7 * 3000)
    expect(rb.pending).toBe(0)
    expect(rb.consumeBatches(() => { throw new Error('no batch expected') })).toBe(0)
  } finally {
    p.close()
  }
})

test('a drained ring takes a full load again (space released at the end of a drain)', () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const p = producer(ring)
  try {
    const rb = ring.ringBuffer()
    for (let round = 0; round < 20; round++) {
      p.runSync(250) // 250 x 16 bytes = 4000 of 4096: only fits when all earlier space is back
      expect(rb.consumeBatches(() => {})).toBe(250)
    }
  } finally {
    p.close()
  }
})
