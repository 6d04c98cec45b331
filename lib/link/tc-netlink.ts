// The classic tc attachment, for kernels without tcx links (before 6.6): a
// clsact qdisc on the interface and a direct-action bpf filter on its ingress
// or egress, made over rtnetlink (native/netlink.cc). bpfkit creates the
// qdisc only when it is missing and removes only what it added: its own
// filter (checked by program id before deleting), and the qdisc only if
// bpfkit created it and no filter of anyone else is left on it.
import { haveTcClassic } from '../features/attach-net.js'
import type { FdRef } from '../map/values.js'
import { closedError, native, progInfoByFd, SyscallError, type Fd, type LinkInfo, type TcFilterEntry } from '../sys/index.js'
import { openNetns, interfaceIndex, netnsKey, type NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { Attachment } from './link.js'
import { BpfLink } from './link.js'
import { explainRefusal } from './xdp.js'
import { programFd, programOfType } from './program-ref.js'

export type TcDirection = 'ingress' | 'egress'

/** info() of a classic tc filter: no kernel link, so id 0 and type 'tc_filter'. */
export interface TcFilterInfo extends LinkInfo {
  type: 'tc_filter'
  ifindex: number
  direction: TcDirection
  priority: number
  handle: number
}

export interface TcFilterOptions {
  /** 1..65535; lower runs first. Default: the kernel picks (below the existing ones). */
  priority?: number
  /** The filter's handle at that priority (a u32 > 0). Default: the kernel picks. */
  handle?: number
  netns?: NetnsRef
}

// Per interface (by namespace and index): how many filters this process holds
// there and whether it created the clsact qdisc, so the last one out removes
// a qdisc bpfkit made (and only then).
const qdiscs = new Map<string, { created: boolean; filters: number }>()

// A filter is no kernel link: it would outlive the process. Whatever is still
// attached when the process exits is removed then, as links are.
const live = new Set<TcFilterAttachment>()
let exitHook = false
function removeAtExit(a: TcFilterAttachment): void {
  live.add(a)
  if (exitHook) return
  exitHook = true
  process.on('exit', () => {
    for (const one of [...live]) {
      try {
        one.close()
      } catch {
        // Nothing can be reported at exit; the next one is still removed.
      }
    }
  })
}

function checkU32(where: string, what: string, v: unknown, max: number): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${where}: ${what} must be an integer of 1..${max}, got ${String(v)}`)
  return v
}

function isGone(e: unknown): boolean {
  return e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'EINVAL' || e.code === 'ENXIO')
}

/**
 * Attaches a sched_cls program as a direct-action bpf filter on the clsact
 * qdisc of `iface` (created if missing). `where` names the caller in errors.
 * Errors: NotSupportedError without cls_bpf / clsact in the kernel; TypeError
 * for a program that is not sched_cls; SyscallError 'RTM_NEWTFILTER' EEXIST
 * when a filter has that priority and handle, with the kernel's message.
 */
export function attachTcFilter(program: FdRef, iface: string | number, direction: TcDirection, options: TcFilterOptions = {}, where = 'attachTcFilter'): BpfLink {
  checkOptions(where, options, ['priority', 'handle', 'netns'])
  if (direction !== 'ingress' && direction !== 'egress') throw new TypeError(`${where}: direction must be 'ingress' or 'egress', got ${describeValue(direction)}`)
  const progFd = programOfType(where, program, 'sched_cls')
  const priority = checkU32(where, 'priority', options.priority, 0xffff)
  const handle = checkU32(where, 'handle', options.handle, 0xffffffff)
  const info = progInfoByFd(progFd)
  const egress = direction === 'egress'
  const ns = openNetns(options.netns ?? '/proc/thread-self/ns/net', where)
  try {
    const made = native.withNetns(ns.fd, () => {
      const ifindex = interfaceIndex(iface, where)
      const key = `${netnsKey(ns.fd)}/${ifindex}`
      const created = kindKnown(() => native.tcClsactAdd(ifindex))
      const entry = qdiscs.get(key) ?? { created: false, filters: 0 }
      entry.created ||= created
      try {
        const f = kindKnown(() => native.tcFilterAdd({ ifindex, egress, priority, handle, progFd, name: info.name || 'bpfkit' }))
        entry.filters++
        qdiscs.set(key, entry)
        return { ifindex, key, ...f }
      } catch (e) {
        if (entry.filters === 0) {
          if (entry.created) removeQdiscIfEmpty(ifindex)
          qdiscs.delete(key)
        }
        throw e
      }
    })
    const a = new TcFilterAttachment(ns, made.key, made.ifindex, direction, made.priority, made.handle, info.id)
    removeAtExit(a)
    return BpfLink.fromAttachment(a)
  } catch (e) {
    ns.close()
    throw e
  }
}

// A kernel without clsact or cls_bpf says ENOENT or EOPNOTSUPP ("kind not
// found"): the probe (which needs CAP_SYS_ADMIN, so it is asked only then)
// turns that into a NotSupportedError naming the build options.
function kindKnown<T>(call: () => T): T {
  try {
    return call()
  } catch (e) {
    if (e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'EOPNOTSUPP')) explainRefusal(haveTcClassic)
    throw e
  }
}

function removeQdiscIfEmpty(ifindex: number): void {
  const left = native.tcFilterList({ ifindex, egress: false }).length + native.tcFilterList({ ifindex, egress: true }).length
  if (left === 0) native.tcClsactDelete(ifindex)
}

/** The filters on the clsact ingress or egress of `iface`; empty without a clsact qdisc. */
export function listTcFilters(iface: string | number, direction: TcDirection, options: { netns?: NetnsRef } = {}, where = 'listTcFilters'): TcFilterEntry[] {
  const ns = openNetns(options.netns ?? '/proc/thread-self/ns/net', where)
  try {
    return native.withNetns(ns.fd, () => native.tcFilterList({ ifindex: interfaceIndex(iface, where), egress: direction === 'egress' }))
  } finally {
    ns.close()
  }
}

/** One bpf filter bpfkit added. It holds its namespace open to remove the filter from there later. */
class TcFilterAttachment implements Attachment {
  readonly kind = 'netlink'
  #attached = true
  #closed = false
  #progId: number

  constructor(
    readonly netns: Fd,
    readonly key: string,
    readonly ifindex: number,
    readonly direction: TcDirection,
    readonly priority: number,
    readonly handle: number,
    progId: number,
  ) {
    this.#progId = progId
  }

  get closed(): boolean {
    return this.#closed
  }

  #target() {
    return { ifindex: this.ifindex, egress: this.direction === 'egress', priority: this.priority, handle: this.handle }
  }

  // Ours is the bpf filter at our priority and handle still running our program.
  #ours(): TcFilterEntry | undefined {
    return native.tcFilterList({ ifindex: this.ifindex, egress: this.direction === 'egress' })
      .find((f) => f.kind === 'bpf' && f.priority === this.priority && f.handle === this.handle && f.progId === this.#progId)
  }

  info(): TcFilterInfo {
    if (this.#closed) throw closedError('link (a tc filter)')
    if (!this.#attached) throw new TypeError('the tc filter is detached')
    return {
      id: 0, type: 'tc_filter', typeId: 0, progId: this.#progId,
      ifindex: this.ifindex, direction: this.direction, priority: this.priority, handle: this.handle,
    }
  }

  detach(): void {
    if (this.#closed) throw closedError('link (a tc filter)')
    if (!this.#attached) return
    native.withNetns(this.netns.fd, () => {
      try {
        // A filter someone replaced or removed is no longer ours to delete.
        if (this.#ours()) native.tcFilterDelete(this.#target())
      } catch (e) {
        // The interface or the qdisc went away, and the filter with it.
        if (!isGone(e)) throw e
      }
      this.#attached = false
      live.delete(this)
      this.#release()
    })
  }

  // This filter no longer counts on the qdisc; the last of this process's
  // filters there removes the qdisc if bpfkit made it and nothing else is on it.
  #release(): void {
    const entry = qdiscs.get(this.key)
    if (!entry) return
    entry.filters--
    if (entry.filters > 0) return
    qdiscs.delete(this.key)
    if (!entry.created) return
    try {
      removeQdiscIfEmpty(this.ifindex)
    } catch (e) {
      if (!isGone(e)) throw e
    }
  }

  close(): void {
    if (this.#closed) return
    try {
      this.detach()
    } finally {
      this.#closed = true
      this.netns.close()
    }
  }

  /**
   * Swaps the filter's program in one step (NLM_F_REPLACE at the same
   * priority and handle). With `expected`, only if that program is the one
   * attached now (checked just before; a TypeError otherwise).
   */
  update(program: FdRef, expected?: FdRef): void {
    if (this.#closed) throw closedError('link (a tc filter)')
    if (!this.#attached) throw new TypeError('the tc filter is detached')
    const progFd = programOfType('update', program, 'sched_cls')
    const next = progInfoByFd(progFd)
    native.withNetns(this.netns.fd, () => {
      if (expected !== undefined) {
        const want = progInfoByFd(programFd('update', expected)).id
        if (want !== this.#progId || !this.#ours()) throw new TypeError(`update: the tc filter does not run the expected program (id ${want})`)
      }
      native.tcFilterAdd({ ...this.#target(), progFd, name: next.name || 'bpfkit', replace: true })
    })
    this.#progId = next.id
  }
}
