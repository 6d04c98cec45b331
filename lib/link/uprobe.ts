// uprobes and uretprobes on a function of an ELF executable or shared
// library, for every process that runs it or for one pid: a perf event of the
// uprobe PMU (Linux 4.17+) with the program on it (a perf_event link on 5.15+,
// the ioctl before). Every kernel bpfkit supports (5.10 and later) has the
// PMU, so there is no tracefs uprobe_events fallback. uprobe.multi (6.6+)
// puts one program on many offsets of one file with a single link.
// The symbol becomes a file offset through the binary's own ELF symbols
// (binary-symbols.ts); unlike kprobes, the kernel filters uprobes by pid.
import { statSync } from 'node:fs'
import { haveUprobeMulti, haveUprobes } from '../features/attach-uprobe.js'
import type { FdRef } from '../map/values.js'
import { BpfError, Fd, NotSupportedError, kernel, native } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BinaryError, readBinary, functionOffset, resolveBinaryPath } from './binary-symbols.js'
import { BpfLink } from './link.js'
import { linkPerfEvent, wantsCookie } from './perf-attach.js'
import { pmuConfigBit, pmuType } from './perf-event.js'
import { programOfType, programSection } from './program-ref.js'
import { globPattern } from '../sys/glob.js'

export const UPROBE_PMU = '/sys/bus/event_source/devices/uprobe'

export interface UprobeOptions {
  /** The executable or shared library: a path, or a library name ('libc.so.6') resolved as libbpf does. */
  binary: string
  /** The function ('name', 'name@@VERSION'); `offset` is then added to its start. */
  symbol?: string
  /** A file offset (without `symbol`), or bytes into `symbol`. */
  offset?: number | bigint
  /** Only this process runs the program (default: every process that runs the binary). */
  pid?: number
  /** A uretprobe: run on return. Default: what the program's section says ('uretprobe/...'), else false. */
  retprobe?: boolean
  /** bpf_get_attach_cookie's value (perf_event links, Linux 5.15+). */
  cookie?: number | bigint
  /** Offset in the file of a USDT semaphore the kernel counts up while attached (Linux 4.20+). */
  refCtrOffset?: number | bigint
}

export interface UprobeMultiOptions {
  binary: string
  /** Functions, one probe each (or `offsets`, or `pattern`). */
  symbols?: readonly string[]
  /** Every function whose name matches this glob ('*' and '?', as libbpf's), once per address. */
  pattern?: string
  /** File offsets, one probe each (or `symbols`). */
  offsets?: readonly (number | bigint)[]
  pid?: number
  /** Run on return of each (BPF_F_UPROBE_MULTI_RETURN). Default: from the section ('uretprobe.multi/...'). */
  retprobe?: boolean
  /** bpf_get_attach_cookie's value per probe, parallel to symbols/offsets. */
  cookies?: readonly (number | bigint)[]
  /** USDT semaphore offsets, parallel to symbols/offsets. */
  refCtrOffsets?: readonly (number | bigint)[]
}

function u64(where: string, name: string, v: unknown): bigint {
  if ((typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n && v < 1n << 64n)) return BigInt(v)
  throw new TypeError(`${where}: ${name} must be a non-negative integer, got ${describeValue(v)}`)
}

function checkPid(where: string, pid: unknown): void {
  if (pid !== undefined && (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || pid > 0x7fffffff)) {
    throw new TypeError(`${where}: pid must be a positive integer, got ${describeValue(pid)}`)
  }
}

// The binary as a path, which must be a regular file the kernel can look up.
function binaryPath(where: string, binary: unknown, pid: number | undefined): string {
  if (typeof binary !== 'string' || binary === '') throw new TypeError(`${where}: binary must be a path or library name, got ${describeValue(binary)}`)
  const path = resolveBinaryPath(binary, pid)
  let st
  try {
    st = statSync(path)
  } catch (e) {
    throw Object.assign(new Error(`${where}: cannot open binary ${path}: ${(e as NodeJS.ErrnoException).code}`, { cause: e }), { code: (e as NodeJS.ErrnoException).code, path })
  }
  if (!st.isFile()) throw Object.assign(new Error(`${where}: ${path} is not a regular file`), { code: 'EINVAL', path })
  return path
}

function checkOffsetInFile(where: string, path: string, offset: bigint): void {
  const size = BigInt(statSync(path).size)
  if (offset >= size) throw new RangeError(`${where}: offset 0x${offset.toString(16)} is past the end of ${path} (${size} bytes)`)
}

/**
 * Attaches a kprobe-type program (SEC("uprobe") / SEC("uretprobe")) to a
 * function of an ELF64 executable or shared library: `symbol` (resolved to
 * its file offset from the binary's .dynsym/.symtab, plus `offset`) or a file
 * `offset`. With `pid`, only that process runs it (the kernel filters); else
 * every process mapping the file. `retprobe` (default from the section) runs
 * it on return. Through the uprobe PMU (Linux 4.17+) and a perf_event link
 * (5.15+; before, the program is set on the event by ioctl, and a `cookie`
 * is a NotSupportedError). Needs CAP_PERFMON or CAP_SYS_ADMIN, and CAP_BPF.
 * Errors: TypeError for bad options or a program that is not a kprobe
 * program; an Error naming the file for one missing or not a regular file;
 * BinaryError for a file that is not an ELF64 binary or lacks the symbol;
 * RangeError for an offset past the file's end; NotSupportedError without the
 * uprobe PMU; SyscallError ('perf_event_open': ESRCH for no such pid) or
 * BpfError from the attach. Nothing stays attached or open after a failure.
 */
export function attachUprobe(program: FdRef, options: UprobeOptions): BpfLink {
  const where = 'attachUprobe'
  checkOptions(where, options, ['binary', 'symbol', 'offset', 'pid', 'retprobe', 'cookie', 'refCtrOffset'], {
    required: true, types: { symbol: 'string', retprobe: 'boolean', cookie: ['number', 'bigint'], offset: ['number', 'bigint'], refCtrOffset: ['number', 'bigint'] },
  })
  checkPid(where, options.pid)
  if (options.symbol === undefined && options.offset === undefined) throw new TypeError(`${where}: give a symbol or an offset`)
  const progFd = programOfType(where, program, 'kprobe')
  const path = binaryPath(where, options.binary, options.pid)
  let offset = u64(where, 'offset', options.offset ?? 0)
  if (options.symbol !== undefined) offset += BigInt(functionOffset(readBinary(path), options.symbol))
  checkOffsetInFile(where, path, offset)
  const refCtr = u64(where, 'refCtrOffset', options.refCtrOffset ?? 0)
  if (refCtr >= 1n << 32n) throw new RangeError(`${where}: refCtrOffset must be below 2^32 (the uprobe PMU's config:32-63)`)
  const retprobe = options.retprobe ?? /^\??uretprobe(?:[./]|$)/.test(programSection(program) ?? '')
  haveUprobes()
  wantsCookie(options.cookie)
  const pmu = pmuType('uprobe')
  if (pmu === undefined) throw new NotSupportedError('uprobes (the uprobe PMU)', '4.17')
  let config = retprobe ? 1n << BigInt(pmuConfigBit('uprobe', 'retprobe')) : 0n
  if (refCtr !== 0n) {
    let shift: number
    try {
      shift = pmuConfigBit('uprobe', 'ref_ctr_offset')
    } catch (e) {
      throw new NotSupportedError('uprobe reference counters (ref_ctr_offset)', '4.20', (e as Error).message)
    }
    config |= refCtr << BigInt(shift)
  }
  // pid -1 with cpu 0 is libbpf's "every process": uprobes run BPF on whatever CPU the hit is.
  const perf = new Fd(native.perfEventOpen({
    type: pmu, config, probeName: path, probeOffset: offset, pid: options.pid ?? -1, cpu: options.pid === undefined ? 0 : -1, disabled: true,
  }), 'perf_event')
  return linkPerfEvent({ fd: progFd }, perf, { cookie: options.cookie })
}

// The offsets of the functions whose names a glob matches, each address
// once (a function can have several names, in .dynsym and .symtab).
function matchingOffsets(image: ReturnType<typeof readBinary>, pattern: string): number[] {
  const re = globPattern(pattern)
  const offsets = new Set(image.functions.filter((f) => re.test(f.name)).map((f) => f.offset))
  if (offsets.size === 0) throw new BinaryError(image.path, `no function matches '${pattern}'`, 'ENOENT')
  return [...offsets].sort((a, b) => a - b)
}

/**
 * Attaches a program loaded for uprobe.multi (SEC("uprobe.multi"), expected
 * attach type trace_uprobe_multi) to many functions or offsets of one binary
 * with one link (BPF_TRACE_UPROBE_MULTI, Linux 6.6+), optionally for one pid
 * and on return. Needs CAP_SYS_ADMIN (or CAP_PERFMON and CAP_BPF).
 * Errors: as attachUprobe; RangeError for cookies/refCtrOffsets not parallel
 * to the probes; NotSupportedError before 6.6; BpfError EINVAL naming the
 * likely cause (a program not loaded for uprobe.multi), ESRCH for no such pid.
 */
export function attachUprobeMulti(program: FdRef, options: UprobeMultiOptions): BpfLink {
  const where = 'attachUprobeMulti'
  checkOptions(where, options, ['binary', 'symbols', 'offsets', 'pattern', 'pid', 'retprobe', 'cookies', 'refCtrOffsets'], {
    required: true, types: { retprobe: 'boolean', symbols: 'object', offsets: 'object', pattern: 'string', cookies: 'object', refCtrOffsets: 'object' },
  })
  checkPid(where, options.pid)
  const list = (name: string, v: unknown): readonly unknown[] | undefined => {
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.length === 0) throw new TypeError(`${where}: ${name} must be a non-empty array, got ${describeValue(v)}`)
    return v
  }
  const symbols = list('symbols', options.symbols)
  let given = list('offsets', options.offsets)
  const pattern = options.pattern
  if ([symbols, given, pattern].filter((x) => x !== undefined).length !== 1) throw new TypeError(`${where}: give exactly one of symbols, offsets and pattern`)
  if (pattern === '') throw new TypeError(`${where}: pattern must not be empty`)
  const progFd = programOfType(where, program, 'kprobe')
  const path = binaryPath(where, options.binary, options.pid)
  const image = symbols !== undefined || pattern !== undefined ? readBinary(path) : undefined
  if (pattern !== undefined) given = matchingOffsets(image!, pattern)
  const count = (symbols ?? given)!.length
  const parallel = (name: string, v: unknown): BigUint64Array | undefined => {
    const a = list(name, v)
    if (a === undefined) return undefined
    if (a.length !== count) throw new RangeError(`${where}: ${name} has ${a.length} entries for ${count} probes`)
    return BigUint64Array.from(a, (x, i) => u64(where, `${name}[${i}]`, x))
  }
  const cookies = parallel('cookies', options.cookies)
  const refCtrOffsets = parallel('refCtrOffsets', options.refCtrOffsets)
  let offsets: BigUint64Array
  if (symbols !== undefined) {
    symbols.forEach((s, i) => {
      if (typeof s !== 'string') throw new TypeError(`${where}: symbols[${i}] must be a string, got ${describeValue(s)}`)
    })
    offsets = BigUint64Array.from(symbols as string[], (s) => BigInt(functionOffset(image!, s)))
  } else {
    offsets = BigUint64Array.from(given!, (x, i) => u64(where, `offsets[${i}]`, x))
  }
  for (const o of offsets) checkOffsetInFile(where, path, o)
  const retprobe = options.retprobe ?? /^\??uretprobe\.multi/.test(programSection(program) ?? '')
  haveUprobeMulti()
  try {
    const fd = native.linkCreate({
      progFd, attachType: kernel.attachTypes.trace_uprobe_multi,
      uprobeMulti: { path, offsets, cookies, refCtrOffsets, pid: options.pid, flags: retprobe ? kernel.flags.BPF_F_UPROBE_MULTI_RETURN : 0 },
    })
    return BpfLink.fromLinkFd(new Fd(fd, 'link'))
  } catch (e) {
    if (e instanceof BpfError && e.code === 'EINVAL') {
      e.message += ' (attachUprobeMulti: load the program for uprobe.multi: SEC("uprobe.multi"), expected attach type trace_uprobe_multi)'
    }
    throw e
  }
}

/** What a uprobe section name says (libbpf's SEC() conventions), for attaching a collection's programs. */
export interface UprobeSectionTarget {
  multi: boolean
  retprobe: boolean
  sleepable: boolean
  /** The binary, when the section names one ('uprobe//usr/bin/bash:readline'). */
  binary?: string
  /** The function (single probes). */
  symbol?: string
  /** A file offset, or bytes into `symbol`. */
  offset?: number
  /** The glob over function names (uprobe.multi). */
  pattern?: string
}

/**
 * Reads a uprobe section name: 'uprobe', 'uretprobe.s', 'uprobe/PATH:FUNC',
 * 'uprobe/PATH:FUNC+0x10', 'uprobe/PATH:0x1234', 'uprobe.multi/PATH:GLOB'
 * (a leading '?' allowed). Returns undefined for a section that is no uprobe;
 * a bare 'uprobe' has no binary (the caller must name one). Errors: TypeError
 * for a uprobe section whose target cannot be read.
 */
export function uprobeSectionTarget(section: string): UprobeSectionTarget | undefined {
  if (typeof section !== 'string') throw new TypeError(`section must be a string, got ${describeValue(section)}`)
  const m = /^\??u(ret)?probe(\.multi)?(\.s)?(?:\/(.*))?$/.exec(section)
  if (!m) return undefined
  const out: UprobeSectionTarget = { multi: m[2] !== undefined, retprobe: m[1] !== undefined, sleepable: m[3] !== undefined }
  const rest = m[4]
  if (rest === undefined || rest === '') return out
  const colon = rest.lastIndexOf(':')
  if (colon <= 0 || colon === rest.length - 1) throw new TypeError(`section '${section}': a uprobe target is BINARY:FUNCTION (or BINARY:OFFSET, BINARY:PATTERN for uprobe.multi)`)
  out.binary = rest.slice(0, colon)
  const fn = rest.slice(colon + 1)
  if (out.multi) {
    out.pattern = fn
    return out
  }
  const t = /^([A-Za-z_.][\w.@]*)(?:\+(0x[0-9a-fA-F]+|\d+))?$/.exec(fn) ?? /^()(0x[0-9a-fA-F]+|\d+)$/.exec(fn)
  if (!t) throw new TypeError(`section '${section}': '${fn}' is neither FUNCTION, FUNCTION+OFFSET nor OFFSET`)
  if (t[1] !== '') out.symbol = t[1]
  if (t[2] !== undefined) out.offset = Number(t[2])
  return out
}
