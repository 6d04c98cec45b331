// uprobe features: the uprobe PMU that perf-event uprobes are opened on, and
// uprobe.multi links.
import { existsSync } from 'node:fs'
import { kernel } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { probeLink } from './links.js'

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
  probe: (missing) => probeLink(missing, {
    progType: kernel.progTypes.kprobe, attachType: kernel.attachTypes.trace_uprobe_multi, expectedAttachType: kernel.attachTypes.trace_uprobe_multi,
    attrs: { uprobeMulti: { path: '/', offsets: new BigUint64Array([0n]) } }, loadMayFail: true,
  }),
})
