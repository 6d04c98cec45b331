// With the guard running, every tenant the broker serves is registered with
// it too (plan §6), so that the kernel enforces the same policy and map
// quota when the tenant calls bpf() itself with its token. Called after the
// config is loaded and on every reload or setTenant; diffs by name.
import type { Guard, TenantMatch } from '../guard/index.js'
import type { ResolvedTenant } from './config.js'

/**
 * Registers each tenant with `guard: true` (setTenant: its cgroup directory
 * and user namespace inode as match keys, its policy, its maps and bytes
 * quotas) and unregisters the names of `previous` that are gone or no
 * longer guarded. Returns the names now registered. Errors: TypeError
 * naming the tenant when its match gives the guard nothing to key on (only
 * uid, or userns 'non-initial'); the guard's own errors (overlapping
 * matches, 64 tenants), prefixed with the tenant's name; the tenants this
 * call newly registered before the failure are unregistered again.
 */
export function syncGuard(guard: Guard, tenants: readonly ResolvedTenant[], previous: ReadonlySet<string>): Set<string> {
  const wanted = tenants.filter((t) => t.guard)
  // Everything is checked before the guard changes, so a bad tenant changes nothing.
  const matches = new Map(wanted.map((t) => [t.name, guardMatch(t)]))
  const next = new Set(matches.keys())
  // Removals first: a match a removed tenant held may be a new tenant's now.
  for (const name of previous) if (!next.has(name)) guard.removeTenant(name)
  const added: string[] = []
  for (const t of wanted) {
    const quota: { maps?: number; bytes?: number } = {}
    if (Number.isFinite(t.quota.maps)) quota.maps = t.quota.maps
    if (Number.isFinite(t.quota.bytes)) quota.bytes = t.quota.bytes
    try {
      guard.setTenant(t.name, { match: matches.get(t.name) as TenantMatch, policy: t.policy, quota })
      if (!previous.has(t.name)) added.push(t.name)
    } catch (e) {
      // Names this call registered go again: the caller re-syncs the tenants
      // it had (from `previous`), and knows nothing of these.
      for (const name of added) guard.removeTenant(name)
      if (e instanceof Error) e.message = `tenant ${t.name}: ${e.message}`
      throw e
    }
  }
  return next
}

/**
 * The guard's match for a tenant: its cgroup directory on the host (the
 * guard keys on the cgroup id, read from it now, so a recreated cgroup is
 * followed) and its user namespace inode. A uid or 'non-initial' matcher
 * has no guard key: the guard sees requests, not peers. The tenant's
 * bpffs is named as the tenant sees it, not as a host path, so it is not
 * used as a token match.
 */
function guardMatch(t: ResolvedTenant): TenantMatch {
  const match: TenantMatch = {}
  if (t.match.cgroup) match.cgroup = t.match.cgroup.dir
  if (typeof t.match.userns === 'number') match.userns = t.match.userns
  if (match.cgroup === undefined && match.userns === undefined) {
    throw new TypeError(`tenant ${t.name}: guard is on but its match has neither a cgroup nor a user namespace inode for the guard to key on`)
  }
  return match
}
