// tc: one entry point for a sched_cls program on an interface's ingress or
// egress. Where the kernel has tcx links (6.6+) the program is attached as
// one (tcx.ts); before that, as a direct-action bpf filter on a clsact qdisc
// made over netlink (tc-netlink.ts). Both come back as a BpfLink.
import { supportsTcx } from '../features/attach-net.js'
import type { FdRef } from '../map/values.js'
import type { TcFilterEntry } from '../sys/index.js'
import type { NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { BpfLink } from './link.js'
import { attachTcFilter, listTcFilters, type TcDirection } from './tc-netlink.js'
import { attachTcx, queryTcx, type TcxAnchor, type TcxQuery } from './tcx.js'

export type TcMode = 'auto' | 'tcx' | 'netlink'

export interface TcAttachOptions {
  direction: TcDirection
  /**
   * 'tcx' (links, 6.6+), 'netlink' (a clsact qdisc and a bpf filter, any
   * kernel), or 'auto' (default): tcx where the kernel has it, unless
   * `priority` or `handle` ask for a classic filter.
   */
  mode?: TcMode
  /** tcx ordering (see attachTcx). */
  before?: TcxAnchor
  after?: TcxAnchor
  expectedRevision?: number | bigint
  /** Classic filter priority (1..65535) and handle. */
  priority?: number
  handle?: number
  netns?: NetnsRef
}

const keys = ['direction', 'mode', 'before', 'after', 'expectedRevision', 'priority', 'handle', 'netns']

/**
 * Attaches a sched_cls program to the ingress or egress of `iface` (a name or
 * an index, in `netns` when given). The result is a kernel link (`kind`
 * 'link', tcx) or a classic filter (`kind` 'netlink', whose info() gives
 * ifindex, direction, priority and handle). A classic filter is removed on
 * close, detach or process exit, with the clsact qdisc if bpfkit created it
 * and nothing else is left on it.
 *
 * The program's return value: in a tcx link, TCX_NEXT (-1) runs the next
 * program; in a classic direct-action filter, TC_ACT_UNSPEC (-1) runs the
 * next filter. 0 passes, 2 drops, in both.
 *
 * Errors: TypeError for a missing or bad direction, mode or options that do
 * not fit the mode (before/after with 'netlink', priority/handle with 'tcx');
 * NotSupportedError when the mode asked for is missing (tcx before 6.6; cls_bpf
 * or clsact not built); those of attachTcx and attachTcFilter.
 */
export function attachTc(program: FdRef, iface: string | number, options: TcAttachOptions): BpfLink {
  checkOptions('attachTc', options, keys, { required: true, types: { mode: 'string', direction: 'string' } })
  const { direction, mode = 'auto', before, after, expectedRevision, priority, handle, netns } = options
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`attachTc: direction must be 'ingress' or 'egress', got ${describeValue(direction)}`)
  if (mode !== 'auto' && mode !== 'tcx' && mode !== 'netlink') throw new TypeError(`attachTc: mode must be 'auto', 'tcx' or 'netlink', got ${describeValue(mode)}`)
  const ordered = before !== undefined || after !== undefined || expectedRevision !== undefined
  const classic = priority !== undefined || handle !== undefined
  if (ordered && classic) throw new TypeError('attachTc: before/after/expectedRevision (tcx) and priority/handle (classic filters) are exclusive')
  if (mode === 'netlink' && ordered) throw new TypeError("attachTc: before, after and expectedRevision need mode 'tcx'; a classic filter is placed by priority")
  if (mode === 'tcx' && classic) throw new TypeError("attachTc: priority and handle need mode 'netlink'; a tcx link is placed by before/after")
  const useTcx = mode === 'tcx' || (mode === 'auto' && !classic && (ordered || supportsTcx()))
  if (useTcx) return attachTcx(program, iface, direction, { before, after, expectedRevision, netns }, 'attachTc')
  return attachTcFilter(program, iface, direction, { priority, handle, netns }, 'attachTc')
}

export interface TcQuery {
  /** tcx links and programs in run order (empty before 6.6, revision 0n). */
  tcx: TcxQuery
  /** Classic filters on the clsact qdisc, in the kernel's order (by priority). */
  filters: TcFilterEntry[]
}

/** Everything attached to the ingress or egress of `iface`: tcx programs (6.6+) and classic tc filters. */
export function queryTc(iface: string | number, direction: TcDirection, options: { netns?: NetnsRef } = {}): TcQuery {
  checkOptions('queryTc', options, ['netns'])
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`queryTc: direction must be 'ingress' or 'egress', got ${describeValue(direction)}`)
  const tcx = supportsTcx() ? queryTcx(iface, direction, options) : { revision: 0n, programs: [] }
  const filters = listTcFilters(iface, direction, options, 'queryTc')
  return { tcx, filters }
}
