// Naming the calls in a loaded program's translated instructions. The
// verifier replaces a helper call's id with the offset of the function it
// calls from __bpf_call_base (kernel/bpf/verifier.c, BPF_CALL_IMM), and so
// does it for kfuncs on architectures without far kfunc calls (x86-64). The
// kernel's symbol table (/proc/kallsyms, addresses visible to root) names
// that function; a table below turns the function back into the helper.
import { readKallsyms, type KernelSymbol } from '../sys/kallsyms.js'
import { findEnumValue } from '../sys/names.js'
import { kernel } from '../sys/index.js'

let symbols: { base: bigint; byAddress: Map<bigint, string[]> } | null | undefined

// Read once per process: about 100k lines, only text symbols kept.
function kallsyms(): { base: bigint; byAddress: Map<bigint, string[]> } | null {
  if (symbols !== undefined) return symbols
  symbols = null
  let all: KernelSymbol[]
  try {
    all = readKallsyms()
  } catch {
    return null
  }
  const byAddress = new Map<bigint, string[]>()
  let base: bigint | undefined
  for (const { address: a, type, name } of all) {
    if (type !== 'T' && type !== 't') continue
    // Hidden addresses read as 0: nothing can be named then.
    if (a === 0n) continue
    if (name === '__bpf_call_base') base = a
    const list = byAddress.get(a)
    if (list) list.push(name)
    else byAddress.set(a, [name])
  }
  if (base !== undefined) symbols = { base, byAddress }
  return symbols
}

/** The kernel functions a translated call's imm points at, or undefined when kallsyms cannot tell. */
export function kernelSymbolAt(imm: number): string[] | undefined {
  const k = kallsyms()
  if (!k || imm === 0) return undefined
  return k.byAddress.get(k.base + BigInt(imm | 0))
}

// Helpers whose function is not bpf_<helper name> (net/core/filter.c,
// kernel/trace/bpf_trace.c, kernel/bpf/*.c), as this kernel names them.
const aliases: Readonly<Record<string, string>> = {
  bpf_perf_event_output_tp: 'perf_event_output',
  bpf_perf_event_output_raw_tp: 'perf_event_output',
  bpf_get_stackid_tp: 'get_stackid',
  bpf_get_stackid_pe: 'get_stackid',
  bpf_get_stackid_raw_tp: 'get_stackid',
  bpf_get_stack_tp: 'get_stack',
  bpf_get_stack_pe: 'get_stack',
  bpf_get_stack_raw_tp: 'get_stack',
  bpf_get_stack_sleepable: 'get_stack',
  bpf_xdp_sk_lookup_tcp: 'sk_lookup_tcp',
  bpf_xdp_sk_lookup_udp: 'sk_lookup_udp',
  bpf_xdp_skc_lookup_tcp: 'skc_lookup_tcp',
  bpf_sock_addr_sk_lookup_tcp: 'sk_lookup_tcp',
  bpf_sock_addr_sk_lookup_udp: 'sk_lookup_udp',
  bpf_sock_addr_skc_lookup_tcp: 'skc_lookup_tcp',
  bpf_probe_read_compat: 'probe_read',
  bpf_probe_read_compat_str: 'probe_read_str',
  sk_reuseport_load_bytes: 'skb_load_bytes',
  sk_reuseport_load_bytes_relative: 'skb_load_bytes_relative',
  bpf_xdp_fib_lookup: 'fib_lookup',
  bpf_skb_fib_lookup: 'fib_lookup',
  bpf_xdp_check_mtu: 'check_mtu',
  bpf_skb_check_mtu: 'check_mtu',
  bpf_get_netns_cookie_sock: 'get_netns_cookie',
  bpf_get_netns_cookie_sock_addr: 'get_netns_cookie',
  bpf_get_netns_cookie_sock_ops: 'get_netns_cookie',
  bpf_get_netns_cookie_sk_msg: 'get_netns_cookie',
  bpf_get_netns_cookie_sockopt: 'get_netns_cookie',
  bpf_get_socket_cookie_sock_addr: 'get_socket_cookie',
  bpf_get_socket_cookie_sock_ops: 'get_socket_cookie',
  bpf_get_socket_cookie_sock: 'get_socket_cookie',
  bpf_get_socket_ptr_cookie: 'get_socket_cookie',
  bpf_xdp_redirect_map: 'redirect_map',
  bpf_sk_lookup_assign: 'sk_assign',
  bpf_sock_addr_setsockopt: 'setsockopt',
  bpf_sock_ops_setsockopt: 'setsockopt',
  bpf_sk_setsockopt: 'setsockopt',
  bpf_unlocked_sk_setsockopt: 'setsockopt',
  bpf_sock_addr_getsockopt: 'getsockopt',
  bpf_sock_ops_getsockopt: 'getsockopt',
  bpf_sk_getsockopt: 'getsockopt',
  bpf_unlocked_sk_getsockopt: 'getsockopt',
  bpf_get_cgroup_classid_curr: 'get_cgroup_classid',
  bpf_get_func_ip_tracing: 'get_func_ip',
  bpf_get_func_ip_kprobe: 'get_func_ip',
  bpf_get_func_ip_kprobe_multi: 'get_func_ip',
  bpf_get_func_ip_uprobe_multi: 'get_func_ip',
  bpf_get_attach_cookie_trace: 'get_attach_cookie',
  bpf_get_attach_cookie_kprobe_multi: 'get_attach_cookie',
  bpf_get_attach_cookie_uprobe_multi: 'get_attach_cookie',
  bpf_get_attach_cookie_pe: 'get_attach_cookie',
  bpf_get_attach_cookie_tracing: 'get_attach_cookie',
  bpf_lwt_xmit_push_encap: 'lwt_push_encap',
  bpf_lwt_in_push_encap: 'lwt_push_encap',
  bpf_sk_storage_get_tracing: 'sk_storage_get',
  bpf_sk_storage_delete_tracing: 'sk_storage_delete',
}

// One function serves two helpers; the program type tells which was called
// (skb_output and xdp_output exist only for tracing programs).
const byProgramType: Readonly<Record<string, (type: string) => string>> = {
  bpf_skb_event_output: (t) => (t === 'tracing' ? 'skb_output' : 'perf_event_output'),
  bpf_xdp_event_output: (t) => (t === 'tracing' ? 'xdp_output' : 'perf_event_output'),
}

// Map helpers the verifier sends straight to the map's operation
// (kernel/bpf/verifier.c do_misc_fixups: ops->map_lookup_elem, ...).
const mapOps: readonly [RegExp, string][] = [
  [/_lookup_percpu_elem$/, 'map_lookup_percpu_elem'],
  [/_map_lookup_elem$/, 'map_lookup_elem'],
  [/_map_update_elem$/, 'map_update_elem'],
  [/_map_delete_elem$/, 'map_delete_elem'],
  [/_map_push_elem$/, 'map_push_elem'],
  [/_map_pop_elem$/, 'map_pop_elem'],
  [/_map_peek_elem$/, 'map_peek_elem'],
  [/_map_redirect$/, 'redirect_map'],
  [/^bpf_for_each_\w+_elem$/, 'for_each_map_elem'],
  [/^sock_(map|hash)_lookup$/, 'map_lookup_elem'],
]

/** The helper a kernel function implements, for a program of type `progType`; undefined when none is known. */
export function helperOfKernelSymbol(names: readonly string[] | undefined, progType: string): string | undefined {
  for (const name of names ?? []) {
    if (name.startsWith('bpf_') && findEnumValue(kernel.helpers, name.slice(4)) !== undefined) return name.slice(4)
    if (Object.hasOwn(aliases, name)) return aliases[name]
    if (Object.hasOwn(byProgramType, name)) return byProgramType[name](progType)
    for (const [re, helper] of mapOps) if (re.test(name)) return helper
  }
  return undefined
}
