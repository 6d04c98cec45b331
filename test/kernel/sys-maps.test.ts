// The map commands of the native layer, for real, with their error paths.
import { afterEach, describe, expect, test } from 'vitest'
import { BpfError, Fd, kernel, native } from '../../lib/sys/index.js'
import * as features from '../../lib/features/index.js'
import { skipUnless } from './helpers/requires.js'

const { mapTypes, flags } = kernel
const made: Fd[] = []
afterEach(() => {
  for (const fd of made.splice(0)) fd.close()
})

function create(attrs: Partial<Parameters<typeof native.mapCreate>[0]> & { mapType: number }): Fd {
  const fd = new Fd(native.mapCreate({ keySize: 4, valueSize: 8, maxEntries: 16, ...attrs }), 'map')
  made.push(fd)
  return fd
}

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)
const u64 = (n: number) => new Uint8Array(new BigUint64Array([BigInt(n)]).buffer)

describe('map_create', () => {
  test('creates a named hash map the kernel describes back', () => {
    const m = create({ mapType: mapTypes.hash, name: 'sys_hash', maxEntries: 32 })
    expect(native.mapMeta(m.fd)).toEqual({ type: mapTypes.hash, keySize: 4, valueSize: 8, valueBytes: 8, maxEntries: 32 })
    expect(m.fd).toBeGreaterThan(2)
  })

  test('an unknown map type is EINVAL with a cause', () => {
    let err: unknown
    try {
      native.mapCreate({ mapType: 9999, keySize: 4, valueSize: 4, maxEntries: 1 })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(BpfError)
    expect(err).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'bpf', command: 'map_create' })
    expect((err as Error).message).toMatch(/^map_create: EINVAL: invalid attributes/)
  })

  test('bad attribute values are rejected before the syscall', () => {
    expect(() => native.mapCreate({ mapType: -1, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(RangeError)
    expect(() => native.mapCreate({ mapType: 1, keySize: 4.5, valueSize: 4, maxEntries: 1 })).toThrow(RangeError)
    expect(() => native.mapCreate({ mapType: 1, keySize: 4, valueSize: 4, maxEntries: 2 ** 32 })).toThrow(RangeError)
    expect(() => native.mapCreate({ mapType: 1, keySize: 4, valueSize: 4, maxEntries: 1, name: 'x'.repeat(16) })).toThrow(RangeError)
    expect(() => native.mapCreate({ mapType: 'hash' as unknown as number, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(TypeError)
  })
})

describe('elements', () => {
  test('update, lookup, get_next_key, delete', () => {
    const m = create({ mapType: mapTypes.hash })
    native.mapUpdateElem(m.fd, u32(1), u64(10))
    native.mapUpdateElem(m.fd, u32(2), u64(20))
    const out = new Uint8Array(8)
    expect(native.mapLookupElem(m.fd, u32(2), out)).toBe(true)
    expect(out).toEqual(u64(20))
    expect(native.mapLookupElem(m.fd, u32(3), out)).toBe(false)
    const keys: number[] = []
    const next = new Uint8Array(4)
    let key: Uint8Array | null = null
    while (native.mapGetNextKey(m.fd, key, next)) {
      keys.push(new DataView(next.buffer).getUint32(0, true))
      key = next.slice()
    }
    expect(keys.sort()).toEqual([1, 2])
    expect(native.mapDeleteElem(m.fd, u32(1))).toBe(true)
    expect(native.mapDeleteElem(m.fd, u32(1))).toBe(false)
  })

  test('update flags: noexist on an existing key is EEXIST', () => {
    const m = create({ mapType: mapTypes.hash })
    native.mapUpdateElem(m.fd, u32(1), u64(1), kernel.updateFlags.noexist)
    expect(() => native.mapUpdateElem(m.fd, u32(1), u64(2), kernel.updateFlags.noexist)).toThrow(
      expect.objectContaining({ code: 'EEXIST', command: 'map_update_elem' }),
    )
  })

  test('short buffers are a RangeError and change nothing', () => {
    const m = create({ mapType: mapTypes.hash })
    expect(() => native.mapUpdateElem(m.fd, new Uint8Array(3), u64(1))).toThrow(/key needs 4 bytes, got 3/)
    expect(() => native.mapUpdateElem(m.fd, u32(1), new Uint8Array(7))).toThrow(RangeError)
    expect(() => native.mapLookupElem(m.fd, u32(1), new Uint8Array(4))).toThrow(RangeError)
    expect(() => native.mapGetNextKey(m.fd, null, new Uint8Array(2))).toThrow(RangeError)
    expect(native.mapGetNextKey(m.fd, null, new Uint8Array(4))).toBe(false) // still empty
  })

  test('per-CPU values span round_up(value_size, 8) x possible CPUs', () => {
    const cpus = native.possibleCpus()
    const m = create({ mapType: mapTypes.percpu_array, valueSize: 4, maxEntries: 2 })
    expect(native.mapMeta(m.fd).valueBytes).toBe(8 * cpus)
    expect(() => native.mapLookupElem(m.fd, u32(0), new Uint8Array(8 * cpus - 1))).toThrow(RangeError)
    const value = new Uint8Array(8 * cpus)
    for (let c = 0; c < cpus; c++) value[c * 8] = c + 1
    native.mapUpdateElem(m.fd, u32(1), value)
    const out = new Uint8Array(8 * cpus)
    expect(native.mapLookupElem(m.fd, u32(1), out)).toBe(true)
    expect(out).toEqual(value)
  })

  test('queue: push without a key, lookup_and_delete pops', () => {
    const q = create({ mapType: mapTypes.queue, keySize: 0, valueSize: 4, maxEntries: 4 })
    native.mapUpdateElem(q.fd, null, u32(7))
    native.mapUpdateElem(q.fd, null, u32(8))
    const out = new Uint8Array(4)
    expect(native.mapLookupElem(q.fd, null, out)).toBe(true) // peek
    expect(out).toEqual(u32(7))
    expect(native.mapLookupAndDeleteElem(q.fd, null, out)).toBe(true)
    expect(out).toEqual(u32(7))
    expect(native.mapLookupAndDeleteElem(q.fd, null, out)).toBe(true)
    expect(out).toEqual(u32(8))
    expect(native.mapLookupAndDeleteElem(q.fd, null, out)).toBe(false)
  })

  test('hash lookup_and_delete takes the element', (ctx) => {
    skipUnless(ctx, features.haveHashLookupAndDelete)
    const m = create({ mapType: mapTypes.hash })
    native.mapUpdateElem(m.fd, u32(5), u64(50))
    const out = new Uint8Array(8)
    expect(native.mapLookupAndDeleteElem(m.fd, u32(5), out)).toBe(true)
    expect(out).toEqual(u64(50))
    expect(native.mapLookupElem(m.fd, u32(5), out)).toBe(false)
  })

  test('freeze makes a map read-only for user space', () => {
    const m = create({ mapType: mapTypes.array, maxEntries: 1 })
    native.mapUpdateElem(m.fd, u32(0), u64(1))
    native.mapFreeze(m.fd)
    expect(() => native.mapUpdateElem(m.fd, u32(0), u64(2))).toThrow(expect.objectContaining({ code: 'EPERM' }))
  })

  test('a closed map fd is a clear error', () => {
    const m = new Fd(native.mapCreate({ mapType: mapTypes.hash, keySize: 4, valueSize: 8, maxEntries: 1 }), 'map')
    m.close()
    m.close() // twice is a no-op
    expect(() => m.fd).toThrow(/map: file descriptor already closed/)
    expect(() => native.mapLookupElem(-1, u32(0), u64(0))).toThrow(RangeError)
  })

  test('a non-map fd is refused', () => {
    expect(() => native.mapLookupElem(0, u32(0), u64(0))).toThrow(BpfError)
  })
})

describe('batches', () => {
  test('update, lookup, lookup_and_delete and delete in batches', () => {
    const m = create({ mapType: mapTypes.hash, maxEntries: 64 })
    const n = 40
    const keys = new Uint32Array(n).map((_, i) => i + 1)
    const values = new BigUint64Array(n).map((_, i) => BigInt(i * 100))
    expect(native.mapUpdateBatch(m.fd, keys, values, n)).toBe(n)

    const outKeys = new Uint32Array(n)
    const outValues = new BigUint64Array(n)
    const cursor = new Uint8Array(4)
    let total = 0
    let inBatch: Uint8Array | null = null
    const seen = new Map<number, bigint>()
    for (;;) {
      const r = native.mapLookupBatch(m.fd, inBatch, cursor, outKeys, outValues, 16)
      for (let i = 0; i < r.count; i++) seen.set(outKeys[i], outValues[i])
      total += r.count
      if (r.done) break
      inBatch = cursor.slice()
    }
    expect(total).toBe(n)
    expect(seen.get(7)).toBe(600n)

    const del = native.mapDeleteBatch(m.fd, keys.subarray(0, 10), 10)
    expect(del).toBe(10)
    const r = native.mapLookupAndDeleteBatch(m.fd, null, cursor, outKeys, outValues, n)
    expect(r.count).toBe(n - 10)
    expect(native.mapGetNextKey(m.fd, null, new Uint8Array(4))).toBe(false)
  })

  test('batch buffers are checked against count', () => {
    const m = create({ mapType: mapTypes.hash })
    expect(() => native.mapUpdateBatch(m.fd, new Uint32Array(2), new BigUint64Array(3), 3)).toThrow(/keys needs 12 bytes/)
    expect(() => native.mapLookupBatch(m.fd, null, new Uint8Array(4), new Uint32Array(4), new BigUint64Array(3), 4)).toThrow(RangeError)
    expect(() => native.mapLookupBatch(m.fd, null, new Uint8Array(2), new Uint32Array(4), new BigUint64Array(4), 4)).toThrow(/outBatch/)
    expect(() => native.mapLookupBatch(m.fd, null, new Uint8Array(4), new Uint32Array(4), new BigUint64Array(4), 0)).toThrow(RangeError)
  })
})

test('flags from the generated tables match the kernel', () => {
  expect(flags.BPF_F_TOKEN_FD).toBe(1 << 16)
  expect(flags.BPF_F_NO_PREALLOC).toBe(1)
})
