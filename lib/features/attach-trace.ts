// Features of the tracing attach families that go through perf events:
// kprobes (the perf kprobe PMU), kprobe.multi links, tracepoints, programs
// on sampled perf events, and bpf_get_attach_cookie on perf links. Where a
// build option decides (kprobes, fprobe), the probe says so: a new kernel
// built without CONFIG_KPROBES is not "too old".
import { existsSync, readFileSync } from 'node:fs'
import { Fd, NotSupportedError, kernel, native, tokenFdFor } from '../sys/index.js'
import { kernelHasSymbol } from '../sys/kallsyms.js'
import { declareFeature } from './declare.js'
import { haveProgramHelper } from './helpers.js'
import { asBoolean, bpfCode } from './probe-cache.js'
import { haveProgramType, returnZero } from './prog-types.js'

const PMUS = '/sys/bus/event_source/devices'

/** Whether vmlinux has `name` (addresses may read as 0; names are always listed). */
function loadReturnZero(progType: number, expectedAttachType?: number): Fd {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType })
  return new Fd(native.progLoadSync({ progType, insns: returnZero(), license: 'GPL', expectedAttachType, tokenFd }).fd, 'prog')
}

/** A program type's probe, its NotSupportedError turned into this feature's. */
function needProgramType(missing: (detail?: string) => NotSupportedError, type: 'kprobe' | 'tracepoint' | 'perf_event'): void {
  try {
    haveProgramType(type)
  } catch (e) {
    if (e instanceof NotSupportedError) throw missing(`no ${type} programs: ${e.message}`)
    throw e
  }
}

/**
 * kprobes through the perf kprobe PMU (Linux 4.17, a kernel built with
 * CONFIG_KPROBES and CONFIG_KPROBE_EVENTS): the PMU is listed in
 * /sys/bus/event_source/devices. When it is missing the probe tells why: no
 * kprobe code at all (no register_kprobe in /proc/kallsyms: CONFIG_KPROBES
 * off), or kprobes without the PMU. attachKprobe falls back to tracefs
 * kprobe_events where the PMU is missing but kprobes are there.
 */
export const { have: haveKprobes, supports: supportsKprobes } = declareFeature('kprobes', {
  title: 'kprobes (the perf kprobe PMU)',
  since: '4.17',
  config: ['CONFIG_KPROBES'],
  probe(missing) {
    if (existsSync(`${PMUS}/kprobe/type`)) return
    if (!kernelHasSymbol('register_kprobe')) throw missing('this one has no kprobe code (no register_kprobe in /proc/kallsyms)')
    throw missing(`no kprobe PMU in ${PMUS} (CONFIG_KPROBE_EVENTS off, or sysfs not mounted)`)
  },
})

/**
 * kprobe.multi links (BPF_TRACE_KPROBE_MULTI, Linux 5.18, built with
 * CONFIG_FPROBE): many kernel functions in one link. The probe asks for a
 * link on a function no kernel has, so nothing is ever attached: a kernel
 * with the link fails looking the symbol up (ESRCH, or ENOENT), one without
 * fprobe says EOPNOTSUPP, an older one refuses the attach type or the
 * attribute bytes (EINVAL, E2BIG).
 */
export const { have: haveKprobeMulti, supports: supportsKprobeMulti } = declareFeature('kprobeMulti', {
  title: 'kprobe.multi links (BPF_TRACE_KPROBE_MULTI)',
  since: '5.18',
  config: ['CONFIG_FPROBE'],
  probe(missing) {
    needProgramType(missing, 'kprobe')
    let prog: Fd
    try {
      prog = loadReturnZero(kernel.progTypes.kprobe, kernel.attachTypes.trace_kprobe_multi)
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'E2BIG') throw missing()
      throw e
    }
    try {
      native.closeFd(native.linkCreate({ progFd: prog.fd, attachType: kernel.attachTypes.trace_kprobe_multi, kprobeMulti: { syms: ['bpfkit_no_such_function'] } }))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'ESRCH' || code === 'ENOENT') return
      if (code === 'EOPNOTSUPP' || code === 'ENOTSUPP') throw missing('this one refuses it with EOPNOTSUPP: no fprobe')
      // Before 5.18 the kprobe_multi attribute bytes are past what LINK_CREATE reads.
      if (code === 'EINVAL' || code === 'E2BIG') throw missing()
      throw e
    } finally {
      prog.close()
    }
  },
})

/**
 * BPF programs on tracepoints through perf events (Linux 4.7, built with
 * CONFIG_BPF_EVENTS): tracepoint programs load and the tracepoint PMU is
 * listed in /sys/bus/event_source/devices. tracefs need not be mounted for
 * this (only to read a tracepoint's id by name).
 */
export const { have: haveTracepoints, supports: supportsTracepoints } = declareFeature('tracepoints', {
  title: 'tracepoint programs on perf events',
  since: '4.7',
  config: ['CONFIG_BPF_EVENTS'],
  probe(missing) {
    needProgramType(missing, 'tracepoint')
    if (!existsSync(`${PMUS}/tracepoint/type`)) throw missing(`no tracepoint PMU in ${PMUS} (CONFIG_EVENT_TRACING off, or sysfs not mounted)`)
  },
})

/**
 * perf_event programs on sampled perf events (Linux 4.9): the probe sets a
 * `r0 = 0` program on a disabled software event of this process
 * (PERF_EVENT_IOC_SET_BPF) and closes it; a kernel without it refuses with
 * EINVAL.
 */
export const { have: havePerfEventPrograms, supports: supportsPerfEventPrograms } = declareFeature('perfEventPrograms', {
  title: 'perf_event programs on sampled perf events',
  since: '4.9',
  probe(missing) {
    needProgramType(missing, 'perf_event')
    if (!existsSync(`${PMUS}/software/type`)) throw missing(`no software PMU in ${PMUS} (sysfs not mounted?)`)
    using prog = loadReturnZero(kernel.progTypes.perf_event)
    // Config 0 is the software PMU's first event; any will do for the ioctl.
    const type = Number(readSysfs(`${PMUS}/software/type`))
    using perf = new Fd(native.perfEventOpen({ type, config: 0, samplePeriod: 1n << 40n, disabled: true, pid: 0, cpu: -1 }), 'perf_event')
    try {
      native.perfEventSetBpf(perf.fd, prog.fd)
    } catch (e) {
      if ((e as { code?: string }).code === 'EINVAL') throw missing()
      throw e
    }
  },
})

function readSysfs(path: string): string {
  return readFileSync(path, 'utf8').trim()
}

/**
 * bpf_get_attach_cookie in kprobe, uprobe and tracepoint programs, with the
 * value set on their perf_event link (Linux 5.15, the release of perf links).
 */
export const { have: haveBpfCookie, supports: supportsBpfCookie } = declareFeature('bpfCookie', {
  title: 'bpf_get_attach_cookie on perf_event links',
  since: '5.15',
  probe(missing) {
    if (!asBoolean(() => haveProgramHelper('kprobe', 'get_attach_cookie'))) throw missing()
  },
})
