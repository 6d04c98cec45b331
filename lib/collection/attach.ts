// Collection.attach: every program whose section says where it goes is
// attached there, as a libbpf skeleton's __attach does. Sections that name no
// target the collection can know (an xdp interface, a cgroup, a namespace, a
// sockmap) take it from the caller's targets, or are skipped with the reason.
import type { BpfMap } from '../map/map.js'
import type { FdRef } from '../map/values.js'
import type { BpfProgram } from '../prog/program.js'
import type { NetnsRef } from '../sys/netns.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from '../link/link.js'
import { attachIter } from '../link/iter.js'
import { attachKprobe, attachKprobeMulti, attachKsyscall } from '../link/kprobe.js'
import { attachNetns } from '../link/netns.js'
import { attachSockmap } from '../link/sockmap.js'
import { attachTracepoint } from '../link/tracepoint.js'
import { attachRawTracepoint, attachTracing } from '../link/tracing.js'
import { attachUprobe, attachUprobeMulti, uprobeSectionTarget } from '../link/uprobe.js'
import { attachNetkit } from '../link/netkit.js'
import { attachTc } from '../link/tc.js'
import { attachXdp } from '../link/xdp.js'
import { programForSection } from './sections.js'

/** A network interface: its name or index, in the caller's network namespace or in `netns` (a path or fd). */
export type InterfaceTarget = string | number | { iface: string | number; netns?: NetnsRef }

/** Where the programs whose sections name no target go. */
export interface AttachTargets {
  /** The interface for xdp programs. */
  xdp?: InterfaceTarget
  /** The interface for tc and tcx programs; the direction comes from the section (tc/ingress, tcx/egress). */
  tc?: InterfaceTarget
  /** The primary netkit device for netkit programs; the side comes from the section (netkit/primary, netkit/peer). */
  netkit?: InterfaceTarget
  /** A cgroup v2 directory (path or fd) for cgroup programs and sock_ops. */
  cgroup?: string | number
  /** A network namespace (path or fd) for sk_lookup and flow_dissector programs. */
  netns?: string | number
  /** The sockmap or sockhash (one of the collection's map names, or a map) for sk_msg and sk_skb programs. */
  sockmap?: string | FdRef
  /** Attach only these programs (by name); default: every loaded program. */
  programs?: readonly string[]
}

/** The links Collection.attach made, by program name, and why the others were left alone. */
export class CollectionLinks {
  readonly links: Readonly<Record<string, BpfLink>>
  readonly skipped: Readonly<Record<string, string>>

  constructor(links: Record<string, BpfLink>, skipped: Record<string, string>) {
    this.links = Object.freeze(links)
    this.skipped = Object.freeze(skipped)
  }

  /** Closes every link (detaching those not pinned). Idempotent. */
  close(): void {
    for (const l of Object.values(this.links).reverse()) l.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/** A program left alone: the reason. */
class Skip {
  constructor(readonly reason: string) {}
}

const targetKeys = ['xdp', 'tc', 'netkit', 'cgroup', 'netns', 'sockmap', 'programs'] as const

function need<T>(target: T | undefined, key: string, what: string): T {
  if (target === undefined) throw new Skip(`${what}: give targets.${key}`)
  return target
}

function iface(target: InterfaceTarget | undefined, key: string, what: string): { iface: string | number; netns?: NetnsRef } {
  const t = need(target, key, what)
  if (typeof t === 'string' || typeof t === 'number') return { iface: t }
  if (t === null || typeof t !== 'object' || !('iface' in t)) throw new TypeError(`attach: targets.${key} must be an interface name, index or { iface, netns }, got ${describeValue(t)}`)
  checkOptions(`attach: targets.${key}`, t, ['iface', 'netns'])
  return t
}

/** Attaches one program by its section's convention; a Skip when the section names no target and none was given. */
function attachOne(p: BpfProgram, maps: Readonly<Record<string, BpfMap>>, t: AttachTargets): BpfLink {
  const section = p.section?.replace(/^\?/, '')
  const sp = section === undefined ? undefined : programForSection(section)
  if (section === undefined || sp === undefined) throw new Skip('its section follows no libbpf convention')
  const to = sp.attachTo
  const family = sp.convention.replace(/[+/]$/, '').replace(/\.s$/, '')
  switch (family) {
    case 'kprobe':
    case 'kretprobe': {
      const m = /^([^+]+)(?:\+(0x[0-9a-fA-F]+|\d+))?$/.exec(to)
      if (!m) throw new Skip(`SEC("${section}") names no kernel function`)
      return attachKprobe(p, m[1], { offset: m[2] === undefined ? undefined : Number(m[2]) })
    }
    case 'ksyscall':
    case 'kretsyscall':
      if (!to) throw new Skip(`SEC("${section}") names no system call`)
      return attachKsyscall(p, to)
    case 'kprobe.multi':
    case 'kretprobe.multi':
      if (!to) throw new Skip(`SEC("${section}") names no function pattern`)
      return attachKprobeMulti(p, { pattern: to })
    case 'uprobe':
    case 'uretprobe':
    case 'uprobe.multi':
    case 'uretprobe.multi': {
      const u = uprobeSectionTarget(section)
      if (u?.binary === undefined) throw new Skip(`SEC("${section}") names no binary and function: attach it with attachUprobe`)
      if (u.multi) return attachUprobeMulti(p, { binary: u.binary, pattern: u.pattern })
      return attachUprobe(p, { binary: u.binary, symbol: u.symbol, offset: u.offset })
    }
    case 'tracepoint':
    case 'tp': {
      const slash = to.indexOf('/')
      if (slash <= 0) throw new Skip(`SEC("${section}") names no CATEGORY/NAME tracepoint`)
      return attachTracepoint(p, to.slice(0, slash), to.slice(slash + 1))
    }
    case 'raw_tp':
    case 'raw_tracepoint':
    case 'raw_tp.w':
    case 'raw_tracepoint.w':
      if (!to) throw new Skip(`SEC("${section}") names no raw tracepoint`)
      return attachRawTracepoint(p)
    case 'tp_btf':
    case 'fentry':
    case 'fexit':
    case 'fmod_ret':
    case 'lsm':
      return attachTracing(p)
    case 'iter':
      // Iterators over a map's elements need the map: attachIter(p, { map }).
      if (['bpf_map_elem', 'bpf_sk_storage_map', 'sockmap'].includes(to)) throw new Skip(`an iter/${to} program needs a map: attachIter(program, { map })`)
      return attachIter(p)
    case 'xdp':
    case 'xdp.frags':
    {
      const x = iface(t.xdp, 'xdp', 'an xdp program needs an interface')
      return attachXdp(p, x.iface, { netns: x.netns })
    }
    case 'tc/ingress':
    case 'tc/egress':
    case 'tcx/ingress':
    case 'tcx/egress':
    {
      const x = iface(t.tc, 'tc', 'a tc program needs an interface')
      return attachTc(p, x.iface, { direction: family.endsWith('ingress') ? 'ingress' : 'egress', netns: x.netns })
    }
    case 'netkit/primary':
    case 'netkit/peer':
    {
      const x = iface(t.netkit, 'netkit', 'a netkit program needs its primary device')
      return attachNetkit(p, x.iface, { side: family === 'netkit/peer' ? 'peer' : 'primary', netns: x.netns })
    }
    case 'sk_lookup':
    case 'flow_dissector':
      return attachNetns(p, need(t.netns, 'netns', `a ${family} program needs a network namespace`))
    case 'sk_msg':
    case 'sk_skb/stream_parser':
    case 'sk_skb/stream_verdict':
    case 'sk_skb/verdict': {
      const m = need(t.sockmap, 'sockmap', `a ${family} program needs a sockmap or sockhash`)
      return attachSockmap(p, typeof m === 'string' ? mapNamed(maps, m) : m)
    }
  }
  if (p.type.startsWith('cgroup_') || p.type === 'sock_ops') {
    if (p.expectedAttachType === undefined) throw new Skip(`SEC("${section}") names no cgroup attach type`)
    return BpfLink.attachCgroup(need(t.cgroup, 'cgroup', `a ${p.type} program needs a cgroup`), p, p.expectedAttachType as never)
  }
  throw new Skip(skipReason(family, section))
}

// Why the conventions that never auto-attach (in libbpf too) were left alone.
function skipReason(family: string, section: string): string {
  if (family === 'socket') return 'a socket filter needs a socket: BpfLink.attachSocketFilter'
  if (family === 'freplace') return 'a freplace program needs its target program: attachFreplace'
  if (family === 'netfilter') return 'a netfilter program needs a family, hook and priority: attachNetfilter'
  if (family === 'perf_event') return 'a perf_event program needs events: attachPerfEvent'
  if (family.startsWith('usdt')) return 'USDT probes are not supported'
  return `SEC("${section}") programs are not attached automatically`
}

function mapNamed(maps: Readonly<Record<string, BpfMap>>, name: string): BpfMap {
  if (!Object.hasOwn(maps, name)) throw new TypeError(`attach: targets.sockmap '${name}' is not a map of the collection (maps: ${Object.keys(maps).join(', ')})`)
  return maps[name]
}

/**
 * Attaches the programs (see Collection.attach). On an attach that fails
 * (not a skip), every link made so far is closed and the error thrown.
 */
export function attachPrograms(programs: Readonly<Record<string, BpfProgram>>, maps: Readonly<Record<string, BpfMap>>, targets: AttachTargets = {}): CollectionLinks {
  if (targets === null || typeof targets !== 'object') throw new TypeError(`attach: targets must be an object, got ${describeValue(targets)}`)
  checkOptions('attach', targets, targetKeys)
  const names = targets.programs ?? Object.keys(programs)
  if (!Array.isArray(names)) throw new TypeError(`attach: targets.programs must be an array of program names, got ${describeValue(names)}`)
  for (const n of names) {
    if (typeof n !== 'string' || !Object.hasOwn(programs, n)) {
      throw new TypeError(`attach: ${describeValue(n)} is not a loaded program of the collection (programs: ${Object.keys(programs).join(', ')})`)
    }
  }
  const links: Record<string, BpfLink> = {}
  const skipped: Record<string, string> = {}
  let current = ''
  try {
    for (const name of names) {
      current = name
      try {
        links[name] = attachOne(programs[name], maps, targets)
      } catch (e) {
        if (!(e instanceof Skip)) throw e
        skipped[name] = e.reason
      }
    }
  } catch (e) {
    for (const l of Object.values(links).reverse()) l.close()
    if (e instanceof Error) e.message = `attach: program '${current}': ${e.message}`
    throw e
  }
  return new CollectionLinks(links, skipped)
}
