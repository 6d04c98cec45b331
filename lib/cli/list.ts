// `bpfkit list`: what is loaded, like `bpftool prog|map|link|btf show`.
import * as ids from '../sys/ids.js'
import { parseCommand, toJson, UsageError } from './args.js'
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

/**
 * Columns a listing through the broker adds to an object's first line: how
 * the tenant came to own it (made, adopted, held, pinned, cgroup), the owner
 * the admin sees (`bpfkit list --by-tenant`), and its pins as a line of
 * their own.
 */
export interface Columns {
  origin?: string
  owner?: string
  pins?: readonly string[]
}

function withColumns(s: string, c: Columns | undefined): string {
  if (c === undefined) return s
  const nl = s.indexOf('\n')
  let [first, rest] = nl < 0 ? [s, ''] : [s.slice(0, nl), s.slice(nl)]
  if (c.owner !== undefined) first += `  owner ${c.owner}`
  if (c.origin !== undefined) first += `  origin ${c.origin}`
  if (c.pins !== undefined && c.pins.length > 0) rest += `\n\tpinned ${c.pins.join(', ')}`
  return first + rest
}

export function formatProg(p: ProgramInfo, columns?: Columns): string {
  let s = `${p.id}: ${p.type}  name ${p.name || '-'}  tag ${p.tag}`
  if (p.gplCompatible) s += '  gpl'
  s += `\n\txlated ${p.xlatedSize}B  jited ${p.jitedSize}B`
  if (p.mapIds.length > 0) s += `  map_ids ${p.mapIds.join(',')}`
  if (p.btfId) s += `  btf_id ${p.btfId}`
  if (p.runCount > 0n) s += `\n\trun_time_ns ${p.runTimeNs}  run_cnt ${p.runCount}`
  return withColumns(s, columns)
}

export function formatMap(m: MapInfo, columns?: Columns): string {
  let s = `${m.id}: ${m.type}  name ${m.name || '-'}  flags ${hex(m.flags)}`
  s += `\n\tkey ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}`
  if (m.btfId) s += `  btf_id ${m.btfId}`
  return withColumns(s, columns)
}

export function formatLink(l: LinkInfo, columns?: Columns): string {
  return withColumns(`${l.id}: ${l.type}  prog ${l.progId}${l.attachType ? `  attach_type ${l.attachType}` : ''}`, columns)
}

export function formatBtf(b: BtfInfo, columns?: Columns): string {
  return withColumns(`${b.id}: name ${b.name || '<anon>'}  size ${b.size}B${b.kernelBtf ? '  kernel' : ''}`, columns)
}

export const formatters: Record<Kind, (x: never, columns?: Columns) => string> = { progs: formatProg, maps: formatMap, links: formatLink, btf: formatBtf }

export const listUsage = `usage: bpfkit list [progs|maps|links|btf] [--json]
  the BPF objects loaded on this host, like bpftool prog|map|link|btf show (needs root);
  one kind, or all of them under a '# kind' header each; --json: an array, or one per kind by name`

export function runList(args: readonly string[], out: (s: string) => void): number {
  const { values, positionals } = parseCommand({ name: 'list', usage: listUsage, options: { json: { type: 'boolean' } }, positionals: [0, 1], names: ['KIND'] }, args)
  if (positionals.length === 1 && !(kinds as readonly string[]).includes(positionals[0])) {
    throw new UsageError(`list: expected one of ${kinds.join('|')}, got '${positionals[0]}'`, listUsage)
  }
  const chosen = (positionals.length === 1 ? positionals : kinds) as readonly Kind[]
  if (values.json) {
    const result = Object.fromEntries(chosen.map((k) => [k, collect(k)]))
    out(toJson(positionals.length === 1 ? result[chosen[0]] : result))
    return 0
  }
  for (const k of chosen) {
    if (chosen.length > 1) out(`# ${k}`)
    for (const item of collect(k)) out(formatters[k](item as never))
  }
  return 0
}
