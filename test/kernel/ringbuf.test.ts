// Ring buffer records produced by a real program (bpf_ringbuf_output run
// through BPF_PROG_TEST_RUN) and consumed through the event loop.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { producer } from './helpers/ringbuf-producer.js'

const u64 = (r: Uint8Array) => Number(new DataView(r.buffer, r.byteOffset, 8).getBigUint64(0, true))

test('records written by a program are read in order', async () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 * 4 })
  const p = producer(ring, 42)
  try {
    await p.run(5)
    const rb = ring.ringBuffer()
    expect(rb.pending).toBe(5 * 16)
    const got = rb.read()
    expect(got.map(u64)).toEqual([42, 42, 42, 42, 42])
    expect(rb.read()).toEqual([])
    await p.run(3)
    let n = 0
    expect(rb.consume((r) => { n += u64(r) })).toBe(3)
    expect(n).toBe(126)
  } finally {
    p.close()
  }
})

test('the async iterator wakes when a program writes, and stops on abort', async () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const p = producer(ring, 7)
  try {
    const ac = new AbortController()
    const seen: number[] = []
    const consumer = (async () => {
      for await (const r of ring.ringBuffer().records({ signal: ac.signal })) {
        seen.push(u64(r))
        if (seen.length === 3) ac.abort()
      }
    })()
    await new Promise((r) => setTimeout(r, 20)) // the consumer is now waiting on the fd
    expect(seen).toEqual([])
    await p.run(1)
    await new Promise((r) => setTimeout(r, 20))
    expect(seen).toEqual([7])
    await p.run(2)
    await consumer
    expect(seen).toEqual([7, 7, 7])
  } finally {
    p.close()
  }
})

test('wrapping records read whole, thousands of them', async () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const p = producer(ring, 1)
  try {
    const rb = ring.ringBuffer()
    let total = 0
    for (let i = 0; i < 50; i++) {
      await p.run(200) // 200 x 16 bytes < 4096: fits, and wraps around over the rounds
      total += rb.read().length
    }
    expect(total).toBe(10000)
  } finally {
    p.close()
  }
})

test('closing the map ends a waiting iterator; a closed reader is a clear error', async () => {
  const ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const rb = ring.ringBuffer()
  const done = (async () => {
    const out = []
    for await (const r of rb.records()) out.push(r)
    return out
  })()
  await new Promise((r) => setTimeout(r, 10))
  ring.close()
  expect(await done).toEqual([])
  expect(() => rb.read()).toThrow(/already closed/)
})

test('an aborted signal ends at once; only ringbuf maps have a reader', async () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  const it = ring.ringBuffer().records({ signal: AbortSignal.abort() })
  expect(await it.next()).toEqual({ done: true, value: undefined })
  using arr = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
  expect(() => arr.ringBuffer()).toThrow(/not a ringbuf/)
})
