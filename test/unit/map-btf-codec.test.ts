// Codecs derived from BTF: the layout the BTF gives, bitfields, enums,
// anonymous members, unions, char arrays; checked byte for byte.
import { describe, expect, it } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { codecFromBtf } from '../../lib/map/btf-codec.js'

function roundTrip(btf: BtfReader, id: number, value: unknown): { bytes: Uint8Array; back: unknown } {
  const c = codecFromBtf(btf, id)
  const bytes = new Uint8Array(c.size)
  const view = new DataView(bytes.buffer)
  c.encode(value, view, 0)
  return { bytes, back: c.decode(view, 0) }
}

describe('codecFromBtf', () => {
  const b = new BtfBuilder()
  const u8 = b.int('unsigned char', 1)
  const u16 = b.int('unsigned short', 2)
  const i32 = b.int('int', 4, { signed: true })
  const u64 = b.int('unsigned long long', 8)
  const bool = b.int('_Bool', 1, { bool: true })
  const state = b.enum('state', [['IDLE', 0], ['BUSY', 1], ['DONE', -1]], { signed: true })
  const flags = b.struct('', [{ name: 'lo', type: u16, bitOffset: 0, bitSize: 3 }, { name: 'neg', type: i32, bitOffset: 3, bitSize: 5 }, { name: 'hi', type: u16, bitOffset: 8, bitSize: 9 }], { size: 4 })
  const addr = b.union('addr', [{ name: 'v4', type: b.int('unsigned int', 4) }, { name: 'raw', type: b.array(u8, 4) }])
  const rec = b.struct('rec', [
    { name: 'id', type: u64 },
    { name: 'state', type: state },
    { name: 'ok', type: bool },
    { name: 'comm', type: b.array(u8, 8), offset: 16 },
    { name: '', type: flags, offset: 24 },
    { name: 'pair', type: b.array(i32, 2), offset: 28 },
    { name: 'ptr', type: b.ptr(u8), offset: 40 },
  ], { size: 48 })
  const btf = new BtfReader(b.bytes())

  it('round-trips a struct with enums, bools, byte arrays, bitfields and an anonymous member', () => {
    const value = { id: 2n ** 63n, state: 'DONE', ok: true, comm: Uint8Array.from(Buffer.from('node\0\0\0\0')), lo: 5, neg: -7, hi: 300, pair: [-1, 2], ptr: 0xffff0000n }
    const { bytes, back } = roundTrip(btf, rec, value)
    expect(back).toEqual(value)
    const v = new DataView(bytes.buffer)
    expect(v.getInt32(8, true)).toBe(-1)                         // the enum, as written
    expect(v.getUint32(24, true)).toBe(5 | ((-7 & 31) << 3) | (300 << 8)) // bitfields packed as C packs them
    expect(v.getInt32(32, true)).toBe(2)
  })

  it('decodes an enum value with no enumerator as its number, and refuses unknown names', () => {
    const c = codecFromBtf(btf, state)
    const view = new DataView(new ArrayBuffer(4))
    view.setInt32(0, 42, true)
    expect(c.decode(view, 0)).toBe(42)
    expect(() => c.encode('NOPE', view, 0)).toThrow(/no enumerator 'NOPE'; it has IDLE, BUSY, DONE/)
  })

  it('refuses values that do not fit, and missing fields', () => {
    expect(() => roundTrip(btf, flags, { lo: 8, neg: 0, hi: 0 })).toThrow(/bitfield lo \(3 bits\) cannot hold 8/)
    expect(() => roundTrip(btf, flags, { lo: 0, neg: -17, hi: 0 })).toThrow(/cannot hold -17/)
    expect(() => roundTrip(btf, rec, { id: 1n })).toThrow(/missing field 'state'/)
    expect(() => roundTrip(btf, u16, 70000)).toThrow(RangeError)
  })

  it('reads a union as every member and writes the member given', () => {
    const { back } = roundTrip(btf, addr, { v4: 0x0100007f })
    expect(back).toEqual({ v4: 0x0100007f, raw: Uint8Array.from([127, 0, 0, 1]) })
  })

  it('refuses types with no value', () => {
    expect(() => codecFromBtf(btf, 0)).toThrow(/void/)
  })
})
