// Who owns what (plan §4.3), pure: from the registry's records and every
// tenant's discovery. Ownership is exclusive and has a precedence: the
// registry (made > adopted) over discovery (pinned > cgroup > held, within one
// tenant). An object discovered by two or more tenants and in no registry
// record is 'shared': visible to the admin only. Every route a tenant has to
// an object (list, show, get_fd, pin, release, attach, fds it sends) asks
// visible(), so "not yours" and "does not exist" stay one answer.
import { join } from 'node:path'
import type { Kind, Origin } from './protocol.js'
import type { Discovered, Ref } from './discovery.js'
import type { RegistryRecord } from './registry.js'

export interface Ownership {
  /** The owning tenant, or 'shared' when several tenants' tasks reach it and no record says whose it is. */
  owner: string | 'shared'
  origin: Origin
  /**
   * Its pins as the owner knows them: the tenant pin names of its record
   * (under tenantPinRoot/<tenant>/), then the paths where the owner's
   * discovery found it pinned (as the tenant sees them).
   */
  pins: string[]
  /**
   * True for an object no tenant owns alone (owner 'shared'): a tenant that
   * happens to be named 'shared' must not see these.
   */
  shared?: boolean
}

export interface Owners {
  of(ref: Ref): Ownership | undefined
  /** The refs `tenant` owns, in a stable order (registry first, then discovery). */
  refsOf(tenant: string): Ref[]
  all(): Map<Ref, Ownership>
}

const REGISTRY_RANK: Record<RegistryRecord['origin'], number> = { made: 2, adopted: 1 }
// Within one tenant's discovery: a pin in its bpffs says more than an
// attachment to its cgroup, which says more than an fd one of its tasks holds.
const DISCOVERED_RANK = { pinned: 3, cgroup: 2, held: 1 } as const

export const refOf = (kind: Kind, id: number): Ref => `${kind}:${id}`

export interface ResolveOptions {
  /** Where a record's pins live, when discovery walked it: the same pin found again there is not listed twice (by name and by path). */
  tenantPinRoot?: string
  /** The BTF id a map or program uses (btf-use.ts), so a tenant's BTF is its own too. */
  btfOf?: (ref: Ref) => number | undefined
}

export function resolveOwners(records: readonly RegistryRecord[], discovered: ReadonlyMap<string, Discovered>, options: ResolveOptions = {}): Owners {
  const { tenantPinRoot, btfOf } = options
  const owners = new Map<Ref, Ownership>()
  // The registry: made beats adopted; among equals the first record stands.
  const rank = new Map<Ref, number>()
  for (const r of records) {
    const ref = refOf(r.kind, r.id)
    const mine = REGISTRY_RANK[r.origin]
    if ((rank.get(ref) ?? 0) >= mine) continue
    rank.set(ref, mine)
    owners.set(ref, { owner: r.tenant, origin: r.origin, pins: [...r.pins] })
  }
  // The BTF that registered objects use comes before discovery, as records do.
  const asked = new Set<Ref>()
  if (btfOf) deriveBtf(owners, btfOf, asked)
  // Discovery: per ref, each tenant's best origin and its pin paths.
  const found = new Map<Ref, Map<string, { origin: keyof typeof DISCOVERED_RANK; pins: string[] }>>()
  const note = (ref: Ref, tenant: string, origin: keyof typeof DISCOVERED_RANK, pins: readonly string[] = []) => {
    let byTenant = found.get(ref)
    if (!byTenant) found.set(ref, (byTenant = new Map()))
    const seen = byTenant.get(tenant)
    if (!seen) byTenant.set(tenant, { origin, pins: [...pins] })
    else {
      if (DISCOVERED_RANK[origin] > DISCOVERED_RANK[seen.origin]) seen.origin = origin
      for (const p of pins) if (!seen.pins.includes(p)) seen.pins.push(p)
    }
  }
  for (const [tenant, d] of discovered) {
    for (const [ref, paths] of d.pinned) note(ref, tenant, 'pinned', paths)
    for (const ref of d.cgroup) note(ref, tenant, 'cgroup')
    for (const ref of d.held) note(ref, tenant, 'held')
  }
  for (const [ref, byTenant] of found) {
    const registered = owners.get(ref)
    if (registered) {
      // The owner's own pins of it in its bpffs are shown too; other tenants' discovery changes nothing.
      const own = byTenant.get(registered.owner)
      if (!own) continue
      const recorded = new Set(tenantPinRoot === undefined ? [] : registered.pins.map((name) => join(tenantPinRoot, registered.owner, name)))
      for (const p of own.pins) if (!registered.pins.includes(p) && !recorded.has(p)) registered.pins.push(p)
      continue
    }
    if (byTenant.size === 1) {
      const [[tenant, { origin, pins }]] = byTenant
      owners.set(ref, { owner: tenant, origin, pins })
      continue
    }
    let best: keyof typeof DISCOVERED_RANK = 'held'
    const pins: string[] = []
    for (const { origin, pins: p } of byTenant.values()) {
      if (DISCOVERED_RANK[origin] > DISCOVERED_RANK[best]) best = origin
      for (const x of p) if (!pins.includes(x)) pins.push(x)
    }
    owners.set(ref, { owner: 'shared', origin: best, pins, shared: true })
  }
  // Then the BTF of what discovery found, where nothing said whose it is yet.
  if (btfOf) deriveBtf(owners, btfOf, asked)
  return {
    of: (ref) => owners.get(ref),
    refsOf: (tenant) => [...owners].filter(([, o]) => o.owner === tenant && !o.shared).map(([ref]) => ref),
    all: () => new Map(owners),
  }
}

/** Whether `tenant` may see (and so reach by id) kind:id. Shared objects are nobody's. */
export function visible(owners: Owners, tenant: string, kind: Kind, id: number): boolean {
  const o = owners.of(refOf(kind, id))
  return o !== undefined && !o.shared && o.owner === tenant
}

/**
 * A copy of an object's info (lib/sys/info.ts: ProgramInfo, MapInfo,
 * LinkInfo, BtfInfo) without the ids of other objects the caller may not
 * see: a program's mapIds are filtered, its btfId and a map's become 0, a
 * link's progId and mapId become 0, and a tracing link's targetObjId (a
 * program's or a BTF object's id) becomes 0 unless visible as either. The
 * object's own id and non-object numbers (cgroup ids, ifindex, netns
 * inode) stay.
 */
export function redact(kind: Kind, info: Record<string, unknown>, isVisible: (kind: Kind, id: number) => boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...info }
  const hide = (field: string, as: Kind) => {
    const v = out[field]
    if (typeof v === 'number' && v !== 0 && !isVisible(as, v)) out[field] = 0
  }
  switch (kind) {
    case 'prog':
      if (Array.isArray(out.mapIds)) out.mapIds = out.mapIds.filter((id) => typeof id === 'number' && isVisible('map', id))
      hide('btfId', 'btf')
      break
    case 'map':
      hide('btfId', 'btf')
      break
    case 'link': {
      hide('progId', 'prog')
      hide('mapId', 'map')
      const target = out.targetObjId
      if (typeof target === 'number' && target !== 0 && !isVisible('prog', target) && !isVisible('btf', target)) out.targetObjId = 0
      break
    }
    case 'btf':
      break
  }
  return out
}

/**
 * A BTF object no record or discovery claims belongs to the tenant whose
 * maps and programs use it, with their origin (a collection's BTF is 'made'
 * with its programs); used by objects of two tenants, it is 'shared'.
 */
function deriveBtf(owners: Map<Ref, Ownership>, btfOf: (ref: Ref) => number | undefined, asked: Set<Ref>): void {
  const derived = new Map<Ref, Ownership>()
  for (const [ref, o] of owners) {
    if (o.shared || asked.has(ref) || !(ref.startsWith('map:') || ref.startsWith('prog:'))) continue
    asked.add(ref)
    const id = btfOf(ref)
    if (id === undefined) continue
    const btf = refOf('btf', id)
    if (owners.has(btf)) continue
    const seen = derived.get(btf)
    if (!seen) derived.set(btf, { owner: o.owner, origin: o.origin, pins: [] })
    else if (seen.owner !== o.owner) derived.set(btf, { owner: 'shared', origin: seen.origin, pins: [], shared: true })
  }
  for (const [ref, o] of derived) owners.set(ref, o)
}
