// `bpfkit broker` (the daemon, lib/broker) and the tenant's side of it: with
// `--broker SOCK` (or $BPFKIT_BROKER) before the command, list, show, load,
// attach, pin, unpin and release go through the broker and touch only the
// caller's own objects, which is what a container can use where bpftool's
// ID walks meet EPERM.
//   broker --config FILE [--socket PATH]      run the daemon in the foreground (SIGTERM/SIGINT stop, SIGHUP reloads)
//   broker gc --config FILE [--socket PATH]   with the daemon stopped: drop what it keeps for tenants no longer in FILE
//   --broker SOCK list [progs|maps|links|btf] [--json]
//   --broker SOCK show KIND ID [--json]
//   --broker SOCK load OBJ.o [--json]
//   --broker SOCK attach PROG_ID ATTACH_TYPE (--cgroup REL | --xdp IF | --tcx IF | --netkit IF) [--json]
//   --broker SOCK pin KIND ID NAME | unpin NAME | release KIND ID
//   --broker SOCK dump map|prog ID [--json]   (broker-dump.ts)
//   --broker SOCK top [...]                    (top.ts: the tenant's programs, statistics on through the broker)
//   list --by-tenant [--broker SOCK] [progs|maps|links|btf] [--json]   (the admin: every object with its owner)
// Parsing and formatting are pure functions (test/unit/cli-broker.test.ts).
import { rmdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BrokerClient } from '../broker/client.js'
import { loadConfig, type ResolvedConfig } from '../broker/config.js'
import { BrokerError } from '../broker/errors.js'
import type { Kind, ObjectView } from '../broker/protocol.js'
import { Registry } from '../broker/registry.js'
import { startBroker } from '../broker/server.js'
import { unixSocketListening } from '../ipc/index.js'
import type { BtfInfo, LinkInfo, MapInfo, ProgramInfo } from '../sys/index.js'
import { parseCommand, toJson, UsageError } from './args.js'
import { formatters, kinds as listKinds, type Columns, type Kind as ListKind } from './list.js'
import { dumpThroughBroker, dumpUsage } from './broker-dump.js'
import { brokerSource, parseTopArgs, runTopOn, topUsage, type TopCommand } from './top.js'

type Out = (s: string) => void

/** Where the broker listens unless the config, --broker or $BPFKIT_BROKER say otherwise. */
export const defaultBrokerSocket = '/run/bpfkit/broker.sock'

/** The commands that go through the broker when one is named. */
export const brokerCommands = ['list', 'show', 'load', 'attach', 'pin', 'unpin', 'release', 'dump', 'top'] as const
export type BrokerCommandName = (typeof brokerCommands)[number]

export type AttachTarget = { cgroup: string } | { ifname: string; netdev: 'xdp' | 'tcx' | 'netkit' }

export type BrokerCommand =
  | { cmd: 'list'; socket: string; kinds: Kind[] | undefined; json: boolean; byTenant: boolean }
  | { cmd: 'show'; socket: string; kind: Kind; id: ObjectRef; json: boolean }
  | { cmd: 'load'; socket: string; path: string; json: boolean }
  | { cmd: 'attach'; socket: string; progId: ObjectRef; attachType: string; target: AttachTarget; json: boolean }
  | { cmd: 'pin'; socket: string; kind: Kind; id: ObjectRef; name: string }
  | { cmd: 'unpin'; socket: string; name: string }
  | { cmd: 'release'; socket: string; kind: Kind; id: ObjectRef }
  | { cmd: 'dump'; socket: string; kind: 'map' | 'prog'; id: ObjectRef; json: boolean }
  | { cmd: 'top'; socket: string; top: TopCommand }

export interface DaemonCommand {
  /** 'run': the daemon; 'gc': drop the records and pins of tenants the config no longer has. */
  cmd: 'run' | 'gc'
  config: string
  socket?: string
}

// --- the global option ------------------------------------------------------

/**
 * Takes `--broker SOCK` (or `--broker=SOCK`) out of the command line,
 * wherever it is (before the command, as usage shows it, or among its
 * arguments, as `list --by-tenant --broker SOCK` reads best).
 */
export function takeBrokerOption(argv: readonly string[]): { broker: string | undefined; argv: string[] } {
  // Only --broker is known here: util.parseArgs's tokens say where it and its
  // value are (never after `--`, which belongs to the command: delegate's child).
  const { tokens = [] } = parseArgs({ args: [...argv], options: { broker: { type: 'string' } }, allowPositionals: true, strict: false, tokens: true })
  let broker: string | undefined
  const taken = new Set<number>()
  for (const t of tokens) {
    if (t.kind !== 'option' || t.name !== 'broker') continue
    if (t.value === undefined || t.value === '' || (!t.inlineValue && t.value.startsWith('-'))) throw new UsageError('--broker needs the broker\'s socket path')
    if (broker !== undefined) throw new UsageError('--broker given twice')
    broker = t.value
    taken.add(t.index)
    if (!t.inlineValue) taken.add(t.index + 1)
  }
  return { broker, argv: argv.filter((_, i) => !taken.has(i)) }
}

/**
 * Which socket a command line talks to, or undefined when it is not a broker
 * command line at all. `--broker` wins over $BPFKIT_BROKER; `list --by-tenant`
 * needs neither (it falls back to the default socket). Commands that are not
 * the broker's refuse an explicit --broker and ignore the variable.
 */
export function brokerSocketFor(cmd: string | undefined, args: readonly string[], broker: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const isBrokerCommand = (brokerCommands as readonly (string | undefined)[]).includes(cmd)
  if (!isBrokerCommand) {
    if (broker !== undefined) throw new UsageError(`--broker applies to ${brokerCommands.join(', ')}; not to ${cmd === undefined ? 'nothing' : `'${cmd}'`}`)
    return undefined
  }
  const fromEnv = env.BPFKIT_BROKER || undefined
  if (cmd === 'list' && args.includes('--by-tenant')) return broker ?? fromEnv ?? defaultBrokerSocket
  return broker ?? fromEnv
}

/**
 * A host command's words for what the broker also does, in the broker's
 * words: `prog list` is `list progs`, `map show ID` is `show map ID`, `prog
 * dump ID` is `dump prog ID`, so a tenant types what it would type on a host.
 * Anything else is left as it is (undefined).
 */
export function brokerWordsFor(cmd: string | undefined, args: readonly string[]): [string, string[]] | undefined {
  // The host's families are the singular kinds (prog, map, link, btf), not list's plurals.
  if (cmd === undefined || !Object.hasOwn(listKindOf, cmd)) return undefined
  const [sub, ...rest] = args
  if (sub === 'list') return ['list', [listKindOf[cmd as Kind], ...rest]]
  if (sub === 'show' || sub === 'dump') return [sub, [cmd, ...rest]]
  return undefined
}

// --- parsing ------------------------------------------------------------------

const kindNames: Record<string, Kind> = {
  prog: 'prog', progs: 'prog', map: 'map', maps: 'map', link: 'link', links: 'link', btf: 'btf',
}
const listKindOf: Record<Kind, ListKind> = { prog: 'progs', map: 'maps', link: 'links', btf: 'btf' }

function kindOf(cmd: string, s: string | undefined): Kind {
  const k = s !== undefined && Object.hasOwn(kindNames, s) ? kindNames[s] : undefined
  if (k === undefined) throw new UsageError(`${cmd}: expected a kind (prog, map, link or btf), got ${s === undefined ? 'nothing' : `'${s}'`}`, brokerUsage[cmd as BrokerCommandName])
  return k
}

const DECIMAL = /^[1-9][0-9]*$/

// What the kernel takes as an object's name (bpf_obj_name_cpy): letters,
// digits, '_' and '.'; one that starts with a digit is read as an ID.
const NAME = /^[A-Za-z_.][A-Za-z0-9_.]*$/

/** An ID, or a name (resolved in the tenant's view when the command runs). */
export type ObjectRef = number | string

function idOf(cmd: string, what: string, s: string): ObjectRef {
  if (NAME.test(s)) return s
  const n = Number(s)
  if (!DECIMAL.test(s) || n > 0xffffffff) throw new UsageError(`${cmd}: ${what} must be an ID (1 to 4294967295) or a name, got '${s}'`, brokerUsage[cmd as BrokerCommandName])
  return n
}

/** The ID of the object of `kind` the tenant's view has by `ref` (its ID, or its name: one object only). */
async function resolveRef(client: BrokerClient, kind: Kind, ref: ObjectRef): Promise<number> {
  if (typeof ref === 'number') return ref
  const ids = (await client.list({ kinds: [kind] })).filter((v) => v.name === ref).map((v) => v.id)
  if (ids.length === 1) return ids[0]
  if (ids.length === 0) throw new Error(`no ${kind} named '${ref}' in your view`)
  throw new Error(`${ids.length} ${kind}s named '${ref}' in your view (IDs ${ids.join(', ')}): name one by its ID`)
}

const json = { json: { type: 'boolean' } } as const
const targetOptions = { cgroup: { type: 'string' }, xdp: { type: 'string' }, tcx: { type: 'string' }, netkit: { type: 'string' } } as const
const targetFamilies = Object.keys(targetOptions) as (keyof typeof targetOptions)[]

/** Each broker command's own --help. */
export const brokerUsage: Record<BrokerCommandName, string> = {
  list: `usage: bpfkit --broker SOCK list [progs|maps|links|btf] [--json] [--by-tenant]
  the caller's own objects, with how each is its own (origin); --by-tenant (the broker's admin, root):
  every object with the tenant that owns it (the default socket when neither --broker nor $BPFKIT_BROKER names one)`,
  show: 'usage: bpfkit --broker SOCK show KIND ID [--json]\n  one of the caller\'s objects (KIND: prog, map, link, btf)',
  load: 'usage: bpfkit --broker SOCK load OBJ.o [--json]\n  load a clang-built object\'s maps and programs through the broker (its capability policy is checked)',
  attach: `usage: bpfkit --broker SOCK attach PROG_ID ATTACH_TYPE (--cgroup REL | --xdp IF | --tcx IF | --netkit IF) [--json]
  attach to a cgroup below the caller's own, or a device in its network namespace`,
  pin: 'usage: bpfkit --broker SOCK pin KIND ID NAME\n  pin under the caller\'s own bpffs prefix',
  unpin: 'usage: bpfkit --broker SOCK unpin NAME\n  remove such a pin',
  release: 'usage: bpfkit --broker SOCK release KIND ID\n  drop what the broker keeps for it (the object lives while fds hold it)',
  dump: dumpUsage,
  top: topUsage,
}

/** A broker command line (the command and its arguments, --broker already taken out). Errors: UsageError. */
export function parseBrokerArgs(cmd: string, args: readonly string[], socket: string): BrokerCommand {
  if (!(brokerCommands as readonly string[]).includes(cmd)) throw new UsageError(`--broker: expected one of ${brokerCommands.join(', ')}, got '${cmd}'`)
  const name = cmd as BrokerCommandName
  const usage = brokerUsage[name]
  switch (name) {
    case 'list': {
      const { values, positionals } = parseCommand({ name, usage, options: { ...json, 'by-tenant': { type: 'boolean' } }, positionals: [0, 1] }, args)
      const chosen = positionals.map((k) => {
        if (!(listKinds as readonly string[]).includes(k)) throw new UsageError(`list: expected one of ${listKinds.join('|')}, got '${k}'`, usage)
        return kindNames[k]
      })
      return { cmd: name, socket, kinds: chosen.length ? chosen : undefined, json: values.json === true, byTenant: values['by-tenant'] === true }
    }
    case 'show': {
      const { values, positionals: [kind, id] } = parseCommand({ name, usage, options: json, positionals: [2, 2], names: ['KIND', 'ID'] }, args)
      return { cmd: name, socket, kind: kindOf(name, kind), id: idOf(name, 'ID', id), json: values.json === true }
    }
    case 'load': {
      const { values, positionals: [path] } = parseCommand({ name, usage, options: json, positionals: [1, 1], names: ['OBJ.o'] }, args)
      return { cmd: name, socket, path, json: values.json === true }
    }
    case 'attach': {
      const { values, positionals: [progId, attachType] } = parseCommand({ name, usage, options: { ...json, ...targetOptions }, positionals: [2, 2], names: ['PROG_ID', 'ATTACH_TYPE'] }, args)
      const given = targetFamilies.filter((f) => values[f] !== undefined)
      if (given.length !== 1) {
        throw new UsageError(`attach: name one target: --cgroup REL (a cgroup below yours), --xdp IF, --tcx IF or --netkit IF${given.length ? `; got ${given.map((f) => `--${f}`).join(', ')}` : ''}`, usage)
      }
      const family = given[0]
      const value = values[family]!
      const target: AttachTarget = family === 'cgroup' ? { cgroup: value } : { ifname: value, netdev: family }
      return { cmd: name, socket, progId: idOf(name, 'PROG_ID', progId), attachType, target, json: values.json === true }
    }
    case 'pin': {
      const { positionals: [kind, id, pinName] } = parseCommand({ name, usage, options: {}, positionals: [3, 3], names: ['KIND', 'ID', 'NAME'] }, args)
      return { cmd: name, socket, kind: kindOf(name, kind), id: idOf(name, 'ID', id), name: pinName }
    }
    case 'unpin': {
      const { positionals: [pinName] } = parseCommand({ name, usage, options: {}, positionals: [1, 1], names: ['NAME'] }, args)
      return { cmd: name, socket, name: pinName }
    }
    case 'release': {
      const { positionals: [kind, id] } = parseCommand({ name, usage, options: {}, positionals: [2, 2], names: ['KIND', 'ID'] }, args)
      return { cmd: name, socket, kind: kindOf(name, kind), id: idOf(name, 'ID', id) }
    }
    case 'dump': {
      const { values, positionals: [kind, id] } = parseCommand({ name, usage, options: { ...json, xlated: { type: 'boolean' } }, positionals: [2, 2], names: ['map|prog', 'ID'] }, args)
      const k = kindOf(name, kind)
      if (k !== 'map' && k !== 'prog') throw new UsageError(`dump: maps and programs are dumped; for a ${k}, use show`, usage)
      if (values.xlated && k !== 'prog') throw new UsageError('dump: --xlated is for programs', usage)
      return { cmd: name, socket, kind: k, id: idOf(name, 'ID', id), json: values.json === true }
    }
    case 'top': {
      const top = parseTopArgs(args)
      // The broker closes a connection idle for its idle limit (60 s by
      // default), and its statistics with it: a sample is a request.
      if (top.intervalMs > 30_000) throw new UsageError('top: through the broker, --interval is at most 30 seconds (the broker closes a connection idle for a minute)', brokerUsage.top)
      return { cmd: name, socket, top }
    }
  }
}

export const daemonUsage = `usage: bpfkit broker --config FILE [--socket PATH]
       bpfkit broker gc --config FILE [--socket PATH]
  run the tenant broker in the foreground (SIGTERM/SIGINT stop it, SIGHUP reloads FILE; docs/broker.md);
  gc, with the broker stopped: drop what it keeps for tenants no longer in FILE
  --config FILE   the tenants, their matchers, policies and quotas
  --socket PATH   where it listens (default: the config's socket, else ${defaultBrokerSocket})`

/** `broker [gc] --config FILE [--socket PATH]`. Errors: UsageError. */
export function parseDaemonArgs(args: readonly string[]): DaemonCommand {
  const gc = args[0] === 'gc'
  const name = gc ? 'broker gc' : 'broker'
  const { values } = parseCommand({ name, usage: daemonUsage, options: { config: { type: 'string' }, socket: { type: 'string' } } }, gc ? args.slice(1) : args)
  if (values.config === undefined) throw new UsageError(`${name}: --config FILE is required (the tenants, their matchers, policies and quotas: docs/broker.md)`, daemonUsage)
  const c: DaemonCommand = { cmd: gc ? 'gc' : 'run', config: values.config }
  if (values.socket !== undefined) c.socket = values.socket
  return c
}

/**
 * systemd socket activation (sd_listen_fds): the listening socket is fd 3
 * when LISTEN_PID is this process and LISTEN_FDS is 1. More than one socket
 * is a unit file mistake, named as such.
 */
export function activatedSocket(env: NodeJS.ProcessEnv, pid: number): { fd: number } | undefined {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return undefined
  const n = Number(env.LISTEN_FDS)
  if (n === 0 || env.LISTEN_FDS === undefined) return undefined
  if (n !== 1) throw new Error(`broker: systemd passed ${env.LISTEN_FDS} sockets (LISTEN_FDS); the broker listens on one: give its .socket unit one ListenStream=`)
  return { fd: 3 }
}

// --- formatting ---------------------------------------------------------------

// Info fields the library reads as bigints; on the wire they are decimal strings.
const bigintFields = ['loadTime', 'runTimeNs', 'runCount', 'recursionMisses', 'mapExtra', 'cgroupId', 'cookie'] as const

/**
 * An object view's info as the library's own info type (ProgramInfo, MapInfo,
 * LinkInfo or BtfInfo), so that `bpfkit list`'s formatters print it: wire
 * bigints back to bigints, and what redaction dropped filled with the empty
 * value (a foreign map ID is not shown, not shown as 0).
 */
export function infoOf(v: ObjectView): ProgramInfo | MapInfo | LinkInfo | BtfInfo {
  const info: Record<string, unknown> = { ...v.info }
  for (const k of bigintFields) {
    const x = info[k]
    if (typeof x === 'string' && /^[0-9]+$/.test(x)) info[k] = BigInt(x)
    else if (typeof x === 'number') info[k] = BigInt(x)
  }
  info.id = v.id
  if (typeof info.name !== 'string') info.name = v.name
  if (typeof info.type !== 'string') info.type = 'unknown'
  switch (v.kind) {
    case 'prog':
      if (!Array.isArray(info.mapIds)) info.mapIds = []
      if (typeof info.runCount !== 'bigint') info.runCount = 0n
      if (typeof info.tag !== 'string') info.tag = '-'
      return info as unknown as ProgramInfo
    case 'map':
      if (typeof info.flags !== 'number') info.flags = 0
      return info as unknown as MapInfo
    case 'link':
      if (typeof info.progId !== 'number') info.progId = 0
      return info as unknown as LinkInfo
    case 'btf':
      return info as unknown as BtfInfo
  }
}

/** One object as `bpfkit list` prints it, with its origin (a tenant's view) or owner (the admin's) and its pins. */
export function formatView(v: ObjectView): string {
  const columns: Columns = { pins: v.pins }
  if (v.owner !== undefined) columns.owner = v.owner
  columns.origin = v.origin
  return formatters[listKindOf[v.kind]](infoOf(v) as never, columns)
}

const kindOrder: readonly Kind[] = ['prog', 'map', 'link', 'btf']

/**
 * A listing: kinds in `bpfkit list`'s order, IDs ascending, with a `# progs`
 * header per kind when more than one was asked for (as `bpfkit list` does).
 */
export function formatViews(views: readonly ObjectView[], kinds?: readonly Kind[]): string[] {
  const chosen = kinds ?? kindOrder
  const lines: string[] = []
  for (const k of kindOrder.filter((k) => chosen.includes(k))) {
    if (chosen.length > 1) lines.push(`# ${listKindOf[k]}`)
    for (const v of views.filter((x) => x.kind === k).sort((a, b) => a.id - b.id)) lines.push(formatView(v))
  }
  return lines
}

/** The JSON `bpfkit list --json` prints: one kind's array, or every kind's under progs/maps/links/btf. */
export function viewsJson(views: readonly ObjectView[], kinds?: readonly Kind[]): unknown {
  if (kinds !== undefined && kinds.length === 1) return views.filter((v) => v.kind === kinds[0])
  const chosen = kinds ?? kindOrder
  return Object.fromEntries(kindOrder.filter((k) => chosen.includes(k)).map((k) => [listKindOf[k], views.filter((v) => v.kind === k)]))
}

/**
 * A refusal as the command line shows it: the code (with the policy rule of
 * an EPERM: 'maps', 'capabilities'...), the message, then each capability
 * violation the message does not already list.
 */
export function formatBrokerError(what: string, e: { code: string; message: string; rule?: string; violations?: readonly { message?: unknown }[] }): string {
  const lines = [`${what}: ${e.code}${e.rule !== undefined ? ` (${e.rule})` : ''}: ${e.message}`]
  for (const v of e.violations ?? []) {
    const m = typeof v.message === 'string' ? v.message : JSON.stringify(v)
    if (!e.message.includes(m)) lines.push(`  ${m}`)
  }
  return lines.join('\n')
}

function describeTarget(t: AttachTarget): string {
  return 'cgroup' in t ? `cgroup ${t.cgroup}` : `${t.netdev} on ${t.ifname}`
}

// --- running ------------------------------------------------------------------

/** Runs one broker command line; resolves to the exit status (1 on a refusal, printed to stderr). */
export async function runBrokerCommand(c: BrokerCommand, out: Out, err: Out = (s) => process.stderr.write(s + '\n')): Promise<number> {
  let client: BrokerClient | undefined
  try {
    try {
      client = await BrokerClient.connect(c.socket)
    } catch (e) {
      if (e instanceof BrokerError) throw e
      const code = (e as NodeJS.ErrnoException).code
      err(`bpfkit: cannot reach the broker at ${c.socket}: ${code && !(e as Error).message.includes(code) ? `${code}: ` : ''}${(e as Error).message}`)
      return 1
    }
    await run(client, c, out)
    return 0
  } catch (e) {
    if (!(e instanceof BrokerError)) throw e
    // A connection refused says where already ("cannot connect to the broker at ...").
    if (client === undefined && e.message.includes(c.socket)) err(`bpfkit: ${e.message}`)
    else err(`bpfkit: ${formatBrokerError(client === undefined ? `broker at ${c.socket}` : `broker refused ${c.cmd}`, e)}`)
    return 1
  } finally {
    client?.close()
  }
}

async function run(client: BrokerClient, c: BrokerCommand, out: Out): Promise<void> {
  switch (c.cmd) {
    case 'list': {
      const options = c.kinds ? { kinds: c.kinds } : {}
      const views = c.byTenant ? await client.listAll(options) : await client.list(options)
      if (c.json) out(toJson(viewsJson(views, c.kinds)))
      else for (const line of formatViews(views, c.kinds)) out(line)
      return
    }
    case 'show': {
      const v = await client.show(c.kind, await resolveRef(client, c.kind, c.id))
      out(c.json ? toJson(v) : formatView(v))
      return
    }
    case 'load': {
      const { maps, programs } = await client.loadCollection(c.path)
      try {
        const ids = {
          maps: Object.fromEntries(Object.entries(maps).map(([name, m]) => [name, m.id])),
          programs: Object.fromEntries(Object.entries(programs).map(([name, p]) => [name, p.id])),
        }
        if (c.json) out(toJson(ids))
        else {
          for (const [name, id] of Object.entries(ids.maps)) out(`map ${id}: ${name}`)
          for (const [name, id] of Object.entries(ids.programs)) out(`prog ${id}: ${name}`)
        }
      } finally {
        // The broker keeps them (pinned in its own directory) until `release`.
        for (const m of Object.values(maps)) m.close()
        for (const p of Object.values(programs)) p.close()
      }
      return
    }
    case 'attach': {
      const progId = await resolveRef(client, 'prog', c.progId)
      const link = await client.attach(progId, c.attachType, c.target)
      try {
        if (c.json) out(toJson({ link: link.id, prog: progId, attachType: c.attachType, target: c.target }))
        else out(`link ${link.id}: prog ${progId} attached as ${c.attachType} to ${describeTarget(c.target)}`)
      } finally {
        link.close()
      }
      return
    }
    case 'pin': {
      const id = await resolveRef(client, c.kind, c.id)
      out(`pinned ${c.kind} ${id} at ${await client.pin(c.kind, id, c.name)}`)
      return
    }
    case 'unpin':
      await client.unpin(c.name)
      out(`unpinned ${c.name}`)
      return
    case 'release': {
      const id = await resolveRef(client, c.kind, c.id)
      await client.release(c.kind, id)
      out(`released ${c.kind} ${id}`)
      return
    }
    case 'dump':
      await dumpThroughBroker(client, c.kind, await resolveRef(client, c.kind, c.id), c.json, out)
      return
    case 'top':
      await runTopOn(await brokerSource(client), c.top, out)
      return
  }
}


/**
 * `bpfkit broker gc --config FILE`: what the broker made or adopted for a
 * tenant that is no longer in the config stays (the admin sees it as
 * '<name> (removed)') until this drops its records, the broker's pins and
 * the tenant pins the broker made for it; the objects live on while
 * anything else holds them. Only with the daemon stopped: it keeps the
 * registry in memory and would write the records back.
 */
async function collectGarbage(c: DaemonCommand, out: Out): Promise<number> {
  const config = loadConfig(c.config)
  const socket = c.socket ?? config.socket
  if (typeof socket === 'string' && await unixSocketListening(socket)) {
    throw new Error(`broker gc: a broker is running at ${socket}; stop it first (it keeps the registry in memory and would write these records back)`)
  }
  const registry = Registry.open(config.stateDir, config.pinRoot, { log: out })
  const known = new Set(config.tenants.map((t) => t.name))
  const gone = registry.records().filter((r) => !known.has(r.tenant))
  for (const r of gone) {
    for (const name of r.pins) rmSync(join(config.tenantPinRoot, r.tenant, name), { force: true })
    registry.remove(r.kind, r.id)
    out(`dropped ${r.kind} ${r.id} ('${r.name}', ${r.origin}) of removed tenant ${r.tenant}`)
  }
  // Their directories, when nothing else is left in them.
  for (const tenant of new Set(gone.map((r) => r.tenant))) {
    for (const dir of [...['map', 'prog', 'link', 'btf'].map((k) => join(config.pinRoot, tenant, k)), join(config.pinRoot, tenant), join(config.tenantPinRoot, tenant)]) {
      try {
        rmdirSync(dir)
      } catch { /* not empty, or not there */ }
    }
  }
  out(`broker gc: ${gone.length} record${gone.length === 1 ? '' : 's'} of removed tenants dropped; ${registry.records().length} kept`)
  return 0
}

/** `bpfkit <cmd> ...` with a broker socket: parse, then run. */
export async function runBrokerCli(cmd: string, args: readonly string[], socket: string, out: Out): Promise<number> {
  return runBrokerCommand(parseBrokerArgs(cmd, args, socket), out)
}

function describeSocket(s: ResolvedConfig['socket']): string {
  return typeof s === 'string' ? s : `fd ${s.fd} (socket activation)`
}

/**
 * `bpfkit broker --config FILE [--socket PATH]`: the daemon, in the
 * foreground, until SIGTERM or SIGINT; SIGHUP reads the config again (tenants,
 * policies, quotas, guard registration). Log lines (refused peers, recovered
 * records) go to `out`.
 */
export async function runBrokerDaemon(args: readonly string[], out: Out): Promise<number> {
  const c = parseDaemonArgs(args)
  if (c.cmd === 'gc') return collectGarbage(c, out)
  const activated = activatedSocket(process.env, process.pid)
  // Not passed on to anything the broker starts.
  delete process.env.LISTEN_PID
  delete process.env.LISTEN_FDS
  delete process.env.LISTEN_FDNAMES
  const read = (): ResolvedConfig => {
    const config = loadConfig(c.config)
    const socket = c.socket ?? activated ?? config.socket
    return { ...config, socket }
  }
  const config = read()
  const broker = await startBroker(config, { log: out })
  out(`bpfkit broker: listening on ${describeSocket(config.socket)}, ${config.tenants.length} tenant${config.tenants.length === 1 ? '' : 's'} (${config.tenants.map((t) => t.name).join(', ') || 'none'})`)
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      out(`bpfkit broker: ${signal}, closing`)
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      process.off('SIGHUP', onHup)
      resolve()
    }
    const onTerm = () => stop('SIGTERM')
    const onInt = () => stop('SIGINT')
    const onHup = () => {
      try {
        const next = read()
        broker.reload(next)
        out(`bpfkit broker: reloaded ${c.config}: ${next.tenants.length} tenant${next.tenants.length === 1 ? '' : 's'}`)
      } catch (e) {
        // A bad edit keeps the running config.
        out(`bpfkit broker: reload of ${c.config} failed, keeping the running config: ${(e as Error).message}`)
      }
    }
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onInt)
    process.on('SIGHUP', onHup)
  })
  await broker.close()
  return 0
}
