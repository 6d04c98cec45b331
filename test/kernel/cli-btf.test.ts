// `bpfkit btf`, through the real binary, on BTF this test loads (and the
// kernel's own): show/list with the maps that use it, dump as raw types and
// as C, each compared with bpftool's output for the same object; the C is
// compiled. Usage errors exit 2, failures exit 1.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BpfMap, Btf, BtfBuilder } from '../../lib/index.js'
import * as features from '../../lib/features/index.js'
import { repoRoot } from './helpers/raw.js'
import { bpftool } from './helpers/bpftool.js'
import { bpfkit, bpfkitJson as json, bpfkitOut as ok } from './helpers/cli-binary.js'

const scratch = mkdtempSync(join(tmpdir(), 'bpfkit-cli-btf-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const theirs = (...args: string[]) => spawnSync('bpftool', args, { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout

const signedEnums = features.supportsBtfKind('enum64')

/** BTF with a struct (bitfields, a pointer to itself), an enum, a typedef and a function prototype; a map uses it. */
async function loaded() {
  const b = new BtfBuilder()
  const u32 = b.int('unsigned int', 4)
  const int = b.int('int', 4, { signed: true })
  const fwd = b.fwd('node')
  // A negative enumerator makes a signed enum (kind_flag), which kernels take from 6.0 on, with enum64.
  const mode = b.enum('mode', [['MODE_OFF', 0], ['MODE_ON', 1], ...(signedEnums ? [['MODE_NEG', -1] as const] : [])])
  const node = b.struct('node', [
    { name: 'next', type: b.ptr(fwd) },
    { name: 'flags', type: u32, bitOffset: 64, bitSize: 3 },
    { name: 'mode', type: mode, bitOffset: 96 },
    { name: 'cb', type: b.ptr(b.funcProto(int, [{ name: 'x', type: int }])) },
  ])
  b.typedef('node_t', node)
  const btf = await Btf.load(b.bytes())
  const map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 24, maxEntries: 1, name: 'cli_btf_map', btf: { btf, keyTypeId: u32, valueTypeId: node } })
  return { btf, map, [Symbol.dispose]() { map.close(); btf.close() } }
}

/**
 * The types of bpftool's `btf dump --json`: the document that starts with
 * {"types":. On Linux 5.10, bpftool 7.1's output began with another JSON
 * value (68 characters long) before it.
 */
function bpftoolTypes(out: string): unknown[] {
  const at = out.indexOf('{"types":')
  if (at < 0) throw new Error(`bpftool btf dump --json wrote no {"types": ...}: ${out.slice(0, 500)}`)
  return JSON.parse(out.slice(at)).types
}

function compiles(c: string): string {
  const file = join(scratch, `t${Date.now()}.c`)
  writeFileSync(file, c)
  const r = spawnSync('cc', ['-fsyntax-only', '-std=gnu11', '-Werror', file], { encoding: 'utf8' })
  return r.status === 0 ? '' : r.stderr
}

describe('bpfkit btf', () => {
  test('show and list name the map that uses it, as bpftool does', async (ctx) => {
    using o = await loaded()
    const id = o.btf.id
    const shown = json('btf', 'show', String(id))
    expect(shown).toEqual({ id, size: o.btf.info().size, prog_ids: [], map_ids: [o.map.id] })
    expect(json('btf', 'list')).toContainEqual(shown)
    expect(ok('btf', 'show', String(id))).toBe(`${id}: name <anon>  size ${shown.size}B\n\tmap_ids ${o.map.id}\n`)
    const tool = bpftool(ctx)
    expect(tool.json('btf', 'show', 'id', String(id))).toMatchObject(shown)
  })

  test('dump prints every type as bpftool does, in text and JSON', async (ctx) => {
    using o = await loaded()
    const id = String(o.btf.id)
    const text = ok('btf', 'dump', id)
    expect(text).toMatch(/\] STRUCT 'node' size=24 vlen=4\n\t'next' type_id=/)
    expect(text).toContain("\t'flags' type_id=1 bits_offset=64 bitfield_size=3\n")
    if (signedEnums) expect(text).toContain("\t'MODE_NEG' val=-1\n")
    const types = json('btf', 'dump', id).types
    expect(types).toHaveLength(o.btf.reader().count)
    const tool = bpftool(ctx)
    expect(text).toBe(theirs('btf', 'dump', 'id', id))
    expect(types).toEqual(bpftoolTypes(tool.text('btf', 'dump', 'id', id, '--json')))
  })

  test('dump --format c writes C that compiles, with bpftool\'s declarations', async (ctx) => {
    using o = await loaded()
    const c = ok('btf', 'dump', String(o.btf.id), '--format', 'c')
    expect(c).toContain('typedef struct node node_t;')
    expect(c).toContain('\tint (*cb)(int x);')
    expect(compiles(c)).toBe('')
    bpftool(ctx)
    expect(c).toBe(theirs('btf', 'dump', 'id', String(o.btf.id), 'format', 'c'))
  })

  test('dump file reads an object\'s .BTF as bpftool does', (ctx) => {
    const file = join(repoRoot, 'test/fixtures/bpf/maps.bpf.o')
    const text = ok('btf', 'dump', 'file', file)
    expect(text).toContain("STRUCT 'pair' size=16 vlen=2")
    bpftool(ctx)
    expect(text).toBe(theirs('btf', 'dump', 'file', file))
  })

  test('the kernel\'s BTF, by name: every type as bpftool prints it', (ctx) => {
    if (!features.supportsKernelBtfIds()) ctx.skip('the kernel\'s BTF has no ID before Linux 5.11')
    const text = ok('btf', 'dump', 'vmlinux')
    const types = json('btf', 'dump', 'vmlinux').types
    expect(types[0]).toMatchObject({ id: 1 })
    bpftool(ctx)
    expect(text).toBe(theirs('btf', 'dump', 'file', '/sys/kernel/btf/vmlinux'))
    // bpftool's JSON sign-extends unsigned 32-bit enumerators past 2^31 (its
    // text does not): those are compared through the text above.
    const big = (t: any) => t.kind === 'ENUM' && t.values.some((v: any) => v.val >= 2 ** 31)
    const tool = bpftoolTypes(theirs('-j', 'btf', 'dump', 'file', '/sys/kernel/btf/vmlinux')) as any[]
    expect(types.filter((t: any) => !big(t))).toEqual(tool.filter((t: any) => !big(t)))
  }, 120_000)

  test('usage errors exit 2; a BTF that is not there exits 1', () => {
    for (const args of [['btf'], ['btf', 'frob'], ['btf', 'dump'], ['btf', 'dump', '1', '--format', 'xml'], ['btf', 'dump', '1', '--format', 'c', '--json'], ['btf', 'dump', 'nope', 'x']]) {
      const r = bpfkit(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(/usage: bpfkit btf/)
    }
    const r = bpfkit('btf', 'show', 'no_such_btf_object')
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/no BTF object named/)
    expect(bpfkit('btf', 'show', '/sys/fs/bpf/x').status).toBe(1)
  })
})
