// The admin's requests (root in the initial user namespace, matching no
// tenant): every object on the node with its owner, the tenants with their
// matchers and usage, and the broker's counters. Tenants get EACCES.
import { Fd, native } from '../../sys/index.js'
import { brokerError } from '../errors.js'
import { kinds as allKinds, type Kind, type ListAllRequest, type ObjectView, type StatsRequest, type TenantsRequest } from '../protocol.js'
import { refOf, type Ownership } from '../scope.js'
import type { BrokerState, Handler, HandlerContext, HandlerResult } from '../state.js'
import { objectView } from './view-object.js'
import { usageFor } from './quota-book.js'

function requireAdmin(ctx: HandlerContext, what: string): void {
  if (ctx.tenant !== null) throw brokerError('EACCES', `${what} is for the admin (root in the initial user namespace, matching no tenant)`)
}

// The kernel's id walk per kind (GET_NEXT_ID, GET_FD_BY_ID): the broker is privileged.
const walkers: Record<Kind, { next(id: number): number; open(id: number): number }> = {
  map: { next: (id) => native.mapGetNextId(id), open: (id) => native.mapGetFdById(id) },
  prog: { next: (id) => native.progGetNextId(id), open: (id) => native.progGetFdById(id) },
  link: { next: (id) => native.linkGetNextId(id), open: (id) => native.linkGetFdById(id) },
  btf: { next: (id) => native.btfGetNextId(id), open: (id) => native.btfGetFdById(id) },
}

// An object no tenant owns and no record names: alive because something
// holds or pins it (the host's own objects, the broker's guard...).
const nobodys: Ownership = { owner: '-', origin: 'held', pins: [] }

/**
 * Every object on the node, registered, discovered or neither, with its
 * owner: a tenant's name ('<name> (removed)' for a record whose tenant left
 * the config), 'shared' (reached by several tenants, in no record) or '-'
 * (nobody's). Objects freed during the walk are skipped.
 */
async function listAll(ctx: HandlerContext, req: ListAllRequest): Promise<HandlerResult> {
  requireAdmin(ctx, 'list_all')
  const { state } = ctx
  const owners = state.owners()
  const tenants = new Set(state.config.tenants.map((t) => t.name))
  const objects: ObjectView[] = []
  for (const kind of req.kinds ?? allKinds) {
    const walk = walkers[kind]
    for (let id = walk.next(0); id !== 0; id = walk.next(id)) {
      let fd: Fd
      try {
        fd = new Fd(walk.open(id), kind)
      } catch (e) {
        if ((e as { code?: string }).code === 'ENOENT') continue // freed since GET_NEXT_ID
        throw e
      }
      try {
        const ownership = owners.of(refOf(kind, id)) ?? nobodys
        const view = objectView(state, kind, id, fd, ownership, () => true)
        view.owner = ownership.shared || ownership.owner === '-' || tenants.has(ownership.owner) ? ownership.owner : `${ownership.owner} (removed)`
        objects.push(view)
      } catch (e) {
        // An object the kernel cannot describe (freed mid-read) is left out, not the whole listing.
        if ((e as { code?: string }).code !== 'ENOENT') throw e
      } finally {
        fd.close()
      }
    }
  }
  return { reply: { objects } }
}

/** Quotas as JSON can carry them: an unset quota (Infinity) is null. */
function quotaJson(q: Record<string, number>): Record<string, number | null> {
  const out: Record<string, number | null> = {}
  for (const [k, v] of Object.entries(q)) out[k] = Number.isFinite(v) ? v : null
  return out
}

async function tenants(ctx: HandlerContext, _req: TenantsRequest): Promise<HandlerResult> {
  requireAdmin(ctx, 'tenants')
  const { state } = ctx
  const list = state.config.tenants.map((t) => ({
    name: t.name,
    match: {
      ...(t.match.cgroup ? { cgroup: t.match.cgroup.path, cgroupId: t.match.cgroup.id.toString() } : {}),
      ...(t.match.userns !== undefined ? { userns: t.match.userns } : {}),
      ...(t.match.uid !== undefined ? { uid: [...t.match.uid] } : {}),
    },
    policy: t.policy.toJSON(),
    quota: quotaJson(t.quota as unknown as Record<string, number>),
    usage: usageFor(state, t.name),
    loadAs: t.loadAs,
    attach: { ...t.attach },
    guard: t.guard,
    ...(t.bpffs !== undefined ? { bpffs: t.bpffs } : {}),
  }))
  return { reply: { tenants: list } }
}

/**
 * The broker's counters as the wire carries them (numbers only): the
 * server's (connections, accepted, refused, requests, errors...), the
 * connections per tenant as `connections.<tenant>` (tenant names have no
 * dots; '(admin)' for admin peers), and the registry's records per kind.
 */
export function brokerCounters(state: BrokerState): Record<string, number> {
  const { byTenant, ...counters } = state.stats()
  const out: Record<string, number> = { ...counters }
  for (const [name, n] of Object.entries(byTenant)) out[`connections.${name}`] = n
  const records = state.registry.records()
  out.registered = records.length
  for (const kind of allKinds) out[`registered_${kind}s`] = records.filter((r) => r.kind === kind).length
  return out
}

async function stats(ctx: HandlerContext, _req: StatsRequest): Promise<HandlerResult> {
  requireAdmin(ctx, 'stats')
  return { reply: { stats: brokerCounters(ctx.state) } }
}

export const adminHandlers: Record<'list_all' | 'tenants' | 'stats', Handler> = { list_all: listAll, tenants, stats }
