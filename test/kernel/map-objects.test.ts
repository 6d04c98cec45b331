// Pinning, opening by pin and ID, freezing, closing: the map as a kernel object.
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { BpfMap, ids } from '../../lib/index.js'
import { privateBpffs } from './helpers/scratch.js'
import { bpftool } from './helpers/bpftool.js'

test('pin, fromPin, unpin', () => {
  using fs = privateBpffs()
  const path = join(fs.path, 'counts')
  using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 4, name: 'pinned' })
  m.set(1, 11)
  m.pin(path)
  using again = BpfMap.fromPin(path, { key: 'u32', value: 'u32' })
  expect(again.get(1)).toBe(11)
  expect(again.id).toBe(m.id)
  m.unpin()
  expect(() => BpfMap.fromPin(path)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
})

test('fromId shares the map; its sizes are checked against declared types', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 2 })
  using same = BpfMap.fromId(m.id, { key: 'u32', value: 'u64' })
  same.set(1, 5n)
  expect(m.get(1)).toBe(5n)
  expect(same.type).toBe('array')
  expect(() => BpfMap.fromId(m.id, { value: 'u32' })).toThrow(/value type is 4 bytes but the map's value size is 8/)
  expect(() => BpfMap.fromId(0x7ffffff0)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
})

test('a frozen map refuses updates from user space', () => {
  using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 1 })
  m.set(0, 1)
  m.freeze()
  expect(() => m.set(0, 2)).toThrow(expect.objectContaining({ code: 'EPERM' }))
  expect(m.get(0)).toBe(1)
})

test('closed maps give a clear error, close twice is a no-op', () => {
  const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1 })
  m.close()
  m.close()
  expect(m.closed).toBe(true)
  expect(() => m.lookup(new Uint8Array(4))).toThrow(/already closed/)
})

test('short buffers are RangeErrors', () => {
  using m = BpfMap.create({ type: 'hash', keySize: 8, valueSize: 4, maxEntries: 1 })
  expect(() => m.lookup(new Uint8Array(4))).toThrow(RangeError)
  expect(() => m.update(new Uint8Array(8), new Uint8Array(3))).toThrow(RangeError)
  expect(() => m.set(new Uint8Array(8), 5 as never)).toThrow(/no value type/)
})

test('ids lists the map; bpftool sees the same name and entries', (ctx) => {
  using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'bpftool_seen' })
  m.update(new Uint8Array([1, 0, 0, 0]), new Uint8Array([2, 0, 0, 0]))
  const info = [...ids.maps()].find((i) => i.id === m.id)
  expect(info?.name).toBe('bpftool_seen')
  const tool = bpftool(ctx)
  const shown = tool.json('map', 'show', 'id', String(m.id))
  expect(shown).toMatchObject({ id: m.id, name: 'bpftool_seen', type: 'hash', bytes_key: 4, bytes_value: 4 })
  const dump = tool.json('map', 'dump', 'id', String(m.id))
  expect(dump).toEqual([{ key: ['0x01', '0x00', '0x00', '0x00'], value: ['0x02', '0x00', '0x00', '0x00'] }])
})

test('btf: true gives typed bpftool dumps with field names', (ctx) => {
  using m = BpfMap.create({
    type: 'hash', name: 'typed_dump', maxEntries: 4, btf: true,
    key: 'u32', value: { struct: [['pkts', 'u64'], ['port', 'u16']] },
  })
  m.set(7, { pkts: 3n, port: 443 })
  const info = m.info()
  expect(info.btfId).toBeGreaterThan(0)
  expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, btf: true })).toThrow(/needs key and value type descriptions/)
  const dump = bpftool(ctx).json('map', 'dump', 'id', String(info.id))
  expect(dump[0].formatted).toEqual({ key: 7, value: { pkts: 3, port: 443 } })
})
