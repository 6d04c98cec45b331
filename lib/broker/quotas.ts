// A tenant's usage and quotas. Usage counts what the broker holds for the
// tenant (its registry records and their tenant pins) plus its open
// connections; map bytes are counted as the guard counts them,
// (key size + value size) × max entries, so one quota means the same in both.
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

/** The bytes a map counts for in a quota: (key size + value size) × max entries, as the guard's. */
export function mapBytes(info: { keySize: number; valueSize: number; maxEntries: number }): number {
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
