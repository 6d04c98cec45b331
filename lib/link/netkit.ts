// netkit: programs on a netkit device pair (Linux 6.7, CONFIG_NETKIT), the
// veth replacement whose BPF programs run in the device's own xmit path. Both
// programs are attached through the primary device: 'primary' runs for what
// the primary sends, 'peer' for what the peer (usually in a container's
// namespace) sends. Ordered like tcx (before/after/expectedRevision).
import { haveNetkit } from '../features/attach-net.js'
import type { FdRef } from '../map/values.js'
import { Fd, kernel, native } from '../sys/index.js'
import { interfaceIndex, inNetns, type NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { orderAttrs, queryMprog, type TcxOrderOptions, type TcxQuery } from './tcx.js'
import { programOfType } from './program-ref.js'

export type NetkitSide = 'primary' | 'peer'

export interface NetkitAttachOptions extends TcxOrderOptions {
  /** 'primary' (default) or 'peer'. */
  side?: NetkitSide
  netns?: NetnsRef
}

function attachTypeOf(where: string, side: unknown): number {
  if (side === undefined || side === 'primary') return kernel.attachTypes.netkit_primary
  if (side === 'peer') return kernel.attachTypes.netkit_peer
  throw new TypeError(`${where}: side must be 'primary' or 'peer', got ${describeValue(side)}`)
}

/**
 * Attaches a sched_cls program to the netkit device `primary` (a name or an
 * index of the primary device of a pair) as a netkit link. Errors:
 * NotSupportedError before 6.7 or without CONFIG_NETKIT; TypeError for a
 * program that is not sched_cls; BpfError 'link_create' ENXIO when the device
 * is not a netkit device, EACCES when it is a peer rather than a primary.
 */
export function attachNetkit(program: FdRef, primary: string | number, options: NetkitAttachOptions = {}): BpfLink {
  checkOptions('attachNetkit', options, ['side', 'before', 'after', 'expectedRevision', 'netns'])
  const attachType = attachTypeOf('attachNetkit', options.side)
  const progFd = programOfType('attachNetkit', program, 'sched_cls')
  const order = orderAttrs('attachNetkit', options)
  haveNetkit()
  const fd = inNetns(options.netns, () => native.linkCreate({
    progFd, targetIfindex: interfaceIndex(primary, 'attachNetkit'), attachType, flags: order.flags, relative: order.relative,
  }), 'attachNetkit')
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}

/** The programs on one side of a netkit pair, in run order. */
export function queryNetkit(primary: string | number, options: { side?: NetkitSide; netns?: NetnsRef } = {}): TcxQuery {
  checkOptions('queryNetkit', options, ['side', 'netns'])
  const attachType = attachTypeOf('queryNetkit', options.side)
  haveNetkit()
  return queryMprog(primary, attachType, options.netns, 'queryNetkit')
}
