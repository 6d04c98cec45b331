// The batch calls through a map slot (native/map_batch.cc): the slot's own
// dup and the sizes it read when it opened stand in for a dup and an info
// call per batch; the buffers are checked against those sizes all the same.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'
import { haveBatchOps } from '../../lib/features/index.js'
import { skipUnless } from './helpers/requires.js'

test('slot batches update, look up and delete as the fd ones do', (ctx) => {
  skipUnless(ctx, haveBatchOps)
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 32 })
  const s = native.mapSlotOpen(m.fd)
  try {
    const keys = new Uint32Array([1, 2, 3])
    const values = new BigUint64Array([10n, 20n, 30n])
    expect(native.mapSlotUpdateBatch(s.slot, keys, values, 3)).toBe(3)
    const outKeys = new Uint32Array(8)
    const outValues = new BigUint64Array(8)
    const r = native.mapSlotLookupBatch(s.slot, null, new Uint8Array(4), outKeys, outValues, 8)
    expect(r).toEqual({ count: 3, done: true })
    expect([...outKeys.subarray(0, 3)].sort()).toEqual([1, 2, 3])
    expect(native.mapSlotDeleteBatch(s.slot, new Uint32Array([2]), 1)).toBe(1)
    expect(native.mapSlotLookupAndDeleteBatch(s.slot, null, new Uint8Array(4), outKeys, outValues, 8).count).toBe(2)
    expect(m.lookupBatch()).toEqual([])
  } finally {
    native.mapSlotClose(s.slot)
  }
})

test('slot batches check buffers against the slot sizes, and refuse a closed slot', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 32 })
  const s = native.mapSlotOpen(m.fd)
  expect(() => native.mapSlotUpdateBatch(s.slot, new Uint32Array(2), new BigUint64Array(3), 3)).toThrow(/keys needs 12 bytes/)
  expect(() => native.mapSlotLookupBatch(s.slot, null, new Uint8Array(4), new Uint32Array(4), new BigUint64Array(3), 4)).toThrow(RangeError)
  expect(() => native.mapSlotLookupBatch(s.slot, null, new Uint8Array(2), new Uint32Array(4), new BigUint64Array(4), 4)).toThrow(/outBatch/)
  expect(() => native.mapSlotDeleteBatch('x' as unknown as number, new Uint32Array(1), 1)).toThrow(TypeError)
  native.mapSlotClose(s.slot)
  expect(() => native.mapSlotDeleteBatch(s.slot, new Uint32Array(1), 1)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  // The map's own batches after its close: the map's closed error.
  m.close()
  expect(() => m.lookupBatch()).toThrow(/already closed/)
})
