// `bpfkit list`: what is loaded, like `bpftool prog|map|link|btf show`.
import * as ids from '../sys/ids.js'
import type { BtfInfo, LinkInfo, MapInfo, ProgramInfo } from '../sys/index.js'

export const kinds = ['progs', 'maps', 'links', 'btf'] as const
export type Kind = (typeof kinds)[number]

export function collect(kind: Kind): ProgramInfo[] | MapInfo[] | LinkInfo[] | BtfInfo[] {
  switch (kind) {
    case 'progs': return [...ids.programs()]
    case 'maps': return [...ids.maps()]
    case 'links': return [...ids.links()]
    case 'btf': return [...ids.btfs()]
  }
}

const hex = (n: number) => `0x${n.toString(16)}`

export function formatProg(p: ProgramInfo): string {
  let s = `${p.id}: ${p.type}  name ${p.name || '-'}  tag ${p.tag}`
  if (p.gplCompatible) s += '  gpl'
  s += `\n\txlated ${p.xlatedSize}B  jited ${p.jitedSize}B`
  if (p.mapIds.length > 0) s += `  map_ids ${p.mapIds.join(',')}`
  if (p.btfId) s += `  btf_id ${p.btfId}`
  if (p.runCount > 0n) s += `\n\trun_time_ns ${p.runTimeNs}  run_cnt ${p.runCount}`
  return s
}

export function formatMap(m: MapInfo): string {
  let s = `${m.id}: ${m.type}  name ${m.name || '-'}  flags ${hex(m.flags)}`
  s += `\n\tkey ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}`
  if (m.btfId) s += `  btf_id ${m.btfId}`
  return s
}

export function formatLink(l: LinkInfo): string {
  return `${l.id}: ${l.type}  prog ${l.progId}${l.attachType ? `  attach_type ${l.attachType}` : ''}`
}

export function formatBtf(b: BtfInfo): string {
  return `${b.id}: name ${b.name || '<anon>'}  size ${b.size}B${b.kernelBtf ? '  kernel' : ''}`
}

const formatters: Record<Kind, (x: never) => string> = { progs: formatProg, maps: formatMap, links: formatLink, btf: formatBtf }

/** JSON with bigints as decimal strings, indented by `indent` spaces (0: one line). */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), indent)
}

export function runList(args: string[], out: (s: string) => void): number {
  const json = args.includes('--json')
  const rest = args.filter((a) => a !== '--json')
  const unknown = rest.filter((a) => !(kinds as readonly string[]).includes(a))
  if (unknown.length > 0 || rest.length > 1) {
    throw new UsageError(`list: expected one of ${kinds.join('|')} and --json, got ${args.join(' ')}`)
  }
  const chosen: readonly Kind[] = rest.length === 1 ? [rest[0] as Kind] : kinds
  if (json) {
    const result = Object.fromEntries(chosen.map((k) => [k, collect(k)]))
    out(toJson(rest.length === 1 ? result[chosen[0]] : result))
    return 0
  }
  for (const k of chosen) {
    if (chosen.length > 1) out(`# ${k}`)
    for (const item of collect(k)) out(formatters[k](item as never))
  }
  return 0
}

export class UsageError extends Error {}
