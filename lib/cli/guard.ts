// `bpfkit guard`: start, watch and stop the guard (lib/guard), the BPF LSM
// programs that make the kernel enforce tenants' policies, and register
// tenants with it. Each subcommand is one library call on the pinned guard.
//   guard start [--pin DIR]                 load, attach and pin it; it keeps running after we exit
//   guard status [--pin DIR] [--json]       tenants (match, quota, usage) and counters
//   guard events [--pin DIR] [--json]       refusals as they happen, until SIGINT/SIGTERM
//   guard tenant set NAME --policy FILE (--userns P|INODE | --cgroup P|ID | --token BPFFS)... [--max-maps N] [--max-bytes N] [--json]
//   guard tenant remove NAME [--pin DIR]
//   guard stop [--pin DIR]                  detach it and remove its pins
import { Guard, type GuardTenant, type Quota, type TenantMatch } from '../guard/index.js'
import { Policy } from '../policy/policy.js'
import { parseCommand, subcommand, toJson, UsageError, type ParseArgsOptionsConfig, type Values } from './args.js'

/** Where `guard start` pins the guard unless --pin says otherwise. */
export const defaultGuardPin = '/sys/fs/bpf/bpfkit-guard'

export type GuardCommand =
  | { cmd: 'start' | 'stop'; pinPath: string }
  | { cmd: 'status' | 'events'; pinPath: string; json: boolean }
  | { cmd: 'tenant set'; pinPath: string; name: string; policy: string; match: TenantMatch; quota: Quota; json: boolean }
  | { cmd: 'tenant remove'; pinPath: string; name: string }

type Out = (s: string) => void

export const guardUsage = `usage: bpfkit guard start|stop [--pin DIR]
       bpfkit guard status|events [--pin DIR] [--json]
       bpfkit guard tenant set NAME --policy <p.json> (--userns P|INODE | --cgroup P|ID | --token BPFFS)... [--max-maps N] [--max-bytes N] [--pin DIR] [--json]
       bpfkit guard tenant remove NAME [--pin DIR]
  start the guard (BPF LSM programs: the kernel enforces tenants' policies) and leave it pinned at DIR;
  stop it; its tenants and counters; its refusals as they happen (until Ctrl-C); register or unregister a tenant
  (DIR: ${defaultGuardPin} unless --pin; needs root, the bpf LSM, Linux 6.9+)`

const pin = { pin: { type: 'string' } } as const
const json = { json: { type: 'boolean' } } as const
const tenantOptions = {
  ...pin, ...json, policy: { type: 'string' }, userns: { type: 'string' }, cgroup: { type: 'string' }, token: { type: 'string' },
  'max-maps': { type: 'string' }, 'max-bytes': { type: 'string' },
} as const
type TenantValues = Values<typeof tenantOptions>

const DECIMAL = /^(0|[1-9][0-9]*)$/

function count(cmd: string, flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!DECIMAL.test(value) || !Number.isSafeInteger(n)) throw new UsageError(`guard ${cmd}: ${flag} must be a non-negative integer, got '${value}'`, guardUsage)
  return n
}

// A number names the object by inode or id; anything else is a path.
function matchOf(cmd: string, v: TenantValues): TenantMatch {
  const match: TenantMatch = {}
  if (v.userns !== undefined) {
    const s = v.userns
    if (DECIMAL.test(s) && (Number(s) === 0 || Number(s) > 0xffffffff)) throw new UsageError(`guard ${cmd}: --userns ${s} is not an inode number (1 to 4294967295)`, guardUsage)
    match.userns = DECIMAL.test(s) ? Number(s) : s
  }
  if (v.cgroup !== undefined) {
    const s = v.cgroup
    if (DECIMAL.test(s) && (BigInt(s) === 0n || BigInt(s) >= 1n << 64n)) throw new UsageError(`guard ${cmd}: --cgroup ${s} is not a cgroup id (1 to 2^64-1)`, guardUsage)
    // A number while exact, as one would write it to the library; a bigint past that.
    match.cgroup = !DECIMAL.test(s) ? s : BigInt(s) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : BigInt(s)
  }
  if (v.token !== undefined) match.token = v.token
  if (Object.keys(match).length === 0) throw new UsageError(`guard ${cmd}: name the tenant's requests with --userns, --cgroup or --token (one or more)`, guardUsage)
  return match
}

/** The command line after `guard`, checked. Errors: UsageError. */
export function parseGuardArgs(args: readonly string[]): GuardCommand {
  const sub = subcommand('guard', args[0], ['start', 'stop', 'status', 'events', 'tenant'] as const, guardUsage)
  const rest = args.slice(1)
  const spec = <O extends ParseArgsOptionsConfig>(cmd: string, options: O, names: string[] = []) =>
    ({ name: `guard ${cmd}`, usage: guardUsage, options, positionals: [names.length, names.length] as const, names })
  switch (sub) {
    case 'start':
    case 'stop': {
      const { values } = parseCommand(spec(sub, pin), rest)
      return { cmd: sub, pinPath: values.pin ?? defaultGuardPin }
    }
    case 'status':
    case 'events': {
      const { values } = parseCommand(spec(sub, { ...pin, ...json }), rest)
      return { cmd: sub, pinPath: values.pin ?? defaultGuardPin, json: values.json === true }
    }
    case 'tenant': {
      const action = subcommand('guard tenant', rest[0], ['set', 'remove'] as const, guardUsage)
      const cmd = `tenant ${action}` as const
      if (cmd === 'tenant remove') {
        const { values, positionals: [name] } = parseCommand(spec(cmd, pin, ['NAME']), rest.slice(1))
        return { cmd, pinPath: values.pin ?? defaultGuardPin, name }
      }
      const { values, positionals: [name] } = parseCommand(spec(cmd, tenantOptions, ['NAME']), rest.slice(1))
      if (values.policy === undefined) throw new UsageError(`guard ${cmd}: --policy <file.json> is required`, guardUsage)
      const quota: Quota = {}
      const maps = count(cmd, '--max-maps', values['max-maps'])
      const bytes = count(cmd, '--max-bytes', values['max-bytes'])
      if (maps !== undefined) quota.maps = maps
      if (bytes !== undefined) quota.bytes = bytes
      return { cmd, pinPath: values.pin ?? defaultGuardPin, name, policy: values.policy, match: matchOf(cmd, values), quota, json: values.json === true }
    }
  }
}

/** Runs `bpfkit guard <sub> ...`; resolves to the exit status. */
export async function runGuard(args: readonly string[], out: Out): Promise<number> {
  const c = parseGuardArgs(args)
  switch (c.cmd) {
    case 'start': {
      const guard = await Guard.start({ pinPath: c.pinPath })
      guard.close()
      out(`guard started, pinned at ${c.pinPath} (it runs until 'bpfkit guard stop${pinFlag(c.pinPath)}')`)
      return 0
    }
    case 'stop': {
      const guard = await Guard.open(c.pinPath)
      guard.stop()
      out(`guard stopped, pins at ${c.pinPath} removed`)
      return 0
    }
    case 'status': {
      using guard = await Guard.open(c.pinPath)
      status(guard, c.json, out)
      return 0
    }
    case 'events':
      await events(c.pinPath, c.json, out)
      return 0
    case 'tenant set': {
      // The policy is read before the guard is opened: a bad file is its own error.
      const policy = Policy.fromFile(c.policy)
      using guard = await Guard.open(c.pinPath)
      const tenant = guard.setTenant(c.name, { match: c.match, policy, quota: c.quota })
      if (c.json) out(toJson(tenant))
      else out(`tenant ${tenant.name} (id ${tenant.id}) set: matches ${describeMatch(tenant.match)}; quota ${describeQuota(tenant.quota)}`)
      return 0
    }
    case 'tenant remove': {
      using guard = await Guard.open(c.pinPath)
      if (!guard.removeTenant(c.name)) throw new Error(`guard tenant remove: no tenant '${c.name}' is registered with the guard at ${c.pinPath}`)
      out(`tenant ${c.name} removed`)
      return 0
    }
  }
}

const pinFlag = (pinPath: string) => (pinPath === defaultGuardPin ? '' : ` --pin ${pinPath}`)

function describeMatch(m: TenantMatch): string {
  const parts: string[] = []
  if (m.userns !== undefined) parts.push(`userns ${m.userns}`)
  if (m.cgroup !== undefined) parts.push(`cgroup ${m.cgroup}`)
  if (m.token !== undefined) parts.push(`tokens of ${m.token}`)
  return parts.join(', ')
}

function describeQuota(q: Quota): string {
  const parts: string[] = []
  if (q.maps !== undefined) parts.push(`${q.maps} maps`)
  if (q.bytes !== undefined) parts.push(`${q.bytes} bytes`)
  return parts.length ? parts.join(', ') : 'none'
}

function status(guard: Guard, json: boolean, out: Out): void {
  const stats = guard.stats()
  const tenants = guard.tenants()
  if (json) {
    out(toJson({ pinPath: guard.pinPath, stats, tenants }))
    return
  }
  out(`guard pinned at ${guard.pinPath}: ${stats.refused} refused, ${stats.allowed} allowed, ${stats.lost} refusal events lost`)
  if (tenants.length === 0) out('no tenants')
  for (const t of tenants) out(describeTenant(t))
}

function describeTenant(t: GuardTenant): string {
  return [
    `${t.id}: tenant ${t.name}`,
    `\tmatch ${describeMatch(t.match)}`,
    `\tquota ${describeQuota(t.quota)}  usage ${t.usage.maps} maps, ${t.usage.bytes} bytes`,
  ].join('\n')
}

// Until SIGINT or SIGTERM: the abort ends the iteration, then the handle is closed.
async function events(pinPath: string, json: boolean, out: Out): Promise<void> {
  using guard = await Guard.open(pinPath)
  const stop = new AbortController()
  const abort = () => stop.abort()
  process.once('SIGINT', abort)
  process.once('SIGTERM', abort)
  try {
    for await (const e of guard.events({ signal: stop.signal })) out(json ? toJson(e, 0) : e.message)
  } finally {
    process.off('SIGINT', abort)
    process.off('SIGTERM', abort)
  }
}
