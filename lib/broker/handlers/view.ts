// What a tenant may ask about its own objects: hello, list, show, get_fd.
// Every by-id route goes through openVisible, so another tenant's id and an
// id that does not exist get the same ENOENT.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Fd, kernel, native } from '../../sys/index.js'
import { brokerError } from '../errors.js'
import type { Kind, ObjectView, RequestBody } from '../protocol.js'
import { refOf, visible, type Ownership, type Owners } from '../scope.js'
import { requireTenant, type Handler, type HandlerContext } from '../state.js'
import { notInView, openById, objectView, openVisible } from './view-object.js'
import { READ, tenantAccess, WRITE } from './held-access.js'
import { usageFor } from './quota-book.js'

let version: string | undefined
/** The package's version, for hello. */
function brokerVersion(): string {
  if (version === undefined) {
    try {
      // lib/broker/handlers (sources) and dist/broker/handlers (built) are both three levels below the package.
      version = String(JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')).version)
    } catch {
      version = 'unknown'
    }
  }
  return version
}

const finite = (n: number): number | null => (Number.isFinite(n) ? n : null)

const hello: Handler<RequestBody<'hello'>> = (ctx) => {
  const { tenant } = ctx
  if (tenant === null) {
    return { reply: { tenant: null, policy: null, quota: {}, usage: {}, broker: brokerVersion(), admin: true } }
  }
  const quota = Object.fromEntries(Object.entries(tenant.quota).map(([k, v]) => [k, finite(v as number)]))
  return { reply: { tenant: tenant.name, policy: tenant.policy.toJSON(), quota, usage: { ...usageFor(ctx.state, tenant.name) }, broker: brokerVersion(), admin: false } }
}

/** Opens a ref the owners table gives the tenant: by its broker pin when recorded, else by id. undefined when it vanished. */
function openOwned(ctx: HandlerContext, kind: Kind, id: number): Fd | undefined {
  const record = ctx.state.registry.find(kind, id)
  try {
    return record ? ctx.state.registry.openObject(record) : openById(kind, id)
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined
    throw e
  }
}

function viewOf(ctx: HandlerContext, owners: Owners, tenant: string, kind: Kind, id: number, fd: Fd, own: Ownership): ObjectView {
  return objectView(ctx.state, kind, id, fd, own, (k, n) => visible(owners, tenant, k, n))
}

const list: Handler<RequestBody<'list'>> = (ctx, req) => {
  const tenant = requireTenant(ctx)
  const owners = ctx.state.owners()
  const kinds = req.kinds === undefined ? undefined : new Set(req.kinds)
  const origins = req.origins === undefined ? undefined : new Set(req.origins)
  const objects: ObjectView[] = []
  for (const ref of owners.refsOf(tenant.name)) {
    const own = owners.of(ref)
    if (!own || own.shared || own.owner !== tenant.name) continue
    const [kind, idText] = ref.split(':') as [Kind, string]
    const id = Number(idText)
    if (kinds && !kinds.has(kind)) continue
    if (origins && !origins.has(own.origin)) continue
    const fd = openOwned(ctx, kind, id)
    if (!fd) continue
    try {
      objects.push(viewOf(ctx, owners, tenant.name, kind, id, fd, own))
    } finally {
      fd.close()
    }
  }
  const order: Record<Kind, number> = { map: 0, prog: 1, link: 2, btf: 3 }
  objects.sort((a, b) => order[a.kind] - order[b.kind] || a.id - b.id)
  return { reply: { objects } }
}

/**
 * Opens an object the tenant may act on (get_fd, pin, detach), not only
 * see. A link discovery found attached to the tenant's cgroup, that no task
 * of the tenant holds and no pin of the tenant names (origin 'cgroup'), is
 * whoever attached it there's (the host's, a parent tenant's): list and show
 * give its view, and nothing more, since an fd of it would let the tenant
 * detach it, replace its program or keep it alive with a pin. EPERM, not
 * ENOENT: the tenant sees it in its list.
 */
export function openActionable(ctx: HandlerContext, kind: Kind, id: number): Fd {
  const fd = openVisible(ctx, kind, id)
  const { state, tenant } = ctx
  if (tenant === null || state.registry.find(kind, id)) return fd
  // openVisible just discovered the tenant afresh: these are that pass's answers (or a new pass when nothing is cached).
  const ref = refOf(kind, id)
  if (state.owners().of(ref)?.origin !== 'cgroup') return fd
  // 'cgroup' outranks 'held': a link the tenant's task holds is its own to act on, wherever it is attached.
  const found = state.discovery.get(tenant, { pid: ctx.peer.pid, pidfd: ctx.peer.pidfd })
  if (found.held.has(ref) || found.pinned.has(ref)) return fd
  fd.close()
  throw brokerError('EPERM', `${kind} ${id} was attached to your cgroup by someone else: you may see it, not hold, pin or detach it`, { rule: 'origin' })
}

/** The view of one object the tenant may see (the admin sees all), with the fd it was read through; `act`: one it may also hold (openActionable). */
function showOne(ctx: HandlerContext, kind: Kind, id: number, act = false): { object: ObjectView; fd: Fd } {
  const fd = act ? openActionable(ctx, kind, id) : openVisible(ctx, kind, id)
  try {
    const owners = ctx.state.owners()
    const reader = ctx.tenant?.name
    const own: Ownership = owners.of(refOf(kind, id)) ?? ownershipFallback(ctx, kind, id)
    const isVisible = reader === undefined ? () => true : (k: Kind, n: number) => visible(owners, reader, k, n)
    return { object: objectView(ctx.state, kind, id, fd, own, isVisible), fd }
  } catch (e) {
    fd.close()
    throw e
  }
}

// openVisible found it (a record, or a fresh discovery the cached table has not caught up with).
function ownershipFallback(ctx: HandlerContext, kind: Kind, id: number): Ownership {
  const record = ctx.state.registry.find(kind, id)
  if (record) return { owner: record.tenant, origin: record.origin, pins: [...record.pins] }
  const fresh = ctx.tenant ? ctx.state.owners(ctx.tenant).of(refOf(kind, id)) : undefined
  return fresh ?? { owner: ctx.tenant?.name ?? '-', origin: 'held', pins: [] }
}

const show: Handler<RequestBody<'show'>> = (ctx, req) => {
  const { object, fd } = showOne(ctx, req.kind, req.id)
  fd.close()
  return { reply: { object } }
}

const getFd: Handler<RequestBody<'get_fd'>> = (ctx, req) => {
  const { object, fd } = showOne(ctx, req.kind, req.id, true)
  return { reply: { object }, fds: [asHeld(ctx, req.kind, req.id, fd)] }
}

/**
 * `fd` (full access, opened by id) narrowed for a map that is the tenant's
 * only because its tasks hold it (origin 'held'): read-only or write-only
 * when that is all their fds give (held-access.ts). Takes `fd` over.
 */
function asHeld(ctx: HandlerContext, kind: Kind, id: number, fd: Fd): Fd {
  let access: number
  try {
    access = tenantAccess(ctx, kind, id)
  } catch (e) {
    fd.close()
    throw e
  }
  if (access === (READ | WRITE)) return fd
  fd.close()
  // Let go of since discovery looked: no longer in the view.
  if (access === 0) throw notInView(kind, id)
  try {
    return new Fd(native.mapGetFdById(id, access === READ ? kernel.flags.BPF_F_RDONLY : kernel.flags.BPF_F_WRONLY), 'map')
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') throw notInView(kind, id)
    throw e
  }
}

export const viewHandlers: Record<'hello' | 'list' | 'show' | 'get_fd', Handler> = { hello, list, show, get_fd: getFd }
