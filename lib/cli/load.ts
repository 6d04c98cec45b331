// `bpfkit load OBJ.bpf.o [--pin DIR] [--attach ...] [--policy P] [--json]`:
// a clang-built object loaded as a libbpf skeleton would (CollectionSpec.load),
// its programs checked against a capability policy first, pinned under DIR
// (pinCollection) so they outlive this process, and attached by their section
// names (Collection.attach) with their links pinned too.
import { basename } from 'node:path'
import { pinCollection, type PinnedCollection } from '../collection/pin-all.js'
import { CollectionSpec } from '../collection/spec.js'
import type { AttachTargets, CollectionLinks } from '../collection/attach.js'
import type { Collection } from '../collection/collection.js'
import { Policy } from '../policy/policy.js'
import { parseCommand, toJson, UsageError, type Out } from './args.js'
import { checkPrograms, formatViolations } from './policy.js'

export const loadUsage = `usage: bpfkit load OBJ.bpf.o [--pin DIR] [--attach [--cgroup DIR] [--xdp IF] [--tc IF] [--netns PATH]]
                   [--program NAME]... [--set VAR=VALUE]... [--policy P.json] [--json]
  load a clang-built object's maps and programs (libbpf conventions, CO-RE against this kernel)
  --pin DIR        pin them under DIR (a bpffs directory; made if missing): DIR/maps/NAME, DIR/progs/NAME,
                   DIR/links/NAME. Without it they are released when bpfkit exits: a check that the object loads.
  --attach         attach each program whose section says where (kprobe/, tracepoint/, raw_tp/, uprobe/...,
                   fentry/, iter/), as libbpf's skeletons do; needs --pin (the links are pinned too)
  --cgroup DIR, --xdp IF, --tc IF, --netns PATH
                   where the programs go whose section cannot name it (cgroup_skb/, sockops, xdp, tc/, tcx/,
                   sk_lookup, flow_dissector); without one they are left unattached, and the output says why
  --program NAME   load (and attach) only these programs (repeat it)
  --set VAR=VALUE  set a global of the object before it loads (const volatile ones too); VALUE as JSON (repeat it)
  --policy P.json  check each program against this capability policy first; a violation is exit 1, nothing loaded`

const options = {
  pin: { type: 'string' },
  attach: { type: 'boolean' },
  cgroup: { type: 'string' },
  xdp: { type: 'string' },
  tc: { type: 'string' },
  netns: { type: 'string' },
  program: { type: 'string', multiple: true },
  set: { type: 'string', multiple: true },
  policy: { type: 'string' },
  json: { type: 'boolean' },
} as const
const targetFlags = ['cgroup', 'xdp', 'tc', 'netns'] as const

export interface LoadCommand {
  path: string
  pin?: string
  attach: boolean
  targets: AttachTargets
  programs?: string[]
  /** Globals to set before the load: name, and the value as written. */
  set: [string, string][]
  policy?: string
  json: boolean
}

/** The command line after `load`. Errors: UsageError. */
export function parseLoadArgs(args: readonly string[]): LoadCommand {
  const { values, positionals: [path] } = parseCommand({ name: 'load', usage: loadUsage, options, positionals: [1, 1], names: ['OBJ.bpf.o'] }, args)
  const targets: AttachTargets = {}
  for (const t of targetFlags) if (values[t] !== undefined) targets[t] = values[t]
  if (!values.attach && Object.keys(targets).length > 0) throw new UsageError(`load: --${Object.keys(targets)[0]} is a target for --attach, which is not given`, loadUsage)
  if (values.attach && values.pin === undefined) {
    throw new UsageError('load: --attach needs --pin DIR: the links would be detached when bpfkit exits, a moment after attaching', loadUsage)
  }
  const set = (values.set ?? []).map((a): [string, string] => {
    const eq = a.indexOf('=')
    if (eq <= 0) throw new UsageError(`load: --set takes VAR=VALUE, got '${a}'`, loadUsage)
    return [a.slice(0, eq), a.slice(eq + 1)]
  })
  const c: LoadCommand = { path, attach: values.attach === true, targets, set, json: values.json === true }
  if (values.pin !== undefined) c.pin = values.pin
  if (values.program !== undefined) c.programs = values.program
  if (values.policy !== undefined) c.policy = values.policy
  return c
}

// The library names its option (targets.cgroup); the command line its flag.
const flagFor: Record<string, string> = { 'targets.cgroup': '--cgroup DIR', 'targets.xdp': '--xdp IF', 'targets.tc': '--tc IF', 'targets.netns': '--netns PATH', 'targets.netkit': 'a netkit device (not offered here)', 'targets.sockmap': 'a sockmap (not offered here)' }
export const skipReason = (reason: string) => reason.replace(/targets\.[a-z]+/g, (t) => flagFor[t] ?? t)

export async function runLoad(args: readonly string[], out: Out, err: Out = (s) => process.stderr.write(s + '\n')): Promise<number> {
  const c = parseLoadArgs(args)
  const spec = CollectionSpec.fromFile(c.path)
  const names = c.programs ?? Object.keys(spec.programs)
  for (const n of names) if (!Object.hasOwn(spec.programs, n)) throw new UsageError(`load: ${basename(c.path)} has no program '${n}' (it has ${Object.keys(spec.programs).join(', ') || 'none'})`, loadUsage)
  for (const [name, text] of c.set) setVariable(spec, name, text)
  if (c.policy !== undefined) {
    const found = checkPrograms(spec, Policy.fromFile(c.policy), names)
    if (Object.values(found).some((v) => v.length > 0)) {
      for (const line of formatViolations(found, basename(c.path))) err(line)
      err(`bpfkit: load: ${basename(c.path)} is not allowed by ${c.policy}; nothing was loaded`)
      return 1
    }
  }
  const coll = await spec.load(c.programs ? { programs: c.programs } : {})
  let links: CollectionLinks | undefined
  try {
    if (c.attach) links = await coll.attach({ ...c.targets, programs: names })
    const pinned = c.pin === undefined ? undefined : pinCollection(coll, c.pin, links)
    report(c, coll, links, pinned, out)
    if (pinned === undefined) err(`bpfkit: load: nothing pinned, so ${basename(c.path)}'s objects are released as bpfkit exits (give --pin DIR to keep them)`)
    return 0
  } finally {
    // Pinned objects live on in bpffs; this process's fds go.
    links?.close()
    coll.close()
  }
}

// VALUE as JSON (a number, a string, an object for a struct), or a 64-bit
// integer in any form BigInt reads where the variable holds one.
function setVariable(spec: CollectionSpec, name: string, text: string): void {
  const variables = spec.variables as Record<string, CollectionSpec['variables'][string]>
  if (!Object.hasOwn(variables, name)) throw new UsageError(`load: --set ${name}: the object has no global '${name}' (it has ${Object.keys(variables).join(', ') || 'none'})`, loadUsage)
  const v = variables[name]
  try {
    v.set(typeof v.get() === 'bigint' ? BigInt(text) : JSON.parse(text))
  } catch (e) {
    throw new UsageError(`load: --set ${name}=${text}: ${(e as Error).message}`, loadUsage)
  }
}

function report(c: LoadCommand, coll: Collection, links: CollectionLinks | undefined, pinned: PinnedCollection | undefined, out: Out): void {
  const maps = Object.fromEntries(Object.entries(coll.maps).map(([n, m]) => [n, { id: m.id, type: m.type, pinned: pinned?.maps[n] }]))
  const programs = Object.fromEntries(Object.entries(coll.programs).map(([n, p]) => [n, { id: p.id, type: p.type, pinned: pinned?.programs[n] }]))
  const linked = Object.fromEntries(Object.entries(links?.links ?? {}).map(([n, l]) => [n, { id: l.id, type: l.info().type, pinned: pinned?.links[n] }]))
  const skipped = Object.fromEntries(Object.entries(links?.skipped ?? {}).map(([n, why]) => [n, skipReason(why)]))
  if (c.json) {
    out(toJson({ object: c.path, maps, programs, ...(c.attach ? { links: linked, skipped } : {}) }))
    return
  }
  const at = (path: string | undefined) => (path === undefined ? '' : `  pinned ${path}`)
  for (const [n, m] of Object.entries(maps)) out(`map ${m.id}: ${n} (${m.type})${at(m.pinned)}`)
  for (const [n, p] of Object.entries(programs)) out(`prog ${p.id}: ${n} (${p.type})${at(p.pinned)}`)
  for (const [n, l] of Object.entries(linked)) out(`link ${l.id}: ${n} (${l.type})${at(l.pinned)}`)
  for (const [n, why] of Object.entries(skipped)) out(`not attached: ${n}: ${why}`)
}
