// Network attach points: xdp links, tcx links, netkit links, and the classic
// tc path (a clsact qdisc with a direct-action bpf filter, over netlink).
// Probes that need a real device use the loopback of a network namespace made
// for the probe (netnsCreate): nothing is ever attached to a host interface.
import { Fd, kernel, native, tokenFdFor } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { probeLink } from './links.js'
import { bpfCode } from './probe-cache.js'
import { returnZero } from './prog-types.js'

// An interface index no namespace has: the kernel fails looking the device
// up (ENODEV) once it knows the attach type, and refuses an attach type it
// does not know first (EINVAL).
const IMPOSSIBLE_IFINDEX = 0x7fffffff
// The loopback device is ifindex 1 in every network namespace.
const LOOPBACK_IFINDEX = 1

function loadReturnZero(progType: number): Fd {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType })
  return new Fd(native.progLoadSync({ progType, insns: returnZero(), license: 'GPL', tokenFd }).fd, 'prog')
}

/** Runs fn inside a new network namespace of the probe's own (only lo, down). */
function inProbeNetns<T>(fn: () => T): T {
  const ns = new Fd(native.netnsCreate(), 'netns')
  try {
    return native.withNetns(ns.fd, fn)
  } finally {
    ns.close()
  }
}

/** LINK_CREATE of a sched_cls program for `attachType` on an interface no namespace has: ENODEV where the kernel knows the type. */
function ifindexLinkProbe(missing: () => Error, attachType: number): void {
  probeLink(missing, { progType: kernel.progTypes.sched_cls, attachType, attrs: { targetIfindex: IMPOSSIBLE_IFINDEX }, present: ['ENODEV'] })
}

/**
 * xdp links (BPF_LINK_CREATE with BPF_XDP, Linux 5.9). The kernel answers
 * EINVAL both for an unknown device and an unknown attach type, so the probe
 * attaches to the loopback of a namespace it makes and drops at once.
 * Needs CAP_SYS_ADMIN (the namespace) and CAP_NET_ADMIN.
 */
export const { have: haveXdpLink, supports: supportsXdpLink } = declareFeature('xdpLink', {
  title: 'xdp links (LINK_CREATE with BPF_XDP)',
  since: '5.9',
  probe: (missing) => {
    const prog = loadReturnZero(kernel.progTypes.xdp)
    try {
      inProbeNetns(() => native.closeFd(native.linkCreate({ progFd: prog.fd, targetIfindex: LOOPBACK_IFINDEX, attachType: kernel.attachTypes.xdp })))
    } catch (e) {
      if (bpfCode(e) === 'EINVAL') throw missing()
      throw e
    } finally {
      prog.close()
    }
  },
})

/** tcx links (BPF_TCX_INGRESS / BPF_TCX_EGRESS, Linux 6.6): tc programs as ordered links, no qdisc. */
export const { have: haveTcx, supports: supportsTcx } = declareFeature('tcx', {
  title: 'tcx links (LINK_CREATE with BPF_TCX_INGRESS/EGRESS)',
  since: '6.6',
  probe: (missing) => ifindexLinkProbe(missing, kernel.attachTypes.tcx_ingress),
})

/**
 * netkit links (BPF_NETKIT_PRIMARY / BPF_NETKIT_PEER, Linux 6.7) on netkit
 * devices; a kernel built without CONFIG_NETKIT refuses the attach type.
 */
export const { have: haveNetkit, supports: supportsNetkit } = declareFeature('netkit', {
  title: 'netkit links (LINK_CREATE with BPF_NETKIT_PRIMARY/PEER)',
  since: '6.7',
  config: ['CONFIG_NETKIT'],
  probe: (missing) => ifindexLinkProbe(missing, kernel.attachTypes.netkit_primary),
})

/**
 * The classic tc attachment: a clsact qdisc (CONFIG_NET_SCH_INGRESS) and a
 * direct-action bpf filter (CONFIG_NET_CLS_BPF), made over rtnetlink on the
 * loopback of a namespace of the probe's own. A kernel without either says
 * ENOENT ("kind not found"); modules are loaded on demand by the kernel.
 */
export const { have: haveTcClassic, supports: supportsTcClassic } = declareFeature('tcClassic', {
  title: 'tc bpf filters on a clsact qdisc (netlink)',
  since: '4.5',
  config: ['CONFIG_NET_CLS_BPF', 'CONFIG_NET_SCH_INGRESS'],
  probe: (missing) => {
    const prog = loadReturnZero(kernel.progTypes.sched_cls)
    try {
      inProbeNetns(() => {
        native.tcClsactAdd(LOOPBACK_IFINDEX)
        native.tcFilterAdd({ ifindex: LOOPBACK_IFINDEX, egress: false, progFd: prog.fd, name: 'bpfkit_probe' })
      })
    } catch (e) {
      const code = (e as { code?: string }).code
      if (code === 'ENOENT' || code === 'EOPNOTSUPP') throw missing((e as Error).message)
      throw e
    } finally {
      prog.close()
    }
  },
})
