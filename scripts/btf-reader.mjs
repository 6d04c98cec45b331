// A small reader for the kernel's BTF format (include/uapi/linux/btf.h), enough
// for the generators in this folder: types, members, enums. It reads raw BTF as
// found in /sys/kernel/btf/vmlinux.
import { readFileSync } from 'node:fs'

export const KIND = {
  INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8,
  VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14,
  DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19,
}

export function readBtf(path = '/sys/kernel/btf/vmlinux') {
  return parseBtf(readFileSync(path))
}

export function parseBtf(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  if (dv.getUint16(0, true) !== 0xeb9f) throw new Error('not little-endian BTF (bad magic)')
  const hdrLen = dv.getUint32(4, true)
  const typeOff = hdrLen + dv.getUint32(8, true)
  const typeLen = dv.getUint32(12, true)
  const strOff = hdrLen + dv.getUint32(16, true)
  const strLen = dv.getUint32(20, true)
  const str = (off) => {
    if (off >= strLen) throw new Error(`BTF string offset ${off} out of range`)
    const start = strOff + off
    let end = start
    while (buf[end] !== 0) end++
    return buf.toString('latin1', start, end)
  }
  const types = [{ id: 0, kind: 0, name: '', size: 0 }] // id 0 is void
  let p = typeOff
  const end = typeOff + typeLen
  while (p < end) {
    const nameOff = dv.getUint32(p, true)
    const info = dv.getUint32(p + 4, true)
    const sizeOrType = dv.getUint32(p + 8, true)
    p += 12
    const vlen = info & 0xffff
    const kind = (info >>> 24) & 0x1f
    const kindFlag = info >>> 31 === 1
    const t = { id: types.length, kind, name: nameOff ? str(nameOff) : '', kindFlag }
    switch (kind) {
      case KIND.INT:
        t.size = sizeOrType
        t.encoding = dv.getUint32(p, true)
        p += 4
        break
      case KIND.ARRAY:
        t.type = dv.getUint32(p, true)
        t.indexType = dv.getUint32(p + 4, true)
        t.nelems = dv.getUint32(p + 8, true)
        p += 12
        break
      case KIND.STRUCT:
      case KIND.UNION:
        t.size = sizeOrType
        t.members = []
        for (let i = 0; i < vlen; i++, p += 12) {
          const off = dv.getUint32(p + 8, true)
          t.members.push({
            name: dv.getUint32(p, true) ? str(dv.getUint32(p, true)) : '',
            type: dv.getUint32(p + 4, true),
            bitOffset: kindFlag ? off & 0xffffff : off,
            bitSize: kindFlag ? off >>> 24 : 0,
          })
        }
        break
      case KIND.ENUM:
        t.size = sizeOrType
        t.values = []
        for (let i = 0; i < vlen; i++, p += 8) {
          const v = kindFlag ? dv.getInt32(p + 4, true) : dv.getUint32(p + 4, true)
          t.values.push({ name: str(dv.getUint32(p, true)), value: BigInt(v) })
        }
        break
      case KIND.ENUM64:
        t.size = sizeOrType
        t.values = []
        for (let i = 0; i < vlen; i++, p += 12) {
          const v = (BigInt(dv.getUint32(p + 8, true)) << 32n) | BigInt(dv.getUint32(p + 4, true))
          t.values.push({ name: str(dv.getUint32(p, true)), value: kindFlag ? BigInt.asIntN(64, v) : v })
        }
        break
      case KIND.FUNC_PROTO:
        t.type = sizeOrType
        p += 8 * vlen
        break
      case KIND.VAR:
        t.type = sizeOrType
        p += 4
        break
      case KIND.DATASEC:
        t.size = sizeOrType
        p += 12 * vlen
        break
      case KIND.DECL_TAG:
        t.type = sizeOrType
        p += 4
        break
      case KIND.FLOAT:
        t.size = sizeOrType
        break
      case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST:
      case KIND.RESTRICT: case KIND.FUNC: case KIND.TYPE_TAG:
        t.type = sizeOrType
        break
      default:
        throw new Error(`unknown BTF kind ${kind} at type ${t.id}`)
    }
    types.push(t)
  }
  return new BtfTypes(types)
}

export class BtfTypes {
  constructor(types) {
    this.types = types
    this.byName = new Map()
    for (const t of types) {
      if (!t.name) continue
      const key = `${t.kind}:${t.name}`
      if (!this.byName.has(key)) this.byName.set(key, t)
    }
  }
  get(id) { return this.types[id] }
  find(kind, name) {
    const t = this.byName.get(`${kind}:${name}`)
    if (!t) throw new Error(`BTF has no ${Object.keys(KIND).find((k) => KIND[k] === kind)} ${name}`)
    return t
  }
  // Follows typedefs and qualifiers to the type that has a size.
  resolve(id) {
    let t = this.types[id]
    while ([KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG].includes(t.kind)) t = this.types[t.type]
    return t
  }
  sizeof(id) {
    const t = this.resolve(id)
    if (t.kind === KIND.ARRAY) return t.nelems * this.sizeof(t.type)
    if (t.kind === KIND.PTR) return 8
    return t.size
  }
  // Every enumerator of every enum (named or anonymous) whose name starts with prefix.
  enumeratorsWithPrefix(prefix) {
    const out = new Map()
    for (const t of this.types) {
      if (t.kind !== KIND.ENUM && t.kind !== KIND.ENUM64) continue
      for (const v of t.values) if (v.name.startsWith(prefix) && !out.has(v.name)) out.set(v.name, v.value)
    }
    return out
  }
}
