// How a tenant's tasks hold a map: read, write or both. A map fd carries the
// access it was opened with (BPF_F_RDONLY, BPF_F_WRONLY: the file's O_ACCMODE,
// which fdinfo prints in `flags:`), and an fd the broker opens by id has full
// access. So a map that is the tenant's only because one of its tasks holds
// it (origin 'held') goes back to it with no more access than those fds
// give: a host that hands a tenant a read-only map keeps it read-only.
//
// The tasks are discovery's (discovery.ts tasksOf): the processes of the
// tenant's cgroup subtree, or of its user namespace when it is matched by one
// and no cgroup; each is checked to be the tenant's again (belongs) after its
// fds were read.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { belongs, tasksOf } from '../discovery.js'
import { parseFdinfo } from '../procfs.js'
import type { ResolvedTenant } from '../config.js'
import type { Kind } from '../protocol.js'
import { refOf } from '../scope.js'
import type { HandlerContext } from '../state.js'

export const READ = 1
export const WRITE = 2

/**
 * READ | WRITE as the `flags:` line of an fd's fdinfo gives them (its
 * O_ACCMODE: 0 read-only, 1 write-only, 2 read-write); 0 for no such line or
 * no valid mode.
 */
export function accessOfFdinfo(text: string): number {
  const m = /^flags:\s*([0-7]+)$/m.exec(text)
  if (!m) return 0
  return [READ, WRITE, READ | WRITE, 0][Number.parseInt(m[1], 8) & 3]
}

/**
 * The access the tenant gets to an object through the broker: read-write,
 * except for a map that is its own only because its tasks hold it (origin
 * 'held', in no record): then what their fds give (heldMapAccess; 0 once
 * they hold it no more).
 */
export function tenantAccess(ctx: HandlerContext, kind: Kind, id: number): number {
  const { state, tenant } = ctx
  if (kind !== 'map' || tenant === null || state.registry.find(kind, id)) return READ | WRITE
  if (state.owners().of(refOf(kind, id))?.origin !== 'held') return READ | WRITE
  return heldMapAccess(tenant, id)
}

/**
 * The access (READ, WRITE, both, or 0 when none of them holds it) the
 * tenant's tasks have to map `id`, over every fd of it they hold. Stops
 * early at read-write. Tasks and fds that vanish meanwhile are skipped.
 */
export function heldMapAccess(tenant: ResolvedTenant, id: number): number {
  let access = 0
  for (const pid of tasksOf(tenant).pids) {
    let names: string[]
    try {
      names = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    let mine = 0
    for (const name of names) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${name}`) !== 'anon_inode:bpf-map') continue
        const text = readFileSync(`/proc/${pid}/fdinfo/${name}`, 'utf8')
        const info = parseFdinfo(text)
        if (info?.kind === 'map' && info.id === id) mine |= accessOfFdinfo(text)
      } catch {
        // closed meanwhile
      }
    }
    // A pid reused by someone else's process between the reads gives nothing.
    if (mine !== 0 && belongs(tenant, pid)) access |= mine
    if (access === (READ | WRITE)) break
  }
  return access
}
