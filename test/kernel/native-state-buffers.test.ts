// Buffer arguments of any kind of ArrayBuffer: views of a SharedArrayBuffer
// are read and written like any other, and a short one is a RangeError naming
// the argument (found by npm run fuzz: "Error: Invalid argument", Node-API's
// own message, for every map call given a view of a SharedArrayBuffer).
import { afterEach, expect, test } from 'vitest'
import { kernel, native } from '../../lib/sys/index.js'

const open: number[] = []
afterEach(() => {
  for (const fd of open.splice(0)) native.closeFd(fd)
})

function hash(): number {
  const fd = native.mapCreate({ mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 8, maxEntries: 4 })
  open.push(fd)
  return fd
}

const shared = (n: number) => new Uint8Array(new SharedArrayBuffer(n))

test('views of a SharedArrayBuffer work as keys, values and outputs', () => {
  const fd = hash()
  const key = shared(8).subarray(4) // an offset into the shared buffer
  key.set([1, 0, 0, 0])
  const value = new DataView(new SharedArrayBuffer(8))
  value.setBigUint64(0, 77n, true)
  native.mapUpdateElem(fd, key, value)
  const out = new DataView(new SharedArrayBuffer(16), 8)
  expect(native.mapLookupElem(fd, key, out)).toBe(true)
  expect(out.getBigUint64(0, true)).toBe(77n)
  const next = shared(4)
  expect(native.mapGetNextKey(fd, null, next)).toBe(true)
  expect([...next]).toEqual([1, 0, 0, 0])
})

test('a short shared view is a RangeError naming the argument', () => {
  const fd = hash()
  expect(() => native.mapGetNextKey(fd, shared(0), Buffer.alloc(4))).toThrow(/^key needs 4 bytes, got 0$/)
  expect(() => native.mapDeleteBatch(fd, shared(0), 1)).toThrow(RangeError)
  expect(() => native.mapLookupElem(fd, shared(4), shared(7))).toThrow(/^value needs 8 bytes, got 7$/)
})
