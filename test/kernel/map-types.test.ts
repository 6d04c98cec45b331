// Every map type BpfMap creates, round-tripped through the kernel.
import { describe, expect, test } from 'vitest'
import { BpfMap, BpfError, features } from '../../lib/index.js'
import { skipUnless } from './helpers/requires.js'
import { native } from '../../lib/sys/index.js'
import { returnImm } from './helpers/raw.js'

const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)
const bytes = (...b: number[]) => new Uint8Array(b)

describe('hash-like maps, raw', () => {
  for (const type of ['hash', 'lru_hash'] as const) {
    test(type, () => {
      using m = BpfMap.create({ type, keySize: 4, valueSize: 3, maxEntries: 8, name: `t_${type}` })
      expect(m.lookup(u32(1))).toBeUndefined()
      m.update(u32(1), bytes(1, 2, 3))
      expect(m.lookup(u32(1))).toEqual(bytes(1, 2, 3))
      expect(m.has(u32(1))).toBe(true)
      expect(() => m.update(u32(1), bytes(9, 9, 9), 'noexist')).toThrow(expect.objectContaining({ code: 'EEXIST' }))
      expect(() => m.update(u32(2), bytes(9, 9, 9), 'exist')).toThrow(expect.objectContaining({ code: 'ENOENT' }))
      expect(m.delete(u32(1))).toBe(true)
      expect(m.delete(u32(1))).toBe(false)
      expect(m.info()).toMatchObject({ name: `t_${type}`, type, keySize: 4, valueSize: 3, maxEntries: 8 })
    })
  }
})

describe('typed maps', () => {
  test('u32 -> u64 hash gives bigints', () => {
    using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 16 })
    m.set(1, 10n).set(2, 2n ** 63n)
    expect(m.get(1)).toBe(10n)
    expect(m.get(2)).toBe(2n ** 63n)
    expect(m.get(3)).toBeUndefined()
    expect([...m.keys()].sort()).toEqual([1, 2])
    expect(() => m.set(-1, 1n)).toThrow(RangeError)
    expect(() => m.set(1.5, 1n)).toThrow(RangeError)
    expect(() => m.set(1, 'x' as unknown as bigint)).toThrow(TypeError)
  })

  test('every scalar codec round-trips', () => {
    const cases = [
      ['u8', 255], ['i8', -128], ['u16', 65535], ['i16', -32768], ['u32', 0xffffffff], ['i32', -1],
      ['u64', 2n ** 64n - 1n], ['i64', -(2n ** 63n)], ['f32', 1.5], ['f64', Math.PI],
    ] as const
    for (const [type, v] of cases) {
      using m = BpfMap.create({ type: 'array', key: 'u32', value: type, maxEntries: 1 })
      m.set(0, v as never)
      expect(m.get(0)).toBe(v)
    }
  })

  test('structs follow C alignment and round-trip', () => {
    const value = { struct: [['flag', 'u8'], ['count', 'u64'], ['name', { bytes: 5 }], ['port', 'u16']] } as const
    using m = BpfMap.create({ type: 'hash', key: { struct: [['addr', 'u32'], ['proto', 'u8']] }, value, maxEntries: 4 })
    expect(m.keySize).toBe(8) // u32 + u8 padded to 4-byte alignment
    expect(m.valueSize).toBe(24) // 1 + 7 pad + 8 + 5 + 1 pad + 2 = 24
    m.set({ addr: 0x7f000001, proto: 6 }, { flag: 1, count: 5n, name: new TextEncoder().encode('ab'), port: 80 })
    const got = m.get({ addr: 0x7f000001, proto: 6 })!
    expect(got.flag).toBe(1)
    expect(got.count).toBe(5n)
    expect(got.name).toEqual(bytes(0x61, 0x62, 0, 0, 0))
    expect(got.port).toBe(80)
    // The raw bytes show the layout: padding zeroed, fields at C offsets.
    const raw = BpfMap.fromId(m.id)
    try {
      const [[k, v]] = [...raw.entries()]
      expect(k).toEqual(bytes(1, 0, 0, 0x7f, 6, 0, 0, 0))
      expect(v.subarray(8, 16)).toEqual(bytes(5, 0, 0, 0, 0, 0, 0, 0))
      expect(v.subarray(22, 24)).toEqual(bytes(80, 0))
    } finally {
      raw.close()
    }
    expect(() => m.set({ addr: 1 } as never, { flag: 1, count: 1n, name: new Uint8Array(0), port: 1 })).toThrow(/missing field 'proto'/)
    expect(() => m.set({ addr: 1, proto: 1, x: 1 } as never, { flag: 1, count: 1n, name: new Uint8Array(0), port: 1 })).toThrow(/unknown field 'x'/)
  })

  test('arrays of a type', () => {
    using m = BpfMap.create({ type: 'array', key: 'u32', value: { array: 'u16', length: 3 }, maxEntries: 2 })
    m.set(1, [1, 2, 3])
    expect(m.get(1)).toEqual([1, 2, 3])
    expect(m.get(0)).toEqual([0, 0, 0])
  })

  test('a declared type must match an explicit size', () => {
    expect(() => BpfMap.create({ type: 'hash', key: 'u32', keySize: 8, valueSize: 4, maxEntries: 1 })).toThrow(/key type is 4 bytes but the map's key size is 8/)
  })
})

describe('arrays', () => {
  test('array: every index exists, delete refused', () => {
    using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 4 })
    expect(m.get(3)).toBe(0)
    expect(m.get(4)).toBeUndefined()
    m.set(2, 7)
    expect([...m]).toEqual([[0, 0], [1, 0], [2, 7], [3, 0]])
    expect(() => m.delete(2)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
  })
})

describe('per-CPU maps read and write one value per possible CPU', () => {
  const cpus = native.possibleCpus()
  for (const type of ['percpu_hash', 'percpu_array', 'lru_percpu_hash'] as const) {
    test(type, () => {
      using m = BpfMap.create({ type, key: 'u32', value: 'u32', maxEntries: 4 })
      const vals = Array.from({ length: cpus }, (_, i) => i * 10 + 1)
      m.set(1, vals)
      expect(m.get(1)).toEqual(vals)
      m.set(1, 5 as never) // one value for every CPU
      expect(m.get(1)).toEqual(Array(cpus).fill(5))
      expect(() => m.set(1, Array(cpus + 1).fill(1))).toThrow(/one entry per possible CPU/)
      expect(m.valueBytes).toBe(8 * cpus)
    })
  }
  test('raw per-CPU values are padded to 8 bytes per CPU', () => {
    using m = BpfMap.create({ type: 'percpu_array', keySize: 4, valueSize: 3, maxEntries: 1 })
    m.update(u32(0), Array.from({ length: cpus }, (_, i) => bytes(i, 1, 2)))
    const got = m.lookup(u32(0))!
    expect(got).toHaveLength(cpus)
    expect(got[cpus - 1]).toEqual(bytes(cpus - 1, 1, 2))
    const full = new Uint8Array(8 * cpus)
    full[0] = 9
    m.update(u32(0), full as never)
    expect(m.lookup(u32(0))![0]).toEqual(bytes(9, 0, 0))
  })
})

describe('keyless maps', () => {
  test('queue is FIFO, stack is LIFO', () => {
    using q = BpfMap.create({ type: 'queue', value: 'u32', maxEntries: 4 })
    using s = BpfMap.create({ type: 'stack', value: 'u32', maxEntries: 4 })
    for (const v of [1, 2, 3]) {
      q.push(v)
      s.push(v)
    }
    expect(q.peek()).toBe(1)
    expect([q.pop(), q.pop(), q.pop(), q.pop()]).toEqual([1, 2, 3, undefined])
    expect([s.pop(), s.pop(), s.peek()]).toEqual([3, 2, 1])
    expect(() => q.keys()).toThrow(/queue maps have no keys/)
    for (const v of [1, 2, 3, 4]) q.push(v)
    expect(() => q.push(5)).toThrow(expect.objectContaining({ code: 'E2BIG' }))
    using a = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    expect(() => a.pop()).toThrow(/pop is for queue, stack and bloom filter maps, not array/)
  })

  test('bloom filter answers maybe or surely not', (ctx) => {
    skipUnless(ctx, () => features.haveMapType('bloom_filter'))
    using b = BpfMap.create({ type: 'bloom_filter', value: 'u32', maxEntries: 100, mapExtra: 3 })
    b.push(42)
    expect(b.mayContain(42)).toBe(true)
    let misses = 0
    for (let i = 1000; i < 1100; i++) if (!b.mayContain(i)) misses++
    expect(misses).toBeGreaterThan(50)
  })

  test('ringbuf is created with a page-multiple size', () => {
    using r = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
    expect(r.info()).toMatchObject({ type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 4096 })
    expect(() => BpfMap.create({ type: 'ringbuf', maxEntries: 4095 })).toThrow(RangeError)
  })
})

describe('lpm trie', () => {
  test('longest prefix match', () => {
    const key = { struct: [['prefixlen', 'u32'], ['addr', { bytes: 4 }]] } as const
    using t = BpfMap.create({ type: 'lpm_trie', key, value: 'u32', maxEntries: 8, flags: ['no_prealloc'] })
    t.set({ prefixlen: 8, addr: bytes(10, 0, 0, 0) }, 8)
    t.set({ prefixlen: 24, addr: bytes(10, 1, 2, 0) }, 24)
    expect(t.get({ prefixlen: 32, addr: bytes(10, 1, 2, 3) })).toBe(24)
    expect(t.get({ prefixlen: 32, addr: bytes(10, 9, 9, 9) })).toBe(8)
    expect(t.get({ prefixlen: 32, addr: bytes(11, 0, 0, 0) })).toBeUndefined()
    expect([...t.keys()]).toHaveLength(2)
  })
})

describe('fd-valued maps', () => {
  test('array_of_maps and hash_of_maps take maps and answer IDs', () => {
    using inner = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    using outer = BpfMap.create({ type: 'array_of_maps', key: 'u32', maxEntries: 2, innerMap: inner })
    outer.set(0, inner)
    expect(outer.get(0)).toBe(inner.id)
    using byTemplate = BpfMap.create({ type: 'hash_of_maps', key: 'u32', maxEntries: 2, innerMap: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })
    byTemplate.set(7, inner)
    expect(byTemplate.get(7)).toBe(inner.id)
    using other = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 })
    expect(() => byTemplate.set(8, other)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
    expect(() => outer.set(1, 'x' as never)).toThrow(/program, a map, an Fd or an fd number/)
  })

  test('prog_array takes programs and answers program IDs', () => {
    const insns = returnImm(3)
    const prog = native.progLoadSync({ progType: 1, insns, license: 'GPL' })
    try {
      using pa = BpfMap.create({ type: 'prog_array', key: 'u32', maxEntries: 2 })
      pa.set(1, prog.fd)
      const id = pa.get(1)!
      expect(id).toBeGreaterThan(0)
      expect(pa.get(0)).toBeUndefined()
      expect(pa.delete(1)).toBe(true)
    } finally {
      native.closeFd(prog.fd)
    }
  })

  test('perf_event_array is created with one slot per CPU', () => {
    using p = BpfMap.create({ type: 'perf_event_array', keySize: 4, maxEntries: native.possibleCpus() })
    expect(p.info().valueSize).toBe(4)
  })
})

describe('create options', () => {
  test('unknown option, type and flag are TypeErrors before any syscall', () => {
    expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, colour: 1 } as never)).toThrow(/unknown option 'colour'/)
    expect(() => BpfMap.create({ type: 'hashh' as never, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(/unknown map type 'hashh'/)
    expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, flags: ['fast' as never] })).toThrow(/unknown map flag 'fast'/)
    expect(() => BpfMap.create({ type: 'hash', keySize: 4, maxEntries: 1 })).toThrow(/give valueSize or value/)
    expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: -1 })).toThrow(RangeError)
  })
  test('name too long and numa node', () => {
    expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'x'.repeat(16) })).toThrow(RangeError)
    using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, numaNode: 0, flags: ['no_prealloc'] })
    expect(m.info().flags).toBe(1 | 4)
  })
  test('kernel refusals are BpfErrors with the command', () => {
    const err = (() => {
      try {
        BpfMap.create({ type: 'hash', keySize: 0, valueSize: 4, maxEntries: 1 })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(BpfError)
    expect(err).toMatchObject({ code: 'EINVAL', command: 'map_create', syscall: 'bpf' })
  })
})
