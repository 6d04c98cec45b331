// Section names of a clang-built object (sections.bpf.c, one program per
// libbpf convention that lib/collection/sections.ts knows): each program's
// type, expected attach type, attach target, sleepable and xdp frags flags
// and autoload come from its section, and the loader loads programs of the
// main families with those attributes.
import { describe, expect, test } from 'vitest'
import { BpfError, BpfProgram, features, kernel, VerifierError, type AttachTypeName, type ProgTypeName } from '../../lib/index.js'
import { fixtureSpec } from './helpers/collection.js'
import { requireFeature } from './helpers/requires.js'

const SLEEPABLE = kernel.progLoadFlags.BPF_F_SLEEPABLE
const XDP_HAS_FRAGS = kernel.progLoadFlags.BPF_F_XDP_HAS_FRAGS

// What sections.bpf.c's generator wrote: C name -> what its section means.
// The attach target is what follows the convention's '/'; '?' sections are
// described but not loaded by default.
const expected = {
  on_socket: { section: 'socket', type: 'socket_filter', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_sk_reuseport_migrate: { section: 'sk_reuseport/migrate', type: 'sk_reuseport', expectedAttachType: 'sk_reuseport_select_or_migrate', attachTo: '', sleepable: false, autoload: true },
  on_sk_reuseport: { section: 'sk_reuseport', type: 'sk_reuseport', expectedAttachType: 'sk_reuseport_select', attachTo: '', sleepable: false, autoload: true },
  on_kprobe_multi: { section: 'kprobe.multi/do_unlink*', type: 'kprobe', expectedAttachType: 'trace_kprobe_multi', attachTo: 'do_unlink*', sleepable: false, autoload: true },
  on_kretprobe_multi: { section: 'kretprobe.multi/do_unlink*', type: 'kprobe', expectedAttachType: 'trace_kprobe_multi', attachTo: 'do_unlink*', sleepable: false, autoload: true },
  on_kprobe_session: { section: 'kprobe.session/do_unlinkat', type: 'kprobe', expectedAttachType: 'trace_kprobe_session', attachTo: 'do_unlinkat', sleepable: false, autoload: true },
  on_uprobe_multi_sleepable: { section: 'uprobe.multi.s', type: 'kprobe', expectedAttachType: 'trace_uprobe_multi', attachTo: '', sleepable: true, autoload: true },
  on_uretprobe_multi_sleepable: { section: 'uretprobe.multi.s', type: 'kprobe', expectedAttachType: 'trace_uprobe_multi', attachTo: '', sleepable: true, autoload: true },
  on_uprobe_multi: { section: 'uprobe.multi', type: 'kprobe', expectedAttachType: 'trace_uprobe_multi', attachTo: '', sleepable: false, autoload: true },
  on_uretprobe_multi: { section: 'uretprobe.multi', type: 'kprobe', expectedAttachType: 'trace_uprobe_multi', attachTo: '', sleepable: false, autoload: true },
  on_uprobe_session_sleepable: { section: 'uprobe.session.s', type: 'kprobe', expectedAttachType: 'trace_uprobe_session', attachTo: '', sleepable: true, autoload: true },
  on_uprobe_session: { section: 'uprobe.session', type: 'kprobe', expectedAttachType: 'trace_uprobe_session', attachTo: '', sleepable: false, autoload: true },
  on_kprobe: { section: 'kprobe/do_unlinkat', type: 'kprobe', expectedAttachType: undefined, attachTo: 'do_unlinkat', sleepable: false, autoload: true },
  on_kretprobe: { section: 'kretprobe/do_unlinkat', type: 'kprobe', expectedAttachType: undefined, attachTo: 'do_unlinkat', sleepable: false, autoload: true },
  on_ksyscall: { section: 'ksyscall/openat', type: 'kprobe', expectedAttachType: undefined, attachTo: 'openat', sleepable: false, autoload: true },
  on_kretsyscall: { section: 'kretsyscall/openat', type: 'kprobe', expectedAttachType: undefined, attachTo: 'openat', sleepable: false, autoload: true },
  on_uprobe_sleepable: { section: 'uprobe.s', type: 'kprobe', expectedAttachType: undefined, attachTo: '', sleepable: true, autoload: true },
  on_uretprobe_sleepable: { section: 'uretprobe.s//bin/true:main', type: 'kprobe', expectedAttachType: undefined, attachTo: '/bin/true:main', sleepable: true, autoload: true },
  on_uprobe: { section: 'uprobe//bin/true:main', type: 'kprobe', expectedAttachType: undefined, attachTo: '/bin/true:main', sleepable: false, autoload: true },
  on_uretprobe: { section: 'uretprobe', type: 'kprobe', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_usdt_sleepable: { section: 'usdt.s', type: 'kprobe', expectedAttachType: undefined, attachTo: '', sleepable: true, autoload: true },
  on_usdt: { section: 'usdt//bin/true:provider:probe', type: 'kprobe', expectedAttachType: undefined, attachTo: '/bin/true:provider:probe', sleepable: false, autoload: true },
  on_tc_ingress: { section: 'tc/ingress', type: 'sched_cls', expectedAttachType: 'tcx_ingress', attachTo: '', sleepable: false, autoload: true },
  on_tc_egress: { section: 'tc/egress', type: 'sched_cls', expectedAttachType: 'tcx_egress', attachTo: '', sleepable: false, autoload: true },
  on_tcx_ingress: { section: 'tcx/ingress', type: 'sched_cls', expectedAttachType: 'tcx_ingress', attachTo: '', sleepable: false, autoload: true },
  on_tcx_egress: { section: 'tcx/egress', type: 'sched_cls', expectedAttachType: 'tcx_egress', attachTo: '', sleepable: false, autoload: true },
  on_tc: { section: 'tc', type: 'sched_cls', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_classifier: { section: 'classifier', type: 'sched_cls', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_action: { section: 'action', type: 'sched_act', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_netkit_primary: { section: 'netkit/primary', type: 'sched_cls', expectedAttachType: 'netkit_primary', attachTo: '', sleepable: false, autoload: true },
  on_netkit_peer: { section: 'netkit/peer', type: 'sched_cls', expectedAttachType: 'netkit_peer', attachTo: '', sleepable: false, autoload: true },
  on_tracepoint: { section: 'tracepoint/syscalls/sys_enter_openat', type: 'tracepoint', expectedAttachType: undefined, attachTo: 'syscalls/sys_enter_openat', sleepable: false, autoload: true },
  on_tp: { section: 'tp/sched/sched_switch', type: 'tracepoint', expectedAttachType: undefined, attachTo: 'sched/sched_switch', sleepable: false, autoload: true },
  on_raw_tracepoint_w: { section: 'raw_tracepoint.w/bpf_test_finish', type: 'raw_tracepoint_writable', expectedAttachType: undefined, attachTo: 'bpf_test_finish', sleepable: false, autoload: true },
  on_raw_tp_w: { section: 'raw_tp.w/bpf_test_finish', type: 'raw_tracepoint_writable', expectedAttachType: undefined, attachTo: 'bpf_test_finish', sleepable: false, autoload: true },
  on_raw_tracepoint: { section: 'raw_tracepoint/sched_switch', type: 'raw_tracepoint', expectedAttachType: undefined, attachTo: 'sched_switch', sleepable: false, autoload: true },
  on_raw_tp: { section: 'raw_tp/sched_switch', type: 'raw_tracepoint', expectedAttachType: undefined, attachTo: 'sched_switch', sleepable: false, autoload: true },
  on_tp_btf: { section: '?tp_btf/sched_switch', type: 'tracing', expectedAttachType: 'trace_raw_tp', attachTo: 'sched_switch', sleepable: false, autoload: false },
  on_fentry_sleepable: { section: '?fentry.s/do_unlinkat', type: 'tracing', expectedAttachType: 'trace_fentry', attachTo: 'do_unlinkat', sleepable: true, autoload: false },
  on_fmod_ret_sleepable: { section: '?fmod_ret.s/security_file_open', type: 'tracing', expectedAttachType: 'modify_return', attachTo: 'security_file_open', sleepable: true, autoload: false },
  on_fexit_sleepable: { section: '?fexit.s/do_unlinkat', type: 'tracing', expectedAttachType: 'trace_fexit', attachTo: 'do_unlinkat', sleepable: true, autoload: false },
  on_fentry: { section: '?fentry/do_unlinkat', type: 'tracing', expectedAttachType: 'trace_fentry', attachTo: 'do_unlinkat', sleepable: false, autoload: false },
  on_fmod_ret: { section: '?fmod_ret/security_file_open', type: 'tracing', expectedAttachType: 'modify_return', attachTo: 'security_file_open', sleepable: false, autoload: false },
  on_fexit: { section: '?fexit/do_unlinkat', type: 'tracing', expectedAttachType: 'trace_fexit', attachTo: 'do_unlinkat', sleepable: false, autoload: false },
  on_freplace: { section: '?freplace/handler', type: 'ext', expectedAttachType: undefined, attachTo: 'handler', sleepable: false, autoload: false },
  on_lsm_sleepable: { section: '?lsm.s/bprm_committed_creds', type: 'lsm', expectedAttachType: 'lsm_mac', attachTo: 'bprm_committed_creds', sleepable: true, autoload: false },
  on_lsm_cgroup: { section: '?lsm_cgroup/socket_bind', type: 'lsm', expectedAttachType: 'lsm_cgroup', attachTo: 'socket_bind', sleepable: false, autoload: false },
  on_lsm: { section: '?lsm/file_open', type: 'lsm', expectedAttachType: 'lsm_mac', attachTo: 'file_open', sleepable: false, autoload: false },
  on_iter_sleepable: { section: '?iter.s/task', type: 'tracing', expectedAttachType: 'trace_iter', attachTo: 'task', sleepable: true, autoload: false },
  on_iter: { section: '?iter/task', type: 'tracing', expectedAttachType: 'trace_iter', attachTo: 'task', sleepable: false, autoload: false },
  on_syscall: { section: 'syscall', type: 'syscall', expectedAttachType: undefined, attachTo: '', sleepable: true, autoload: true },
  on_xdp_frags_devmap: { section: 'xdp.frags/devmap', type: 'xdp', expectedAttachType: 'xdp_devmap', attachTo: '', sleepable: false, autoload: true },
  on_xdp_devmap: { section: 'xdp/devmap', type: 'xdp', expectedAttachType: 'xdp_devmap', attachTo: '', sleepable: false, autoload: true },
  on_xdp_frags_cpumap: { section: 'xdp.frags/cpumap', type: 'xdp', expectedAttachType: 'xdp_cpumap', attachTo: '', sleepable: false, autoload: true },
  on_xdp_cpumap: { section: 'xdp/cpumap', type: 'xdp', expectedAttachType: 'xdp_cpumap', attachTo: '', sleepable: false, autoload: true },
  on_xdp_frags: { section: 'xdp.frags', type: 'xdp', expectedAttachType: 'xdp', attachTo: '', sleepable: false, autoload: true },
  on_xdp: { section: 'xdp', type: 'xdp', expectedAttachType: 'xdp', attachTo: '', sleepable: false, autoload: true },
  on_perf_event: { section: 'perf_event', type: 'perf_event', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_lwt_in: { section: 'lwt_in', type: 'lwt_in', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_lwt_out: { section: 'lwt_out', type: 'lwt_out', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_lwt_xmit: { section: 'lwt_xmit', type: 'lwt_xmit', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_lwt_seg6local: { section: 'lwt_seg6local', type: 'lwt_seg6local', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_sockops: { section: 'sockops', type: 'sock_ops', expectedAttachType: 'cgroup_sock_ops', attachTo: '', sleepable: false, autoload: true },
  on_sk_skb_stream_parser: { section: 'sk_skb/stream_parser', type: 'sk_skb', expectedAttachType: 'sk_skb_stream_parser', attachTo: '', sleepable: false, autoload: true },
  on_sk_skb_stream_verdict: { section: 'sk_skb/stream_verdict', type: 'sk_skb', expectedAttachType: 'sk_skb_stream_verdict', attachTo: '', sleepable: false, autoload: true },
  on_sk_skb_verdict: { section: 'sk_skb/verdict', type: 'sk_skb', expectedAttachType: 'sk_skb_verdict', attachTo: '', sleepable: false, autoload: true },
  on_sk_skb: { section: 'sk_skb', type: 'sk_skb', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_sk_msg: { section: 'sk_msg', type: 'sk_msg', expectedAttachType: 'sk_msg_verdict', attachTo: '', sleepable: false, autoload: true },
  on_lirc_mode2: { section: '?lirc_mode2', type: 'lirc_mode2', expectedAttachType: 'lirc_mode2', attachTo: '', sleepable: false, autoload: false },
  on_flow_dissector: { section: 'flow_dissector', type: 'flow_dissector', expectedAttachType: 'flow_dissector', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_skb_ingress: { section: 'cgroup_skb/ingress', type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_skb_egress: { section: 'cgroup_skb/egress', type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_skb: { section: 'cgroup/skb', type: 'cgroup_skb', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sock_create: { section: 'cgroup/sock_create', type: 'cgroup_sock', expectedAttachType: 'cgroup_inet_sock_create', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sock_release: { section: 'cgroup/sock_release', type: 'cgroup_sock', expectedAttachType: 'cgroup_inet_sock_release', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sock: { section: 'cgroup/sock', type: 'cgroup_sock', expectedAttachType: 'cgroup_inet_sock_create', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_post_bind4: { section: 'cgroup/post_bind4', type: 'cgroup_sock', expectedAttachType: 'cgroup_inet4_post_bind', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_post_bind6: { section: 'cgroup/post_bind6', type: 'cgroup_sock', expectedAttachType: 'cgroup_inet6_post_bind', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_bind4: { section: 'cgroup/bind4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_bind', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_bind6: { section: 'cgroup/bind6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet6_bind', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_connect4: { section: 'cgroup/connect4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_connect', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_connect6: { section: 'cgroup/connect6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet6_connect', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_connect_unix: { section: 'cgroup/connect_unix', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_unix_connect', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sendmsg4: { section: 'cgroup/sendmsg4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_udp4_sendmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sendmsg6: { section: 'cgroup/sendmsg6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_udp6_sendmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sendmsg_unix: { section: 'cgroup/sendmsg_unix', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_unix_sendmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_recvmsg4: { section: 'cgroup/recvmsg4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_udp4_recvmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_recvmsg6: { section: 'cgroup/recvmsg6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_udp6_recvmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_recvmsg_unix: { section: 'cgroup/recvmsg_unix', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_unix_recvmsg', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getpeername4: { section: 'cgroup/getpeername4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_getpeername', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getpeername6: { section: 'cgroup/getpeername6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet6_getpeername', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getpeername_unix: { section: 'cgroup/getpeername_unix', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_unix_getpeername', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getsockname4: { section: 'cgroup/getsockname4', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_getsockname', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getsockname6: { section: 'cgroup/getsockname6', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet6_getsockname', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getsockname_unix: { section: 'cgroup/getsockname_unix', type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_unix_getsockname', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_sysctl: { section: 'cgroup/sysctl', type: 'cgroup_sysctl', expectedAttachType: 'cgroup_sysctl', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_getsockopt: { section: 'cgroup/getsockopt', type: 'cgroup_sockopt', expectedAttachType: 'cgroup_getsockopt', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_setsockopt: { section: 'cgroup/setsockopt', type: 'cgroup_sockopt', expectedAttachType: 'cgroup_setsockopt', attachTo: '', sleepable: false, autoload: true },
  on_cgroup_dev: { section: 'cgroup/dev', type: 'cgroup_device', expectedAttachType: 'cgroup_device', attachTo: '', sleepable: false, autoload: true },
  on_struct_ops_sleepable: { section: '?struct_ops.s/test_2', type: 'struct_ops', expectedAttachType: undefined, attachTo: 'test_2', sleepable: true, autoload: false },
  on_struct_ops: { section: '?struct_ops/test_1', type: 'struct_ops', expectedAttachType: undefined, attachTo: 'test_1', sleepable: false, autoload: false },
  on_sk_lookup: { section: 'sk_lookup', type: 'sk_lookup', expectedAttachType: 'sk_lookup', attachTo: '', sleepable: false, autoload: true },
  on_netfilter: { section: 'netfilter', type: 'netfilter', expectedAttachType: 'netfilter', attachTo: '', sleepable: false, autoload: true },
  // Not a convention of its own: the one '?' program any kernel loads.
  on_socket_optional: { section: '?socket', type: 'socket_filter', expectedAttachType: undefined, attachTo: '', sleepable: false, autoload: false },
} as const

describe('sections.bpf.c: every convention, at spec level', () => {
  const spec = fixtureSpec('sections')

  test('one program per convention, and on_socket_optional', () => {
    expect(Object.keys(spec.programs).sort()).toEqual(Object.keys(expected).sort())
  })

  test.each(Object.entries(expected))('%s', (name, want) => {
    const p = spec.programs[name]
    expect(p).toMatchObject({ section: want.section, type: want.type, attachTo: want.attachTo, autoload: want.autoload })
    expect(p.expectedAttachType).toBe(want.expectedAttachType)
    expect((p.flags & SLEEPABLE) !== 0).toBe(want.sleepable)
    expect((p.flags & XDP_HAS_FRAGS) !== 0).toBe(want.section.startsWith('xdp.frags'))
    expect(p.name).toBe(name.slice(0, 15))
  })
})

// Programs of the main families, each loaded on its own with what its
// section says; a type the kernel lacks is skipped with the probe's reason.
const loadable: readonly (keyof typeof expected)[] = [
  'on_socket', 'on_tc', 'on_classifier', 'on_action', 'on_xdp', 'on_xdp_devmap', 'on_xdp_frags', 'on_kprobe',
  'on_kretprobe', 'on_uprobe', 'on_tracepoint', 'on_tp', 'on_raw_tp', 'on_raw_tracepoint_w', 'on_perf_event',
  'on_syscall', 'on_cgroup_skb_ingress', 'on_cgroup_sock_create', 'on_cgroup_connect4', 'on_cgroup_recvmsg4',
  'on_cgroup_sysctl', 'on_cgroup_getsockopt', 'on_cgroup_dev', 'on_sockops', 'on_sk_skb_stream_verdict', 'on_sk_msg',
  'on_flow_dissector', 'on_sk_lookup', 'on_lwt_xmit', 'on_sk_reuseport',
]

// Attributes newer than their program type, with the release that added them.
const attributeSince: Partial<Record<(typeof loadable)[number], string>> = {
  on_xdp_frags: '5.18 (BPF_F_XDP_HAS_FRAGS)',
  on_sk_reuseport: '5.14 (BPF_SK_REUSEPORT_SELECT)',
  on_xdp_devmap: '5.8 (BPF_XDP_DEVMAP)',
  on_syscall: '5.14 (sleepable syscall programs)',
}

/**
 * Probes the attributes the table (not the loader) gives a program: a
 * two-instruction program of that type, attach type and flags. The kernel
 * refuses unknown attach types and flags with EINVAL before it verifies
 * anything; any other failure is thrown.
 */
async function attributesMissing(name: (typeof loadable)[number]): Promise<string | undefined> {
  const want = expected[name]
  const r0 = want.type === 'cgroup_sock_addr' ? 1 : 0
  const flags = (want.sleepable ? SLEEPABLE : 0) | (want.section.startsWith('xdp.frags') ? XDP_HAS_FRAGS : 0)
  try {
    const p = await BpfProgram.load({
      type: want.type as ProgTypeName, expectedAttachType: want.expectedAttachType as AttachTypeName | undefined, flags, license: 'GPL',
      bytes: new Uint8Array([0xb7, 0, 0, 0, r0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]), // r0 = <r0>; exit
    })
    p.close()
    return undefined
  } catch (e) {
    if (e instanceof BpfError && !(e instanceof VerifierError) && e.code === 'EINVAL') {
      return `kernel refuses ${want.type} with expected attach type ${want.expectedAttachType ?? 'none'} and flags ${flags}${attributeSince[name] ? ` (Linux ${attributeSince[name]})` : ''}`
    }
    throw e
  }
}

describe('sections.bpf.c: programs load with the attributes their section gives', () => {
  test.for(loadable)('%s', async (name, ctx) => {
    const want = expected[name]
    const why = requireFeature(() => features.haveProgramType(want.type as ProgTypeName)) ?? (await attributesMissing(name))
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('sections').load({ programs: [name] })
    expect(Object.keys(coll.programs)).toEqual([name])
    expect(coll.programs[name].type).toBe(want.type)
    expect(coll.programs[name].info().name).toBe(name.slice(0, 15))
  })

  test('a "?" program loads when asked for by name, beside an autoloaded one', async () => {
    using coll = await fixtureSpec('sections').load({ programs: ['on_socket_optional', 'on_socket'] })
    expect(Object.keys(coll.programs).sort()).toEqual(['on_socket', 'on_socket_optional'])
    expect(coll.programs.on_socket_optional.type).toBe('socket_filter')
  })

  test('an unknown program name in `programs` is an error naming it', async () => {
    await expect(fixtureSpec('sections').load({ programs: ['no_such_program'] })).rejects.toThrow(/no_such_program/)
  })
})
