// Features of the BTF-based attach families: raw tracepoints, tp_btf,
// trampolines (fentry, fexit, fmod_ret, freplace), the BPF LSM, iterators,
// and the cookies each can carry. A trampoline can be refused by a kernel new
// enough to have it (some sandboxed hosts answer EPERM to root); those probes
// then say so, in a NotSupportedError whose `refused` names the errno, never
// that the kernel is too old.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { release } from 'node:os'
import { gunzipSync } from 'node:zlib'
import { Fd, NotSupportedError, native, tokenFdFor } from '../sys/index.js'
import { attachTypes, progTypes } from '../sys/generated/kernel-enums.js'
import { describeValue } from '../sys/options.js'
import { declareFeature } from './declare.js'
import { IMPOSSIBLE_FD, bpfCode, cachedProbe, notSupported } from './probe-cache.js'
import { kernelBtf, returnZero } from './prog-types.js'

/**
 * A feature the kernel has but will not let this process use: the probe's
 * program was refused (EPERM) although a program needing no trampoline, loaded
 * the same way, was accepted. `refused` is the errno's name.
 */
export class FeatureRefusedError extends NotSupportedError {
  readonly refused: string
  constructor(feature: string, minKernel: string, refused: string, why: string) {
    super(feature, minKernel)
    this.name = 'NotSupportedError'
    this.refused = refused
    this.message = `${feature} is not available: ${why} (${refused}), although the kernel is new enough (Linux ${minKernel}+)`
  }
}

// Loads `r0 = 0; exit` as a tracing or LSM program for a BTF id of vmlinux.
function loadBtfProgram(progType: number, expectedAttachType: number, attachBtfId: number): Fd {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType, attachType: expectedAttachType })
  return new Fd(native.progLoadSync({ progType, expectedAttachType, attachBtfId, insns: returnZero(), license: 'GPL', tokenFd }).fd, 'prog')
}

// A tp_btf program on sched_switch (every kernel with tracepoints has it): BTF
// typed, yet no trampoline, so it loads where fentry is refused.
function loadTpBtf(missing: (detail?: string) => NotSupportedError): Fd {
  const id = kernelBtf()?.find('btf_trace_sched_switch', 'TYPEDEF')
  if (id === undefined) throw missing('the kernel has no BTF (CONFIG_DEBUG_INFO_BTF) to describe tracepoints with')
  try {
    return loadBtfProgram(progTypes.tracing, attachTypes.trace_raw_tp, id)
  } catch (e) {
    const code = bpfCode(e)
    if (code === 'EINVAL' || code === 'E2BIG') throw missing()
    throw e
  }
}

/**
 * Raw tracepoint links (Linux 5.8): RAW_TRACEPOINT_OPEN returns a link with
 * an ID, info and a pin, as every link since. The probe asks for a link by an
 * ID no link has: ENOENT on a kernel with link IDs, EINVAL before. Needs
 * CAP_SYS_ADMIN (EPERM otherwise, not cached).
 */
export const { have: haveRawTracepointLinks, supports: supportsRawTracepointLinks } = declareFeature('rawTracepointLinks', {
  title: 'raw tracepoint links with IDs (RAW_TRACEPOINT_OPEN, BPF_LINK_GET_FD_BY_ID)',
  since: '5.8',
  probe(missing) {
    try {
      native.closeFd(native.linkGetFdById(0x7fffffff))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'ENOENT') return
      if (code === 'EINVAL') throw missing()
      throw e
    }
  },
})

/**
 * bpf_get_attach_cookie for raw_tp and tp_btf programs (Linux 6.10): the
 * `cookie` of RAW_TRACEPOINT_OPEN. A kernel with it fails looking up the
 * impossible program fd (EBADF); one without refuses the unknown attribute
 * (EINVAL). No privileges or objects needed.
 */
export const { have: haveRawTracepointCookie, supports: supportsRawTracepointCookie } = declareFeature('rawTracepointCookie', {
  title: 'raw tracepoint cookies (RAW_TRACEPOINT_OPEN cookie)',
  since: '6.10',
  probe(missing) {
    try {
      native.closeFd(native.rawTracepointOpen(IMPOSSIBLE_FD, undefined, 1))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EBADF') return
      if (code === 'EINVAL' || code === 'E2BIG') throw missing()
      throw e
    }
  },
})

/**
 * Tracing links made by BPF_LINK_CREATE (Linux 5.19, commit 2fcc82411e74,
 * which also brought their cookies): fentry, fexit, fmod_ret, lsm and tp_btf
 * programs attached by attach type, with a bpf_get_attach_cookie value.
 * Before, RAW_TRACEPOINT_OPEN attached them (without a cookie). The probe
 * attaches a tp_btf program that returns 0 to sched_switch and closes it at
 * once (a tp_btf program needs no trampoline, so hosts that refuse those
 * still answer). Needs CAP_BPF and CAP_PERFMON.
 */
export const { have: haveTracingLinks, supports: supportsTracingLinks } = declareFeature('tracingLinks', {
  title: 'tracing links by attach type (BPF_LINK_CREATE for fentry, fexit, fmod_ret, lsm, tp_btf)',
  since: '5.19',
  probe(missing) {
    using prog = loadTpBtf(missing)
    try {
      native.closeFd(native.linkCreate({ progFd: prog.fd, attachType: attachTypes.trace_raw_tp }))
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw missing()
      throw e
    }
  },
})

/**
 * bpf_get_attach_cookie for fentry, fexit, fmod_ret and lsm links (Linux
 * 5.19: the same commit as tracing links, whose LINK_CREATE carries the
 * cookie; tp_btf cookies came with raw tracepoint cookies, 6.10).
 */
export const { have: haveTracingCookie, supports: supportsTracingCookie } = declareFeature('tracingCookie', {
  title: 'tracing link cookies (BPF_LINK_CREATE tracing.cookie)',
  since: '5.19',
  probe(missing) {
    try {
      haveTracingLinks()
    } catch (e) {
      if (e instanceof NotSupportedError) throw missing()
      throw e
    }
  },
})

// A traceable kernel function every x86/arm64 kernel with BTF has (cilium's choice too).
const FENTRY_TARGET = 'vprintk'

/**
 * BPF trampolines (Linux 5.5): fentry, fexit, fmod_ret, freplace and LSM
 * programs all need one. The probe loads an fentry program on vprintk. A
 * kernel without them refuses it with EINVAL; a host that refuses them to
 * root answers EPERM, reported as a FeatureRefusedError ("the kernel refuses
 * trampoline programs (EPERM)") once a tp_btf program loaded the same way was
 * accepted (else the EPERM is the caller's missing privilege, thrown as is).
 */
export const { have: haveTrampolines, supports: supportsTrampolines } = declareFeature('trampolines', {
  title: 'BPF trampolines (fentry, fexit, fmod_ret, freplace and LSM programs)',
  since: '5.5',
  probe(missing) {
    const id = kernelBtf()?.find(FENTRY_TARGET, 'FUNC')
    if (id === undefined) throw missing(`the kernel's BTF has no ${FENTRY_TARGET} to attach a probe to (no CONFIG_DEBUG_INFO_BTF?)`)
    try {
      loadBtfProgram(progTypes.tracing, attachTypes.trace_fentry, id).close()
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'E2BIG' || code === 'ENOTSUPP' || code === 'EOPNOTSUPP') throw missing()
      if (code === 'EPERM') {
        // Privileged enough for a BTF program without a trampoline? Then the refusal is the trampoline's.
        loadTpBtf(missing).close()
        throw new FeatureRefusedError('BPF trampolines (fentry, fexit, fmod_ret, freplace and LSM programs)', '5.5', 'EPERM', 'the kernel refuses trampoline programs')
      }
      throw e
    }
  },
})

// The active LSMs, where this system says: securityfs (mounted, or mounted
// in a child's private mount namespace, which leaves the system's mounts
// alone), else the boot's lsm=, else the build's CONFIG_LSM default.
// undefined when nothing says.
function activeLsms(): string[] | undefined {
  const path = '/sys/kernel/security/lsm'
  try {
    return readFileSync(path, 'utf8').trim().split(',')
  } catch { /* securityfs not mounted here */ }
  const child = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t securityfs securityfs /sys/kernel/security && cat ${path}`], { encoding: 'utf8', timeout: 10_000 })
  if (child.status === 0 && child.stdout.trim() !== '') return child.stdout.trim().split(',')
  try {
    const m = /(?:^|\s)lsm=(\S+)/.exec(readFileSync('/proc/cmdline', 'utf8'))
    if (m) return m[1].split(',')
  } catch { /* no /proc */ }
  for (const config of ['/proc/config.gz', `/boot/config-${release()}`]) {
    try {
      const raw = readFileSync(config)
      const text = config.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8')
      const m = /^CONFIG_LSM="([^"]*)"/m.exec(text)
      if (m) return m[1].split(',')
    } catch { /* not there */ }
  }
  return undefined
}

/**
 * BPF LSM programs (Linux 5.7, CONFIG_BPF_LSM, and `bpf` among the active
 * LSMs): an lsm program on file_mprotect loads (it needs a trampoline: see
 * haveTrampolines, whose refusal this reports too), and `bpf` is in the
 * active list (/sys/kernel/security/lsm, else the boot's lsm=, else the
 * build's CONFIG_LSM). Without `bpf` there, programs attach and never run.
 */
export const { have: haveBpfLsm, supports: supportsBpfLsm } = declareFeature('bpfLsm', {
  title: 'BPF LSM programs',
  since: '5.7',
  config: ['CONFIG_BPF_LSM'],
  probe(missing) {
    const id = kernelBtf()?.find('bpf_lsm_file_mprotect', 'FUNC')
    if (id === undefined) throw missing()
    haveTrampolines()
    try {
      loadBtfProgram(progTypes.lsm, attachTypes.lsm_mac, id).close()
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'E2BIG') throw missing()
      throw e
    }
    const lsms = activeLsms()
    if (lsms !== undefined && !lsms.includes('bpf')) throw missing(`'bpf' is not an active LSM (${lsms.join(',')}): boot with lsm=...,bpf`)
  },
})

/**
 * The BPF LSM hooks the guard (lib/guard) needs, with the arguments it
 * reads: bpf_prog_load, bpf_map_create and bpf_token_create taking the
 * token (Linux 6.9, with BPF tokens). Whether the bpf LSM is active is
 * haveBpfLsm's question; this one only asks the kernel's BTF for the hooks.
 */
export const { have: haveGuardHooks, supports: supportsGuardHooks } = declareFeature('guardHooks', {
  title: 'BPF LSM hooks for tokens (bpf_token_create, token arguments)',
  since: '6.9',
  config: ['CONFIG_BPF_LSM'],
  probe(missing) {
    const btf = kernelBtf()
    if (!btf) throw missing('no kernel BTF to find the hooks in')
    for (const hook of ['bpf_token_create', 'bpf_token_free', 'bpf_prog_load', 'bpf_map_create']) {
      if (btf.find(`bpf_lsm_${hook}`, 'FUNC') === undefined) throw missing(`no LSM hook ${hook}`)
    }
  },
})

/**
 * fmod_ret programs (Linux 5.7): they may replace only functions marked for
 * error injection (CONFIG_FUNCTION_ERROR_INJECTION) and security hooks. The
 * probe loads one for bpf_modify_return_test, which BPF_PROG_TEST_RUN calls;
 * a kernel built without error injection refuses it ("is not modifiable").
 * Needs trampolines (their refusal is reported as such).
 */
export const { have: haveModifyReturn, supports: supportsModifyReturn } = declareFeature('modifyReturn', {
  title: 'fmod_ret programs (BPF_MODIFY_RETURN)',
  since: '5.7',
  config: ['CONFIG_FUNCTION_ERROR_INJECTION'],
  probe(missing) {
    const id = kernelBtf()?.find('bpf_modify_return_test', 'FUNC')
    if (id === undefined) throw missing()
    haveTrampolines()
    try {
      loadBtfProgram(progTypes.tracing, attachTypes.modify_return, id).close()
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'E2BIG') throw missing()
      throw e
    }
  },
})

/**
 * BPF iterators (Linux 5.8): an iter program for bpf_map, linked with
 * LINK_CREATE (an iterator link attaches to nothing; closed at once).
 */
export const { have: haveIterators, supports: supportsIterators } = declareFeature('iterators', {
  title: 'BPF iterators (BPF_TRACE_ITER links, BPF_ITER_CREATE)',
  since: '5.8',
  probe: (missing) => iterTargetProbe(missing, 'bpf_map', '5.8'),
})

/** Iterator targets and the release that added each. */
export const iterTargetVersions = {
  bpf_map: '5.8',
  task: '5.8',
  task_file: '5.8',
  netlink: '5.8',
  ipv6_route: '5.8',
  bpf_map_elem: '5.9',
  bpf_prog: '5.9',
  bpf_sk_storage_map: '5.9',
  tcp: '5.9',
  udp: '5.9',
  sockmap: '5.10',
  task_vma: '5.12',
  unix: '5.17',
  ksym: '6.0',
  cgroup: '6.1',
  bpf_link: '6.3',
} as const

export type IterTarget = keyof typeof iterTargetVersions

function iterTargetProbe(missing: (detail?: string) => NotSupportedError, target: string, version: string): void {
  // The target's context is described by BTF FUNC bpf_iter_<target>: a kernel without the target has no such function.
  const btf = kernelBtf()
  if (btf === null) throw missing('the kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which iterator programs are loaded against')
  const id = btf.find(`bpf_iter_${target}`, 'FUNC')
  if (id === undefined) throw missing()
  let prog: Fd
  try {
    prog = loadBtfProgram(progTypes.tracing, attachTypes.trace_iter, id)
  } catch (e) {
    const code = bpfCode(e)
    if (code === 'EINVAL' || code === 'E2BIG' || code === 'ENOENT') throw missing()
    // Some hosts refuse some targets' programs to root (measured: bpf_map_elem and
    // bpf_sk_storage_map on a sandboxed 6.18) while bpf_map iterators, probed first, load.
    if (code === 'EPERM' && target !== 'bpf_map') throw new FeatureRefusedError(`${target} iterators`, version, 'EPERM', `the kernel refuses ${target} iterator programs`)
    throw e
  }
  try {
    // Targets with parameters (a map, a cgroup) refuse a link without them; loading proved the target.
    if (target !== 'bpf_map_elem' && target !== 'bpf_sk_storage_map' && target !== 'sockmap' && target !== 'cgroup') {
      native.closeFd(native.linkCreate({ progFd: prog.fd, attachType: attachTypes.trace_iter }))
    }
  } catch (e) {
    if (bpfCode(e) === 'EINVAL') throw missing()
    throw e
  } finally {
    prog.close()
  }
}

/**
 * One iterator target ('task', 'bpf_map_elem', 'cgroup', ... see
 * iterTargetVersions): an iter program for it loads (and, for targets that
 * take no parameter, links). Errors: NotSupportedError naming the release;
 * TypeError for an unknown target. Cached per target.
 */
export function haveIterTarget(target: IterTarget): void {
  if (typeof target !== 'string' || !Object.hasOwn(iterTargetVersions, target)) {
    throw new TypeError(`haveIterTarget: unknown iterator target ${describeValue(target)}; one of ${Object.keys(iterTargetVersions).join(', ')}`)
  }
  const version = iterTargetVersions[target]
  cachedProbe(`iter:${target}`, () => {
    haveIterators()
    iterTargetProbe((detail) => notSupported(`${target} iterators`, { version }, detail), target, version)
  })
}

export const supportsIterTarget = (target: IterTarget): boolean => {
  try {
    haveIterTarget(target)
    return true
  } catch (e) {
    if (e instanceof NotSupportedError) return false
    throw e
  }
}
