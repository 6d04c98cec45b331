// Split BTF in BtfReader: a module's BTF continues vmlinux's type ids and
// string offsets. A hand-made split blob on a BtfBuilder base checks every
// rule exactly; a real /sys/kernel/btf/<module> checks the kernel's own files
// when this host has any.
import { existsSync, readdirSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfKind, BTF_MAGIC } from '../../lib/btf/format.js'
import { BtfReader, essentialName } from '../../lib/btf/reader.js'

// Raw split BTF: `types` are [name, kindAndVlen, sizeOrType, ...extra] word
// lists whose names are offsets: numbers (the base's) or own strings.
function splitBlob(base: BtfReader, types: Array<Array<number | string>>): Uint8Array {
  const own: string[] = []
  const ownOffset = new Map<string, number>()
  let ownLen = 0
  const str = (s: string) => {
    if (!ownOffset.has(s)) {
      ownOffset.set(s, base.stringsLength + ownLen)
      own.push(s)
      ownLen += Buffer.byteLength(s) + 1
    }
    return ownOffset.get(s)!
  }
  const words = types.flatMap((t) => t.map((w) => (typeof w === 'string' ? str(w) : w)))
  const typeLen = words.length * 4
  const out = Buffer.alloc(24 + typeLen + ownLen)
  out.writeUInt16LE(BTF_MAGIC, 0)
  out.writeUInt8(1, 2)
  out.writeUInt32LE(24, 4)
  out.writeUInt32LE(0, 8)
  out.writeUInt32LE(typeLen, 12)
  out.writeUInt32LE(typeLen, 16)
  out.writeUInt32LE(ownLen, 20)
  words.forEach((w, i) => out.writeUInt32LE(w >>> 0, 24 + 4 * i))
  let at = 24 + typeLen
  for (const s of own) at += out.write(s, at) + 1
  return out
}
const info = (kind: number, vlen = 0) => ((kind << 24) | vlen) >>> 0

describe('split BTF on a base', () => {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const baseThing = b.struct('base_thing', [{ name: 'a', type: int }])
  const base = new BtfReader(b.bytes())
  const nameA = b.string('a')
  const nameInt = b.string('int')
  const split = new BtfReader(splitBlob(base, [
    // [3] struct mod_thing { int b; struct base_thing a; } — member 'a' named by a base string
    ['mod_thing', info(BtfKind.STRUCT, 2), 8, 'b', int, 0, nameA, baseThing, 32],
    // [4] a pointer to a base type
    [0, info(BtfKind.PTR), baseThing],
    // [5] typedef mod_thing___v2 -> [3]
    ['mod_thing___v2', info(BtfKind.TYPEDEF), 3],
    // [6] an own int that reuses the base's name "int"
    [nameInt, info(BtfKind.INT), 8, (1 << 24) | 64],
  ]), base)

  test('ids continue after the base; lower ids are the base\'s', () => {
    expect(split.count).toBe(6)
    expect(split.firstId).toBe(3)
    expect(split.base).toBe(base)
    expect(base.firstId).toBe(1)
    expect(split.type(1)).toEqual(base.type(1))
    expect(split.type(3)).toMatchObject({ id: 3, kind: 'STRUCT', name: 'mod_thing', vlen: 2, sizeOrType: 8 })
    expect(() => split.type(7)).toThrow(RangeError)
    expect([...split.types()].map((t) => t.id)).toEqual([1, 2, 3, 4, 5, 6])
  })

  test('string offsets past the base\'s strings are the split\'s own; lower ones the base\'s', () => {
    expect(split.stringsLength).toBeGreaterThan(base.stringsLength)
    expect(split.string(nameA)).toBe('a')
    expect(split.string(base.stringsLength)).toBe('mod_thing')
    expect(split.members(split.type(3))).toEqual([
      { name: 'b', type: int, bitOffset: 0, bitSize: 0 },
      { name: 'a', type: baseThing, bitOffset: 32, bitSize: 0 },
    ])
    expect(() => split.string(split.stringsLength)).toThrow(RangeError)
  })

  test('resolve and sizeof follow ids across the two', () => {
    expect(split.resolve(5).id).toBe(3)
    expect(split.sizeof(5)).toBe(8)
    expect(split.sizeof(4)).toBe(8)
    expect(split.type(4).sizeOrType).toBe(baseThing)
  })

  test('find and findAll see the base and the split; withEssentialName only the split\'s own types', () => {
    expect(split.find('mod_thing', 'STRUCT')).toBe(3)
    expect(split.find('base_thing', 'STRUCT')).toBe(2)
    expect(split.find('int', 'INT')).toBe(1)
    expect(split.findAll('int')).toEqual([1, 6])
    expect(split.findAll('int', 'TYPEDEF')).toEqual([])
    expect(split.withEssentialName('mod_thing')).toEqual([3, 5])
    expect(split.withEssentialName('base_thing')).toEqual([])
    expect(base.withEssentialName('base_thing')).toEqual([2])
    expect(split.withEssentialName('int')).toEqual([6])
  })

  test('a base that is not a BtfReader is a TypeError', () => {
    expect(() => new BtfReader(splitBlob(base, []), {} as BtfReader)).toThrow(TypeError)
  })
})

test('essentialName drops the last ___flavor, as libbpf does', () => {
  expect(essentialName('task_struct___v2')).toBe('task_struct')
  expect(essentialName('a___b___c')).toBe('a___b')
  expect(essentialName('task_struct')).toBe('task_struct')
  expect(essentialName('x____y')).toBe('x____y') // four underscores: no separator
  expect(essentialName('___x')).toBe('___x')
  expect(essentialName('x___')).toBe('x___')
})

describe('a real module BTF from /sys/kernel/btf', () => {
  const dir = '/sys/kernel/btf'
  const modules = existsSync(dir) ? readdirSync(dir).filter((n) => n !== 'vmlinux') : []
  test('parses split on vmlinux: its own types, names and member types resolve', (ctx) => {
    if (!existsSync(`${dir}/vmlinux`)) return ctx.skip('no /sys/kernel/btf/vmlinux (kernel without CONFIG_DEBUG_INFO_BTF)')
    if (modules.length === 0) return ctx.skip('no module BTF in /sys/kernel/btf (no modules with BTF are loaded on this host)')
    const vmlinux = BtfReader.fromFile(`${dir}/vmlinux`)
    const mod = BtfReader.fromFile(`${dir}/${modules[0]}`, vmlinux)
    expect(mod.firstId).toBe(vmlinux.count + 1)
    expect(mod.count).toBeGreaterThanOrEqual(vmlinux.count)
    let named = 0
    for (let id = mod.firstId; id <= mod.count; id++) {
      const t = mod.type(id)
      if (t.kind === 'STRUCT' || t.kind === 'UNION') for (const m of mod.members(t)) mod.type(m.type === 0 ? 1 : m.type)
      if (t.name !== '' && named++ < 50) expect(mod.withEssentialName(essentialName(t.name))).toContain(id)
    }
  })
})
