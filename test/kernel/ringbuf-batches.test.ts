// consumeBatches: records as offsets in one buffer per batch, and the
// consumer position released in stretches (the producer must still see all
// space back once a drain ends).
import { expect, test } from 'vitest'
import { BpfMap, kernel } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'
import { add64Imm, call, exit, ldMapFd, mov64Imm, mov64Reg, program, stxdw } from './helpers/raw.js'

/** A socket filter that writes the u64 7 to the ring buffer once per run. */
function producer(ring: BpfMap) {
  const insns = program(
    mov64Imm(2, 7), stxdw(10, 2, -8),
    ldMapFd(1, ring.fd), mov64Reg(2, 10), add64Imm(2, -8), mov64Imm(3, 8), mov64Imm(4, 0),
    call(kernel.helpers.ringbuf_output),
    mov64Imm(0, 0), exit(),
  )
  const { fd } = native.progLoadSync({ progType: kernel.progTypes.socket_filter, insns, license: 'GPL' })
  return {
    run: (repeat = 1) => native.progTestRunSync(fd, { data: new Uint8Array(64), repeat }),
    close: () => native.closeFd(fd),
  }
}

test('consumeBatches hands over every record once, as offsets', () => {
  using ring = BpfMap.create({ type: 'ringbuf', maxEntries: 1 << 16 })
  const p = producer(ring)
  try {
    const rb = ring.ringBuffer()
    p.run(3000) // 3000 x 16 bytes: more than one batch of 1,024
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
      p.run(250) // 250 x 16 bytes = 4000 of 4096: only fits when all earlier space is back
      expect(rb.consumeBatches(() => {})).toBe(250)
    }
  } finally {
    p.close()
  }
})
