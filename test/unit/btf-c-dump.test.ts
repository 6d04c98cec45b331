// btfToC: the C it writes is checked by a C compiler (cc -fsyntax-only) with
// _Static_asserts of every size and offset, for BTF made here with every
// shape, for a fixture object's BTF and for the running kernel's vmlinux; and
// its set of type names is bpftool's.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { btfToC } from '../../lib/btf/c-dump.js'
import { CollectionSpec } from '../../lib/collection/index.js'
import { bpftool } from '../kernel/helpers/bpftool.js'

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cdump-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const noCompiler = spawnSync('cc', ['--version'], { stdio: 'ignore' }).error ? 'no C compiler (cc) installed' : undefined

/** Compiles `c` with the system C compiler; its diagnostics, '' when it compiled cleanly. Skips the test without cc. */
function compile(ctx: { skip(note?: string): never }, c: string, name: string): string {
  if (noCompiler) ctx.skip(noCompiler)
  const file = join(dir, `${name}.c`)
  writeFileSync(file, c)
  const r = spawnSync('cc', ['-fsyntax-only', '-std=gnu11', '-Werror', '-Wno-pedantic', file], { encoding: 'utf8' })
  if (r.error) throw r.error
  return r.status === 0 ? '' : r.stderr
}

// The type names a C header declares: struct/union/enum tags with bodies and typedef names.
function declaredNames(c: string): Set<string> {
  const names = new Set<string>()
  for (const m of c.matchAll(/^(struct|union|enum) (\w+) \{/gm)) names.add(`${m[1]} ${m[2]}`)
  for (const m of c.matchAll(/^typedef .*?(\w+)(\[\d+\])*(\)\(.*\))?;$/gm)) names.add(`typedef ${m[1]}`)
  // The end of a typedef of an anonymous struct, union or enum written over several lines.
  for (const m of c.matchAll(/^\}( __attribute__\(\(\w+\)\))? (\w+);$/gm)) names.add(`typedef ${m[2]}`)
  return names
}

function everyShape(): BtfReader {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const uint = b.int('unsigned int', 4)
  const u8 = b.int('unsigned char', 1)
  const u64 = b.int('long long unsigned int', 8)
  const char = b.int('char', 1, { char: true })
  // A pointer cycle: a and b point at each other, b holds a by value.
  const fwdA = b.fwd('node_a')
  const pa = b.ptr(fwdA)
  const nodeB = b.struct('node_b', [{ name: 'peer', type: pa }, { name: 'v', type: int }])
  b.struct('node_a', [{ name: 'b', type: nodeB }, { name: 'next', type: b.ptr(nodeB) }])
  // Bitfields, an anonymous union and struct inside, a const pointer to const char, arrays of arrays.
  const anonUnion = b.union('', [{ name: 'as_int', type: int }, { name: 'as_bytes', type: b.array(u8, 4) }])
  const anonStruct = b.struct('', [{ name: 'x', type: int }, { name: 'y', type: int }])
  const color = b.enum('color', [['RED', 0], ['GREEN', 1], ['BLUE', -1]])
  const big = b.enum64('big', [['BIG_ONE', 1n], ['BIG_TOP', 0xffffffffffffffffn]])
  const small = b.enum('small', [['SMALL_A', 1], ['SMALL_B', 200]], { size: 1 })
  // An enum without enumerators is a forward-declared one (Linux 5.10's BTF has such).
  const fwdEnum = b.enum('later', [])
  const handler = b.ptr(b.funcProto(b.ptr(nodeB), [{ type: int }, { type: b.ptr(b.const(char)) }, { type: fwdEnum }, { type: 0 }]))
  b.struct('shapes', [
    { name: 'flags', type: uint, bitOffset: 0, bitSize: 3 },
    { name: 'mode', type: uint, bitOffset: 3, bitSize: 5 },
    { name: 'c', type: color, bitOffset: 8, bitSize: 4 },
    { name: '', type: anonUnion, bitOffset: 32 },
    { name: '', type: anonStruct, bitOffset: 64 },
    { name: 'name', type: b.const(b.ptr(b.const(char))), bitOffset: 128 },
    { name: 'grid', type: b.array(b.array(int, 3), 2), bitOffset: 192 },
    { name: 'on_event', type: handler, bitOffset: 384 },
    { name: 'table', type: b.ptr(b.array(handler, 4)), bitOffset: 448 },
    { name: 'big', type: big, bitOffset: 512 },
    { name: 'small', type: small, bitOffset: 576 },
    // A hole the compiler would not leave: the member sits at byte 128.
    { name: 'aligned', type: u64, bitOffset: 1024 },
    { name: 'v', type: b.volatile(int), bitOffset: 1088 },
    { name: 'r', type: b.restrict(b.ptr(int)), bitOffset: 1152 },
  ], { size: 192 })
  b.struct('tight', [{ name: 'a', type: u8 }, { name: 'b', type: u64, offset: 1 }], { size: 9 })
  b.union('wide', [{ name: 'a', type: int }, { name: 'b', type: u8 }], { size: 16 })
  b.typedef('node_b_t', nodeB)
  b.typedef('handler_fn', handler)
  b.typedef('row_t', b.array(int, 8))
  b.typedef('point_t', b.struct('', [{ name: 'x', type: int }, { name: 'y', type: int }]))
  b.enum('', [['LONE_A', 1], ['LONE_B', 2]])
  // Two different structs with one name: the second becomes dup___2.
  b.struct('dup', [{ name: 'a', type: int }])
  b.struct('dup', [{ name: 'a', type: u64 }])
  return new BtfReader(b.bytes())
}

describe('btfToC', () => {
  test('every shape compiles with its sizes and offsets, declared before use', (ctx) => {
    const c = btfToC(everyShape(), { layoutAsserts: true })
    expect(c).toContain('\tconst char * const name;')
    expect(c).toContain('\tunsigned int flags: 3;')
    expect(c).toContain('\tstruct node_b * (*on_event)(int, const char *, enum later, ...);')
    expect(c).toContain('\nenum later;\n')
    expect(c).toContain('\tint grid[2][3];')
    expect(c).toContain('BIG_TOP = 18446744073709551615ULL,')
    expect(c).toContain('} __attribute__((packed));')
    expect(c).toContain('struct dup___2 {')
    expect(c).toContain('typedef int row_t[8];')
    expect(c).toMatch(/^enum \{\n\tLONE_A = 1,\n\tLONE_B = 2,\n\};$/m)
    // node_b points at node_a before node_a is defined: declared first.
    expect(c.indexOf('struct node_a;')).toBeLessThan(c.indexOf('struct node_b {'))
    expect(c.indexOf('struct node_b {')).toBeLessThan(c.indexOf('struct node_a {'))
    expect(compile(ctx, c, 'shapes')).toBe('')
  })

  test('a layout the output got wrong is caught by the compiler (the check can fail)', (ctx) => {
    const c = btfToC(everyShape(), { layoutAsserts: true }).replace('_Static_assert(sizeof(struct tight) == 9', '_Static_assert(sizeof(struct tight) == 16')
    expect(compile(ctx, c, 'wrong')).toMatch(/size of struct tight/)
  })

  test('bad arguments are TypeErrors', () => {
    expect(() => btfToC({} as never)).toThrow(TypeError)
    expect(() => btfToC(everyShape(), { nope: true } as never)).toThrow(/unknown option 'nope'/)
  })

  test('a fixture object\'s BTF compiles, with the type names bpftool writes', (ctx) => {
    const file = join(__dirname, '../fixtures/bpf/maps.bpf.o')
    const btf = CollectionSpec.fromFile(file).btf!
    const c = btfToC(btf, { layoutAsserts: true })
    expect(compile(ctx, c, 'maps')).toBe('')
    expect(c).toContain('struct pair {')
    const tool = bpftool(ctx)
    expect(declaredNames(c)).toEqual(declaredNames(tool.text('btf', 'dump', 'file', file, 'format', 'c')))
  })

  test('the running kernel\'s vmlinux BTF compiles with every size and offset, with bpftool\'s type names', (ctx) => {
    if (!existsSync('/sys/kernel/btf/vmlinux')) ctx.skip('this kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)')
    const c = btfToC(BtfReader.fromFile(), { layoutAsserts: true })
    expect(compile(ctx, c, 'vmlinux')).toBe('')
    bpftool(ctx)
    const theirs = spawnSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux', 'format', 'c'], { encoding: 'utf8', maxBuffer: 1 << 30 })
    expect(theirs.status).toBe(0)
    expect(declaredNames(c)).toEqual(declaredNames(theirs.stdout))
  }, 120_000)
})
