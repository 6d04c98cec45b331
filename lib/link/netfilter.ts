// Netfilter programs (Linux 6.4, CONFIG_NETFILTER_BPF_LINK): a program on an
// IPv4 or IPv6 netfilter hook, beside iptables/nftables, answering NF_ACCEPT
// or NF_DROP per packet. The kernel hooks the network namespace of the
// calling thread (there is no target fd), so a daemon that wants another
// namespace attaches from a process inside it (`ip netns exec`, nsenter);
// the link then lives in that namespace as long as the link does.
import { haveNetfilterLinks } from '../features/attach-sockets.js'
import { Fd, kernel, native } from '../sys/index.js'
import type { FdRef } from '../map/values.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'

// Kernel ABI values from include/uapi/linux/netfilter.h (NFPROTO_*, enum
// nf_inet_hooks) and include/uapi/linux/bpf.h (BPF_F_NETFILTER_IP_DEFRAG, a
// #define): the generated enums do not carry them yet.
const FAMILIES = { ipv4: 2, ipv6: 10 } as const
const HOOKS = { prerouting: 0, local_in: 1, forward: 2, local_out: 3, postrouting: 4 } as const
const IP_DEFRAG = 1

export type NetfilterFamily = keyof typeof FAMILIES
export type NetfilterHook = keyof typeof HOOKS

export interface NetfilterOptions {
  /** 'ipv4' or 'ipv6' (or an NFPROTO_* number). */
  family: NetfilterFamily | number
  /** The hook (or an NF_INET_* number). */
  hook: NetfilterHook | number
  /**
   * Order among the hook's functions, lower first (iptables' filter table is
   * 0, conntrack -200). INT32_MIN and INT32_MAX are the kernel's own (ERANGE).
   */
  priority: number
  /** Packets reach the program defragmented (Linux 6.6+; priority must then be above -400, NF_IP_PRI_CONNTRACK_DEFRAG). */
  defrag?: boolean
}

function named(table: Readonly<Record<string, number>>, what: string, value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`attachNetfilter: ${what} must be a name or a non-negative integer, got ${value}`)
    return value
  }
  if (typeof value === 'string' && Object.hasOwn(table, value)) return table[value]
  throw new TypeError(`attachNetfilter: ${what} must be one of ${Object.keys(table).join(', ')} (or a number), got ${describeValue(value)}`)
}

/**
 * Attaches a netfilter program to a hook of the calling process's network
 * namespace (BPF_LINK_TYPE_NETFILTER). `info()` reports the link; closing it
 * (unless pinned) removes the hook. Netfilter links cannot be updated in
 * place (the kernel says EOPNOTSUPP).
 *
 * Errors: TypeError / RangeError for options; NotSupportedError naming 6.4
 * and CONFIG_NETFILTER_BPF_LINK; BpfError EAFNOSUPPORT (unknown family),
 * EPROTO (unknown hook), ERANGE (reserved priority, or defrag with a
 * priority at or below defragmentation), EOPNOTSUPP (defrag before 6.6, or
 * without the nf_defrag modules), EBUSY (another BPF program holds that
 * priority), EPERM without CAP_NET_ADMIN.
 */
export function attachNetfilter(program: FdRef, options: NetfilterOptions): BpfLink {
  checkOptions('attachNetfilter', options, ['family', 'hook', 'priority', 'defrag'], { required: true, types: { priority: 'number', defrag: 'boolean' } })
  if (program === null || typeof program !== 'object' || !('fd' in program)) throw new TypeError(`attachNetfilter: program must be a BpfProgram or an object with a program fd, got ${describeValue(program)}`)
  const pf = named(FAMILIES, 'family', options.family)
  const hooknum = named(HOOKS, 'hook', options.hook)
  const priority = options.priority
  if (typeof priority !== 'number') throw new TypeError(`attachNetfilter: priority must be a number, got ${describeValue(priority)}`)
  if (!Number.isInteger(priority) || priority < -0x80000000 || priority > 0x7fffffff) throw new RangeError(`attachNetfilter: priority must be a 32-bit integer, got ${priority}`)
  haveNetfilterLinks()
  const fd = native.linkCreate({
    progFd: program.fd,
    attachType: kernel.attachTypes.netfilter,
    netfilter: { pf, hooknum, priority, flags: options.defrag ? IP_DEFRAG : 0 },
  })
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}
