// The broker's configuration: what is written (BrokerConfig, JSON on disk),
// checked once, and resolved into what the daemon uses (ResolvedConfig):
// policies parsed, cgroup paths turned into host directories and ids, user
// namespace files into inodes, quotas and limits filled in. Every refusal is
// a TypeError (a wrong type, an unknown key, a malformed name or path, a
// conflict between tenants) or a RangeError (a number out of range, too many
// guarded tenants) naming the field, e.g. "tenants[2].quota.maps".
import { readFileSync, readlinkSync, statSync } from 'node:fs'
import { isAbsolute, join, normalize } from 'node:path'
import { Policy, type PolicyLike } from '../policy/index.js'
import { limits as guardLimits } from '../guard/abi.js'
import { describeValue } from '../sys/options.js'
import { defaultLimits } from './protocol.js'
// procfs is below config in use (it reads /proc only and imports nothing of
// the broker's but types): the default cgroup root comes from mountinfo.
import { cgroup2Root } from './procfs.js'

export interface Quota { maps?: number; bytes?: number; progs?: number; links?: number; pins?: number; connections?: number }

export interface TenantConfig {
  /** /^[A-Za-z0-9_-]{1,63}$/: it names pin directories and guard records. */
  name: string
  /**
   * Who the tenant is; every key given must hold. `cgroup`: a path below the
   * cgroup2 root ('/tenants/a'), the peer's cgroup is it or below it.
   * `userns`: a namespace file (/proc/PID/ns/user, or one bind-mounted
   * elsewhere), its inode, or 'non-initial'. `uid`: the peer's uid is one of these.
   */
  match: { cgroup?: string; userns?: string | number | 'non-initial'; uid?: number[] }
  policy: PolicyLike
  quota?: Quota
  /** 'broker' (default): the broker loads with its own privileges; 'token': with the token the tenant sends. */
  loadAs?: 'broker' | 'token'
  /** The tenant's delegated bpffs as the tenant sees it (discovery walks it inside the tenant's root). */
  bpffs?: string
  /** Target families it may attach to; default cgroup only. */
  attach?: { cgroup?: boolean; netdev?: boolean }
  /** Register it with the guard (default true; only when the broker runs one). */
  guard?: boolean
}

export interface BrokerConfig {
  socket?: string | { fd: number }
  socketMode?: number
  stateDir?: string
  pinRoot?: string
  tenantPinRoot?: string
  cgroupRoot?: string
  tenants: TenantConfig[]
  admin?: { uids: number[] }
  limits?: Partial<typeof defaultLimits>
  guard?: { pinPath: string } | false
}

export interface ResolvedTenant {
  name: string
  match: { cgroup?: { path: string; dir: string; id: bigint }; userns?: number | 'non-initial'; uid?: number[] }
  policy: Policy
  /** Infinity where unset. */
  quota: Required<Quota>
  loadAs: 'broker' | 'token'
  bpffs?: string
  attach: { cgroup: boolean; netdev: boolean }
  guard: boolean
  /** The TenantConfig it was resolved from. */
  source: TenantConfig
}

export interface ResolvedConfig {
  socket: string | { fd: number }
  socketMode: number
  stateDir: string
  pinRoot: string
  tenantPinRoot: string
  cgroupRoot: string
  tenants: ResolvedTenant[]
  admin: { uids: number[] }
  limits: typeof defaultLimits
  guard: { pinPath: string } | false
}

export const configDefaults = {
  socket: '/run/bpfkit/broker.sock',
  socketMode: 0o666,
  stateDir: '/var/lib/bpfkit/broker',
  pinRoot: '/sys/fs/bpf/bpfkit-broker',
  tenantPinRoot: '/sys/fs/bpf/bpfkit-tenants',
  adminUids: [0],
} as const

const configKeys = ['socket', 'socketMode', 'stateDir', 'pinRoot', 'tenantPinRoot', 'cgroupRoot', 'tenants', 'admin', 'limits', 'guard']
const tenantKeys = ['name', 'match', 'policy', 'quota', 'loadAs', 'bpffs', 'attach', 'guard']
const matchKeys = ['cgroup', 'userns', 'uid']
const quotaKeys = ['maps', 'bytes', 'progs', 'links', 'pins', 'connections'] as const
const tenantName = /^[A-Za-z0-9_-]{1,63}$/
const maxId = 0xffff_fffe // uid_t: (uid_t)-1 means "no uid"

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function objectAt(where: string, v: unknown, known: readonly string[]): Record<string, unknown> {
  if (!isObject(v)) throw new TypeError(`${where} must be an object, got ${describeValue(v)}`)
  for (const key of Object.keys(v)) {
    if (!known.includes(key)) throw new TypeError(`${where}: unknown key '${key}' (known: ${known.join(', ')})`)
  }
  return v
}

function absolutePath(where: string, v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new TypeError(`${where} must be a path, got ${describeValue(v)}`)
  if (!isAbsolute(v)) throw new TypeError(`${where} must be an absolute path, got '${v}'`)
  if (v.includes('\0')) throw new TypeError(`${where} must not contain NUL`)
  const n = normalize(v)
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n
}

function integerIn(where: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number') throw new TypeError(`${where} must be a number, got ${describeValue(v)}`)
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`${where} must be an integer in ${min}..${max}, got ${v}`)
  return v
}

function ids(where: string, v: unknown): number[] {
  if (!Array.isArray(v)) throw new TypeError(`${where} must be an array of uids, got ${describeValue(v)}`)
  if (v.length === 0) throw new TypeError(`${where} must name at least one uid`)
  return [...new Set(v.map((u, i) => integerIn(`${where}[${i}]`, u, 0, maxId)))]
}

function booleanAt(where: string, v: unknown, otherwise: boolean): boolean {
  if (v === undefined) return otherwise
  if (typeof v !== 'boolean') throw new TypeError(`${where} must be a boolean, got ${describeValue(v)}`)
  return v
}

/** A cgroup path as written ('/tenants/a'), checked and normalized; never the root itself. */
function cgroupPath(where: string, v: unknown): string {
  if (typeof v !== 'string') throw new TypeError(`${where} must be a path below the cgroup2 root like '/tenants/a', got ${describeValue(v)}`)
  if (!v.startsWith('/')) throw new TypeError(`${where} must be an absolute path below the cgroup2 root like '/tenants/a', got '${v}'`)
  if (v.split('/').includes('..')) throw new TypeError(`${where} must not contain '..', got '${v}'`)
  const path = absolutePath(where, v)
  // The root holds every process, the broker's and the admin's among them.
  if (path === '/') throw new TypeError(`${where} must be below the cgroup2 root, not the root itself`)
  return path
}

function resolveUserns(where: string, v: unknown): number | 'non-initial' {
  if (v === 'non-initial') return v
  if (typeof v === 'number') return integerIn(where, v, 1, 0xffff_ffff)
  if (typeof v !== 'string') throw new TypeError(`${where} must be a namespace file, an inode or 'non-initial', got ${describeValue(v)}`)
  const path = absolutePath(where, v)
  // /proc/PID/ns/user reads back as 'user:[ino]': anything else named there
  // is the wrong kind of namespace. A bind-mounted ns file has no link to read.
  let link: string | undefined
  try {
    link = readlinkSync(path)
  } catch {
    link = undefined
  }
  if (link !== undefined && /^[a-z_]+:\[[0-9]+\]$/.test(link) && !link.startsWith('user:[')) {
    throw new TypeError(`${where}: ${path} is not a user namespace (${link})`)
  }
  let ino: number
  try {
    ino = statSync(path).ino
  } catch (e) {
    throw new TypeError(`${where}: cannot stat ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
  }
  return ino
}

function resolveMatch(where: string, v: unknown, cgroupRoot: string): ResolvedTenant['match'] {
  const m = objectAt(where, v, matchKeys)
  if (m.cgroup === undefined && m.userns === undefined && m.uid === undefined) {
    throw new TypeError(`${where} must give at least one of cgroup, userns, uid (an empty matcher would match every peer)`)
  }
  const out: ResolvedTenant['match'] = {}
  if (m.cgroup !== undefined) {
    const path = cgroupPath(`${where}.cgroup`, m.cgroup)
    const dir = join(cgroupRoot, path)
    let st
    try {
      st = statSync(dir, { bigint: true })
    } catch (e) {
      throw new TypeError(`${where}.cgroup: no cgroup ${path} below ${cgroupRoot} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
    }
    if (!st.isDirectory()) throw new TypeError(`${where}.cgroup: ${dir} is not a directory`)
    out.cgroup = { path, dir, id: st.ino }
  }
  if (m.userns !== undefined) out.userns = resolveUserns(`${where}.userns`, m.userns)
  if (m.uid !== undefined) out.uid = ids(`${where}.uid`, m.uid).sort((a, b) => a - b)
  return out
}

function resolveQuota(where: string, v: unknown): Required<Quota> {
  const q = v === undefined ? {} : objectAt(where, v, quotaKeys)
  const out = {} as Required<Quota>
  for (const key of quotaKeys) {
    out[key] = q[key] === undefined ? Infinity : integerIn(`${where}.${key}`, q[key], 0, Number.MAX_SAFE_INTEGER)
  }
  return out
}

function isResolvedTenant(t: unknown): t is ResolvedTenant {
  return isObject(t) && t.policy instanceof Policy && isObject(t.source)
}

/**
 * Checks one tenant and resolves it against the cgroup2 root. Its cgroup must
 * exist (its id is read now). `where` names it in messages ('tenants[3]').
 * Errors: TypeError/RangeError naming `${where}.field`.
 */
export function resolveTenant(t: TenantConfig, cgroupRoot: string, where = 'tenant'): ResolvedTenant {
  // A tenant already resolved (a ResolvedConfig given back) is resolved again
  // from what it was written as, so its cgroup id is read afresh.
  if (isResolvedTenant(t)) t = (t as ResolvedTenant).source
  const c = objectAt(where, t, tenantKeys)
  if (typeof c.name !== 'string') throw new TypeError(`${where}.name must be a string, got ${describeValue(c.name)}`)
  if (!tenantName.test(c.name)) throw new TypeError(`${where}.name must be 1-63 of A-Z a-z 0-9 _ -, got '${c.name}'`)
  const at = where
  if (c.match === undefined) throw new TypeError(`${at}.match is required`)
  const match = resolveMatch(`${at}.match`, c.match, cgroupRoot)
  if (c.policy === undefined) throw new TypeError(`${at}.policy is required`)
  let policy: Policy
  try {
    policy = Policy.from(c.policy as PolicyLike)
  } catch (e) {
    if (e instanceof TypeError) throw new TypeError(`${at}.policy: ${e.message}`)
    if (e instanceof RangeError) throw new RangeError(`${at}.policy: ${e.message}`)
    throw e
  }
  if (c.loadAs !== undefined && c.loadAs !== 'broker' && c.loadAs !== 'token') {
    throw new TypeError(`${at}.loadAs must be 'broker' or 'token', got ${describeValue(c.loadAs)}`)
  }
  const a = c.attach === undefined ? {} : objectAt(`${at}.attach`, c.attach, ['cgroup', 'netdev'])
  const resolved: ResolvedTenant = {
    name: c.name,
    match,
    policy,
    quota: resolveQuota(`${at}.quota`, c.quota),
    loadAs: (c.loadAs as 'broker' | 'token' | undefined) ?? 'broker',
    attach: { cgroup: booleanAt(`${at}.attach.cgroup`, a.cgroup, true), netdev: booleanAt(`${at}.attach.netdev`, a.netdev, false) },
    guard: booleanAt(`${at}.guard`, c.guard, true),
    source: t,
  }
  if (c.bpffs !== undefined) resolved.bpffs = absolutePath(`${at}.bpffs`, c.bpffs)
  return resolved
}

/** What two tenants' matchers are compared by: the resolved cgroup (its id), user namespace and uid set. */
function matcherKey(m: ResolvedTenant['match']): string {
  return JSON.stringify([m.cgroup?.id.toString() ?? null, m.userns ?? null, m.uid ?? null])
}

/**
 * Checks a set of tenants together: names unique, no two with identical
 * matchers (overlapping cgroup subtrees are fine: the deepest wins), and at
 * most the guard's 64 tenants registered with it when the broker runs a guard.
 * The daemon calls this again when a tenant is set at run time.
 * Errors: TypeError naming both tenants; RangeError for too many guarded ones.
 */
export function checkTenants(tenants: readonly ResolvedTenant[], withGuard: boolean): void {
  const names = new Map<string, number>()
  const matchers = new Map<string, number>()
  tenants.forEach((t, i) => {
    const dup = names.get(t.name)
    if (dup !== undefined) throw new TypeError(`tenants[${i}].name: '${t.name}' is also tenants[${dup}]`)
    names.set(t.name, i)
    const key = matcherKey(t.match)
    const same = matchers.get(key)
    if (same !== undefined) {
      throw new TypeError(`tenants[${i}].match: identical to tenants[${same}] (${tenants[same].name}): a peer could not tell them apart`)
    }
    matchers.set(key, i)
  })
  if (withGuard) {
    const guarded = tenants.filter((t) => t.guard).length
    if (guarded > guardLimits.tenants) {
      throw new RangeError(`tenants: ${guarded} tenants have guard on, the guard holds at most ${guardLimits.tenants} (set guard: false on the rest, or config.guard: false)`)
    }
  }
}

function resolveLimits(v: unknown): typeof defaultLimits {
  const l = v === undefined ? {} : objectAt('limits', v, Object.keys(defaultLimits))
  const out = { ...defaultLimits }
  for (const key of Object.keys(defaultLimits) as (keyof typeof defaultLimits)[]) {
    if (l[key] === undefined) continue
    // A TTL of 0 disables the discovery cache; every other limit must allow something.
    out[key] = integerIn(`limits.${key}`, l[key], key === 'discoveryTtlMs' ? 0 : 1, 0x7fff_ffff)
  }
  return out
}

function resolveSocket(v: unknown): string | { fd: number } {
  if (v === undefined) return configDefaults.socket
  if (typeof v === 'string') return absolutePath('socket', v)
  const s = objectAt('socket', v, ['fd'])
  return { fd: integerIn('socket.fd', s.fd, 0, 0x7fff_ffff) }
}

function below(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`)
}

/**
 * Checks a configuration and fills in its defaults: socket
 * '/run/bpfkit/broker.sock' mode 0o666 (authority is the peer's cgroup, not
 * the socket's mode), stateDir '/var/lib/bpfkit/broker', pinRoot
 * '/sys/fs/bpf/bpfkit-broker', tenantPinRoot '/sys/fs/bpf/bpfkit-tenants',
 * cgroupRoot where cgroup2 is mounted (mountinfo), admin uids [0], limits as
 * protocol.ts's defaultLimits, no guard. Every tenant's cgroup must exist.
 * Errors: TypeError/RangeError naming the field (tenants[i].field for a tenant).
 */
export function resolveConfig(c: BrokerConfig): ResolvedConfig {
  const cfg = objectAt('config', c, configKeys)
  const cgroupRoot = cfg.cgroupRoot === undefined ? cgroup2Root() : absolutePath('cgroupRoot', cfg.cgroupRoot)
  const pinRoot = cfg.pinRoot === undefined ? configDefaults.pinRoot : absolutePath('pinRoot', cfg.pinRoot)
  const tenantPinRoot = cfg.tenantPinRoot === undefined ? configDefaults.tenantPinRoot : absolutePath('tenantPinRoot', cfg.tenantPinRoot)
  // The broker's pins and the tenants' must not be one tree: a tenant's pin
  // name would then be a path into the broker's own records.
  if (below(pinRoot, tenantPinRoot) || below(tenantPinRoot, pinRoot)) {
    throw new TypeError(`pinRoot (${pinRoot}) and tenantPinRoot (${tenantPinRoot}) must be separate directories, neither inside the other`)
  }
  let guard: { pinPath: string } | false = false
  if (cfg.guard !== undefined && cfg.guard !== false) {
    const g = objectAt('guard', cfg.guard, ['pinPath'])
    guard = { pinPath: absolutePath('guard.pinPath', g.pinPath) }
  }
  let admin = { uids: [...configDefaults.adminUids] as number[] }
  if (cfg.admin !== undefined) admin = { uids: ids('admin.uids', objectAt('admin', cfg.admin, ['uids']).uids) }
  if (!Array.isArray(cfg.tenants)) throw new TypeError(`tenants must be an array, got ${describeValue(cfg.tenants)}`)
  const tenants = (cfg.tenants as unknown[]).map((t, i) => {
    const r = resolveTenant(t as TenantConfig, cgroupRoot, `tenants[${i}]`)
    // Without a guard nothing is registered with one.
    if (guard === false) r.guard = false
    return r
  })
  checkTenants(tenants, guard !== false)
  return {
    socket: resolveSocket(cfg.socket),
    socketMode: cfg.socketMode === undefined ? configDefaults.socketMode : integerIn('socketMode', cfg.socketMode, 0, 0o777),
    stateDir: cfg.stateDir === undefined ? configDefaults.stateDir : absolutePath('stateDir', cfg.stateDir),
    pinRoot,
    tenantPinRoot,
    cgroupRoot,
    tenants,
    admin,
    limits: resolveLimits(cfg.limits),
    guard,
  }
}

/**
 * Reads a JSON configuration file and resolves it. Errors: readFileSync's
 * (ENOENT...), SyntaxError for text that is not JSON, and resolveConfig's,
 * each naming the file.
 */
export function loadConfig(path: string): ResolvedConfig {
  if (typeof path !== 'string') throw new TypeError(`loadConfig: path must be a string, got ${describeValue(path)}`)
  const text = readFileSync(path, 'utf8')
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new SyntaxError(`${path}: not JSON: ${(e as Error).message}`)
  }
  try {
    return resolveConfig(doc as BrokerConfig)
  } catch (e) {
    if (e instanceof TypeError) throw new TypeError(`${path}: ${e.message}`)
    if (e instanceof RangeError) throw new RangeError(`${path}: ${e.message}`)
    throw e
  }
}
