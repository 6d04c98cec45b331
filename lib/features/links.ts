// Link features every attach family leans on: perf_event links (the object
// kprobes, uprobes, tracepoints and perf events attach through since 5.15,
// instead of a program set on the perf event by ioctl).
import { Fd, kernel, native, tokenFdFor } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { bpfCode } from './probe-cache.js'
import { returnZero } from './prog-types.js'

// An fd number no process can have open: the kernel fails looking it up.
const IMPOSSIBLE_FD = 0x7fffffff

/**
 * Loads a program of `progType` (`r0 = 0; exit`) and asks LINK_CREATE for
 * `attachType` on a target fd no process has: a kernel that knows the link
 * fails looking the target up (EBADF), one that does not refuses the attach
 * type first (EINVAL).
 */
export function linkAttachTypeProbe(missing: () => Error, progType: number, attachType: number, expectedAttachType?: number): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType })
  const prog = new Fd(native.progLoadSync({ progType, insns: returnZero(), license: 'GPL', expectedAttachType, tokenFd }).fd, 'prog')
  try {
    native.closeFd(native.linkCreate({ progFd: prog.fd, targetFd: IMPOSSIBLE_FD, attachType }))
  } catch (e) {
    const code = bpfCode(e)
    if (code === 'EBADF') return
    if (code === 'EINVAL' || code === 'EOPNOTSUPP') throw missing()
    throw e
  } finally {
    prog.close()
  }
}

/** perf_event links (BPF_LINK_TYPE_PERF_EVENT, Linux 5.15): pinnable, with IDs and a bpf_get_attach_cookie value. */
export const { have: havePerfLink, supports: supportsPerfLink } = declareFeature('perfLink', {
  title: 'perf_event links (LINK_CREATE on a perf event)',
  since: '5.15',
  probe: (missing) => linkAttachTypeProbe(missing, kernel.progTypes.perf_event, kernel.attachTypes.perf_event),
})
