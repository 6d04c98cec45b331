// What libbpf (through bpftool) makes of an object file, to compare with what
// bpfkit's CollectionSpec loads from the same file: the translated ("xlated")
// instructions of every program, as the kernel reports them after
// verification.
//
// `bpftool prog loadall OBJ DIR` pins each program under DIR, and libbpf also
// pins LIBBPF_PIN_BY_NAME maps under /sys/fs/bpf itself. So that neither
// touches the host's bpffs, everything runs in a private mount namespace
// (`unshare --mount`) whose /sys/fs/bpf is a fresh bpffs: when the namespace's
// last process exits, the mount and every pin in it are gone, failure or not,
// and the programs and maps with them. Only the dumps come back, through a
// temporary directory this helper removes.
//
// Programs in SEC("?...") sections are not autoloaded, and bpftool 7.1 then
// fails pinning them ("can't pin program that wasn't loaded"), so loadall
// hands libbpf a copy of the object in which those sections are not
// executable: libbpf skips them (and their relocations) as it skips any data
// section it does not know, and loads exactly the autoload programs, as it
// would have without bpftool's pinning step (see hideOptionalPrograms).
//
// Verified with bpftool 7.1 (libbpf 1.1): pins are named after the C function,
// `prog dump xlated pinned P file F` writes the raw instructions, and
// `-j prog show pinned P` gives the ids of the maps the program uses.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { bpftoolMissing } from './bpftool.js'

/** Why loadall cannot run here (bpftool or unshare missing), or undefined. */
export function loadallMissing(): string | undefined {
  const why = bpftoolMissing()
  if (why !== undefined) return why
  const r = spawnSync('unshare', ['--version'], { stdio: 'ignore' })
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return 'unshare (util-linux) not installed'
  return undefined
}

export interface LoadedProgram {
  /** The kernel's translated instructions, 8 bytes each (ld_imm64 takes two). */
  xlated: Uint8Array
  /** Map id -> the kernel's name of that map (libbpf's spelling, e.g. "globals.rodata", 15 chars at most), for the maps the program uses. */
  mapNames: Map<number, string>
  /** The program's tag (hex, as bpftool prints it): the kernel's hash of the instructions libbpf submitted, map references zeroed. */
  tag: string
  /** The ids of the maps the program holds (prog info map_ids, the kernel's order): those its code uses and those bound to it (BPF_PROG_BIND_MAP). */
  mapIds: number[]
  /** Map id -> what the kernel reports of that map, for every id in mapIds. */
  maps: Map<number, LoadedMap>
}

/** A map as `bpftool -j map show` describes it. */
export interface LoadedMap {
  name: string
  /** The kernel's map type name without prefix, as bpftool spells it: 'array', 'prog_array', ... */
  type: string
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
}

/** bpftool refused the object: its exit status and what it printed (libbpf's and the verifier's messages). */
export class LoadallError extends Error {
  constructor(readonly objPath: string, readonly status: number | null, readonly output: string) {
    super(`bpftool prog loadall ${objPath} failed (status ${status}):\n${output.trim()}`)
    this.name = 'LoadallError'
  }
}

// Runs inside the private mount namespace. $1 object, $2 output dir.
// No `set -e` around loadall: its output is wanted on failure too.
const script = `
set -u
mount -t bpf bpf /sys/fs/bpf || exit 90
pins=/sys/fs/bpf/bpfkit-loadall
mkdir "$pins" || exit 91
bpftool prog loadall "$1" "$pins" 2>&1 || exit 92
for pin in "$pins"/*; do
  [ -e "$pin" ] || continue
  name=\${pin##*/}
  bpftool prog dump xlated pinned "$pin" file "$2/$name.xlated" || exit 93
  bpftool -j prog show pinned "$pin" > "$2/$name.json" || exit 94
  for id in $(sed -n 's/.*"map_ids":\\[\\([0-9,]*\\)\\].*/\\1/p' "$2/$name.json" | tr , ' '); do
    bpftool -j map show id "$id" > "$2/$name.map.$id.json" || exit 95
  done
done
`

/**
 * Loads `objPath` with `bpftool prog loadall` and returns each program (by
 * its pin name, which is the C function name) with its xlated instructions
 * and the names of its maps. Nothing stays loaded or pinned afterwards.
 * Returns an empty map when bpftool is not installed (see `loadallMissing`,
 * or pass the test context to skip with the reason instead). Throws
 * LoadallError when bpftool refuses the object.
 */
export function loadall(objPath: string, ctx?: { skip(note?: string): never }): Map<string, LoadedProgram> {
  const why = loadallMissing()
  if (why !== undefined) {
    if (ctx) ctx.skip(why)
    return new Map()
  }
  const obj = resolve(objPath)
  if (!existsSync(obj)) throw new Error(`loadall: ${obj} does not exist`)
  const out = mkdtempSync(join(tmpdir(), 'bpfkit-loadall-'))
  try {
    const elf = readFileSync(obj)
    const hidden = hideOptionalPrograms(elf)
    // The copy keeps the object's file name: libbpf names the object, and so its .data/.rodata/.bss maps, after it.
    const loaded = hidden.length ? join(mkdtempSync(join(out, 'obj-')), basename(obj)) : obj
    if (hidden.length) writeFileSync(loaded, elf)
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', loaded, out], { encoding: 'utf8' })
    if (r.error) throw r.error
    const output = `${r.stdout}${r.stderr}`
    if (r.status === 92) throw new LoadallError(obj, r.status, output)
    if (r.status !== 0) throw new Error(`loadall ${obj}: step ${r.status ?? r.signal} of the namespace script failed:\n${output.trim()}`)
    const programs = new Map<string, LoadedProgram>()
    for (const file of readdirSync(out).filter((f) => f.endsWith('.xlated')).sort()) {
      const name = file.slice(0, -'.xlated'.length)
      const prog = JSON.parse(readFileSync(join(out, `${name}.json`), 'utf8')) as { tag: string; map_ids?: number[] }
      const mapNames = new Map<number, string>()
      const maps = new Map<number, LoadedMap>()
      for (const m of readdirSync(out).filter((f) => f.startsWith(`${name}.map.`))) {
        const info = JSON.parse(readFileSync(join(out, m), 'utf8')) as {
          id: number; name?: string; type: string; bytes_key: number; bytes_value: number; max_entries: number; flags: number
        }
        mapNames.set(info.id, info.name ?? '')
        maps.set(info.id, {
          name: info.name ?? '', type: info.type, keySize: info.bytes_key, valueSize: info.bytes_value, maxEntries: info.max_entries, flags: info.flags,
        })
      }
      programs.set(name, { xlated: new Uint8Array(readFileSync(join(out, file))), mapNames, tag: prog.tag, mapIds: prog.map_ids ?? [], maps })
    }
    return programs
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

const SHF_EXECINSTR = 0x4n

/**
 * Clears SHF_EXECINSTR, in place, on every section of the ELF64
 * little-endian object `elf` whose name starts with '?' (SEC("?...")
 * programs, which libbpf does not autoload), and returns those names.
 * Throws RangeError for anything but a little-endian ELF64 file.
 */
export function hideOptionalPrograms(elf: Uint8Array): string[] {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  if (elf.length < 64 || v.getUint32(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new RangeError('hideOptionalPrograms: not a little-endian ELF64 object')
  const shoff = Number(v.getBigUint64(0x28, true))
  const shentsize = v.getUint16(0x3a, true)
  const shnum = v.getUint16(0x3c, true)
  const shstrndx = v.getUint16(0x3e, true)
  const header = (i: number) => shoff + i * shentsize
  const strtab = Number(v.getBigUint64(header(shstrndx) + 24, true))
  const nameAt = (off: number) => {
    let end = strtab + off
    while (elf[end] !== 0) end++
    return new TextDecoder().decode(elf.subarray(strtab + off, end))
  }
  const hidden: string[] = []
  for (let i = 1; i < shnum; i++) {
    const name = nameAt(v.getUint32(header(i), true))
    const flags = v.getBigUint64(header(i) + 8, true)
    if (!name.startsWith('?') || (flags & SHF_EXECINSTR) === 0n) continue
    v.setBigUint64(header(i) + 8, flags & ~SHF_EXECINSTR, true)
    hidden.push(name)
  }
  return hidden
}

/** Each program's xlated instruction bytes, by C function name (see `loadall`). */
export function loadallXlated(objPath: string, ctx?: { skip(note?: string): never }): Map<string, Uint8Array> {
  return new Map([...loadall(objPath, ctx)].map(([name, p]) => [name, p.xlated]))
}

// --- making two loads comparable ---

const BPF_LD_IMM64 = 0x18
const BPF_CALL = 0x85
/** ld_imm64 src_reg values that name a map (uapi bpf.h); xlated dumps report maps as FD (1) or VALUE (2), with imm = map id. */
const PSEUDO_MAP = new Map([[1, 'map'], [2, 'map_value'], [5, 'map'], [6, 'map_value']])
const PSEUDO_FUNC = 4
/** The kernel half of the x86_64 / arm64 address space: an ld_imm64 constant up there is an address the kernel put in. */
const KERNEL_HALF = 0xffff_8000_0000_0000n

/**
 * The ids of the maps `bytes` (xlated instructions) refers to through
 * ld_imm64, each once, in order of first appearance: the order in which
 * normaliseXlated numbers them map#0, map#1, ...
 */
export function referencedMapIds(bytes: Uint8Array): number[] {
  if (bytes.length % 8 !== 0) throw new RangeError(`referencedMapIds: ${bytes.length} bytes is not a whole number of 8-byte instructions`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const ids: number[] = []
  for (let at = 0; at + 16 <= bytes.length; at += 8) {
    if (view.getUint8(at) !== BPF_LD_IMM64) continue
    const id = view.getUint32(at + 4, true)
    if (PSEUDO_MAP.has(view.getUint8(at + 1) >> 4) && !ids.includes(id)) ids.push(id)
    at += 8 // the second half is part of this instruction
  }
  return ids
}

export interface NormaliseOptions {
  /** Map id -> name (LoadedProgram.mapNames). Without it, or for ids it lacks, maps are named by order of first appearance: map#0, map#1, ... */
  mapNames?: ReadonlyMap<number, string>
  /**
   * Names a map value reference (map id, offset into the value) for data
   * whose layout is the loader's own choice (the .kconfig map), or returns
   * undefined to leave it as `map_value <name>+<off>`.
   */
  mapValue?: (id: number, offset: number) => string | undefined
}

/**
 * One line per instruction, with everything that differs between two loads of
 * the same program replaced by a stable token:
 * - a map reference (ld_imm64 whose src_reg says map or map value; the kernel
 *   reports the map's id in imm and the value offset in the second imm) becomes
 *   `map <name>` / `map_value <name>+<off>`, the name from `mapNames` or the
 *   map's order of first appearance;
 * - any other ld_imm64 whose value lies in the kernel half (a kernel variable
 *   address the verifier wrote in for a __ksym) becomes `<kaddr>`.
 * A callback reference (ld_imm64 src 4, BPF_PSEUDO_FUNC) is dumped as its
 * jump offset and subprogram number, not an address, and is kept.
 * Helper call immediates are kept: they are offsets of kernel functions from
 * __bpf_call_base, the same for every load on one running kernel, and they say
 * which helper (or inlined map operation) is called.
 * Throws RangeError when `bytes` is not whole instructions or ends inside an ld_imm64.
 */
export function normaliseXlated(bytes: Uint8Array, options: NormaliseOptions = {}): string[] {
  if (bytes.length % 8 !== 0) throw new RangeError(`normaliseXlated: ${bytes.length} bytes is not a whole number of 8-byte instructions`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const order = new Map<number, string>()
  const mapToken = (id: number) => {
    const named = options.mapNames?.get(id)
    if (named !== undefined) return named
    if (!order.has(id)) order.set(id, `map#${order.size}`)
    return order.get(id)!
  }
  const lines: string[] = []
  for (let i = 0; i < bytes.length / 8; i++) {
    const at = i * 8
    const code = view.getUint8(at)
    const dst = view.getUint8(at + 1) & 0xf
    const src = view.getUint8(at + 1) >> 4
    const off = view.getInt16(at + 2, true)
    const imm = view.getInt32(at + 4, true)
    const head = `${i}: op=0x${code.toString(16).padStart(2, '0')} dst=r${dst} src=${src} off=${off}`
    if (code !== BPF_LD_IMM64) {
      lines.push(`${head} imm=${imm}${code === BPF_CALL && src === 0 ? ' (helper)' : ''}`)
      continue
    }
    if (at + 16 > bytes.length) throw new RangeError(`normaliseXlated: ld_imm64 at instruction ${i} has no second half`)
    const imm2 = view.getInt32(at + 12, true)
    const kind = PSEUDO_MAP.get(src)
    let value: string
    if (kind === 'map') value = `map ${mapToken(imm >>> 0)}`
    else if (kind === 'map_value') value = options.mapValue?.(imm >>> 0, imm2 >>> 0) ?? `map_value ${mapToken(imm >>> 0)}+${imm2 >>> 0}`
    // A callback's address: the dump restores the jump to it (imm) and its subprogram number (second imm), both stable.
    else if (src === PSEUDO_FUNC) value = `func ${imm >= 0 ? '+' : ''}${imm} (subprogram ${imm2})`
    else {
      const v = (BigInt(imm2 >>> 0) << 32n) | BigInt(imm >>> 0)
      value = v >= KERNEL_HALF ? '<kaddr>' : `0x${v.toString(16)}`
    }
    lines.push(`${head} ld_imm64 ${value}`)
    i++ // the second half is part of this line
  }
  return lines
}
