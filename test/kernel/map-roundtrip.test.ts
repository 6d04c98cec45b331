// Every keyed map type, raw and typed, one entry written and read back.
import { describe, expect, test } from 'vitest'
import { BpfMap, features, type MapCreateOptions } from '../../lib/index.js'
import { skipUnless } from './helpers/requires.js'
import { native } from '../../lib/sys/index.js'

const cpus = native.possibleCpus()
const keyed: { type: MapCreateOptions['type']; perCpu?: boolean; flags?: 'no_prealloc'[] }[] = [
  { type: 'hash' }, { type: 'array' }, { type: 'lru_hash' },
  { type: 'percpu_hash', perCpu: true }, { type: 'percpu_array', perCpu: true }, { type: 'lru_percpu_hash', perCpu: true },
]

describe.each(keyed)('$type', ({ type, perCpu }) => {
  test('raw', () => {
    using m = BpfMap.create({ type, keySize: 4, valueSize: 8, maxEntries: 4 })
    const key = new Uint8Array([1, 0, 0, 0])
    const value = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])
    m.update(key, (perCpu ? Array(cpus).fill(value) : value) as never)
    const got = m.lookup(key)
    expect(got).toEqual(perCpu ? Array(cpus).fill(value) : value)
    expect(m.info()).toMatchObject({ type, keySize: 4, valueSize: 8 })
  })
  test('typed', () => {
    using m = BpfMap.create({ type, key: 'u32', value: { struct: [['a', 'u16'], ['b', 'i32']] }, maxEntries: 4 })
    const v = { a: 65535, b: -5 }
    m.set(3, (perCpu ? Array(cpus).fill(v) : v) as never)
    expect(m.get(3)).toEqual(perCpu ? Array(cpus).fill(v) : v)
    expect([...m.keys()]).toContain(3)
  })
})

test('lpm_trie raw and typed', () => {
  using raw = BpfMap.create({ type: 'lpm_trie', keySize: 8, valueSize: 1, maxEntries: 4, flags: ['no_prealloc'] })
  raw.update(new Uint8Array([16, 0, 0, 0, 192, 168, 0, 0]), new Uint8Array([9]))
  expect(raw.lookup(new Uint8Array([32, 0, 0, 0, 192, 168, 7, 7]))).toEqual(new Uint8Array([9]))
  using typed = BpfMap.create({ type: 'lpm_trie', key: { struct: [['len', 'u32'], ['ip', { bytes: 4 }]] }, value: 'u8', maxEntries: 4, flags: ['no_prealloc'] })
  typed.set({ len: 16, ip: new Uint8Array([192, 168, 0, 0]) }, 9)
  expect(typed.get({ len: 32, ip: new Uint8Array([192, 168, 7, 7]) })).toBe(9)
})

test('queue and stack raw', () => {
  for (const type of ['queue', 'stack'] as const) {
    using m = BpfMap.create({ type, valueSize: 2, maxEntries: 2 })
    m.push(new Uint8Array([1, 2]))
    expect(m.peek()).toEqual(new Uint8Array([1, 2]))
    expect(m.pop()).toEqual(new Uint8Array([1, 2]))
    expect(m.pop()).toBeUndefined()
  }
})

test('bloom filter raw', (ctx) => {
  skipUnless(ctx, () => features.haveMapType('bloom_filter'))
  using b = BpfMap.create({ type: 'bloom_filter', valueSize: 4, maxEntries: 8 })
  b.push(new Uint8Array([1, 2, 3, 4]))
  expect(b.mayContain(new Uint8Array([1, 2, 3, 4]))).toBe(true)
})
