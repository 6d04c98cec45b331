// uprobe features: the uprobe PMU that perf-event uprobes are opened on, and
// uprobe.multi links.
import { existsSync } from 'node:fs'
import { Fd, kernel, native, tokenFdFor } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { bpfCode } from './probe-cache.js'
import { returnZero } from './prog-types.js'

const PMUS = '/sys/bus/event_source/devices'

/**
 * The uprobe perf PMU (Linux 4.17, with CONFIG_UPROBE_EVENTS): uprobes opened
 * with perf_event_open and no tracefs. Decided by the PMU's sysfs entry, as
 * libbpf does; an Error (not an answer) when sysfs is not mounted.
 */
export const { have: haveUprobes, supports: supportsUprobes } = declareFeature('uprobes', {
  title: 'uprobes (the uprobe perf PMU)',
  since: '4.17',
  config: ['CONFIG_UPROBE_EVENTS'],
  probe(missing) {
    if (!existsSync(PMUS)) throw new Error(`uprobes: cannot tell: ${PMUS} does not exist (sysfs not mounted?)`)
    if (!existsSync(`${PMUS}/uprobe/type`)) throw missing(`no ${PMUS}/uprobe`)
  },
})

/**
 * uprobe.multi links (BPF_TRACE_UPROBE_MULTI, Linux 6.6, with
 * CONFIG_UPROBES). As libbpf's probe: a link on the directory '/' fails on
 * the file type (EBADF) where the kernel has the link, and on the attach type
 * (EINVAL) where it does not; EOPNOTSUPP is a kernel built without uprobes.
 */
export const { have: haveUprobeMulti, supports: supportsUprobeMulti } = declareFeature('uprobeMulti', {
  title: 'uprobe.multi links (BPF_TRACE_UPROBE_MULTI)',
  since: '6.6',
  config: ['CONFIG_UPROBES'],
  probe(missing) {
    const progType = kernel.progTypes.kprobe
    const attachType = kernel.attachTypes.trace_uprobe_multi
    const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType })
    let prog: Fd
    try {
      prog = new Fd(native.progLoadSync({ progType, insns: returnZero(), license: 'GPL', expectedAttachType: attachType, tokenFd }).fd, 'prog')
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw missing()
      throw e
    }
    try {
      native.closeFd(native.linkCreate({ progFd: prog.fd, attachType, uprobeMulti: { path: '/', offsets: new BigUint64Array([0n]) } }))
    } catch (e) {
      const code = bpfCode(e)
      if (code === 'EBADF') return
      if (code === 'EINVAL' || code === 'EOPNOTSUPP') throw missing()
      throw e
    } finally {
      prog.close()
    }
  },
})
