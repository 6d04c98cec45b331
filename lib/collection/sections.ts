// libbpf's section-name conventions as one table: the ELF section a program
// is in (SEC("xdp"), SEC("kprobe/do_unlinkat"), SEC("?tc/ingress")) decides
// its program type, expected attach type, sleepability and attach target.
// Written from the kernel's enum bpf_prog_type / bpf_attach_type names; the
// matching rules are libbpf's: "name" matches only itself, "name+" matches
// itself or "name/<target>", "name/" needs a target.
import type { AttachTypeName, ProgTypeName } from '../sys/index.js'

export interface SectionProgram {
  type: ProgTypeName
  expectedAttachType: AttachTypeName | undefined
  /** What follows the prefix's '/': the function, tracepoint, path... ('' when none). */
  attachTo: string
  /** A '.s' form: BPF_F_SLEEPABLE. */
  sleepable: boolean
  /** An 'xdp.frags' form: BPF_F_XDP_HAS_FRAGS. */
  xdpFrags: boolean
  /** False for a leading '?': the program is described but not loaded by default. */
  autoload: boolean
  /** The table entry that matched, for messages. */
  convention: string
}

type Entry = readonly [pattern: string, type: ProgTypeName, attach?: AttachTypeName, sleepable?: boolean]

// Order matters only where one pattern is a prefix of another ("kprobe.multi"
// is tried before "kprobe"): longer patterns come first within a family.
const table: readonly Entry[] = [
  ['socket', 'socket_filter'],
  ['sk_reuseport/migrate', 'sk_reuseport', 'sk_reuseport_select_or_migrate'],
  ['sk_reuseport', 'sk_reuseport', 'sk_reuseport_select'],
  ['kprobe.multi+', 'kprobe', 'trace_kprobe_multi'],
  ['kretprobe.multi+', 'kprobe', 'trace_kprobe_multi'],
  ['kprobe.session+', 'kprobe', 'trace_kprobe_session'],
  ['uprobe.multi.s+', 'kprobe', 'trace_uprobe_multi', true],
  ['uretprobe.multi.s+', 'kprobe', 'trace_uprobe_multi', true],
  ['uprobe.multi+', 'kprobe', 'trace_uprobe_multi'],
  ['uretprobe.multi+', 'kprobe', 'trace_uprobe_multi'],
  ['uprobe.session.s+', 'kprobe', 'trace_uprobe_session', true],
  ['uprobe.session+', 'kprobe', 'trace_uprobe_session'],
  ['kprobe+', 'kprobe'],
  ['kretprobe+', 'kprobe'],
  ['ksyscall+', 'kprobe'],
  ['kretsyscall+', 'kprobe'],
  ['uprobe.s+', 'kprobe', undefined, true],
  ['uretprobe.s+', 'kprobe', undefined, true],
  ['uprobe+', 'kprobe'],
  ['uretprobe+', 'kprobe'],
  ['usdt.s+', 'kprobe', undefined, true],
  ['usdt+', 'kprobe'],
  ['tc/ingress', 'sched_cls', 'tcx_ingress'],
  ['tc/egress', 'sched_cls', 'tcx_egress'],
  ['tcx/ingress', 'sched_cls', 'tcx_ingress'],
  ['tcx/egress', 'sched_cls', 'tcx_egress'],
  ['tc', 'sched_cls'],
  ['classifier', 'sched_cls'],
  ['action', 'sched_act'],
  ['netkit/primary', 'sched_cls', 'netkit_primary'],
  ['netkit/peer', 'sched_cls', 'netkit_peer'],
  ['tracepoint+', 'tracepoint'],
  ['tp+', 'tracepoint'],
  ['raw_tracepoint.w+', 'raw_tracepoint_writable'],
  ['raw_tp.w+', 'raw_tracepoint_writable'],
  ['raw_tracepoint+', 'raw_tracepoint'],
  ['raw_tp+', 'raw_tracepoint'],
  ['tp_btf+', 'tracing', 'trace_raw_tp'],
  ['fentry.s+', 'tracing', 'trace_fentry', true],
  ['fmod_ret.s+', 'tracing', 'modify_return', true],
  ['fexit.s+', 'tracing', 'trace_fexit', true],
  ['fentry+', 'tracing', 'trace_fentry'],
  ['fmod_ret+', 'tracing', 'modify_return'],
  ['fexit+', 'tracing', 'trace_fexit'],
  ['freplace+', 'ext'],
  ['lsm.s+', 'lsm', 'lsm_mac', true],
  ['lsm_cgroup+', 'lsm', 'lsm_cgroup'],
  ['lsm+', 'lsm', 'lsm_mac'],
  ['iter.s+', 'tracing', 'trace_iter', true],
  ['iter+', 'tracing', 'trace_iter'],
  ['syscall', 'syscall', undefined, true],
  ['xdp.frags/devmap', 'xdp', 'xdp_devmap'],
  ['xdp/devmap', 'xdp', 'xdp_devmap'],
  ['xdp.frags/cpumap', 'xdp', 'xdp_cpumap'],
  ['xdp/cpumap', 'xdp', 'xdp_cpumap'],
  ['xdp.frags', 'xdp', 'xdp'],
  ['xdp', 'xdp', 'xdp'],
  ['perf_event', 'perf_event'],
  ['lwt_in', 'lwt_in'],
  ['lwt_out', 'lwt_out'],
  ['lwt_xmit', 'lwt_xmit'],
  ['lwt_seg6local', 'lwt_seg6local'],
  ['sockops', 'sock_ops', 'cgroup_sock_ops'],
  ['sk_skb/stream_parser', 'sk_skb', 'sk_skb_stream_parser'],
  ['sk_skb/stream_verdict', 'sk_skb', 'sk_skb_stream_verdict'],
  ['sk_skb/verdict', 'sk_skb', 'sk_skb_verdict'],
  ['sk_skb', 'sk_skb'],
  ['sk_msg', 'sk_msg', 'sk_msg_verdict'],
  ['lirc_mode2', 'lirc_mode2', 'lirc_mode2'],
  ['flow_dissector', 'flow_dissector', 'flow_dissector'],
  ['cgroup_skb/ingress', 'cgroup_skb', 'cgroup_inet_ingress'],
  ['cgroup_skb/egress', 'cgroup_skb', 'cgroup_inet_egress'],
  ['cgroup/skb', 'cgroup_skb'],
  ['cgroup/sock_create', 'cgroup_sock', 'cgroup_inet_sock_create'],
  ['cgroup/sock_release', 'cgroup_sock', 'cgroup_inet_sock_release'],
  ['cgroup/sock', 'cgroup_sock', 'cgroup_inet_sock_create'],
  ['cgroup/post_bind4', 'cgroup_sock', 'cgroup_inet4_post_bind'],
  ['cgroup/post_bind6', 'cgroup_sock', 'cgroup_inet6_post_bind'],
  ['cgroup/bind4', 'cgroup_sock_addr', 'cgroup_inet4_bind'],
  ['cgroup/bind6', 'cgroup_sock_addr', 'cgroup_inet6_bind'],
  ['cgroup/connect4', 'cgroup_sock_addr', 'cgroup_inet4_connect'],
  ['cgroup/connect6', 'cgroup_sock_addr', 'cgroup_inet6_connect'],
  ['cgroup/connect_unix', 'cgroup_sock_addr', 'cgroup_unix_connect'],
  ['cgroup/sendmsg4', 'cgroup_sock_addr', 'cgroup_udp4_sendmsg'],
  ['cgroup/sendmsg6', 'cgroup_sock_addr', 'cgroup_udp6_sendmsg'],
  ['cgroup/sendmsg_unix', 'cgroup_sock_addr', 'cgroup_unix_sendmsg'],
  ['cgroup/recvmsg4', 'cgroup_sock_addr', 'cgroup_udp4_recvmsg'],
  ['cgroup/recvmsg6', 'cgroup_sock_addr', 'cgroup_udp6_recvmsg'],
  ['cgroup/recvmsg_unix', 'cgroup_sock_addr', 'cgroup_unix_recvmsg'],
  ['cgroup/getpeername4', 'cgroup_sock_addr', 'cgroup_inet4_getpeername'],
  ['cgroup/getpeername6', 'cgroup_sock_addr', 'cgroup_inet6_getpeername'],
  ['cgroup/getpeername_unix', 'cgroup_sock_addr', 'cgroup_unix_getpeername'],
  ['cgroup/getsockname4', 'cgroup_sock_addr', 'cgroup_inet4_getsockname'],
  ['cgroup/getsockname6', 'cgroup_sock_addr', 'cgroup_inet6_getsockname'],
  ['cgroup/getsockname_unix', 'cgroup_sock_addr', 'cgroup_unix_getsockname'],
  ['cgroup/sysctl', 'cgroup_sysctl', 'cgroup_sysctl'],
  ['cgroup/getsockopt', 'cgroup_sockopt', 'cgroup_getsockopt'],
  ['cgroup/setsockopt', 'cgroup_sockopt', 'cgroup_setsockopt'],
  ['cgroup/dev', 'cgroup_device', 'cgroup_device'],
  ['struct_ops.s+', 'struct_ops', undefined, true],
  ['struct_ops+', 'struct_ops'],
  ['sk_lookup', 'sk_lookup', 'sk_lookup'],
  ['netfilter', 'netfilter', 'netfilter'],
]

/**
 * The program a section name describes, or undefined when it follows no
 * convention (the caller reports that, naming the section and its symbols).
 */
export function programForSection(section: string): SectionProgram | undefined {
  if (typeof section !== 'string') return undefined
  const autoload = !section.startsWith('?')
  const name = autoload ? section : section.slice(1)
  for (const [pattern, type, attach, sleepable = false] of table) {
    const plus = pattern.endsWith('+')
    const prefix = plus ? pattern.slice(0, -1) : pattern
    let attachTo: string
    if (name === prefix) attachTo = ''
    else if (plus && name.startsWith(`${prefix}/`)) attachTo = name.slice(prefix.length + 1)
    else continue
    return { type, expectedAttachType: attach, attachTo, sleepable, xdpFrags: prefix.startsWith('xdp.frags'), autoload, convention: pattern }
  }
  return undefined
}

/** Every convention this table knows, for messages and docs. */
export const sectionConventions: readonly string[] = Object.freeze(table.map(([p]) => p))
