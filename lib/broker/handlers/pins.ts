// pin and unpin: a tenant's objects pinned under its own prefix only,
// `${tenantPinRoot}/${tenant}/${name}`, a directory the broker makes (0755,
// root's) and no tenant can write. Names are one path component of letters,
// digits, '_' and '-' (no '/', no '..', no dots at all), so a name can never
// leave the tenant's directory; the object must be visible to the tenant.
import { lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { native } from '../../sys/index.js'
import { BPF_FS_MAGIC, onFilesystem } from '../../sys/fs-magic.js'
import { brokerError } from '../errors.js'
import type { PinRequest, UnpinRequest } from '../protocol.js'
import type { ResolvedTenant } from '../config.js'
import { checkQuota } from '../quotas.js'
import { requireTenant, type BrokerState, type Handler, type HandlerContext, type HandlerResult } from '../state.js'
import { usageFor } from './quota-book.js'
import { openActionable } from './view.js'
import { READ, tenantAccess, WRITE } from './held-access.js'

/** A tenant pin name: what validate.ts lets through, checked again here where it becomes a path. */
export const pinNamePattern = /^[A-Za-z0-9_-]{1,64}$/

function checkName(name: unknown): string {
  if (typeof name !== 'string' || !pinNamePattern.test(name)) {
    throw brokerError('EINVAL', `pin name must be 1 to 64 letters, digits, '_' or '-' (no '/', no dots), got ${JSON.stringify(name)}`)
  }
  return name
}

/** The tenant's pin directory on the host. */
export function tenantPinDir(state: BrokerState, tenant: string): string {
  return join(state.config.tenantPinRoot, tenant)
}

/** Makes the tenant's pin directory if missing; refuses one that is not a plain directory in a bpffs. */
function ensurePinDir(state: BrokerState, tenant: string): string {
  const dir = tenantPinDir(state, tenant)
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  const st = lstatSync(dir)
  if (!st.isDirectory() || !onFilesystem(dir, BPF_FS_MAGIC)) {
    throw brokerError('EIO', `the tenant pin directory ${dir} is not a directory in a bpffs (check tenantPinRoot)`)
  }
  return dir
}

async function pin(ctx: HandlerContext, req: PinRequest): Promise<HandlerResult> {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  const name = checkName(req.name)
  // A pin keeps an object alive and hands it to whoever can read the directory: the tenant's objects only, not a link someone else attached to its cgroup.
  const fd = openActionable(ctx, req.kind, req.id)
  try {
    // A pin is opened read-write later (get_fd of what is pinned): a map the tenant's tasks hold read-only stays unpinned.
    if (tenantAccess(ctx, req.kind, req.id) !== (READ | WRITE)) {
      throw brokerError('EPERM', `you hold map ${req.id} only read-only or write-only: a pin of it would be opened read-write`, { rule: 'pin' })
    }
    const dir = ensurePinDir(state, tenant.name)
    // Pins of objects the broker did not make are in no record: the directory is the count.
    const usage = usageFor(state, tenant.name)
    usage.pins = Math.max(usage.pins, readdirSync(dir).length)
    checkQuota(tenant, usage, { pins: 1 })
    const path = join(dir, name)
    // The kernel's own EEXIST for a name already taken (by any of the tenant's objects).
    native.objPin(fd.fd, path)
    const record = state.registry.find(req.kind, req.id)
    if (record && record.tenant === tenant.name) {
      try {
        state.registry.setPins(record, [...record.pins.filter((p) => p !== name), name])
      } catch (e) {
        unlinkQuiet(path)
        throw e
      }
    }
    state.discovery.invalidate(tenant.name)
    return { reply: { path } }
  } finally {
    fd.close()
  }
}

async function unpin(ctx: HandlerContext, req: UnpinRequest): Promise<HandlerResult> {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  const name = checkName(req.name)
  const path = join(tenantPinDir(state, tenant.name), name)
  let isFile = false
  try {
    isFile = lstatSync(path).isFile()
  } catch {
    // missing: the same answer as not a pin
  }
  if (!isFile) throw brokerError('ENOENT', `no pin ${name} in your view`)
  unlinkSync(path)
  dropPinName(state, tenant, name)
  state.discovery.invalidate(tenant.name)
  return { reply: {} }
}

/** Forgets `name` in the records of the tenant that list it. */
function dropPinName(state: BrokerState, tenant: ResolvedTenant, name: string): void {
  for (const r of state.registry.forTenant(tenant.name)) {
    if (r.pins.includes(name)) state.registry.setPins(r, r.pins.filter((p) => p !== name))
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}

export const pinHandlers: Record<'pin' | 'unpin', Handler> = { pin, unpin }
