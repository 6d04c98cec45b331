// BTF built in TypeScript, loaded by the kernel, carried by maps: bpftool then
// prints typed dumps with the field names and decoded values.
import { describe, expect, test } from 'vitest'
import { Btf } from '../../lib/btf/btf.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { btfForMap } from '../../lib/map/btf.js'
import { codecFor, type TypeDesc } from '../../lib/map/codec.js'
import { BpfError, Fd, VerifierError, kernel, mapInfoByFd, native } from '../../lib/sys/index.js'
import * as features from '../../lib/features/index.js'
import { skipUnless } from './helpers/requires.js'
import { bpftool, type Bpftool } from './helpers/bpftool.js'

function bpftoolDump(tool: Bpftool, id: number): Array<{ formatted?: { key?: unknown; value: unknown } }> {
  return tool.json('map', 'dump', 'id', String(id))
}

function encode(desc: TypeDesc, value: unknown): Uint8Array {
  const c = codecFor(desc) as { size: number; encode(v: unknown, view: DataView, o: number): void }
  const b = new Uint8Array(c.size)
  c.encode(value, new DataView(b.buffer), 0)
  return b
}

// Creates a map typed by `key`/`value`, stores one entry and returns bpftool's formatted dump.
async function typedDump(ctx: { skip(note?: string): never }, type: 'hash' | 'array', key: TypeDesc, value: TypeDesc, k: unknown, v: unknown) {
  const meta = btfForMap(key, value)
  using btf = await Btf.load(meta.bytes)
  using map = new Fd(native.mapCreate({
    mapType: kernel.mapTypes[type], keySize: meta.keySize, valueSize: meta.valueSize, maxEntries: 4,
    name: 'bpfkit_btf', btfFd: btf.fd.fd, btfKeyTypeId: meta.keyTypeId, btfValueTypeId: meta.valueTypeId,
  }), 'map')
  native.mapUpdateElem(map.fd, encode(key, k), encode(value, v))
  const info = mapInfoByFd(map.fd)
  expect(info.btfId).toBe(btf.id)
  expect(info.btfKeyTypeId).toBe(meta.keyTypeId)
  expect(info.btfValueTypeId).toBe(meta.valueTypeId)
  // An array map lists all its slots; a hash map only what was stored.
  const entries = bpftoolDump(bpftool(ctx), info.id).map((e) => e.formatted)
  return type === 'array' ? entries.find((e) => e?.key === k) : (expect(entries).toHaveLength(1), entries[0])
}

describe('btfForMap with bpftool', () => {
  test('a hash map with a struct value prints field names and values', async (ctx) => {
    const value: TypeDesc = { struct: [['packets', 'u64'], ['bytes', 'u64'], ['proto', 'u8'], ['port', 'u16'], ['weight', 'i32']] }
    const f = await typedDump(ctx, 'hash', 'u32', value, 7, { packets: 42n, bytes: 1500n, proto: 6, port: 443, weight: -3 })
    expect(f).toEqual({ key: 7, value: { packets: 42, bytes: 1500, proto: 6, port: 443, weight: -3 } })
  })

  test('struct keys, nested structs, arrays, byte strings and signed members', async (ctx) => {
    const key: TypeDesc = { struct: [['addr', { bytes: 4 }], ['port', 'u16']] }
    const value: TypeDesc = {
      struct: [
        ['inner', { struct: [['a', 'i8'], ['b', 'i64']] }],
        ['counts', { array: 'u32', length: 3 }],
        ['tag', { bytes: 3 }],
        ['delta', 'i16'],
      ],
    }
    const k = { addr: new Uint8Array([10, 0, 0, 1]), port: 8080 }
    const v = { inner: { a: -1, b: -9000000000n }, counts: [1, 2, 3], tag: new Uint8Array([0xde, 0xad, 0]), delta: -300 }
    const f = await typedDump(ctx, 'hash', key, value, k, v)
    expect(f).toEqual({
      key: { addr: [10, 0, 0, 1], port: 8080 },
      value: { inner: { a: -1, b: -9000000000 }, counts: [1, 2, 3], tag: [0xde, 0xad, 0], delta: -300 },
    })
  })

  // Debian's bpftool 7.1 prints BTF floats as "(unsupported-kind" and breaks
  // its own JSON, so floats are checked against the kernel only.
  test('float members are accepted by the kernel and sized as the codec sizes them', async (ctx) => {
    skipUnless(ctx, () => features.haveBtfKind('float'))
    const value: TypeDesc = { struct: [['ratio', 'f64'], ['small', 'f32'], ['n', 'u8']] }
    const meta = btfForMap('u32', value)
    expect(meta.valueSize).toBe(codecFor(value).size)
    using btf = await Btf.load(meta.bytes)
    using map = new Fd(native.mapCreate({
      mapType: kernel.mapTypes.hash, keySize: 4, valueSize: meta.valueSize, maxEntries: 1,
      btfFd: btf.fd.fd, btfKeyTypeId: meta.keyTypeId, btfValueTypeId: meta.valueTypeId,
    }), 'map')
    expect(mapInfoByFd(map.fd).btfValueTypeId).toBe(meta.valueTypeId)
  })

  test('an array map takes the u32 key BTF', async (ctx) => {
    const f = await typedDump(ctx, 'array', 'u32', 'i64', 2, -5n)
    expect(f).toEqual({ key: 2, value: -5 })
  })

  test('a bloom filter takes no key type; a queue takes no BTF at all', async (ctx) => {
    skipUnless(ctx, () => features.haveMapType('bloom_filter'))
    const meta = btfForMap(null, { struct: [['x', 'u32']] })
    expect(meta.keyTypeId).toBe(0)
    using btf = await Btf.load(meta.bytes)
    const attrs = { keySize: 0, valueSize: meta.valueSize, maxEntries: 2, btfFd: btf.fd.fd, btfValueTypeId: meta.valueTypeId }
    using bloom = new Fd(native.mapCreate({ mapType: kernel.mapTypes.bloom_filter, ...attrs }), 'map')
    expect(mapInfoByFd(bloom.fd).btfValueTypeId).toBe(meta.valueTypeId)
    // Queue and stack maps have no BTF check in the kernel, so any BTF is EINVAL.
    expect(() => native.mapCreate({ mapType: kernel.mapTypes.queue, ...attrs })).toThrow(expect.objectContaining({ code: 'EINVAL' }))
  })

  test('the kernel checks BTF sizes against the map: a mismatch is EINVAL', async () => {
    const meta = btfForMap('u32', 'u64')
    using btf = await Btf.load(meta.bytes)
    expect(() => native.mapCreate({
      mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 4, maxEntries: 1,
      btfFd: btf.fd.fd, btfKeyTypeId: meta.keyTypeId, btfValueTypeId: meta.valueTypeId,
    })).toThrow(expect.objectContaining({ code: 'EINVAL' }))
  })
})

describe('BtfBuilder blobs the kernel accepts', () => {
  test('every kind loads and the kernel keeps the whole blob', async () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const char = b.int('char', 1, { char: true })
    const bool = b.int('_Bool', 1, { bool: true })
    const u64 = b.int('unsigned long long', 8)
    const ptr = b.ptr(char)
    const arr = b.array(int, 4)
    const fwd = b.fwd('later')
    const fwdUnion = b.fwd('later_u', 'union')
    const st = b.struct('point', [
      { name: 'x', type: int }, { name: 'flags', type: int, bitSize: 3 }, { name: 'mode', type: int, bitSize: 5, bitOffset: 35 },
      { name: 'name', type: ptr }, { name: 'on', type: bool },
    ])
    const un = b.union('either', [{ name: 'i', type: int }, { name: 'u', type: u64 }])
    // Kinds (and signed enums) newer than the kernel are left out, as its probes say.
    const has = (kind: features.BtfKindFeature) => features.supportsBtfKind(kind)
    const en = b.enum('color', has('enum64') ? [['RED', 0], ['GREEN', 1], ['NEG', -1]] : [['RED', 0], ['GREEN', 1]])
    const td = b.typedef('point_t', st)
    const cv = b.const(b.volatile(b.restrict(ptr)))
    const proto = b.funcProto(int, [{ name: 'p', type: b.ptr(td) }, { name: 'n', type: int }])
    const fn = b.func('handler', proto, 'global')
    const v1 = b.var('counter', int, 'global')
    const v2 = b.var('table', arr, 'static')
    b.datasec('.data', [{ type: v1, offset: 0, size: 4 }, { type: v2, offset: 8, size: 16 }])
    if (has('decl_tag')) {
      b.declTag('kfunc', fn)
      b.declTag('arg', fn, 1)
    }
    if (has('type_tag')) b.ptr(b.typeTag('user', int))
    b.ptr(fwd)
    b.ptr(fwdUnion)
    b.typedef('e_t', en)
    if (has('enum64')) b.typedef('e64_t', b.enum64('big', [['HUGE', 1n << 40n]]))
    b.typedef('cv_t', cv)
    if (has('float')) b.typedef('f_t', b.float('double', 8))
    b.typedef('u_t', un)
    const btf = await Btf.load(b.bytes(), { logLevel: 1 })
    try {
      expect(btf.info().size).toBe(b.bytes().length)
    } finally {
      btf.close()
    }
  })

  test('Btf.fromFd: a dup of a loaded BTF is the same object; a map fd is a TypeError (and closed); a closed Fd is EBADF', async () => {
    using btf = await Btf.load(btfForMap('u32', 'u64').bytes)
    using same = Btf.fromFd(btf.fd.dup())
    expect(same.id).toBe(btf.id)
    expect(same.fd.fd).not.toBe(btf.fd.fd)
    const map = new Fd(native.mapCreate({ mapType: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 1 }), 'map')
    expect(() => Btf.fromFd(map)).toThrow(/Btf.fromFd: fd \d+ is not a BTF object/)
    expect(map.closed).toBe(true)
    const closed = btf.fd.dup()
    closed.close()
    expect(() => Btf.fromFd(closed)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    expect(() => Btf.fromFd(btf.fd.fd as unknown as Fd)).toThrow(TypeError)
  })

  test('a bad blob is refused with the kernel BTF log', async () => {
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    b.struct('bad', [{ name: 'not an identifier', type: int }])
    const err = await Btf.load(b.bytes()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VerifierError)
    expect(err).toBeInstanceOf(BpfError)
    expect((err as VerifierError).log.join('\n')).toMatch(/Invalid name/)
  })
})
