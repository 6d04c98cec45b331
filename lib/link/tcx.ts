// tcx: tc programs attached as kernel links on an interface's ingress or
// egress (Linux 6.6), no qdisc needed. Several programs run in order; a new
// one goes last unless `before` or `after` names where, relative to a program
// or link already attached (BPF_F_BEFORE / BPF_F_AFTER, by fd or by id with
// BPF_F_ID, a link with BPF_F_LINK). `expectedRevision` makes the attach fail
// (ESTALE) if anything changed since the revision the caller saw (queryTcx).
// netkit links (netkit.ts) take the same ordering.
import { haveTcx } from '../features/attach-net.js'
import type { FdRef } from '../map/values.js'
import { Fd, kernel, native } from '../sys/index.js'
import { interfaceIndex, inNetns, type NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import { programOfType } from './program-ref.js'

/**
 * Where a program goes, relative to what is attached: a BpfProgram or BpfLink
 * attached there (by fd), `{ programId }` or `{ linkId }` (by id), or 'all'
 * (before all: first; after all: last).
 */
export type TcxAnchor = 'all' | BpfLink | FdRef | { programId: number } | { linkId: number }

export interface TcxOrderOptions {
  before?: TcxAnchor
  after?: TcxAnchor
  /** Attach only if the hook's revision (queryTcx) is still this one. */
  expectedRevision?: number | bigint
}

export interface TcxAttachOptions extends TcxOrderOptions {
  netns?: NetnsRef
}

const { BPF_F_BEFORE, BPF_F_AFTER, BPF_F_ID } = kernel.attachFlags
const { BPF_F_LINK } = kernel.flags

/** LINK_CREATE's flags and relative part for the ordering options. */
export function orderAttrs(where: string, o: TcxOrderOptions): { flags: number; relative?: { fd?: number; id?: number; expectedRevision?: number | bigint } } {
  if (o.before !== undefined && o.after !== undefined) throw new TypeError(`${where}: before and after are exclusive`)
  const rev = o.expectedRevision
  if (rev !== undefined && !((typeof rev === 'number' && Number.isInteger(rev) && rev >= 0) || (typeof rev === 'bigint' && rev >= 0n))) {
    throw new TypeError(`${where}: expectedRevision must be a non-negative integer, got ${describeValue(rev)}`)
  }
  const anchor = o.before ?? o.after
  let flags = o.before !== undefined ? BPF_F_BEFORE : o.after !== undefined ? BPF_F_AFTER : 0
  const relative: { fd?: number; id?: number; expectedRevision?: number | bigint } = {}
  if (rev !== undefined) relative.expectedRevision = rev
  if (anchor !== undefined && anchor !== 'all') {
    const which = o.before !== undefined ? 'before' : 'after'
    if (anchor instanceof BpfLink) {
      if (anchor.kind !== 'link') throw new TypeError(`${where}: ${which} must be a kernel link, got a ${anchor.kind} attachment`)
      relative.fd = anchor.fd
      flags |= BPF_F_LINK
    } else if (anchor !== null && typeof anchor === 'object' && 'programId' in anchor) {
      relative.id = positiveId(where, `${which}.programId`, anchor.programId)
      flags |= BPF_F_ID
    } else if (anchor !== null && typeof anchor === 'object' && 'linkId' in anchor) {
      relative.id = positiveId(where, `${which}.linkId`, anchor.linkId)
      flags |= BPF_F_ID | BPF_F_LINK
    } else if (anchor !== null && typeof anchor === 'object' && 'fd' in anchor) {
      relative.fd = anchor.fd
    } else {
      throw new TypeError(`${where}: ${which} must be 'all', a BpfProgram, a BpfLink, { programId } or { linkId }, got ${describeValue(anchor)}`)
    }
  }
  return { flags, relative: Object.keys(relative).length > 0 ? relative : undefined }
}

function positiveId(where: string, what: string, id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0 || id > 0xffffffff) throw new TypeError(`${where}: ${what} must be a positive integer, got ${describeValue(id)}`)
  return id
}

/**
 * Attaches a sched_cls program to the ingress or egress of `iface` as a tcx
 * link (Linux 6.6+), ordered by `before`/`after` (default: last). The program
 * returns TCX_NEXT (-1) to hand the packet on, TCX_PASS (0), TCX_DROP (2) or
 * TCX_REDIRECT (7). `link.update(other)` swaps it in place.
 *
 * Errors: NotSupportedError before 6.6; TypeError for a program that is not
 * sched_cls or bad options; SyscallError for an unknown interface; BpfError
 * 'link_create' ENOENT when the relative program or link is not attached
 * there, ESTALE when expectedRevision is not the hook's revision, EEXIST when
 * the program is attached there already. Needs CAP_NET_ADMIN.
 */
export function attachTcx(program: FdRef, iface: string | number, direction: 'ingress' | 'egress', options: TcxAttachOptions = {}, where = 'attachTcx'): BpfLink {
  checkOptions(where, options, ['before', 'after', 'expectedRevision', 'netns'])
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`${where}: direction must be 'ingress' or 'egress', got ${describeValue(direction)}`)
  const progFd = programOfType(where, program, 'sched_cls')
  const order = orderAttrs(where, options)
  haveTcx()
  const attachType = direction === 'ingress' ? kernel.attachTypes.tcx_ingress : kernel.attachTypes.tcx_egress
  const fd = inNetns(options.netns, () => native.linkCreate({
    progFd, targetIfindex: interfaceIndex(iface, where), attachType, flags: order.flags, relative: order.relative,
  }), where)
  return BpfLink.fromLinkFd(new Fd(fd, 'link'))
}

export interface TcxQuery {
  /** The hook's revision: it changes with every attach and detach (pass it as expectedRevision). */
  revision: bigint
  /** What runs there, in order: program ids and the ids of their links (0 for a program attached without one). */
  programs: Array<{ programId: number; linkId: number }>
}

/** What is attached to `attachType` (tcx_ingress, netkit_primary, ...) of an interface, in run order (PROG_QUERY, Linux 6.6+). */
export function queryMprog(iface: string | number, attachType: number, netns: NetnsRef | undefined, where: string): TcxQuery {
  const r = inNetns(netns, () => native.progQuery({ targetIfindex: interfaceIndex(iface, where), attachType, withLinks: true }), where)
  return { revision: r.revision, programs: r.progIds.map((programId, i) => ({ programId, linkId: r.linkIds[i] ?? 0 })) }
}

/** The tcx programs on the ingress or egress of `iface`, in the order they run. Errors: NotSupportedError before 6.6. */
export function queryTcx(iface: string | number, direction: 'ingress' | 'egress', options: { netns?: NetnsRef } = {}): TcxQuery {
  checkOptions('queryTcx', options, ['netns'])
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`queryTcx: direction must be 'ingress' or 'egress', got ${describeValue(direction)}`)
  haveTcx()
  return queryMprog(iface, direction === 'ingress' ? kernel.attachTypes.tcx_ingress : kernel.attachTypes.tcx_egress, options.netns, 'queryTcx')
}
