// BPF_F_MMAPABLE arrays through their memory mapping.
import { expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'

test('writes through the map and through the mapping meet', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 100, flags: ['mmapable'] })
  using view = m.mmap()
  expect(view.length).toBe(100)
  m.set(3, 7n)
  expect(view.get(3)).toBe(7n)
  view.set(4, 2n ** 40n)
  expect(m.get(4)).toBe(2n ** 40n)
  expect(() => view.get(100)).toThrow(RangeError)
  expect(() => view.get(-1)).toThrow(RangeError)
})

test('values are 8-byte aligned: a u32 array has a stride of 8', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4, flags: ['mmapable'] })
  using view = m.mmap()
  expect(view.stride).toBe(8)
  view.set(1, 0xdeadbeef)
  expect(new Uint8Array(view.buffer, 8, 4)).toEqual(new Uint8Array([0xef, 0xbe, 0xad, 0xde]))
  expect(m.get(1)).toBe(0xdeadbeef)
})

test('raw mappings give views into the memory', () => {
  using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 3, maxEntries: 2, flags: ['mmapable'] })
  using view = m.mmap()
  const v = view.get(1)
  m.update(new Uint8Array([1, 0, 0, 0]), new Uint8Array([5, 6, 7]))
  expect(v).toEqual(new Uint8Array([5, 6, 7])) // the view sees the kernel's write
})

test('closing unmaps: the buffer detaches and access is a clear error', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4, flags: ['mmapable'] })
  const view = m.mmap()
  const buf = view.buffer
  view.close()
  view.close()
  expect(buf.byteLength).toBe(0)
  expect(() => view.get(0)).toThrow(/the mapping already closed/)
  // A writable mapping blocks freezing; once unmapped the map freezes.
  m.freeze()
  expect(() => m.mmap({ writable: true })).toThrow(expect.objectContaining({ code: 'EPERM' }))
  using ro = m.mmap({ writable: false })
  expect(() => ro.set(0, 1)).toThrow(/read-only/)
})

test('a read-only mapping hands out copies, never its pages (a write there would be SIGSEGV)', () => {
  using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 2, flags: ['mmapable'] })
  m.update(new Uint8Array(4), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
  using ro = m.mmap({ writable: false })
  expect(() => ro.buffer).toThrow(TypeError)
  const copy = ro.get(0) as Uint8Array
  expect(copy).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
  copy.fill(9) // lands in the copy, not in the read-only pages
  expect(m.lookup(new Uint8Array(4))).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))
  using rw = m.mmap()
  expect(rw.buffer.byteLength).toBeGreaterThan(0)
})

test('closing the map closes its mappings', () => {
  const m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4, flags: ['mmapable'] })
  const view = m.mmap()
  m.close()
  expect(() => view.get(0)).toThrow(/the mapping already closed/)
})

test('only mmapable arrays map', () => {
  using plain = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4 })
  expect(() => plain.mmap()).toThrow(/only array maps created with the 'mmapable' flag/)
  using hash = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 4 })
  expect(() => hash.mmap()).toThrow(TypeError)
})
