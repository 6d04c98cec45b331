// The function symbols of an ELF64 executable or shared library (x86-64 and
// aarch64, little-endian), and the file offset of each: what a uprobe is
// placed at. The address in a symbol is virtual; the kernel wants an offset
// in the file, found through the loadable segment (PT_LOAD) that maps the
// address (libbpf's elf_sym_offset does the same through the symbol's
// section). The file is read piecewise by position, never whole, so a large
// binary costs only its headers and symbol tables; every offset and count read
// from it is checked against the file's size first, so a malformed or
// truncated file is a BinaryError naming it, never a crash or a hang. This is
// the link layer's own small reader: lib/collection's reads BPF objects and
// sits above this layer.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import { describeValue } from '../sys/options.js'

/** A file that is not a 64-bit little-endian x86-64/aarch64 ELF, is malformed, or lacks the symbol asked for. */
export class BinaryError extends Error {
  /** 'ENOEXEC' for a file that cannot be read as such an ELF; 'ENOENT' for a symbol or library not found. */
  readonly code: 'ENOEXEC' | 'ENOENT'
  readonly path: string

  constructor(path: string, message: string, code: 'ENOEXEC' | 'ENOENT' = 'ENOEXEC') {
    super(`${path}: ${message}`)
    this.name = 'BinaryError'
    this.code = code
    this.path = path
  }
}

export interface BinaryFunction {
  /** The name without a version: 'malloc'. */
  name: string
  /** The symbol version ('GLIBC_2.2.5'), from .gnu.version_d or a 'name@VER' symbol name. */
  version: string | undefined
  /** False for a non-default version (name@VER rather than name@@VER). */
  defaultVersion: boolean
  binding: 'local' | 'global' | 'weak'
  table: '.dynsym' | '.symtab'
  /** The symbol's virtual address (st_value). */
  address: bigint
  size: bigint
  /** Where the function's first instruction is in the file: what a uprobe takes. */
  offset: number
}

export interface BinaryImage {
  path: string
  machine: 'x86_64' | 'aarch64'
  /** ET_EXEC or ET_DYN (shared libraries and position-independent executables). */
  type: 'exec' | 'dyn'
  /** Defined function symbols (STT_FUNC), .dynsym ones first. */
  functions: BinaryFunction[]
  hasSymtab: boolean
  hasDynsym: boolean
}

const ELFCLASS32 = 1
const ELFCLASS64 = 2
const ELFDATA2LSB = 1
const MACHINES: Record<number, BinaryImage['machine']> = { 62: 'x86_64', 183: 'aarch64' }
const PT_LOAD = 1
const SHT_SYMTAB = 2
const SHT_STRTAB = 3
const SHT_DYNSYM = 11
const SHT_GNU_VERDEF = 0x6ffffffd
const SHT_GNU_VERSYM = 0x6fffffff
const STT_FUNC = 2
const SHN_UNDEF = 0
const VERSYM_HIDDEN = 0x8000
const BINDINGS = ['local', 'global', 'weak'] as const

interface Section { index: number; type: number; addr: bigint; offset: number; size: number; link: number; info: number; entsize: number }
interface Segment { vaddr: bigint; offset: number; filesz: bigint }

// Positional reads with every range checked against the file's size.
class ElfFile {
  readonly size: number
  constructor(readonly path: string, readonly fd: number) {
    this.size = fstatSync(fd).size
  }

  fail(message: string): never {
    throw new BinaryError(this.path, message)
  }

  read(offset: number | bigint, length: number | bigint, what: string): Buffer {
    const off = BigInt(offset)
    const len = BigInt(length)
    if (off < 0n || len < 0n || off + len > BigInt(this.size)) this.fail(`${what} (${len} bytes at offset ${off}) is past the end of the file (${this.size} bytes): truncated or malformed`)
    const buf = Buffer.alloc(Number(len))
    let done = 0
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, Number(off) + done)
      if (n === 0) this.fail(`${what}: the file ended early`)
      done += n
    }
    return buf
  }
}

function cString(table: Buffer, at: number): string | undefined {
  if (at >= table.length) return undefined
  const end = table.indexOf(0, at)
  return table.toString('latin1', at, end < 0 ? table.length : end)
}

function readHeader(f: ElfFile) {
  if (f.size < 16) f.fail(`not an ELF file (${f.size} bytes)`)
  const ident = f.read(0, 16, 'ELF identification')
  if (ident.readUInt32BE(0) !== 0x7f454c46) f.fail('not an ELF file (no \\x7fELF magic)')
  if (ident[4] === ELFCLASS32) f.fail('is a 32-bit ELF (ELFCLASS32): only 64-bit executables and libraries are supported')
  if (ident[4] !== ELFCLASS64) f.fail(`unknown ELF class ${ident[4]}`)
  if (ident[5] !== ELFDATA2LSB) f.fail('is a big-endian ELF: only little-endian x86-64 and aarch64 are supported')
  const h = f.read(0, 64, 'ELF header')
  const type = h.readUInt16LE(16)
  if (type !== 2 && type !== 3) f.fail(`is not an executable or shared library (e_type ${type}${type === 1 ? ': a relocatable object' : ''})`)
  const machine = MACHINES[h.readUInt16LE(18)]
  if (machine === undefined) f.fail(`is built for machine ${h.readUInt16LE(18)}: only x86-64 (62) and aarch64 (183) are supported`)
  return {
    type: type === 2 ? 'exec' as const : 'dyn' as const,
    machine,
    phoff: h.readBigUInt64LE(32), shoff: h.readBigUInt64LE(40),
    phentsize: h.readUInt16LE(54), phnum: h.readUInt16LE(56),
    shentsize: h.readUInt16LE(58), shnum: h.readUInt16LE(60),
  }
}

function readSegments(f: ElfFile, h: ReturnType<typeof readHeader>): Segment[] {
  if (h.phnum === 0) return []
  if (h.phentsize !== 56) f.fail(`program header entries are ${h.phentsize} bytes, not 56`)
  const table = f.read(h.phoff, h.phnum * 56, 'program header table')
  const out: Segment[] = []
  for (let i = 0; i < h.phnum; i++) {
    const p = table.subarray(i * 56, i * 56 + 56)
    if (p.readUInt32LE(0) !== PT_LOAD) continue
    const offset = p.readBigUInt64LE(8)
    const filesz = p.readBigUInt64LE(32)
    if (offset + filesz > BigInt(f.size)) f.fail(`loadable segment ${i} (offset ${offset}, ${filesz} bytes) is past the end of the file`)
    out.push({ vaddr: p.readBigUInt64LE(16), offset: Number(offset), filesz })
  }
  return out
}

function readSections(f: ElfFile, h: ReturnType<typeof readHeader>): Section[] {
  if (h.shoff === 0n) return []
  if (h.shentsize !== 64) f.fail(`section header entries are ${h.shentsize} bytes, not 64`)
  // More than 0xff00 sections: the count is in section 0's sh_size (extended numbering).
  let count = h.shnum
  if (count === 0) {
    const s0 = f.read(h.shoff, 64, 'section header 0')
    const n = s0.readBigUInt64LE(32)
    if (n > BigInt(f.size) / 64n) f.fail(`section count ${n} cannot fit in the file`)
    count = Number(n)
  }
  const table = f.read(h.shoff, count * 64, 'section header table')
  const out: Section[] = []
  for (let i = 0; i < count; i++) {
    const s = table.subarray(i * 64, i * 64 + 64)
    const type = s.readUInt32LE(4)
    const offset = s.readBigUInt64LE(24)
    const size = s.readBigUInt64LE(32)
    out.push({
      index: i, type, addr: s.readBigUInt64LE(16),
      // Only sections this reader opens need to be inside the file; others are checked when read.
      offset: offset > BigInt(f.size) ? f.size + 1 : Number(offset),
      size: size > BigInt(f.size) ? f.size + 1 : Number(size),
      link: s.readUInt32LE(40), info: s.readUInt32LE(44), entsize: Number(s.readBigUInt64LE(56) & 0xffffn),
    })
  }
  return out
}

function sectionBytes(f: ElfFile, s: Section, what: string): Buffer {
  return f.read(s.offset, s.size, `${what} (section ${s.index})`)
}

// Version index -> name, from .gnu.version_d (the versions this file defines).
function readVersionNames(f: ElfFile, sections: Section[]): Map<number, string> {
  const names = new Map<number, string>()
  const verdef = sections.find((s) => s.type === SHT_GNU_VERDEF)
  if (verdef === undefined) return names
  const strtab = sections[verdef.link]
  if (strtab === undefined || strtab.type !== SHT_STRTAB) f.fail(`.gnu.version_d (section ${verdef.index}) links to section ${verdef.link}, which is not a string table`)
  const strings = sectionBytes(f, strtab, 'version string table')
  const bytes = sectionBytes(f, verdef, '.gnu.version_d')
  // sh_info entries, each at most once: a vd_next cycle cannot loop.
  let at = 0
  for (let i = 0; i < Math.min(verdef.info, bytes.length / 20); i++) {
    if (at + 20 > bytes.length) f.fail(`.gnu.version_d entry ${i} is past the section's end`)
    const ndx = bytes.readUInt16LE(at + 4)
    const aux = bytes.readUInt32LE(at + 12)
    const next = bytes.readUInt32LE(at + 16)
    if (at + aux + 8 > bytes.length) f.fail(`.gnu.version_d entry ${i}'s name is past the section's end`)
    const name = cString(strings, bytes.readUInt32LE(at + aux))
    if (name !== undefined) names.set(ndx & 0x7fff, name)
    if (next === 0) break
    at += next
  }
  return names
}

function readTable(f: ElfFile, sections: Section[], table: Section, segments: Segment[], versions: Map<number, string>, versym: Buffer | undefined): BinaryFunction[] {
  const tableName = table.type === SHT_DYNSYM ? '.dynsym' : '.symtab'
  if (table.entsize !== 24) f.fail(`${tableName} (section ${table.index}) has ${table.entsize}-byte entries, not 24`)
  const strtab = sections[table.link]
  if (strtab === undefined || strtab.type !== SHT_STRTAB) f.fail(`${tableName} (section ${table.index}) links to section ${table.link}, which is not a string table`)
  const strings = sectionBytes(f, strtab, `${tableName} string table`)
  const bytes = sectionBytes(f, table, tableName)
  const out: BinaryFunction[] = []
  for (let i = 0; i + 24 <= bytes.length; i += 24) {
    const info = bytes[i + 4]
    const shndx = bytes.readUInt16LE(i + 6)
    const address = bytes.readBigUInt64LE(i + 8)
    if ((info & 0xf) !== STT_FUNC || shndx === SHN_UNDEF || address === 0n) continue
    const raw = cString(strings, bytes.readUInt32LE(i))
    if (raw === undefined) f.fail(`${tableName} symbol ${i / 24} has a name offset past its string table`)
    if (raw === '') continue
    let name = raw
    let version: string | undefined
    let defaultVersion = true
    const at = raw.indexOf('@')
    if (at > 0) {
      name = raw.slice(0, at)
      defaultVersion = raw.startsWith('@@', at)
      version = raw.slice(at + (defaultVersion ? 2 : 1))
    } else if (versym !== undefined && (i / 24) * 2 + 2 <= versym.length) {
      const v = versym.readUInt16LE((i / 24) * 2)
      version = versions.get(v & 0x7fff)
      // Index 1 names the file itself (the base definition), not a version.
      if ((v & 0x7fff) === 1) version = undefined
      defaultVersion = (v & VERSYM_HIDDEN) === 0
    }
    const seg = segments.find((s) => address >= s.vaddr && address - s.vaddr < s.filesz)
    if (seg === undefined) f.fail(`function ${raw} at address 0x${address.toString(16)} is in no loadable segment`)
    out.push({
      name, version, defaultVersion, table: tableName, address,
      binding: BINDINGS[info >> 4] ?? 'global', size: bytes.readBigUInt64LE(i + 16),
      offset: Number(address - seg.vaddr) + seg.offset,
    })
  }
  return out
}

/**
 * Reads the function symbols of the ELF64 executable or shared library at
 * `path`. Errors: the fs error (ENOENT, EACCES) for a file that cannot be
 * opened; BinaryError (code ENOEXEC) naming the file for one that is not an
 * ELF, is 32-bit, big-endian, for another machine, or malformed.
 */
export function readBinary(path: string): BinaryImage {
  if (typeof path !== 'string' || path === '') throw new TypeError(`binary must be a non-empty path, got ${describeValue(path)}`)
  if (!statSync(path).isFile()) throw new BinaryError(path, 'is not a regular file')
  const f = new ElfFile(path, openSync(path, 'r'))
  try {
    const h = readHeader(f)
    const segments = readSegments(f, h)
    const sections = readSections(f, h)
    const dynsym = sections.find((s) => s.type === SHT_DYNSYM)
    const symtab = sections.find((s) => s.type === SHT_SYMTAB)
    const versymSection = sections.find((s) => s.type === SHT_GNU_VERSYM)
    const versions = dynsym ? readVersionNames(f, sections) : new Map<number, string>()
    const versym = dynsym && versymSection ? sectionBytes(f, versymSection, '.gnu.version') : undefined
    const functions = [
      ...(dynsym ? readTable(f, sections, dynsym, segments, versions, versym) : []),
      ...(symtab ? readTable(f, sections, symtab, segments, versions, undefined) : []),
    ]
    return { path, machine: h.machine, type: h.type, functions, hasSymtab: symtab !== undefined, hasDynsym: dynsym !== undefined }
  } finally {
    closeSync(f.fd)
  }
}

/**
 * The file offset of function `symbol` in `image`: 'name', or 'name@VER' /
 * 'name@@VER' for one version of it. .dynsym is searched first, then
 * .symtab (as libbpf does); a global symbol wins over a weak one at another
 * address; two global (or two local) ones at different addresses are
 * ambiguous. Errors: BinaryError (code ENOENT) naming the symbol and file,
 * and saying when the file is stripped.
 */
export function functionOffset(image: BinaryImage, symbol: string): number {
  if (typeof symbol !== 'string' || symbol === '' || symbol.startsWith('@')) throw new TypeError(`symbol must be a function name ('name' or 'name@@VERSION'), got ${describeValue(symbol)}`)
  const at = symbol.indexOf('@')
  const name = at < 0 ? symbol : symbol.slice(0, at)
  const version = at < 0 ? undefined : symbol.slice(at).replace(/^@@?/, '')
  for (const table of ['.dynsym', '.symtab'] as const) {
    const found = image.functions.filter((f) => f.table === table && f.name === name && (version === undefined || f.version === version))
    if (found.length === 0) continue
    const strong = found.filter((f) => f.binding !== 'weak')
    const candidates = strong.length > 0 ? strong : found
    const offsets = [...new Set(candidates.map((f) => f.offset))]
    if (offsets.length > 1) {
      throw new BinaryError(image.path, `symbol '${symbol}' is ambiguous in ${table}: ${offsets.length} functions at offsets ${offsets.map((o) => `0x${o.toString(16)}`).join(', ')}; give an offset instead`, 'ENOENT')
    }
    return offsets[0]
  }
  const why = !image.hasSymtab && !image.hasDynsym
    ? 'the file has no symbol tables (stripped)'
    : !image.hasSymtab ? 'the file has no .symtab (stripped): only its dynamic symbols were searched' : 'no function of that name'
  throw new BinaryError(image.path, `function symbol '${symbol}' not found: ${why}`, 'ENOENT')
}

/** Offsets of `symbols` in the binary at `path` (read once); errors as readBinary and functionOffset. */
export function symbolOffsets(path: string, symbols: readonly string[]): number[] {
  const image = readBinary(path)
  return symbols.map((s) => functionOffset(image, s))
}

// ld.so.cache's format since glibc 2.32 (and the second half of older files):
// "glibc-ld.so.cache1.1", then entries of flags, key, value (string offsets
// from the start of the file), osversion and hwcap.
const CACHE_MAGIC = 'glibc-ld.so.cache1.1'
const FLAG_ELF_LIBC6 = 3
const CACHE_ARCH: Record<string, number> = { x64: 0x0300, arm64: 0x0a00 }

function fromLdCache(name: string, cachePath = '/etc/ld.so.cache'): string | undefined {
  let bytes: Buffer
  try {
    bytes = readFileSync(cachePath)
  } catch {
    return undefined
  }
  const base = bytes.indexOf(CACHE_MAGIC)
  if (base < 0 || base + 48 > bytes.length) return undefined
  const count = bytes.readUInt32LE(base + 20)
  const arch = CACHE_ARCH[process.arch]
  for (let i = 0; i < count && base + 48 + i * 24 + 24 <= bytes.length; i++) {
    const e = base + 48 + i * 24
    const flags = bytes.readInt32LE(e)
    if ((flags & 0xff) !== FLAG_ELF_LIBC6 || (arch !== undefined && (flags & 0xff00) !== arch)) continue
    if (cString(bytes, bytes.readUInt32LE(e + 4)) === name) {
      const value = cString(bytes, bytes.readUInt32LE(e + 8))
      if (value !== undefined && existsSync(value)) return value
    }
  }
  return undefined
}

// The library a running process has mapped whose file name is `name` (or
// `name` followed by a version: 'libc.so' finds libc.so.6), through that
// process's root so a pid in another mount namespace resolves too.
function fromProcessMaps(name: string, pid: number): string | undefined {
  let maps: string
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'utf8')
  } catch {
    return undefined
  }
  for (const line of maps.split('\n')) {
    const path = line.split(/\s+/).slice(5).join(' ')
    if (!path.startsWith('/')) continue
    const file = path.slice(path.lastIndexOf('/') + 1)
    if (file === name || file.startsWith(`${name}.`)) return `/proc/${pid}/root${path}`
  }
  return undefined
}

const LIBRARY_DIRS = ['/lib64', '/usr/lib64', '/lib', '/usr/lib', '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu']

/**
 * The path of `binary` as libbpf resolves it for uprobes: a name with a '/'
 * is a path (made absolute); a library name ('libc.so.6') is looked up in
 * the maps of `pid` when given, then in /etc/ld.so.cache, LD_LIBRARY_PATH
 * and the standard library directories; any other name in PATH. Errors:
 * BinaryError (code ENOENT) naming what was searched.
 */
export function resolveBinaryPath(binary: string, pid?: number): string {
  if (typeof binary !== 'string' || binary === '') throw new TypeError(`binary must be a non-empty path or library name, got ${describeValue(binary)}`)
  if (binary.includes('/')) return isAbsolute(binary) ? binary : resolve(binary)
  const isLibrary = binary.includes('.so')
  if (isLibrary) {
    const mapped = pid !== undefined && pid > 0 ? fromProcessMaps(binary, pid) : undefined
    if (mapped !== undefined) return mapped
    const cached = fromLdCache(binary)
    if (cached !== undefined) return cached
  }
  const dirs = isLibrary
    ? [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), ...LIBRARY_DIRS]
    : [...(process.env.PATH ?? '').split(':'), '/usr/bin', '/usr/sbin']
  for (const dir of dirs.filter((d) => d.startsWith('/'))) {
    const candidate = join(dir, binary)
    if (existsSync(candidate)) return candidate
  }
  const where = isLibrary ? `${pid !== undefined ? `the maps of pid ${pid}, ` : ''}/etc/ld.so.cache and the library directories` : 'PATH'
  throw new BinaryError(binary, `not found in ${where}`, 'ENOENT')
}
