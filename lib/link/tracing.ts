// BTF-era tracing attachments: raw tracepoints (raw_tp, by tracepoint name),
// and the programs whose hook was fixed at load by attach_btf_id: tp_btf,
// fentry, fexit, fmod_ret and lsm (attachTracing), and freplace extensions of
// another BPF program (attachFreplace). Each gives a kernel link.
//
// Since Linux 5.19 tracing programs are linked by LINK_CREATE with their
// expected attach type (which carries a cookie); before it, and whenever the
// attach type is not known, RAW_TRACEPOINT_OPEN without a name makes the same
// link (libbpf's fallback too).
import { haveRawTracepointCookie, haveTracingCookie, haveTrampolines, supportsTracingLinks } from '../features/attach-tracing.js'
import { BtfReader } from '../btf/reader.js'
import { Btf } from '../btf/btf.js'
import type { FdRef } from '../map/values.js'
import { BpfError, Fd, NotSupportedError, enumName, enumValue, kernel, native, progInfoByFd, type AttachTypeName } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { programFd, programType } from './program-ref.js'

/**
 * A program to attach: a BpfProgram, or anything with its fd. What the
 * program knows of its section (from a CollectionSpec's ProgramSpec) is used
 * when present: `section` ('raw_tp/sys_enter') names a raw tracepoint,
 * `expectedAttachType` the tracing hook kind.
 */
export type TracingProgram = FdRef & {
  readonly type?: string
  readonly section?: string
  readonly attachTo?: string
  readonly expectedAttachType?: AttachTypeName | number | string
}

export interface RawTracepointOptions {
  /** bpf_get_attach_cookie's value (Linux 6.10+). */
  cookie?: number | bigint
}

export interface TracingOptions {
  /** bpf_get_attach_cookie's value (Linux 5.19+ for fentry/fexit/fmod_ret/lsm, 6.10+ for tp_btf). */
  cookie?: number | bigint
  /**
   * The program's expected attach type ('trace_fentry', 'trace_fexit',
   * 'modify_return', 'lsm_mac', 'trace_raw_tp'), when the program does not
   * carry it (a BpfProgram opened by id or pin). Needed only with a cookie.
   */
  attachType?: AttachTypeName | number
}

const RAW_TP_TYPES = new Set(['raw_tracepoint', 'raw_tracepoint_writable'])
const TRACING_ATTACH = new Set(['trace_raw_tp', 'trace_fentry', 'trace_fexit', 'modify_return', 'lsm_mac'])
// libbpf's section prefixes for the hooks attachTracing serves, by expected attach type.
const SECTION_ATTACH: ReadonlyArray<[RegExp, string]> = [
  [/^tp_btf\//, 'trace_raw_tp'],
  [/^fentry(\.s)?\//, 'trace_fentry'],
  [/^fexit(\.s)?\//, 'trace_fexit'],
  [/^fmod_ret(\.s)?\//, 'modify_return'],
  [/^lsm(\.s)?\//, 'lsm_mac'],
]

function checkCookie(where: string, cookie: unknown): bigint {
  if (cookie === undefined) return 0n
  if (typeof cookie === 'number' && Number.isSafeInteger(cookie) && cookie >= 0) return BigInt(cookie)
  if (typeof cookie === 'bigint' && cookie >= 0n && cookie < 1n << 64n) return cookie
  throw new TypeError(`${where}: cookie must be a u64 (a non-negative integer or bigint), got ${describeValue(cookie)}`)
}

/** The tracepoint a SEC("raw_tp/NAME") or SEC("raw_tracepoint[.w]/NAME") program names. */
function tracepointOfSection(program: TracingProgram): string | undefined {
  const section = program.section?.replace(/^\?/, '')
  const m = section === undefined ? null : /^raw_(?:tp|tracepoint)(?:\.w)?\/(.+)$/.exec(section)
  return m?.[1]
}

/**
 * Attaches a raw_tracepoint (or raw_tracepoint_writable) program to the
 * kernel tracepoint `name` ('sys_enter', 'sched_switch'), by default the one
 * its section names (SEC("raw_tp/sys_enter")). RAW_TRACEPOINT_OPEN, Linux
 * 4.17+; the result is a link with an ID since 5.8. The hook is system-wide:
 * filter in the program (bpf_get_current_pid_tgid) to act on some processes.
 * Errors: TypeError for a program of another type or no name; Error (code
 * ENOENT) for a tracepoint the kernel does not have; NotSupportedError for a
 * cookie before 6.10; BpfError EPERM without CAP_BPF + CAP_PERFMON.
 */
export function attachRawTracepoint(program: TracingProgram, name?: string, options: RawTracepointOptions = {}): BpfLink {
  const where = 'attachRawTracepoint'
  checkOptions(where, options, ['cookie'])
  const progFd = programFd(where, program)
  const tp = name ?? tracepointOfSection(program)
  if (tp === undefined) throw new TypeError(`${where}: no tracepoint name given, and the program's section${program.section ? ` '${program.section}'` : ''} names none (SEC("raw_tp/<name>"))`)
  if (typeof tp !== 'string' || tp === '' || tp.length > 127 || tp.includes('\0')) throw new TypeError(`${where}: tracepoint name must be a non-empty string of at most 127 characters, got ${describeValue(tp)}`)
  const cookie = checkCookie(where, options.cookie)
  const type = programType(where, program)
  if (!RAW_TP_TYPES.has(type)) {
    const hint = type === 'tracing' || type === 'lsm' ? ': its hook was chosen at load; use attachTracing' : ''
    throw new TypeError(`${where}: the program is a ${type} program, not raw_tracepoint${hint}`)
  }
  if (cookie !== 0n) haveRawTracepointCookie()
  let fd: number
  try {
    fd = native.rawTracepointOpen(progFd, tp, cookie === 0n ? undefined : cookie)
  } catch (e) {
    if (e instanceof BpfError && e.code === 'ENOENT') throw Object.assign(new Error(`${where}: this kernel has no raw tracepoint named '${tp}'`), { code: 'ENOENT', cause: e })
    throw e
  }
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}

// The attach type a tracing program was loaded with, as far as anything tells.
function tracingAttachType(program: TracingProgram, given: AttachTypeName | number | undefined): string | undefined {
  if (given !== undefined) return enumName(kernel.attachTypes, enumValue(kernel.attachTypes, 'attach type', given))
  const own = program.expectedAttachType
  if (own !== undefined) return typeof own === 'number' ? enumName(kernel.attachTypes, own) : own
  const section = program.section?.replace(/^\?/, '')
  return section === undefined ? undefined : SECTION_ATTACH.find(([re]) => re.test(section))?.[1]
}

// A trampoline refused or impossible here: the probe's answer beats the bare errno.
function explainTrampolineError(e: unknown): never {
  const code = e instanceof BpfError ? e.code : undefined
  if (code === 'EPERM' || code === 'ENOTSUPP' || code === 'EOPNOTSUPP') {
    haveTrampolines()
    if (code !== 'EPERM') throw new NotSupportedError('BPF trampolines on this architecture', '5.5', `the kernel could not build the trampoline (${code})`)
  }
  throw e
}

/**
 * Attaches a tracing or LSM program to the hook it was loaded for (its
 * attach_btf_id, which a CollectionSpec resolves from the section name):
 * tp_btf (Linux 5.5), fentry/fexit (5.5), fmod_ret (5.7), lsm (5.7). With
 * LINK_CREATE and the program's attach type on 5.19+, else
 * RAW_TRACEPOINT_OPEN. fentry/fexit/fmod_ret/lsm hooks are system-wide: filter
 * in the program. A tracing link cannot be updated (LINK_UPDATE EINVAL).
 * Errors: TypeError for a program of another kind (iter: attachIter; ext:
 * attachFreplace) or a cookie without a known attach type; NotSupportedError
 * for a cookie this kernel cannot carry, or trampolines this host refuses
 * (EPERM) or cannot build; BpfError otherwise (EPERM without CAP_BPF +
 * CAP_PERFMON, EBUSY when an fmod_ret/freplace target is taken).
 */
export function attachTracing(program: TracingProgram, options: TracingOptions = {}): BpfLink {
  const where = 'attachTracing'
  checkOptions(where, options, ['cookie', 'attachType'])
  const progFd = programFd(where, program)
  const cookie = checkCookie(where, options.cookie)
  const type = programType(where, program)
  if (type === 'ext') throw new TypeError(`${where}: an ext (freplace) program replaces a function of another program: use attachFreplace`)
  if (type !== 'tracing' && type !== 'lsm') throw new TypeError(`${where}: the program is a ${type} program, not tracing or lsm${RAW_TP_TYPES.has(type) ? ': use attachRawTracepoint' : ''}`)
  const attachType = tracingAttachType(program, options.attachType)
  if (attachType === 'trace_iter') throw new TypeError(`${where}: an iterator program is attached with attachIter`)
  if (attachType !== undefined && !TRACING_ATTACH.has(attachType)) throw new TypeError(`${where}: attach type ${attachType} is not a tracing hook attachTracing serves (${[...TRACING_ATTACH].join(', ')})`)
  let fd: number
  try {
    if (attachType === 'trace_raw_tp') {
      // tp_btf: the tracepoint is the load-time one; its cookie rides on RAW_TRACEPOINT_OPEN (6.10+).
      if (cookie !== 0n) haveRawTracepointCookie()
      fd = native.rawTracepointOpen(progFd, undefined, cookie === 0n ? undefined : cookie)
    } else if (cookie !== 0n) {
      if (attachType === undefined) throw new TypeError(`${where}: a cookie needs the program's attach type: pass options.attachType ('trace_fentry', 'trace_fexit', 'modify_return', 'lsm_mac')`)
      haveTracingCookie()
      fd = native.linkCreate({ progFd, attachType: kernel.attachTypes[attachType as AttachTypeName], tracingCookie: cookie })
    } else if (attachType !== undefined && supportsTracingLinks()) {
      fd = native.linkCreate({ progFd, attachType: kernel.attachTypes[attachType as AttachTypeName] })
    } else {
      fd = native.rawTracepointOpen(progFd)
    }
  } catch (e) {
    if (type === 'lsm' || attachType !== 'trace_raw_tp') explainTrampolineError(e)
    throw e
  }
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}

// The raw BTF of a loaded BTF object.
function btfBytes(btfId: number): Uint8Array {
  using btf = Btf.fromId(btfId)
  return btf.bytes()
}

/** The BTF FUNC id of `functionName` in the program's own BTF. Errors: TypeError/Error naming what is missing. */
export function programFunctionBtfId(target: FdRef, functionName: string): number {
  const info = progInfoByFd(target.fd)
  if (!info.btfId) throw new TypeError(`the target program${info.name ? ` '${info.name}'` : ''} was loaded without BTF: freplace needs the target's BTF to find '${functionName}'`)
  const id = new BtfReader(btfBytes(info.btfId)).find(functionName, 'FUNC')
  if (id === undefined) throw Object.assign(new Error(`the target program${info.name ? ` '${info.name}'` : ''} has no function '${functionName}' in its BTF`), { code: 'ESRCH' })
  return id
}

/**
 * Replaces a global function of a loaded BPF program with an ext program
 * (freplace, Linux 5.6; LINK_CREATE with a target other than the load-time
 * one, 5.10). The ext program must have been loaded against a target
 * (attachProgFd + attachBtfId); with `target` and `functionName` the link
 * goes to that program's function instead (same prototype). With neither,
 * it attaches where it was loaded for. Detaching (or closing the link)
 * restores the original function. Errors: TypeError for a program that is
 * not ext, or only one of target and functionName; Error (ESRCH) for a
 * function the target's BTF lacks; NotSupportedError where trampolines are
 * refused; BpfError EINVAL for a prototype that does not match, EBUSY for a
 * function already replaced.
 */
export function attachFreplace(program: TracingProgram, target?: FdRef, functionName?: string): BpfLink {
  const where = 'attachFreplace'
  const progFd = programFd(where, program)
  if ((target === undefined) !== (functionName === undefined)) throw new TypeError(`${where}: give both the target program and the function name, or neither (the load-time target)`)
  if (functionName !== undefined && (typeof functionName !== 'string' || functionName === '')) throw new TypeError(`${where}: functionName must be a non-empty string, got ${describeValue(functionName)}`)
  const targetFd = target === undefined ? undefined : programFd(`${where} target`, target)
  const type = programType(where, program)
  if (type !== 'ext') throw new TypeError(`${where}: the program is a ${type} program, not ext (SEC("freplace/<function>"))`)
  const targetBtfId = target === undefined ? undefined : programFunctionBtfId(target, functionName!)
  let fd: number
  try {
    fd = targetFd === undefined
      ? native.rawTracepointOpen(progFd)
      : native.linkCreate({ progFd, targetFd, attachType: 0, targetBtfId })
  } catch (e) {
    explainTrampolineError(e)
  }
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}
