// Features of the socket and namespace attach families: network namespace
// links (flow_dissector, sk_lookup), sockmap links for sk_msg / sk_skb
// programs, and netfilter links. Each asks LINK_CREATE itself, on a target
// no process has, so nothing is ever attached by a probe.
import { kernel } from '../sys/index.js'
import { declareFeature } from './declare.js'
import { linkAttachTypeProbe, probeLink } from './links.js'
import { bpfCode } from './probe-cache.js'

// A program type the kernel does not know fails to load with EINVAL: the
// feature is missing, not the probe refused.
function unlessProgTypeMissing(missing: () => Error, probe: () => void): void {
  try {
    probe()
  } catch (e) {
    if (bpfCode(e) === 'EINVAL' && (e as { command?: string }).command === 'prog_load') throw missing()
    throw e
  }
}

/**
 * Links on a network namespace (BPF_LINK_TYPE_NETNS, Linux 5.8): a
 * flow_dissector program attached to a namespace by LINK_CREATE with the
 * namespace's fd as target.
 */
export const { have: haveNetnsLinks, supports: supportsNetnsLinks } = declareFeature('netnsLinks', {
  title: 'network namespace links (LINK_CREATE flow_dissector on a netns)',
  since: '5.8',
  probe: (missing) => linkAttachTypeProbe(missing, kernel.progTypes.flow_dissector, kernel.attachTypes.flow_dissector, kernel.attachTypes.flow_dissector),
})

/**
 * sk_lookup programs on a network namespace (Linux 5.9): the program type,
 * its attach type and the netns link that carries it.
 */
export const { have: haveSkLookup, supports: supportsSkLookup } = declareFeature('skLookup', {
  title: 'sk_lookup programs (BPF_SK_LOOKUP netns links)',
  since: '5.9',
  probe: (missing) => unlessProgTypeMissing(missing, () =>
    linkAttachTypeProbe(missing, kernel.progTypes.sk_lookup, kernel.attachTypes.sk_lookup, kernel.attachTypes.sk_lookup)),
})

/**
 * Sockmap links (BPF_LINK_TYPE_SOCKMAP, Linux 6.10): sk_msg and sk_skb
 * programs attached to a sockmap or sockhash by LINK_CREATE, with an ID,
 * a pin and LINK_UPDATE. Before them only PROG_ATTACH to the map exists.
 */
export const { have: haveSockmapLinks, supports: supportsSockmapLinks } = declareFeature('sockmapLinks', {
  title: 'sockmap links (LINK_CREATE sk_msg / sk_skb on a sockmap)',
  since: '6.10',
  probe: (missing) => linkAttachTypeProbe(missing, kernel.progTypes.sk_msg, kernel.attachTypes.sk_msg_verdict, kernel.attachTypes.sk_msg_verdict),
})

// NF_IP_PRI_FIRST + 1: a priority the kernel accepts, should pf pass.
const SOME_PRIORITY = -0x7fffffff

/**
 * Netfilter links (BPF_LINK_TYPE_NETFILTER, Linux 6.4, built with
 * CONFIG_NETFILTER_BPF_LINK): a netfilter program on an IPv4/IPv6 hook of
 * the caller's network namespace. The probe asks for protocol family 0,
 * which a kernel with the links refuses by name (EAFNOSUPPORT) before
 * hooking anything; one built without them says EOPNOTSUPP, and before 6.4
 * (or without the option) the program type itself is unknown.
 */
export const { have: haveNetfilterLinks, supports: supportsNetfilterLinks } = declareFeature('netfilterLinks', {
  title: 'netfilter links (BPF_NETFILTER)',
  since: '6.4',
  config: ['CONFIG_NETFILTER_BPF_LINK'],
  probe: (missing) => unlessProgTypeMissing(missing, () => probeLink(missing, {
    progType: kernel.progTypes.netfilter, attachType: kernel.attachTypes.netfilter, expectedAttachType: kernel.attachTypes.netfilter,
    attrs: { netfilter: { pf: 0, hooknum: 0, priority: SOME_PRIORITY } }, present: ['EAFNOSUPPORT'],
  })),
})
