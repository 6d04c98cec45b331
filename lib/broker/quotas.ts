// A tenant's usage and quotas. Usage counts what the broker made or adopted
// for the tenant (its registry records and their tenant pins), what it made
// and no longer keeps but that still lives (below), what requests of the
// tenant have reserved and not yet made, and its open connections.
//
// An object the broker made counts for as long as it lives, not only while
// the broker keeps it: `release` (and `detach`) drop the broker's pin and
// record, but an fd the tenant holds, a pin of it, a program using a map or
// a link holding a program keep the object alive, and a quota a tenant could
// reset by releasing what it still uses would be no quota. So the broker
// remembers what it made and let go of (`Lingering`), and counts each until
// the kernel no longer has it. Adopted objects are the tenant's own making
// (its token; the guard counts those) and stop counting once released; one
// the broker made, released and adopted back is still the broker's making.
// What lingers is saved in the state directory (released.json,
// handlers/quota-book.ts), so a restart keeps counting it.
//
// Requests check and reserve in one step (`Reservations`): a load waits for
// the verifier on a worker thread, and another connection of the same tenant
// must see what that load is about to make.
//
// Map bytes: (key size + value size) × max entries, as the guard counts them,
// except where that is not the memory: a ring buffer's max_entries is its
// size in bytes (key and value sizes are 0), an arena's is pages, and a
// per-CPU map keeps each value (rounded up to 8 bytes) once per possible CPU.
// (The guard, in the kernel, still counts (key + value) × entries for every
// map, so a ring buffer made with a tenant's own token counts 0 bytes there.)
import { readFileSync } from 'node:fs'
import { kernel, native } from '../sys/index.js'
import { brokerError } from './errors.js'
import type { ResolvedTenant } from './config.js'
import type { RegistryRecord } from './registry.js'

export interface Usage {
  maps: number
  bytes: number
  progs: number
  links: number
  pins: number
  connections: number
}

const KEYS = ['maps', 'bytes', 'progs', 'links', 'pins', 'connections'] as const
const NOUN: Record<keyof Usage, [string, string]> = {
  maps: ['map', 'maps'],
  bytes: ['byte of maps', 'bytes of maps'],
  progs: ['program', 'programs'],
  links: ['link', 'links'],
  pins: ['pin', 'pins'],
  connections: ['connection', 'connections'],
}

const mapTypes = kernel.mapTypes as Record<string, number>
const PER_CPU = new Set(['percpu_hash', 'percpu_array', 'lru_percpu_hash', 'percpu_cgroup_storage'].map((n) => mapTypes[n]).filter((n) => n !== undefined))
const BYTES_IN_ENTRIES = new Set(['ringbuf', 'user_ringbuf'].map((n) => mapTypes[n]).filter((n) => n !== undefined))
const PAGES_IN_ENTRIES = new Set(['arena'].map((n) => mapTypes[n]).filter((n) => n !== undefined))

let pageSizeCache: number | undefined
/** The page size, from the auxiliary vector (AT_PAGESZ); 4096 when it cannot be read. */
export function pageSize(): number {
  if (pageSizeCache !== undefined) return pageSizeCache
  pageSizeCache = 4096
  try {
    const auxv = readFileSync('/proc/self/auxv')
    for (let at = 0; at + 16 <= auxv.length; at += 16) {
      const type = auxv.readBigUInt64LE(at)
      if (type === 0n) break
      if (type === 6n) pageSizeCache = Number(auxv.readBigUInt64LE(at + 8))
    }
  } catch {
    // keep the common size
  }
  return pageSizeCache
}

export interface MapShape {
  /** A kernel map type name or number; without it, only (key + value) × entries. */
  type?: string | number
  keySize: number
  valueSize: number
  maxEntries: number
}

/**
 * The bytes a map counts for in a quota: (key size + value size) × max
 * entries, as the guard's, with a ring buffer's max_entries taken as bytes,
 * an arena's as pages, and a per-CPU map's values (rounded up to 8 bytes) once
 * per possible CPU (`cpus`, default the machine's).
 */
export function mapBytes(info: MapShape, cpus?: number): number {
  const type = typeof info.type === 'string' ? mapTypes[info.type] : info.type
  if (type !== undefined && BYTES_IN_ENTRIES.has(type)) return info.maxEntries
  if (type !== undefined && PAGES_IN_ENTRIES.has(type)) return info.maxEntries * pageSize()
  if (type !== undefined && PER_CPU.has(type)) {
    const n = cpus ?? native.possibleCpus()
    return (info.keySize + Math.ceil(info.valueSize / 8) * 8 * n) * info.maxEntries
  }
  return (info.keySize + info.valueSize) * info.maxEntries
}

/**
 * What `tenant` holds through the broker. `infoOf` gives a map record's
 * bytes (undefined when it cannot be read: the map then counts, its bytes
 * do not); BTF objects count against nothing.
 */
export function usageOf(
  tenant: string,
  records: readonly RegistryRecord[],
  infoOf: (r: RegistryRecord) => { bytes: number } | undefined,
  connections: number,
): Usage {
  const u: Usage = { maps: 0, bytes: 0, progs: 0, links: 0, pins: 0, connections }
  for (const r of records) {
    if (r.tenant !== tenant) continue
    u.pins += r.pins.length
    if (r.kind === 'map') {
      u.maps++
      u.bytes += infoOf(r)?.bytes ?? 0
    } else if (r.kind === 'prog') u.progs++
    else if (r.kind === 'link') u.links++
  }
  return u
}

/**
 * Refuses, with a BrokerError EDQUOT naming the quota, its limit and the
 * usage, when adding `add` to `usage` would pass one of the tenant's
 * quotas (Infinity when unset).
 */
export function checkQuota(tenant: ResolvedTenant, usage: Usage, add: Partial<Usage>): void {
  for (const k of KEYS) {
    const more = add[k]
    if (more === undefined || more <= 0) continue
    const limit = tenant.quota[k]
    if (usage[k] + more <= limit) continue
    const [one, many] = NOUN[k]
    const n = (x: number) => `${x} ${x === 1 ? one : many}`
    throw brokerError('EDQUOT', `tenant ${tenant.name}: quota ${k} is ${n(limit)}; it holds ${usage[k]} and this needs ${more} more`)
  }
}

/** A usage of nothing at all. */
export function noUsage(): Usage {
  return { maps: 0, bytes: 0, progs: 0, links: 0, pins: 0, connections: 0 }
}

/** Adds `b` into `a` (missing keys count 0). */
export function addInto(a: Usage, b: Partial<Usage>): void {
  for (const k of KEYS) a[k] += b[k] ?? 0
}

/** An object the broker made for a tenant and let go of, counted while it lives. */
export interface LingeringObject {
  tenant: string
  kind: 'map' | 'prog' | 'link'
  id: number
  /** Its share: { maps: 1, bytes } for a map, { progs: 1 }, { links: 1 }. */
  share: Partial<Usage>
  /** What the object was (its kind's info, in short): an id reused by another object is not it. */
  fingerprint: string
}

/**
 * What the broker made and let go of (released, detached) that still lives.
 * `alive` asks the kernel for the object by id and returns its fingerprint
 * (undefined when there is none): an entry whose object is gone, or whose
 * id now names something else, is dropped.
 */
export class Lingering {
  readonly #objects = new Map<string, LingeringObject>()

  add(o: LingeringObject): void {
    this.#objects.set(`${o.kind}:${o.id}`, o)
  }

  /** Whether kind:id is counted for `tenant` here (adopting it back then adds nothing). */
  has(tenant: string, kind: string, id: number): boolean {
    return this.#objects.get(`${kind}:${id}`)?.tenant === tenant
  }

  /**
   * The tenant's share of what still lives. `registered` says whether a
   * record (any tenant's) holds kind:id again (adopted back): that record
   * counts meanwhile, and the entry again once it is released, so that
   * adopting and releasing cannot launder what the broker made.
   */
  usage(tenant: string, alive: (kind: LingeringObject['kind'], id: number) => string | undefined, registered: (kind: string, id: number) => boolean): Partial<Usage> {
    const u = noUsage()
    for (const [ref, o] of this.#objects) {
      if (o.tenant !== tenant || registered(o.kind, o.id)) continue
      if (alive(o.kind, o.id) !== o.fingerprint) {
        this.#objects.delete(ref)
        continue
      }
      addInto(u, o.share)
    }
    return u
  }

  get size(): number {
    return this.#objects.size
  }

  /** Every entry, to be saved (a restart must not forget them: quota-book.ts). */
  entries(): LingeringObject[] {
    return [...this.#objects.values()]
  }

  /**
   * Entries read back from a save; malformed ones are skipped (and named by
   * `onBad`). Each is checked against the kernel again at its first use.
   */
  static from(list: unknown, onBad: (entry: unknown) => void = () => {}): Lingering {
    const out = new Lingering()
    for (const o of Array.isArray(list) ? list : []) {
      if (isLingeringObject(o)) out.add(o)
      else onBad(o)
    }
    return out
  }
}

function isLingeringObject(o: unknown): o is LingeringObject {
  if (typeof o !== 'object' || o === null) return false
  const { tenant, kind, id, share, fingerprint } = o as Record<string, unknown>
  return typeof tenant === 'string' && (kind === 'map' || kind === 'prog' || kind === 'link') &&
    Number.isSafeInteger(id) && (id as number) > 0 && typeof fingerprint === 'string' &&
    typeof share === 'object' && share !== null && !Array.isArray(share) &&
    Object.entries(share).every(([k, v]) => (KEYS as readonly string[]).includes(k) && Number.isSafeInteger(v) && (v as number) >= 0)
}

/**
 * What requests in flight have checked and not yet made, per tenant.
 * `reserve` checks and takes in one synchronous step; the returned handle
 * gives it back (once the objects are recorded, or on failure).
 */
export class Reservations {
  readonly #byTenant = new Map<string, Usage>()

  of(tenant: string): Usage {
    return { ...(this.#byTenant.get(tenant) ?? noUsage()) }
  }

  /**
   * Refuses (EDQUOT, as checkQuota) when `usage` (what the tenant holds,
   * without reservations) plus what is reserved plus `add` passes a quota;
   * else reserves `add` until the handle is disposed.
   */
  reserve(tenant: ResolvedTenant, usage: Usage, add: Partial<Usage>): Disposable & { release(): void } {
    const total = { ...usage }
    addInto(total, this.of(tenant.name))
    checkQuota(tenant, total, add)
    let mine = this.#byTenant.get(tenant.name)
    if (!mine) this.#byTenant.set(tenant.name, (mine = noUsage()))
    addInto(mine, add)
    let released = false
    const release = () => {
      if (released) return
      released = true
      const u = this.#byTenant.get(tenant.name)
      if (!u) return
      for (const k of KEYS) u[k] -= add[k] ?? 0
      if (KEYS.every((k) => u[k] === 0)) this.#byTenant.delete(tenant.name)
    }
    return { release, [Symbol.dispose]: release }
  }
}
