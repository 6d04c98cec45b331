// The Promise forms of map batches own what the kernel touches while they
// are in flight: a dup of the map fd and native copies of the buffers
// (issue 11 #8, the map part). Closing the map mid-call must not let the
// batch reach a new map that reuses the number.
import { afterEach, expect, test } from 'vitest'
import { kernel, native } from '../../lib/sys/index.js'

const open: number[] = []
afterEach(() => {
  for (const fd of open.splice(0).reverse()) if (native.fdIsOpen(fd)) native.closeFd(fd)
})

function hash(maxEntries = 256): number {
  const fd = native.mapCreate({ mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 4, maxEntries })
  open.push(fd)
  return fd
}

const u32s = (xs: number[]) => new Uint8Array(new Uint32Array(xs).buffer)
const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i))

function count(fd: number): number {
  const key = new Uint8Array(4)
  let n = 0
  for (let have = native.mapGetNextKey(fd, null, key); have; have = native.mapGetNextKey(fd, key, key)) n++
  return n
}

test('update, lookup and delete batches as promises', async () => {
  const fd = hash()
  expect(await native.mapUpdateBatchAsync(fd, u32s(range(64, (i) => i)), u32s(range(64, (i) => i * 10)), 64)).toBe(64)
  const keys = new Uint8Array(4 * 128)
  const values = new Uint8Array(4 * 128)
  const r = await native.mapLookupBatchAsync(fd, null, new Uint8Array(4), keys, values, 128)
  expect(r).toEqual({ count: 64, done: true })
  const k = new Uint32Array(keys.buffer, 0, 64)
  const v = new Uint32Array(values.buffer, 0, 64)
  expect([...k].sort((a, b) => a - b)).toEqual(range(64, (i) => i))
  for (let i = 0; i < 64; i++) expect(v[i]).toBe(k[i] * 10)
  expect(await native.mapDeleteBatchAsync(fd, u32s(range(32, (i) => i)), 32)).toBe(32)
  expect(count(fd)).toBe(32)
})

test('closing the map while a batch is pending leaves the map that reuses the number alone', async () => {
  const fd = hash()
  const witness = native.dupFd(fd) // sees the first map after its fd is closed
  open.push(witness)
  const pending = native.mapUpdateBatchAsync(fd, u32s(range(200, (i) => i)), u32s(range(200, () => 1)), 200)
  native.closeFd(fd)
  const reuser = hash()
  expect(reuser).toBe(fd) // the precondition: the same number
  expect(await pending).toBe(200)
  expect(count(reuser)).toBe(0)
  expect(count(witness)).toBe(200)
})

test('input buffers changed after the call do not change what the batch writes', async () => {
  const fd = hash()
  const keys = u32s([1, 2, 3])
  const values = u32s([7, 8, 9])
  const pending = native.mapUpdateBatchAsync(fd, keys, values, 3)
  keys.fill(0xff)
  values.fill(0)
  await pending
  const out = new Uint8Array(4)
  expect(native.mapLookupElem(fd, u32s([2]), out)).toBe(true)
  expect(new Uint32Array(out.buffer)[0]).toBe(8)
  expect(count(fd)).toBe(3)
})

test('an output buffer detached while the batch runs is a TypeError, not a write to freed memory', async () => {
  const fd = hash()
  await native.mapUpdateBatchAsync(fd, u32s([1, 2]), u32s([5, 6]), 2)
  const keys = new Uint8Array(4 * 8)
  const pending = native.mapLookupBatchAsync(fd, null, new Uint8Array(4), keys, new Uint8Array(4 * 8), 8)
  structuredClone(keys.buffer, { transfer: [keys.buffer] }) // detaches `keys`
  await expect(pending).rejects.toThrow(/keys was detached or shrunk while the batch ran/)
})

test('bad arguments are refused before anything runs, and a closed fd is EBADF', () => {
  const fd = hash()
  expect(() => native.mapUpdateBatchAsync(fd, new Uint8Array(4), new Uint8Array(8), 2)).toThrow(RangeError)
  expect(() => native.mapLookupBatchAsync(fd, null, new Uint8Array(4), new Uint8Array(4), new Uint8Array(4), 0)).toThrow(RangeError)
  expect(() => native.mapDeleteBatchAsync(fd, null as never, 1)).toThrow(TypeError)
  const closed = native.mapCreate({ mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 1 })
  native.closeFd(closed)
  expect(() => native.mapDeleteBatchAsync(closed, new Uint8Array(4), 1)).toThrow(expect.objectContaining({ code: 'EBADF' }))
})
