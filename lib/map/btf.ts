// BTF for map keys and values, from the same type descriptions the codecs use,
// so that `bpftool map dump` prints typed, named fields instead of hex.
//
//   btfForMap(key: TypeDesc | null, value: TypeDesc)
//     -> { bytes: Uint8Array, keyTypeId: number, valueTypeId: number }
//
//   TypeDesc = 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64'
//            | 'f32' | 'f64'
//            | { bytes: n }                        a byte array: unsigned char[n]
//            | { struct: [[name, TypeDesc], ...] } a C struct, natural alignment
//            | { array: TypeDesc, length: n }      T[n]
//
// Load `bytes` with `Btf.load`, then create the map with btfFd, btfKeyTypeId
// and btfValueTypeId (BpfMap.create's `btf` option). Keyless maps (queue,
// stack, bloom filter) pass key = null and get keyTypeId 0. The layout is the
// codecs' layout (lib/map/codec.ts), so the kernel's size check
// (BTF size == key_size / value_size) holds. Linux 4.18+; 'f32'/'f64' need
// BTF_KIND_FLOAT, Linux 5.13+. Array maps need a 'u32' key, as the kernel
// insists on a 32-bit int key type for them.
import { BtfBuilder } from '../btf/builder.js'
import { checkTypeDesc, codecFor, type TypeDesc } from './codec.js'

export type { TypeDesc } from './codec.js'

export interface MapBtf {
  /** Raw BTF for Btf.load. */
  bytes: Uint8Array
  /** Type id of the key; 0 when the map has no key. */
  keyTypeId: number
  valueTypeId: number
  /** Sizes of the key and value types in bytes, as the map must declare them. */
  keySize: number
  valueSize: number
}

const ints: Record<string, { name: string; size: number; signed: boolean }> = {
  u8: { name: 'unsigned char', size: 1, signed: false },
  u16: { name: 'unsigned short', size: 2, signed: false },
  u32: { name: 'unsigned int', size: 4, signed: false },
  u64: { name: 'unsigned long long', size: 8, signed: false },
  i8: { name: 'signed char', size: 1, signed: true },
  i16: { name: 'short', size: 2, signed: true },
  i32: { name: 'int', size: 4, signed: true },
  i64: { name: 'long long', size: 8, signed: true },
}
const floats: Record<string, { name: string; size: number }> = {
  f32: { name: 'float', size: 4 },
  f64: { name: 'double', size: 8 },
}

/**
 * Adds the BTF types describing `desc` to `b` and returns the top type's id.
 * Equal descriptions share one type. Errors: TypeError/RangeError for a
 * malformed description, before anything is added for it.
 */
export function addTypeDesc(b: BtfBuilder, desc: TypeDesc, memo: Map<string, number> = new Map()): number {
  checkTypeDesc(desc, 'type')
  return add(b, desc, memo)
}

function add(b: BtfBuilder, desc: TypeDesc, memo: Map<string, number>): number {
  const key = JSON.stringify(desc)
  const known = memo.get(key)
  if (known !== undefined) return known
  let id: number
  if (typeof desc === 'string') {
    const f = floats[desc]
    id = f ? b.float(f.name, f.size) : b.int(ints[desc].name, ints[desc].size, { signed: ints[desc].signed })
  } else if ('bytes' in desc) {
    id = b.array(add(b, 'u8', memo), desc.bytes)
  } else if ('array' in desc) {
    id = b.array(add(b, desc.array, memo), desc.length)
  } else {
    id = b.struct('', desc.struct.map(([name, t]) => ({ name, type: add(b, t, memo) })))
  }
  memo.set(key, id)
  return id
}

/**
 * BTF describing a map's key and value. `key` is null for maps without keys.
 * Errors: TypeError/RangeError for a malformed description.
 */
export function btfForMap(key: TypeDesc | null, value: TypeDesc): MapBtf {
  // codecFor checks each description once (a MapSpec's were checked already).
  if (key !== null) codecFor(key, 'key')
  codecFor(value, 'value')
  const b = new BtfBuilder()
  const memo = new Map<string, number>()
  const keyTypeId = key === null ? 0 : add(b, key, memo)
  const valueTypeId = add(b, value, memo)
  return {
    bytes: b.bytes(),
    keyTypeId,
    valueTypeId,
    keySize: keyTypeId === 0 ? 0 : b.sizeOf(keyTypeId),
    valueSize: b.sizeOf(valueTypeId),
  }
}
