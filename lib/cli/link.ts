// `bpfkit link`: kernel links, as `bpftool link show` and `bpftool link
// detach` see them. --json uses bpftool's key names (id, type, prog_id,
// attach_type, cgroup_id, ifindex, netns_ino, map_id, tp_name,
// target_obj_id, target_btf_id, ...): bpfkit's own LinkInfo fields in
// snake_case, with bpftool's spelling where it differs. Not bpftool's
// devname: an xdp/tcx link reports an ifindex alone, and its name in this
// process's network namespace may be another interface's.
import { BpfLink } from '../link/link.js'
import { linkInfoByFd, type LinkInfo } from '../sys/index.js'
import { walkInfo } from '../sys/open-object.js'
import { parseCommand, runSubcommand, toJson, u64Json, type Out } from './args.js'
import { formatLink } from './list.js'
import { openNamed, withNamed } from './names.js'
import { withProgress } from './progress.js'

export const linkUsage = `usage: bpfkit link <command>

  link list [--json]        every kernel link (a program attached to a hook)
  link show LINK [--json]   one link
  link detach LINK          detach it from its hook now (BPF_LINK_DETACH, Linux 5.9+), even while
                            pinned or held open elsewhere; the link object lives on, empty

  LINK is an ID, a pinned path (anything with a '/') or the name of its program.
  Needs root (CAP_SYS_ADMIN) to see links by ID.
`

const sub = (line: string) => `usage: bpfkit link ${line}\n\n  LINK: an ID, a pinned path or its program's name. See bpfkit link --help.\n`

export function runLink(args: string[], out: Out): number {
  return runSubcommand('link', args, { list: linkList, show: linkShow, detach: linkDetach }, linkUsage, out)
}

// bpftool's names for what LinkInfo calls otherwise.
const bpftoolKeys: Record<string, string> = { progId: 'prog_id', tracepoint: 'tp_name', iterTarget: 'target_name' }

const snake = (k: string) => bpftoolKeys[k] ?? k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** LinkInfo with bpftool's key names, and its bigints as numbers where exact (bpftool prints numbers). */
function snakeKeys(v: unknown): unknown {
  if (typeof v === 'bigint') return u64Json(v)
  if (Array.isArray(v)) return v.map(snakeKeys)
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [snake(k), snakeKeys(x)]))
}

/** A link's info with bpftool's key names (typeId, which bpftool has no key for, left out). */
export function linkJson(l: LinkInfo): Record<string, unknown> {
  const { typeId: _typeId, ...rest } = l
  return snakeKeys(rest) as Record<string, unknown>
}

/** formatLink's line, then what the link is attached to. */
function showText(l: LinkInfo): string {
  const j = linkJson(l)
  const shown = new Set(['id', 'type', 'prog_id', 'attach_type'])
  const details = Object.entries(j).filter(([k]) => !shown.has(k)).map(([k, v]) => `${k} ${typeof v === 'object' ? toJson(v, 0) : String(v)}`)
  return details.length > 0 ? `${formatLink(l)}\n\t${details.join('  ')}` : formatLink(l)
}

function linkList(args: string[], out: Out): number {
  const { values } = parseCommand({ name: 'link list', usage: sub('list [--json]'), options: { json: { type: 'boolean' } } }, args)
  const all = [...withProgress('walking links', walkInfo('link'))]
  if (values.json) out(toJson(all.map(linkJson)))
  else for (const l of all) out(showText(l))
  return 0
}

function linkShow(args: string[], out: Out): number {
  const { values, positionals: [name] } = parseCommand({ name: 'link show', usage: sub('show LINK [--json]'), options: { json: { type: 'boolean' } }, positionals: [1, 1] }, args)
  const info = withNamed('link', name, linkInfoByFd)
  out(values.json ? toJson(linkJson(info)) : showText(info))
  return 0
}

function linkDetach(args: string[], out: Out): number {
  const { positionals: [name] } = parseCommand({ name: 'link detach', usage: sub('detach LINK'), options: {}, positionals: [1, 1] }, args)
  const { fd, id } = openNamed('link', name)
  const link = BpfLink.fromLinkFd(fd)
  try {
    link.detach()
    out(`detached link ${id}`)
    return 0
  } finally {
    link.close()
  }
}
