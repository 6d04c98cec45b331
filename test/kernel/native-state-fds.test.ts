// Native state never outlives the meaning of an fd number: a number given up
// (Fd.release) or closed behind bpfkit's back and then reused for a new map
// must not let an old object, or an old slot handle, reach the new map
// (issue 11 #1).
import { closeSync } from 'node:fs'
import { afterEach, expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { Fd, kernel, native } from '../../lib/sys/index.js'

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f()
})

function hashMap(): BpfMap<number, number> {
  const m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 8 })
  cleanup.push(() => m.close())
  return m
}

function rawMap(keySize: number, valueSize: number): number {
  const fd = native.mapCreate({ mapType: kernel.mapTypes.hash, keySize, valueSize, maxEntries: 8 })
  cleanup.push(() => native.fdIsOpen(fd) && native.closeFd(fd))
  return fd
}

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)

test('a map whose fd was released and closed does not reach the map that reuses the number', () => {
  const original = hashMap()
  original.set(1, 100)
  // As a map fd received from another process: wrapped, then released and closed.
  const received = new Fd(native.dupFd(original.fd), 'map')
  const old = BpfMap.fromFd(received, { key: 'u32', value: 'u32' })
  expect(old.get(1)).toBe(100)
  const n = received.release()
  // The number is the caller's now: the object built on it stops working.
  expect(() => old.delete(1)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  closeSync(n)
  const reuser = hashMap()
  expect(reuser.fd).toBe(n) // the precondition of the defect: the same number
  reuser.set(1, 7)
  expect(() => old.delete(1)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  expect(() => old.get(1)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  expect(() => old.set(1, 9)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  expect(reuser.get(1)).toBe(7)
  expect(original.get(1)).toBe(100)
  old.close() // a no-op for a released fd
})

test('a closed slot handle never names the slot that reuses its index', () => {
  const a = rawMap(4, 4)
  const b = rawMap(4, 4)
  native.mapUpdateElem(b, u32(1), u32(11))
  const first = native.mapSlotOpen(a)
  native.mapSlotClose(first.slot)
  const second = native.mapSlotOpen(b)
  cleanup.push(() => native.mapSlotClose(second.slot))
  expect(second.slot).not.toBe(first.slot)
  new Uint8Array(first.key).set(u32(1))
  expect(() => native.mapSlotDelete(first.slot)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  expect(() => native.mapSlotLookup(first.slot)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  expect(native.mapLookupElem(b, u32(1), new Uint8Array(4))).toBe(true)
})

test('a slot works on its own dup: a number closed behind its back cannot redirect it', () => {
  const a = rawMap(4, 4)
  native.mapUpdateElem(a, u32(1), u32(5))
  const slot = native.mapSlotOpen(a)
  cleanup.push(() => native.mapSlotClose(slot.slot))
  const other = rawMap(4, 4)
  native.mapUpdateElem(other, u32(1), u32(6))
  // A raw close (not closeFd): the native layer is not told.
  closeSync(a)
  new Uint8Array(slot.key).set(u32(1))
  expect(native.mapSlotLookup(slot.slot)).toBe(true)
  expect(new Uint32Array(slot.value)[0]).toBe(5) // still the map it was opened on
  // The number now names another map: handing it out ends the old slot.
  const reused = native.dupFd(other)
  cleanup.push(() => native.fdIsOpen(reused) && native.closeFd(reused))
  expect(reused).toBe(a)
  expect(() => native.mapSlotLookup(slot.slot)).toThrow(expect.objectContaining({ code: 'EBADF' }))
})

test('map sizes always describe the map the number refers to now', () => {
  const small = rawMap(4, 4)
  expect(native.mapMeta(small).valueSize).toBe(4)
  closeSync(small)
  const big = rawMap(8, 64)
  expect(big).toBe(small)
  expect(native.mapMeta(big)).toMatchObject({ keySize: 8, valueSize: 64 })
  // A 4-byte value buffer is too short for the map now at that number.
  expect(() => native.mapLookupElem(big, new Uint8Array(8), new Uint8Array(4))).toThrow(RangeError)
})

test('an Fd that adopts a number ends the slots opened from what it meant before', () => {
  const a = native.mapCreate({ mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 8 })
  const slot = native.mapSlotOpen(a)
  cleanup.push(() => native.mapSlotClose(slot.slot))
  const adopted = new Fd(a, 'map')
  cleanup.unshift(() => adopted.close())
  expect(() => native.mapSlotLookup(slot.slot)).toThrow(expect.objectContaining({ code: 'EBADF' }))
})

test('slot handles that are not handles are refused, never rounded to a real slot', () => {
  const a = rawMap(4, 4)
  const slot = native.mapSlotOpen(a)
  cleanup.push(() => native.mapSlotClose(slot.slot))
  for (const bad of [Number.NaN, slot.slot + 0.5, -1, 2 ** 60, Infinity]) {
    expect(() => native.mapSlotLookup(bad)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  }
  expect(() => native.mapSlotClose('0' as unknown as number)).toThrow(TypeError)
})
