// `bpfkit map`, through the real binary, on maps this test creates: keys and
// values through BTF (JSON) and as hex, per-CPU values, update flags, pins on
// a private bpffs; --json compared with bpftool's; usage errors exit 2,
// failures exit 1, and a refused command leaves the map as it was.
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, Btf, BtfBuilder } from '../../lib/index.js'
import { privateBpffs } from './helpers/scratch.js'
import { bpftool } from './helpers/bpftool.js'
import { bpfkit, bpfkitJson as json, bpfkitOut as ok } from './helpers/cli-binary.js'



// Unique per run, so names never match another process's maps.
const tag = (process.pid % 100000).toString(36)

/** A hash map whose value is a struct with BTF: { u32 count; u64 bytes; char comm[8]; enum color c; }. */
async function typedMap(name: string) {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const u64 = b.int('long long unsigned int', 8)
  const char = b.int('char', 1, { char: true })
  const color = b.enum('color', [['RED', 0], ['GREEN', 1], ['BLUE', 2]])
  const value = b.struct('stats', [{ name: 'count', type: u32 }, { name: 'c', type: color }, { name: 'bytes', type: u64 }, { name: 'comm', type: b.array(char, 8) }])
  const btf = await Btf.load(b.bytes())
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 24, maxEntries: 16, name, btf: { btf, keyTypeId: u32, valueTypeId: value } })
  return { map, [Symbol.dispose]() { map.close(); btf.close() } }
}

const u32le = (n: number) => new Uint8Array(new Uint32Array([n]).buffer)

describe('bpfkit map, keys and values through BTF', () => {
  test('update takes JSON, lookup and dump print it, and bpftool reads the same', async (ctx) => {
    using t = await typedMap(`cmt_${tag}`)
    const id = String(t.map.id)
    ok('map', 'update', `cmt_${tag}`, '7', '{"count": 3, "c": "GREEN", "bytes": 18446744073709551615, "comm": "bash"}')
    const raw = t.map.lookup(u32le(7))!
    const view = new DataView(raw.buffer)
    expect([view.getUint32(0, true), view.getUint32(4, true), view.getBigUint64(8, true)]).toEqual([3, 1, 0xffffffffffffffffn])
    expect(Buffer.from(raw.subarray(16, 20)).toString()).toBe('bash')
    const formatted = { key: 7, value: { count: 3, c: 'GREEN', bytes: 18446744073709551615n, comm: 'bash' } }
    const got = json('map', 'lookup', id, '7')
    expect(got.formatted).toEqual({ ...formatted, value: { ...formatted.value, bytes: 18446744073709552000 } })
    // The 64-bit value is printed exactly, as a number, not a rounded double.
    expect(ok('map', 'lookup', id, '7', '--json')).toContain('"bytes": 18446744073709551615')
    expect(ok('map', 'dump', id)).toBe('key: 7  value: {"count":3,"c":"GREEN","bytes":18446744073709551615,"comm":"bash"}\nFound 1 element\n')
    const dump = json('map', 'dump', id)
    expect(dump).toEqual([got])
    // --hex reads the same entry as bytes.
    expect(ok('map', 'lookup', id, '07 00 00 00', '--hex')).toMatch(/^key: 07 00 00 00  value: 03 00 00 00 01 00 00 00 ff ff ff ff ff ff ff ff 62 61 73 68 00 00 00 00\n$/)
    const tool = bpftool(ctx)
    // The hex bytes and the BTF-formatted key and value alike.
    expect(dump).toEqual(tool.json('map', 'dump', 'id', id))
    expect(got).toEqual(tool.json('map', 'lookup', 'id', id, 'key', '7', '0', '0', '0'))
  })

  test('update flags: --noexist refuses an existing key, --exist a missing one; the map is unchanged', async () => {
    using t = await typedMap(`cmf_${tag}`)
    const id = String(t.map.id)
    ok('map', 'update', id, '1', '{"count": 1, "c": "RED", "bytes": 1, "comm": "a"}', '--noexist')
    const before = t.map.lookup(u32le(1))
    const again = bpfkit('map', 'update', id, '1', '{"count": 2, "c": "RED", "bytes": 2, "comm": "b"}', '--noexist')
    expect(again.status).toBe(1)
    expect(again.stderr).toMatch(/EEXIST/)
    const missing = bpfkit('map', 'update', id, '2', '{"count": 2, "c": "RED", "bytes": 2, "comm": "b"}', '--exist')
    expect(missing.status).toBe(1)
    expect(missing.stderr).toMatch(/ENOENT/)
    ok('map', 'update', id, '1', '{"count": 9, "c": "BLUE", "bytes": 9, "comm": "z"}', '--exist')
    expect(json('map', 'lookup', id, '1').formatted.value).toEqual({ count: 9, c: 'BLUE', bytes: 9, comm: 'z' })
    expect(before).not.toEqual(t.map.lookup(u32le(1)))
    const both = bpfkit('map', 'update', id, '1', '{}', '--exist', '--noexist')
    expect(both.status).toBe(2)
    expect(both.stderr).toMatch(/contradict/)
  })

  test('values that do not fit the BTF type are usage errors that leave the map unchanged', async () => {
    using t = await typedMap(`cmb_${tag}`)
    const id = String(t.map.id)
    ok('map', 'update', id, '1', '{"count": 1, "c": "RED", "bytes": 1, "comm": "a"}')
    const before = t.map.lookup(u32le(1))
    for (const [value, why] of [
      ['{"count": 1, "c": "PURPLE", "bytes": 1, "comm": "a"}', /no enumerator 'PURPLE'/],
      ['{"count": 1, "c": "RED", "comm": "a"}', /missing field 'bytes'/],
      ['{"count": 4294967296, "c": "RED", "bytes": 1, "comm": "a"}', /out of range/],
      ['{"count": 1, "c": "RED", "bytes": 1, "comm": "much too long"}', /bytes\[8\]/],
      ['{not json', /not JSON/],
    ] as const) {
      const r = bpfkit('map', 'update', id, '1', value)
      expect(r.status, value).toBe(2)
      expect(r.stderr).toMatch(why)
      expect(r.stderr).toContain('usage: bpfkit map update')
    }
    expect(t.map.lookup(u32le(1))).toEqual(before)
  })
})

describe('bpfkit map, hex keys and values', () => {
  test('hex in bpftool\'s forms; wrong sizes are usage errors; dump --json is bpftool\'s', (ctx) => {
    using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: `cmh_${tag}` })
    const id = String(m.id)
    ok('map', 'update', id, '01 00 00 00', '0x02 0x00 0x00 0x00 0x00 0x00 0x00 0x01')
    ok('map', 'update', id, '0x02000000', '0304050607080900')
    ok('map', 'update', id, '3 0 0 0', '1 2 3 4 5 6 7 8')
    expect(m.lookup(u32le(2))).toEqual(Uint8Array.from([3, 4, 5, 6, 7, 8, 9, 0]))
    for (const [key, value, why] of [
      ['01 00 00', '00 00 00 00 00 00 00 00', /key is 4 bytes, got 3/],
      ['01 00 00 00', '00 00', /value is 8 bytes, got 2/],
      ['zz 00 00 00', '00 00 00 00 00 00 00 00', /'zz' is not hex bytes/],
      ['010', '00 00 00 00 00 00 00 00', /'010' is not hex bytes/],
    ] as const) {
      const r = bpfkit('map', 'update', id, key, value)
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(why)
    }
    expect([...m.keys()].length).toBe(3)
    expect(ok('map', 'lookup', id, '01000000')).toBe('key: 01 00 00 00  value: 02 00 00 00 00 00 00 01\n')
    const miss = bpfkit('map', 'lookup', id, '09 00 00 00')
    expect(miss.status).toBe(1)
    expect(miss.stderr).toMatch(/no entry for key 09 00 00 00/)
    ok('map', 'delete', id, '03 00 00 00')
    expect(bpfkit('map', 'delete', id, '03 00 00 00').status).toBe(1)
    const dump = json('map', 'dump', id)
    expect(dump).toHaveLength(2)
    const tool = bpftool(ctx)
    const sort = (a: any[]) => [...a].sort((x, y) => x.key.join().localeCompare(y.key.join()))
    expect(sort(dump)).toEqual(sort(tool.json('map', 'dump', 'id', id)))
  })

  test('per-CPU values: update sets every CPU, dump shows each, as bpftool does', (ctx) => {
    using m = BpfMap.create({ type: 'percpu_array', keySize: 4, valueSize: 4, maxEntries: 2, name: `cmp_${tag}` })
    const id = String(m.id)
    ok('map', 'update', id, '01 00 00 00', '2a 00 00 00')
    const dump = json('map', 'dump', id)
    expect(dump).toHaveLength(2)
    expect(dump[1].values.length).toBeGreaterThan(0)
    for (const v of dump[1].values) expect(v.value).toEqual(['0x2a', '0x00', '0x00', '0x00'])
    expect(ok('map', 'lookup', id, '01 00 00 00')).toMatch(/^key: 01 00 00 00\nvalue \(CPU 00\): 2a 00 00 00\n/)
    // With BTF, each CPU's value decoded too.
    using typed = BpfMap.create({ type: 'percpu_hash', key: 'u32', value: { struct: [['hits', 'u64'], ['misses', 'u32']] }, btf: true, maxEntries: 2, name: `cmpt_${tag}` })
    ok('map', 'update', String(typed.id), '5', '{"hits": 7, "misses": 1}')
    const typedDump = json('map', 'dump', String(typed.id))
    expect(typedDump[0].formatted.key).toBe(5)
    for (const v of typedDump[0].formatted.values) expect(v.value).toEqual({ hits: 7, misses: 1 })
    const tool = bpftool(ctx)
    expect(dump).toEqual(tool.json('map', 'dump', 'id', id))
    expect(typedDump).toEqual(tool.json('map', 'dump', 'id', String(typed.id)))
  })

  test('a big map is dumped whole, without progress on a pipe', () => {
    using m = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 5000, name: `cmbig_${tag}` })
    m.updateBatch(Array.from({ length: 5000 }, (_, i) => [i, i * 2] as [number, number]))
    const r = bpfkit('map', 'dump', String(m.id), '--json')
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
    expect(JSON.parse(r.stdout)).toHaveLength(5000)
  })
})

describe('bpfkit map show / list / pin', () => {
  test('show by ID, name and pin; list has it; bpftool shows the same', (ctx) => {
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 16, maxEntries: 3, name: `cms_${tag}` })
    using fs = privateBpffs()
    const id = m.id
    const shown = json('map', 'show', String(id))
    expect(shown).toMatchObject({ id, type: 'array', name: `cms_${tag}`, flags: 0, bytes_key: 4, bytes_value: 16, max_entries: 3, frozen: 0 })
    expect(json('map', 'show', `cms_${tag}`)).toEqual(shown)
    const pin = join(fs.path, 'm')
    expect(ok('map', 'pin', `cms_${tag}`, pin)).toBe(`pinned map ${id} at ${pin}\n`)
    expect(json('map', 'show', pin)).toEqual(shown)
    expect(json('map', 'list')).toContainEqual(shown)
    expect(ok('map', 'show', String(id))).toMatch(new RegExp(`^${id}: array  name cms_${tag}  flags 0x0\n\tkey 4B  value 16B  max_entries 3  memlock \\d+B\n$`))
    const tool = bpftool(ctx)
    expect(tool.json('map', 'show', 'id', String(id))).toMatchObject(shown)
  })

  test('usage errors exit 2 with the command\'s usage; unknown maps exit 1', () => {
    for (const args of [['map'], ['map', 'frob'], ['map', 'show'], ['map', 'lookup', '1'], ['map', 'update', '1', '2'], ['map', 'dump', '1', '--bogus']]) {
      const r = bpfkit(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(/usage: bpfkit map/)
    }
    const help = bpfkit('map', 'update', '--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toMatch(/usage: bpfkit map update/)
    const r = bpfkit('map', 'show', `no_such_${tag}`)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/no map named/)
  })

  test('a prog_array is updated with a program named, and reads back its ID', async () => {
    using arr = BpfMap.create({ type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: 2, name: `cma_${tag}` })
    using prog = await BpfProgram.load({ type: 'socket_filter', name: `cmprog_${tag}`, license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] })
    ok('map', 'update', String(arr.id), '01 00 00 00', `cmprog_${tag}`)
    const id = prog.info().id
    const hex = Array.from(new Uint8Array(new Uint32Array([id]).buffer), (b) => b.toString(16).padStart(2, '0')).join(' ')
    expect(ok('map', 'lookup', String(arr.id), '01 00 00 00')).toBe(`key: 01 00 00 00  value: ${hex}\n`)
    const r = bpfkit('map', 'update', String(arr.id), '00 00 00 00', `no_prog_${tag}`)
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/no program named/)
  })

  test('a queue has no keys: lookup is a clear failure', () => {
    using q = BpfMap.create({ type: 'queue', keySize: 0, valueSize: 4, maxEntries: 2, name: `cmq_${tag}` })
    const r = bpfkit('map', 'dump', String(q.id))
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/queue maps have no keys to dump/)
  })
})
