// Link features every attach family leans on: perf_event links (the object
// kprobes, uprobes, tracepoints and perf events attach through since 5.15,
// instead of a program set on the perf event by ioctl).
import { Fd, kernel, native, tokenFdFor, type LinkCreateAttrs } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { IMPOSSIBLE_FD, bpfCode } from './probe-cache.js'
import { returnZero } from './prog-types.js'

/** A LINK_CREATE probe: what to load, what to ask, and how the kernel's answer reads. */
export interface LinkProbe {
  progType: number
  attachType: number
  /** The program's expected attach type (default none). */
  expectedAttachType?: number
  /** The rest of LINK_CREATE: a target the kernel refuses by its own rule (default: a target fd no process has). */
  attrs?: Omit<LinkCreateAttrs, 'progFd' | 'attachType'>
  /** The errnos that mean the kernel has the link (default EBADF: it looked the target up). */
  present?: readonly string[]
  /** The errnos that mean it has not (default EINVAL, EOPNOTSUPP: the attach type is unknown first). */
  absent?: readonly string[]
  /** A refused load also means missing (EINVAL: the program or expected attach type is unknown). */
  loadMayFail?: boolean
}

/**
 * Loads `r0 = 0; exit` as the probe's program and asks LINK_CREATE for its
 * attach type on a target the kernel refuses, so nothing is ever attached;
 * the errno tells whether the kernel knows the link.
 */
export function probeLink(missing: (detail?: string) => Error, p: LinkProbe): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType: p.progType })
  let prog: Fd
  try {
    prog = new Fd(native.progLoadSync({ progType: p.progType, insns: returnZero(), license: 'GPL', expectedAttachType: p.expectedAttachType, tokenFd }).fd, 'prog')
  } catch (e) {
    if (p.loadMayFail && bpfCode(e) === 'EINVAL') throw missing()
    throw e
  }
  try {
    native.closeFd(native.linkCreate({ progFd: prog.fd, attachType: p.attachType, ...(p.attrs ?? { targetFd: IMPOSSIBLE_FD }) }))
  } catch (e) {
    const code = bpfCode(e) ?? ''
    if ((p.present ?? ['EBADF']).includes(code)) return
    if ((p.absent ?? ['EINVAL', 'EOPNOTSUPP']).includes(code)) throw missing()
    throw e
  } finally {
    prog.close()
  }
}

/** LINK_CREATE for `attachType` on a target fd no process has: EBADF where the kernel knows the attach type. */
export function linkAttachTypeProbe(missing: () => Error, progType: number, attachType: number, expectedAttachType?: number): void {
  probeLink(missing, { progType, attachType, expectedAttachType })
}

/** perf_event links (BPF_LINK_TYPE_PERF_EVENT, Linux 5.15): pinnable, with IDs and a bpf_get_attach_cookie value. */
export const { have: havePerfLink, supports: supportsPerfLink } = declareFeature('perfLink', {
  title: 'perf_event links (LINK_CREATE on a perf event)',
  since: '5.15',
  probe: (missing) => linkAttachTypeProbe(missing, kernel.progTypes.perf_event, kernel.attachTypes.perf_event),
})
