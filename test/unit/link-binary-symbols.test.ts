// The uprobes' ELF reader (lib/link/binary-symbols.ts) against binaries built
// here with `cc` from test/fixtures/uprobe, compared with what readelf says
// about the same files; then malformed, truncated, 32-bit and foreign inputs,
// each a BinaryError naming the file, never a crash or a hang.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { BinaryError, functionOffset, readBinary, resolveBinaryPath, symbolOffsets } from '../../lib/link/binary-symbols.js'

const src = resolve(__dirname, '..', 'fixtures', 'uprobe')
const haveCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0
const haveReadelf = spawnSync('readelf', ['--version'], { stdio: 'ignore' }).status === 0

let dir = ''
const target = () => join(dir, 'target')
const lib = () => join(dir, 'libuprobetarget.so')

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-binsym-'))
  if (!haveCc) return
  execFileSync('cc', ['-O2', '-shared', '-fPIC', `-Wl,--version-script=${join(src, 'lib.map')}`, '-o', lib(), join(src, 'lib.c')])
  execFileSync('cc', ['-O2', '-DWITH_LIB', '-o', target(), join(src, 'target.c'), `-L${dir}`, '-luprobetarget', '-Wl,-rpath,$ORIGIN'])
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// readelf -Ws: "Num: Value Size Type Bind Vis Ndx Name", per symbol table.
function readelfFunctions(path: string): Array<{ table: string; value: bigint; bind: string; name: string }> {
  const out: Array<{ table: string; value: bigint; bind: string; name: string }> = []
  let table = ''
  for (const line of execFileSync('readelf', ['-Ws', path], { encoding: 'utf8' }).split('\n')) {
    const t = /Symbol table '([^']+)'/.exec(line)
    if (t) table = t[1]
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+FUNC\s+(\w+)\s+\w+\s+(\w+)\s+(\S+)/.exec(line)
    if (m && m[3] !== 'UND') out.push({ table, value: BigInt(`0x${m[1]}`), bind: m[2].toLowerCase(), name: m[4].replace(/ \(\d+\)$/, '') })
  }
  return out
}

// readelf -lW: the PT_LOAD rows (offset, vaddr, filesz).
function readelfLoads(path: string): Array<{ offset: bigint; vaddr: bigint; filesz: bigint }> {
  return execFileSync('readelf', ['-lW', path], { encoding: 'utf8' }).split('\n')
    .map((l) => /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ offset: BigInt(`0x${m[1]}`), vaddr: BigInt(`0x${m[2]}`), filesz: BigInt(`0x${m[3]}`) }))
}

describe('symbols and offsets of binaries built here', () => {
  test('every defined function readelf lists is read, with the same address, binding and table', (ctx) => {
    if (!haveCc || !haveReadelf) ctx.skip('needs cc and readelf')
    for (const path of [target(), lib()]) {
      const img = readBinary(path)
      expect(img.machine).toBe(process.arch === 'arm64' ? 'aarch64' : 'x86_64')
      const ours = img.functions.map((f) => ({
        table: f.table, value: f.address, bind: f.binding,
        name: f.version === undefined || f.table === '.dynsym' ? f.name : `${f.name}@${f.defaultVersion ? '@' : ''}${f.version}`,
      }))
      // readelf prints dynamic symbols with their version appended; compare the bare names there.
      const theirs = readelfFunctions(path).map((r) => ({ ...r, name: r.table === '.dynsym' ? r.name.replace(/@.*$/, '') : r.name }))
      expect(ours.sort(byName)).toEqual(theirs.sort(byName))
    }
  })

  test('a file offset is the address moved by its PT_LOAD segment, as readelf -l lays them out', (ctx) => {
    if (!haveCc || !haveReadelf) ctx.skip('needs cc and readelf')
    const loads = readelfLoads(target())
    const img = readBinary(target())
    for (const name of ['uprobe_target_add', 'uprobe_target_other', 'main', 'uprobe_target_weak', 'uprobe_target_static']) {
      const f = img.functions.find((x) => x.name === name)!
      const seg = loads.find((l) => f.address >= l.vaddr && f.address < l.vaddr + l.filesz)!
      expect(functionOffset(img, name)).toBe(Number(f.address - seg.vaddr + seg.offset))
    }
    // The bytes at the offset are the function's: the same as objdump would show at its address.
    const bytes = readFileSync(target())
    const add = functionOffset(img, 'uprobe_target_add')
    expect(bytes.subarray(add, add + 4).length).toBe(4)
    expect(symbolOffsets(target(), ['uprobe_target_add', 'uprobe_target_other'])).toEqual([add, functionOffset(img, 'uprobe_target_other')])
  })

  test('versioned names: name@@VER and name@VER in .dynsym; a wrong version is not found', (ctx) => {
    if (!haveCc) ctx.skip('needs cc')
    const img = readBinary(lib())
    const mul = img.functions.find((f) => f.table === '.dynsym' && f.name === 'libuprobe_target_mul')!
    expect(mul).toMatchObject({ version: 'UPROBE_1.0', defaultVersion: true, binding: 'global' })
    expect(functionOffset(img, 'libuprobe_target_mul@@UPROBE_1.0')).toBe(mul.offset)
    expect(functionOffset(img, 'libuprobe_target_mul@UPROBE_1.0')).toBe(mul.offset)
    expect(functionOffset(img, 'libuprobe_target_mul')).toBe(mul.offset)
    expect(() => functionOffset(img, 'libuprobe_target_mul@@UPROBE_2.0')).toThrow(/libuprobetarget\.so: function symbol 'libuprobe_target_mul@@UPROBE_2.0' not found/)
  })

  test('a weak function, a local one; a prefix of a name is not the name', (ctx) => {
    if (!haveCc) ctx.skip('needs cc')
    const img = readBinary(target())
    expect(img.functions.find((f) => f.name === 'uprobe_target_weak')?.binding).toBe('weak')
    expect(img.functions.find((f) => f.name === 'uprobe_target_static')?.binding).toBe('local')
    expect(functionOffset(img, 'uprobe_target_weak')).toBeGreaterThan(0)
    expect(() => functionOffset(img, 'uprobe_target')).toThrow(BinaryError)
  })

  test('a missing symbol names the file and symbol; a stripped binary says it is stripped', (ctx) => {
    if (!haveCc) ctx.skip('needs cc')
    const err = (() => {
      try {
        functionOffset(readBinary(target()), 'no_such_function')
      } catch (e) {
        return e as BinaryError
      }
    })()
    expect(err).toBeInstanceOf(BinaryError)
    expect(err).toMatchObject({ code: 'ENOENT', path: target() })
    expect(err?.message).toBe(`${target()}: function symbol 'no_such_function' not found: no function of that name`)
    const stripped = join(dir, 'stripped')
    copyFileSync(target(), stripped)
    execFileSync('strip', [stripped])
    const img = readBinary(stripped)
    expect(img.hasSymtab).toBe(false)
    expect(() => functionOffset(img, 'uprobe_target_add')).toThrow(/stripped.*no \.symtab \(stripped\)/)
    // The library's exported functions survive stripping: they are dynamic symbols.
    const strippedLib = join(dir, 'libstripped.so')
    copyFileSync(lib(), strippedLib)
    execFileSync('strip', [strippedLib])
    expect(functionOffset(readBinary(strippedLib), 'libuprobe_target_mul')).toBe(functionOffset(readBinary(lib()), 'libuprobe_target_mul'))
  })

  test('the node binary and the C library this process runs read without error', () => {
    expect(readBinary(process.execPath).functions.length).toBeGreaterThan(0)
    const libc = resolveBinaryPath('libc.so.6')
    expect(functionOffset(readBinary(libc), 'malloc')).toBeGreaterThan(0)
  })
})

describe('library names resolve as libbpf resolves them', () => {
  test('a path is kept (made absolute); libc.so.6 through ld.so.cache and through our own maps', () => {
    expect(resolveBinaryPath('/bin/true')).toBe('/bin/true')
    expect(resolveBinaryPath('./x/y')).toBe(resolve('x/y'))
    const libc = resolveBinaryPath('libc.so.6')
    expect(libc).toMatch(/\/libc\.so\.6$/)
    expect(readFileSync(resolveBinaryPath('libc.so.6', process.pid)).equals(readFileSync(libc))).toBe(true)
    expect(resolveBinaryPath('libc.so', process.pid)).toMatch(new RegExp(`^/proc/${process.pid}/root/.*libc\\.so\\.6$`))
    expect(resolveBinaryPath('sh')).toMatch(/\/sh$/)
  })

  test('a name nowhere is a BinaryError naming where it looked; bad arguments are TypeErrors', () => {
    expect(() => resolveBinaryPath('libnosuchlib.so.9')).toThrow(/libnosuchlib\.so\.9: not found in \/etc\/ld\.so\.cache and the library directories/)
    expect(() => resolveBinaryPath('no-such-program-here')).toThrow(/not found in PATH/)
    expect(() => resolveBinaryPath('')).toThrow(TypeError)
    expect(() => resolveBinaryPath(7 as never)).toThrow(TypeError)
    expect(() => readBinary('' as never)).toThrow(TypeError)
    expect(() => functionOffset({ path: 'x', machine: 'x86_64', type: 'dyn', functions: [], hasSymtab: true, hasDynsym: true }, '@@V')).toThrow(TypeError)
  })
})

describe('malformed input: a BinaryError naming the file', () => {
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(dir, name)
    writeFileSync(p, bytes)
    return p
  }

  test('missing file, a directory, not an ELF, empty', () => {
    expect(() => readBinary(join(dir, 'nope'))).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => readBinary(dir)).toThrow(/is not a regular file/)
    expect(() => readBinary(write('text', Buffer.from('#!/bin/sh\necho hi\n')))).toThrow(/text: not an ELF file \(no \\x7fELF magic\)/)
    expect(() => readBinary(write('empty', new Uint8Array(0)))).toThrow(/empty: not an ELF file \(0 bytes\)/)
  })

  test('32-bit, big-endian, a relocatable object, another machine', () => {
    const header = (cls: number, data: number, type: number, machine: number) => {
      const b = Buffer.alloc(64)
      b.writeUInt32BE(0x7f454c46, 0)
      b[4] = cls
      b[5] = data
      b[6] = 1
      b.writeUInt16LE(type, 16)
      b.writeUInt16LE(machine, 18)
      return b
    }
    expect(() => readBinary(write('elf32', header(1, 1, 2, 3)))).toThrow(/elf32: is a 32-bit ELF/)
    expect(() => readBinary(write('be', header(2, 2, 2, 62)))).toThrow(/big-endian/)
    expect(() => readBinary(write('rel', header(2, 1, 1, 62)))).toThrow(/not an executable or shared library \(e_type 1: a relocatable object\)/)
    expect(() => readBinary(write('bpf', header(2, 1, 3, 247)))).toThrow(/machine 247/)
    // A header alone, with no tables: read, with nothing in it.
    expect(readBinary(write('bare', header(2, 1, 3, 62))).functions).toEqual([])
  })

  test('every truncation of a real binary is an error or a smaller answer, never a crash', (ctx) => {
    if (!haveCc) ctx.skip('needs cc')
    const bytes = readFileSync(target())
    const cuts = [1, 15, 16, 40, 63, 64, 100, 1000, bytes.length >> 1, bytes.length - 1000, bytes.length - 64, bytes.length - 1]
    let refused = 0
    for (const n of cuts) {
      const p = write('cut', bytes.subarray(0, n))
      try {
        readBinary(p)
      } catch (e) {
        refused++
        expect(e, `cut at ${n}`).toBeInstanceOf(BinaryError)
        expect((e as Error).message.startsWith(p)).toBe(true)
      }
    }
    // The section headers are at the end: every cut loses them.
    expect(refused).toBe(cuts.length)
  })

  test('corrupted header fields and tables: bounded, errors only', (ctx) => {
    if (!haveCc) ctx.skip('needs cc')
    const good = readFileSync(target())
    const shoff = Number(good.readBigUInt64LE(40))
    const fields: Array<[number, number, number]> = [
      [32, 8, 0xffffffff], [40, 8, 0xfffffff0], [54, 2, 12], [56, 2, 0xffff], [58, 2, 3], [60, 2, 0xffff], [60, 2, 0],
    ]
    const cases: Buffer[] = fields.map(([at, size, v]) => {
      const b = Buffer.from(good)
      if (size === 8) b.writeBigUInt64LE(BigInt(v), at)
      else b.writeUInt16LE(v, at)
      return b
    })
    // Every section's offset, size, link and entsize in turn set to nonsense.
    const shnum = good.readUInt16LE(60)
    for (let i = 1; i < shnum; i++) {
      for (const [field, size, v] of [[24, 8, 0x7fffffffn], [32, 8, 0xffffffffffn], [40, 4, 0xffffn], [56, 8, 7n]] as const) {
        const b = Buffer.from(good)
        const at = shoff + i * 64 + field
        if (size === 8) b.writeBigUInt64LE(v, at)
        else b.writeUInt32LE(Number(v), at)
        cases.push(b)
      }
    }
    let refused = 0
    for (const [i, b] of cases.entries()) {
      const p = write(`bad${i}`, b)
      try {
        readBinary(p).functions.forEach((f) => expect(f.offset).toBeLessThanOrEqual(b.length))
      } catch (e) {
        refused++
        expect(e, `case ${i}`).toBeInstanceOf(BinaryError)
      }
    }
    expect(refused).toBeGreaterThan(fields.length)
  })
})

function byName(a: { table: string; name: string; value: bigint }, b: { table: string; name: string; value: bigint }): number {
  return `${a.table} ${a.name} ${a.value}`.localeCompare(`${b.table} ${b.name} ${b.value}`)
}
