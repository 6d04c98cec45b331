// Section names to program types: libbpf's conventions, each form once.
import { describe, expect, it } from 'vitest'
import { programForSection, sectionConventions } from '../../lib/collection/sections.js'
import { kernel } from '../../lib/sys/index.js'

describe('programForSection', () => {
  it.each([
    ['socket', 'socket_filter', undefined, ''],
    ['xdp', 'xdp', 'xdp', ''],
    ['xdp.frags/devmap', 'xdp', 'xdp_devmap', ''],
    ['tc/ingress', 'sched_cls', 'tcx_ingress', ''],
    ['kprobe/do_unlinkat', 'kprobe', undefined, 'do_unlinkat'],
    ['kprobe.multi/tcp_*', 'kprobe', 'trace_kprobe_multi', 'tcp_*'],
    ['uprobe.s//bin/true:main', 'kprobe', undefined, '/bin/true:main'],
    ['tracepoint/syscalls/sys_enter_openat', 'tracepoint', undefined, 'syscalls/sys_enter_openat'],
    ['tp_btf/sched_switch', 'tracing', 'trace_raw_tp', 'sched_switch'],
    ['fentry/bpf_prog_load', 'tracing', 'trace_fentry', 'bpf_prog_load'],
    ['lsm.s/bpf', 'lsm', 'lsm_mac', 'bpf'],
    ['iter/task', 'tracing', 'trace_iter', 'task'],
    ['cgroup_skb/egress', 'cgroup_skb', 'cgroup_inet_egress', ''],
    ['cgroup/connect4', 'cgroup_sock_addr', 'cgroup_inet4_connect', ''],
    ['sk_skb/stream_verdict', 'sk_skb', 'sk_skb_stream_verdict', ''],
    ['struct_ops/dctcp_init', 'struct_ops', undefined, 'dctcp_init'],
    ['syscall', 'syscall', undefined, ''],
  ])('%s', (section, type, attach, attachTo) => {
    expect(programForSection(section)).toMatchObject({ type, expectedAttachType: attach, attachTo, autoload: true })
  })

  it('reads the flags the name carries: ? for no autoload, .s for sleepable, xdp.frags', () => {
    expect(programForSection('?xdp')).toMatchObject({ type: 'xdp', autoload: false })
    expect(programForSection('fentry.s/x')).toMatchObject({ sleepable: true })
    expect(programForSection('fentry/x')).toMatchObject({ sleepable: false })
    expect(programForSection('xdp.frags')).toMatchObject({ xdpFrags: true })
  })

  it('matches whole conventions only', () => {
    for (const s of ['socketx', 'socket/x', 'xdpfoo', 'kprobex/y', '.text', '', 'license']) expect(programForSection(s), s).toBeUndefined()
  })

  it('names only program and attach types this kernel knows', () => {
    for (const c of sectionConventions) {
      const p = programForSection(c.replace(/\+$/, ''))!
      expect(p, c).toBeDefined()
      expect(Object.hasOwn(kernel.progTypes, p.type), `${c}: ${p.type}`).toBe(true)
      if (p.expectedAttachType !== undefined) expect(Object.hasOwn(kernel.attachTypes, p.expectedAttachType), `${c}: ${p.expectedAttachType}`).toBe(true)
    }
  })
})
