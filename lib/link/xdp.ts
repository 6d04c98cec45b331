// xdp: a program on a network interface's receive path, as a kernel link
// (BPF_LINK_CREATE with BPF_XDP, Linux 5.9: every kernel bpfkit supports has
// it, so there is no netlink fallback). The link is the one owner of the
// interface's xdp slot in its mode: a second attach fails with EBUSY, and the
// program is removed when the link is closed (unless pinned) or detached.
import { haveXdpLink } from '../features/attach-net.js'
import type { FdRef } from '../map/values.js'
import { BpfError, Fd, kernel, native, NotSupportedError } from '../sys/index.js'
import { interfaceIndex, inNetns, type NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { programOfType } from './program-ref.js'

/** generic: the kernel's skb path, any device; driver: the driver's own hook; offload: the NIC runs it. */
export type XdpMode = 'generic' | 'driver' | 'offload'

export interface XdpAttachOptions {
  /** Default: the driver's mode where the driver has one, else generic (the kernel decides). */
  mode?: XdpMode
  /** The network namespace the interface is in (a path such as /run/netns/NAME, or an fd). */
  netns?: NetnsRef
  /** Extra XDP_FLAGS_* bits for the link (the kernel takes only the mode bits today). */
  flags?: number
}

// XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE, XDP_FLAGS_HW_MODE (include/uapi/linux/if_link.h).
const modeFlags: Record<XdpMode, number> = { generic: 1 << 1, driver: 1 << 2, offload: 1 << 3 }

/**
 * Attaches an xdp program to `iface` (a name, or an index) with an xdp link.
 * With `netns`, the name is looked up and the link made inside that network
 * namespace (interface indexes are per namespace); the link stays attached
 * to that interface wherever the caller is. Closing the link (or process
 * exit) detaches it unless it is pinned. `link.update(other)` swaps the
 * program in place.
 *
 * Errors: NotSupportedError before Linux 5.9 (asked of the probe when the
 * kernel refuses with EINVAL); TypeError for a program that is
 * not xdp, a bad mode or option; RangeError for an index that is not
 * positive; SyscallError 'if_nametoindex' ENODEV / 'if_indextoname' ENXIO
 * for an unknown interface; BpfError 'link_create' EBUSY when the interface
 * already has an xdp program in that mode, EOPNOTSUPP when the driver has no
 * such mode. Needs CAP_NET_ADMIN (and CAP_SYS_ADMIN to enter a namespace).
 */
export function attachXdp(program: FdRef, iface: string | number, options: XdpAttachOptions = {}): BpfLink {
  checkOptions('attachXdp', options, ['mode', 'netns', 'flags'], { types: { mode: 'string', flags: 'number' } })
  const progFd = programOfType('attachXdp', program, 'xdp')
  let flags = options.flags ?? 0
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffffffff) throw new RangeError(`attachXdp: flags must be a 32-bit unsigned integer, got ${describeValue(flags)}`)
  if (options.mode !== undefined) {
    if (!Object.hasOwn(modeFlags, options.mode)) throw new TypeError(`attachXdp: mode must be 'generic', 'driver' or 'offload', got ${describeValue(options.mode)}`)
    flags = (flags | modeFlags[options.mode]) >>> 0
  }
  const fd = inNetns(options.netns, () => {
    const ifindex = interfaceIndex(iface, 'attachXdp')
    try {
      return native.linkCreate({ progFd, targetIfindex: ifindex, attachType: kernel.attachTypes.xdp, flags })
    } catch (e) {
      // The probe needs CAP_SYS_ADMIN (a namespace of its own), which an
      // attach does not: it only explains a refusal.
      if (e instanceof BpfError && e.code === 'EINVAL') explainRefusal(haveXdpLink)
      throw e
    }
  }, 'attachXdp')
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}

/** Throws the feature's NotSupportedError when `have` finds it missing; any other probe failure leaves the caller's error to be thrown. */
export function explainRefusal(have: () => void): void {
  try {
    have()
  } catch (p) {
    if (p instanceof NotSupportedError) throw p
  }
}
