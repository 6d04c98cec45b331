// kprobes and kretprobes on kernel functions: through the perf kprobe PMU
// (Linux 4.17+) or, where it is missing, a probe event bpfkit adds to tracefs
// kprobe_events and removes on close; kprobe.multi links (5.18+) on many
// functions at once; ksyscall, a kprobe on a syscall's entry function under
// this architecture's name for it. Each program runs for every task: it
// filters by pid itself (a perf event's pid does not limit BPF on kprobes).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { haveKprobeMulti, haveKprobes, supportsKprobes } from '../features/attach-trace.js'
import type { FdRef } from '../map/values.js'
import { BpfError, Fd, SyscallError, kernel, native } from '../sys/index.js'
import { readKallsyms } from '../sys/kallsyms.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { linkPerfEvent, wantsCookie } from './perf-attach.js'
import { pmuConfigBit, pmuType } from './perf-event.js'
import { addProbeEvent, findTracefs } from './tracefs.js'
import { programOfType, programSection } from './program-ref.js'
import { globPattern } from '../sys/glob.js'

export interface KprobeOptions {
  /** A kretprobe: run when the function returns. Default: from the program's section ('kretprobe/...'), else false. */
  retprobe?: boolean
  /** Bytes into the function (kprobes only; kretprobes fire on return). */
  offset?: number | bigint
  /** bpf_get_attach_cookie's value (perf_event links, Linux 5.15+). */
  cookie?: number | bigint
  /** Use tracefs kprobe_events even where the kprobe PMU exists (the path of kernels before 4.17). */
  legacy?: boolean
}

// [MODULE:]SYMBOL: also what stops a tracefs command line being smuggled in.
const SYMBOL = /^(?:[A-Za-z_][A-Za-z0-9_-]*:)?[A-Za-z_][A-Za-z0-9_.]*$/

function checkSymbol(where: string, symbol: unknown): asserts symbol is string {
  if (typeof symbol !== 'string') throw new TypeError(`${where}: symbol must be a string, got ${describeValue(symbol)}`)
  if (!SYMBOL.test(symbol) || symbol.length > 255) throw new TypeError(`${where}: ${describeValue(symbol)} is not a kernel function name`)
}

function retprobeOf(program: FdRef, given: boolean | undefined, prefix: RegExp): boolean {
  if (given !== undefined) return given
  const section = programSection(program)
  return section !== undefined && prefix.test(section)
}

function offsetOf(where: string, offset: unknown): bigint {
  if (offset === undefined) return 0n
  if ((typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0) || (typeof offset === 'bigint' && offset >= 0n && offset < 1n << 64n)) return BigInt(offset)
  throw new TypeError(`${where}: offset must be a non-negative integer, got ${describeValue(offset)}`)
}

function unknownFunction(where: string, symbol: string, cause: unknown): Error {
  const code = (cause as { code?: string }).code
  return Object.assign(new Error(`${where}: cannot probe kernel function '${symbol}' (${code}): not in /proc/kallsyms, or not probeable (inlined, notrace, on the kprobe blacklist)`, { cause }), { code: 'ENOENT' })
}

// Removing a probe event on close must not throw out of close(): a warning
// says what was left behind.
function safeRemove(remove: () => void): () => void {
  return () => {
    try {
      remove()
    } catch (e) {
      process.emitWarning(`bpfkit: ${(e as Error).message}`, 'BpfkitWarning')
    }
  }
}

/**
 * Attaches a kprobe program to kernel function `symbol` ([module:]name), or
 * to its return with `retprobe` (default: what the program's section says,
 * 'kretprobe/...'). Through the perf kprobe PMU where the kernel has it
 * (4.17+); else, or with `legacy`, through an event bpfkit adds to tracefs
 * kprobe_events (bpfkit/bpfkit_<pid>_<n>) and removes when the link closes.
 * The link is a perf_event link (5.15+), else a program set on the perf event
 * by ioctl. Needs CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_BPF.
 * Errors: TypeError for a bad name, option or a program that is not a
 * kprobe program; Error (code 'ENOENT') for a function that does not exist or
 * cannot be probed, or (legacy) tracefs not mounted; NotSupportedError from
 * haveKprobes on a kernel without kprobes (CONFIG_KPROBES off), from
 * haveBpfCookie for a cookie before 5.15. Nothing stays
 * attached or open after a failure.
 */
export function attachKprobe(program: FdRef, symbol: string, options: KprobeOptions = {}): BpfLink {
  return kprobe('attachKprobe', program, symbol, options, /^kretprobe[/+]?/)
}

function kprobe(where: string, program: FdRef, symbol: string, options: KprobeOptions, retSection: RegExp): BpfLink {
  checkOptions(where, options, ['retprobe', 'offset', 'cookie', 'legacy'], { types: { retprobe: 'boolean', legacy: 'boolean', cookie: ['number', 'bigint'] } })
  checkSymbol(where, symbol)
  const offset = offsetOf(where, options.offset)
  programOfType(where, program, 'kprobe')
  const retprobe = retprobeOf(program, options.retprobe, retSection)
  if (retprobe && offset !== 0n) throw new TypeError(`${where}: a kretprobe takes no offset (it fires on return)`)
  wantsCookie(options.cookie)
  const pmu = pmuType('kprobe')
  if (!options.legacy && pmu !== undefined && supportsKprobes()) {
    let fd: number
    try {
      const config = retprobe ? 1n << BigInt(pmuConfigBit('kprobe', 'retprobe')) : 0n
      fd = native.perfEventOpen({ type: pmu, config, probeName: symbol, probeOffset: offset, pid: -1, cpu: 0, disabled: true })
    } catch (e) {
      // EINVAL too: kernels before 5.2 said it for a missing kretprobe symbol.
      if (e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'EINVAL')) throw unknownFunction(where, symbol, e)
      throw e
    }
    return linkPerfEvent(program, new Fd(fd, 'perf_event'), { cookie: options.cookie })
  }
  // No PMU: the tracefs events file, where the kernel has kprobes at all.
  const tracefs = findTracefs()
  if (!options.legacy && (tracefs === undefined || !existsSync(join(tracefs, 'kprobe_events')))) haveKprobes()
  let event
  try {
    event = addProbeEvent('kprobe_events', offset === 0n ? symbol : `${symbol}+${offset}`, { retprobe, tracefs })
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT' && tracefs !== undefined && existsSync(join(tracefs, 'kprobe_events'))) throw unknownFunction(where, symbol, e)
    if (code === 'EINVAL') throw unknownFunction(where, symbol, e)
    throw e
  }
  const remove = safeRemove(() => event.remove())
  let fd: number
  try {
    const type = pmuType('tracepoint')
    if (type === undefined) throw new Error(`${where}: no tracepoint PMU in /sys/bus/event_source/devices (is sysfs mounted?)`)
    fd = native.perfEventOpen({ type, config: event.id, pid: -1, cpu: 0, disabled: true })
  } catch (e) {
    remove()
    throw e
  }
  return linkPerfEvent(program, new Fd(fd, 'perf_event'), { cookie: options.cookie, onClose: remove })
}

// The prefix of syscall entry functions on architectures whose syscalls go
// through a pt_regs wrapper (__x64_sys_openat), by Node's process.arch.
const SYSCALL_PREFIX: Readonly<Record<string, string>> = {
  x64: '__x64_',
  ia32: '__ia32_',
  arm64: '__arm64_',
  s390x: '__s390x_',
  riscv64: '__riscv_',
  ppc64: '__powerpc_',
  loong64: '__loongarch_',
}

/**
 * The kernel function a syscall enters: `__<arch>_sys_<name>` where the
 * kernel wraps syscalls (x86-64, arm64, s390x, riscv... since 4.17), else
 * `sys_<name>`, as libbpf resolves ksyscall. Read from /proc/kallsyms.
 * Errors: TypeError for a bad name; Error (code 'ENOENT') for a syscall this
 * kernel does not have.
 */
export function syscallFunction(name: string): string {
  if (typeof name !== 'string' || !/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`syscallFunction: ${describeValue(name)} is not a syscall name`)
  const names = new Set(readKallsyms().filter((s) => s.module === undefined).map((s) => s.name))
  const prefix = SYSCALL_PREFIX[process.arch]
  for (const candidate of [prefix && `${prefix}sys_${name}`, `sys_${name}`]) if (candidate && names.has(candidate)) return candidate
  throw Object.assign(new Error(`syscallFunction: this kernel has no syscall '${name}' (neither ${prefix ? `${prefix}sys_${name} nor ` : ''}sys_${name} is in /proc/kallsyms)`), { code: 'ENOENT' })
}

/**
 * A kprobe on syscall `name`'s entry function (syscallFunction), or on its
 * return with `retprobe` (default: the program's section, 'kretsyscall/...').
 * The program sees the wrapper's arguments: on wrapped architectures the
 * syscall's own arguments are in the pt_regs its first argument points to
 * (libbpf's BPF_KSYSCALL reads them). Options and errors as attachKprobe;
 * 'offset' is not taken.
 */
export function attachKsyscall(program: FdRef, name: string, options: Omit<KprobeOptions, 'offset'> = {}): BpfLink {
  checkOptions('attachKsyscall', options, ['retprobe', 'cookie', 'legacy'])
  return kprobe('attachKsyscall', program, syscallFunction(name), options, /^kretsyscall[/+]?/)
}

export interface KprobeMultiOptions {
  /** Kernel functions by name. One of symbols, pattern and addresses. */
  symbols?: readonly string[]
  /** A glob ('*' and '?') matched against the traceable functions (tracefs available_filter_functions, else /proc/kallsyms). */
  pattern?: string
  /** Function entry addresses (from /proc/kallsyms). */
  addresses?: readonly (number | bigint)[] | BigUint64Array
  /** bpf_get_attach_cookie's value per function, in the order given (or of the sorted pattern matches). */
  cookies?: readonly (number | bigint)[] | BigUint64Array
  /** kretprobes: run on return. Default: the program's section ('kretprobe.multi/...'), else false. */
  retprobe?: boolean
}

/**
 * The kernel functions `pattern` (a glob of '*' and '?') matches, sorted and
 * without duplicates: from tracefs available_filter_functions (what ftrace,
 * and so kprobe.multi, can attach to) when tracefs is mounted, else from the
 * text symbols of /proc/kallsyms (some of which may not be traceable).
 */
export function matchKernelFunctions(pattern: string): string[] {
  if (typeof pattern !== 'string' || pattern === '' || !/^[A-Za-z0-9_.*?]+$/.test(pattern)) {
    throw new TypeError(`matchKernelFunctions: pattern must be a glob of letters, digits, '_', '.', '*' and '?', got ${describeValue(pattern)}`)
  }
  const re = globPattern(pattern)
  const tracefs = findTracefs()
  const filterFile = tracefs && join(tracefs, 'available_filter_functions')
  let names: Iterable<string>
  if (filterFile && existsSync(filterFile)) {
    // "name" or "name [module]" per line.
    names = readFileSync(filterFile, 'utf8').split('\n').map((l) => l.split(/\s/)[0]).filter(Boolean)
  } else {
    names = readKallsyms().filter((s) => s.type === 't' || s.type === 'T').map((s) => s.name)
  }
  const out = new Set<string>()
  // ftrace lists functions it could not resolve under this placeholder name.
  for (const n of names) if (re.test(n) && !n.startsWith('__ftrace_invalid_address__')) out.add(n)
  return [...out].sort()
}

function u64Array(where: string, what: string, v: unknown): BigUint64Array {
  if (v instanceof BigUint64Array) return v
  if (!Array.isArray(v)) throw new TypeError(`${where}: ${what} must be an array of integers or a BigUint64Array, got ${describeValue(v)}`)
  return BigUint64Array.from(v, (x: unknown) => {
    if ((typeof x === 'number' && Number.isSafeInteger(x) && x >= 0) || (typeof x === 'bigint' && x >= 0n && x < 1n << 64n)) return BigInt(x)
    throw new TypeError(`${where}: ${what} must hold non-negative 64-bit integers, got ${describeValue(x)}`)
  })
}

/**
 * Attaches a kprobe program, loaded for kprobe.multi (a 'kprobe.multi/' or
 * 'kretprobe.multi/' section: expected attach type trace_kprobe_multi), to
 * many kernel functions in one link: by `symbols`, a `pattern`, or
 * `addresses`. Linux 5.18+ built with CONFIG_FPROBE; CAP_BPF and
 * CAP_PERFMON. Errors: TypeError for bad options or a program of another
 * type; Error (code 'ENOENT') naming functions that do not exist or a
 * pattern that matches none; BpfError EINVAL when the program was not
 * loaded for kprobe.multi; NotSupportedError from haveKprobeMulti.
 */
export function attachKprobeMulti(program: FdRef, options: KprobeMultiOptions): BpfLink {
  const where = 'attachKprobeMulti'
  checkOptions(where, options, ['symbols', 'pattern', 'addresses', 'cookies', 'retprobe'], { required: true, types: { retprobe: 'boolean', pattern: 'string' } })
  const given = (['symbols', 'pattern', 'addresses'] as const).filter((k) => options[k] !== undefined)
  if (given.length !== 1) throw new TypeError(`${where}: give exactly one of symbols, pattern and addresses${given.length ? ` (got ${given.join(', ')})` : ''}`)
  const progFd = programOfType(where, program, 'kprobe')
  let syms: string[] | undefined
  let addrs: BigUint64Array | undefined
  if (options.symbols !== undefined) {
    if (!Array.isArray(options.symbols) || options.symbols.length === 0) throw new TypeError(`${where}: symbols must be a non-empty array of function names, got ${describeValue(options.symbols)}`)
    for (const s of options.symbols) checkSymbol(where, s)
    syms = [...options.symbols]
  } else if (options.pattern !== undefined) {
    syms = matchKernelFunctions(options.pattern)
    if (syms.length === 0) throw Object.assign(new Error(`${where}: no kernel function matches '${options.pattern}'`), { code: 'ENOENT' })
  } else {
    addrs = u64Array(where, 'addresses', options.addresses)
    if (addrs.length === 0) throw new TypeError(`${where}: addresses must not be empty`)
  }
  const count = syms?.length ?? addrs!.length
  const cookies = options.cookies === undefined ? undefined : u64Array(where, 'cookies', options.cookies)
  if (cookies !== undefined && cookies.length !== count) throw new RangeError(`${where}: ${cookies.length} cookies for ${count} functions; give one per function`)
  const retprobe = retprobeOf(program, options.retprobe, /^kretprobe\.multi[/+]?/)
  haveKprobeMulti()
  let fd: number
  try {
    fd = native.linkCreate({
      progFd,
      attachType: kernel.attachTypes.trace_kprobe_multi,
      kprobeMulti: { syms, addrs, cookies, flags: retprobe ? kernel.flags.BPF_F_KPROBE_MULTI_RETURN : 0 },
    })
  } catch (e) {
    if (e instanceof BpfError && (e.code === 'ESRCH' || e.code === 'ENOENT')) {
      const known = new Set(readKallsyms().map((s) => s.name))
      const missing = syms?.filter((s) => !known.has(s.replace(/^[^:]*:/, ''))) ?? []
      const what = missing.length > 0 ? `no kernel function ${missing.map((m) => `'${m}'`).join(', ')}` : 'a function that cannot be traced (or an address that is no function entry)'
      throw Object.assign(new Error(`${where}: ${what}`, { cause: e }), { code: 'ENOENT' })
    }
    if (e instanceof BpfError && e.code === 'EINVAL') {
      throw Object.assign(new Error(`${where}: the kernel refused the link (EINVAL): load the program from a 'kprobe.multi/' or 'kretprobe.multi/' section (expected attach type trace_kprobe_multi), and give function entries only`, { cause: e }), { code: 'EINVAL' })
    }
    throw e
  }
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}
