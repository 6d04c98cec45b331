// Requests that make or hand over objects: map_create, prog_load,
// collection_load, adopt, release. Everything made for a tenant is checked
// against its policy and quota first, then made (with the broker's
// privileges, or the tenant's token for `loadAs: 'token'`), pinned under the
// broker's pin root and recorded; the reply carries an fd and the broker
// keeps none (decision 4 of the plan).
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { CollectionSpec } from '../../collection/index.js'
import { BpfMap } from '../../map/map.js'
import { BpfProgram } from '../../prog/program.js'
import { ProgramSpec } from '../../prog/spec.js'
import { Fd, native, type TokenLike } from '../../sys/index.js'
import { brokerError } from '../errors.js'
import { withMapFds, type Kind, type ObjectView, type RequestBody } from '../protocol.js'
import type { ResolvedTenant } from '../config.js'
import { visible, type Owners } from '../scope.js'
import { mapBytes, type Usage } from '../quotas.js'
import { requireTenant, type Handler, type HandlerContext, type HandlerResult, type ReceivedFd } from '../state.js'
import { infoOf, notInView, objectView } from './view-object.js'
import { letGo, lingers, mapShape, reserveQuota } from './quota-book.js'
import { accessOfFdinfo, READ, WRITE } from './held-access.js'

// Request bodies as validate.ts hands them over (checked there: types, key sets, fd counts).
type MapCreateBody = RequestBody<'map_create'>
type ProgLoadBody = RequestBody<'prog_load'>
type CollectionLoadBody = RequestBody<'collection_load'>
interface ObjectRef {
  kind: Kind
  id: number
}

/** The token the request says it carries (always the last fd), or undefined. */
function tokenOf(ctx: HandlerContext, tenant: ResolvedTenant, asked: boolean | undefined): TokenLike | null {
  if (!asked) {
    if (tenant.loadAs === 'token') throw brokerError('EINVAL', `tenant '${tenant.name}' loads with its own token: send it as the last fd (token: true)`)
    return null
  }
  const last = ctx.fds[ctx.fds.length - 1]
  if (!last || last.kind !== 'token') throw brokerError('EINVAL', `fds[${ctx.fds.length - 1}] is ${describeKind(last)}, not a BPF token`)
  return { fd: last.fd.fd }
}

function describeKind(r: ReceivedFd | undefined): string {
  if (!r || r.kind === undefined) return 'not a BPF object'
  return r.kind === 'token' ? 'a BPF token' : `a ${r.kind}`
}

/** fds[i] must be an object of `kind` the tenant may see (a foreign fd it was handed is not laundered through the broker). */
function visibleFd(ctx: HandlerContext, tenant: ResolvedTenant, i: number, kind: Kind): ReceivedFd {
  const r = ctx.fds[i]
  if (!r || r.kind !== kind || r.id === undefined) throw brokerError('EINVAL', `fds[${i}] is ${describeKind(r)}, not a ${kind}`)
  if (!isVisibleTo(ctx, tenant, r.kind, r.id)) throw notInView(kind, r.id)
  return r
}

// One uncached discovery of the tenant per request at most, and only when an
// fd is not in the registry: whose a held or pinned object is must be current.
const freshOwners = new WeakMap<HandlerContext, Owners>()

function isVisibleTo(ctx: HandlerContext, tenant: ResolvedTenant, kind: Kind, id: number): boolean {
  const record = ctx.state.registry.find(kind, id)
  if (record) return record.tenant === tenant.name
  let owners = freshOwners.get(ctx)
  if (!owners) freshOwners.set(ctx, (owners = ctx.state.owners(tenant)))
  return visible(owners, tenant.name, kind, id)
}

/** The policy's refusal of a command for this tenant, as a PolicyError (EPERM + rule on the wire). */
function explainOrThrow(tenant: ResolvedTenant, request: Parameters<ResolvedTenant['policy']['explain']>[0]): void {
  const refusal = tenant.policy.explain(request, 'policy')
  if (refusal) throw refusal
}

/** Registers an object just made for `tenant` and builds its view; the caller still holds `fd`. */
function register(ctx: HandlerContext, tenant: ResolvedTenant, kind: Kind, fd: number, origin: 'made' | 'adopted', name: string): ObjectView {
  const { state } = ctx
  const record = state.registry.add(tenant.name, kind, fd, origin, name)
  state.discovery.invalidate(tenant.name)
  const owners = state.owners()
  return objectView(state, kind, record.id, fd, { owner: tenant.name, origin, pins: [...record.pins] }, (k, id) => visible(owners, tenant.name, k, id))
}

function parseMapExtra(v: number | string | undefined): bigint | number | undefined {
  return typeof v === 'string' ? BigInt(v) : v
}

const mapCreate: Handler<MapCreateBody> = (ctx, req) => {
  const tenant = requireTenant(ctx)
  const { spec } = req
  const token = tokenOf(ctx, tenant, req.token)
  explainOrThrow(tenant, { cmd: 'map_create', mapType: spec.type as never })
  using _quota = reserveQuota(ctx.state, tenant, { maps: 1, bytes: mapBytes(spec) })
  let inner: BpfMap | undefined
  if (spec.innerMap !== undefined) inner = BpfMap.fromFd(visibleFd(ctx, tenant, spec.innerMap, 'map').fd.dup())
  let map: { fd: number; close(): void }
  try {
    map = BpfMap.create({
      type: spec.type as never, keySize: spec.keySize, valueSize: spec.valueSize, maxEntries: spec.maxEntries,
      ...(spec.flags === undefined ? {} : { flags: spec.flags as never }),
      ...(spec.name === undefined ? {} : { name: spec.name }),
      ...(spec.mapExtra === undefined ? {} : { mapExtra: parseMapExtra(spec.mapExtra) }),
      ...(spec.numaNode === undefined ? {} : { numaNode: spec.numaNode }),
      ...(inner === undefined ? {} : { innerMap: inner }),
      token,
    })
  } finally {
    inner?.close()
  }
  return replyWithObject(ctx, tenant, 'map', map, spec.name ?? '')
}

/** Registers, replies with the view and a dup of the object's fd, and closes the broker's own. */
function replyWithObject(ctx: HandlerContext, tenant: ResolvedTenant, kind: Kind, obj: { fd: number; close(): void }, name: string, extra: Record<string, unknown> = {}): HandlerResult {
  try {
    const object = register(ctx, tenant, kind, obj.fd, 'made', name)
    return { reply: { object, ...extra }, fds: [dupOf(obj.fd, kind)] }
  } finally {
    obj.close()
  }
}

function dupOf(fd: number, kind: Kind): Fd {
  // An Fd of our own for the reply: the session closes it once sent.
  return new Fd(native.dupFd(fd), kind)
}

const progLoad: Handler<ProgLoadBody> = async (ctx, req) => {
  const tenant = requireTenant(ctx)
  const { spec } = req
  const token = tokenOf(ctx, tenant, req.token)
  const maps: number[] = []
  for (let i = 0; i < req.maps; i++) {
    const r = visibleFd(ctx, tenant, i, 'map')
    // A program reads and writes its maps whatever the fd it was loaded with allowed (only BPF_F_RDONLY_PROG, a map flag, stops it).
    const access = ownFdAccess(r.fd.fd)
    if (access !== (READ | WRITE)) throw brokerError('EPERM', `fds[${i}] is a ${accessWords(access)} fd of map ${r.id}: a program may use only maps you can read and write`, { rule: 'prog_load' })
    maps.push(r.fd.fd)
  }
  const bytes = withMapFds(Buffer.from(spec.insns, 'base64'), maps)
  explainOrThrow(tenant, { cmd: 'prog_load', progType: spec.type as never, ...(spec.expectedAttachType === undefined ? {} : { attachType: spec.expectedAttachType as never }) })
  const programSpec = ProgramSpec.from({
    type: spec.type as never, bytes, license: spec.license,
    ...(spec.name === undefined ? {} : { name: spec.name }),
    ...(spec.expectedAttachType === undefined ? {} : { expectedAttachType: spec.expectedAttachType as never }),
    ...(spec.attachBtfId === undefined ? {} : { attachBtfId: spec.attachBtfId }),
    ...(spec.flags === undefined ? {} : { flags: spec.flags as never }),
    ...(spec.logLevel === undefined ? {} : { logLevel: spec.logLevel }),
    token,
  })
  // The capability checker: every helper, kfunc and map use the tenant's contexts grant.
  tenant.policy.assert(programSpec)
  // Reserved across the verifier's await: another connection of the tenant sees this load coming.
  using _quota = reserveQuota(ctx.state, tenant, { progs: 1 })
  const prog = await BpfProgram.load(programSpec)
  return replyWithObject(ctx, tenant, 'prog', prog, spec.name ?? '', spec.logLevel ? { log: prog.log } : {})
}

/** A variable's wire value: a number or boolean, a decimal string for big integers, else base64 bytes. */
function setVariable(v: { set(value: unknown): void; size: number }, name: string, value: number | string | boolean): void {
  const attempts: unknown[] = typeof value === 'boolean' ? [value, value ? 1 : 0] : typeof value === 'number'
    ? [value, Number.isInteger(value) ? BigInt(value) : undefined]
    : /^-?\d+$/.test(value) ? [BigInt(value), Number(value)] : [Buffer.from(value, 'base64')]
  let last: unknown
  for (const a of attempts) {
    if (a === undefined) continue
    try {
      v.set(a)
      return
    } catch (e) {
      last = e
    }
  }
  throw brokerError('EINVAL', `variables.${name}: ${(last as Error)?.message ?? 'cannot be set'}`)
}

const collectionLoad: Handler<CollectionLoadBody> = async (ctx, req) => {
  const tenant = requireTenant(ctx)
  const token = tokenOf(ctx, tenant, req.token)
  const spec = CollectionSpec.fromBuffer(Buffer.from(req.elf, 'base64'), req.name === undefined ? {} : { name: req.name })
  for (const [name, value] of Object.entries(req.variables ?? {})) {
    const v = (spec.variables as Record<string, { set(value: unknown): void; size: number }>)[name]
    if (!Object.hasOwn(spec.variables, name) || !v) throw brokerError('EINVAL', `variables.${name}: the object has no such variable`)
    setVariable(v, name, value)
  }
  const programSpecs = spec.programs as Record<string, ProgramSpec>
  const selected = req.programs ?? Object.keys(programSpecs).filter((n) => programSpecs[n].autoload !== false)
  for (const name of selected) {
    const p = programSpecs[name]
    if (!Object.hasOwn(programSpecs, name) || !p) throw brokerError('EINVAL', `programs: the object has no program '${name}'`)
    explainOrThrow(tenant, { cmd: 'prog_load', progType: p.type as never, ...(p.expectedAttachType === undefined ? {} : { attachType: p.expectedAttachType as never }) })
  }
  const mapNames = Object.keys(spec.maps)
  for (const name of mapNames) explainOrThrow(tenant, { cmd: 'map_create', mapType: (spec.maps as Record<string, { type: string }>)[name].type as never })
  // Every map the load makes counts, with its bytes, before the kernel allocates any of it.
  const mapSpecs = spec.maps as Record<string, { typeId: number; keySize: number; valueSize: number; maxEntries: number }>
  let bytes = 0
  for (const name of mapNames) bytes += mapBytes({ ...mapSpecs[name], type: mapSpecs[name].typeId })
  using quota = reserveQuota(ctx.state, tenant, { maps: mapNames.length, bytes, progs: selected.length })
  // The policy also runs the capability checker on every program before anything is made.
  const coll = await spec.load({ token, programs: selected, policy: tenant.policy })
  const fds: Fd[] = []
  const maps: Record<string, ObjectView> = {}
  const programs: Record<string, ObjectView> = {}
  const registered: ObjectView[] = []
  const add = (kind: Kind, obj: { fd: number }, name: string): ObjectView => {
    const view = register(ctx, tenant, kind, obj.fd, 'made', name.slice(0, 15))
    registered.push(view)
    fds.push(dupOf(obj.fd, kind))
    return view
  }
  try {
    // What was made, as the kernel has it, is what counts: more than was reserved must fit too.
    const made = Object.values(coll.maps) as BpfMap[]
    const madeBytes = made.reduce((sum, m) => sum + mapBytes(mapShape(m.fd)), 0)
    const more = { maps: Math.max(0, made.length - mapNames.length), bytes: Math.max(0, madeBytes - bytes) }
    if (more.maps > 0 || more.bytes > 0) reserveQuota(ctx.state, tenant, more).release()
    for (const name of Object.keys(coll.maps).sort()) maps[name] = add('map', coll.maps[name] as BpfMap, name)
    for (const name of Object.keys(coll.programs).sort()) programs[name] = add('prog', coll.programs[name] as BpfProgram, name)
  } catch (e) {
    // All or nothing: what was recorded before the failure goes again.
    for (const v of registered) ctx.state.registry.remove(v.kind, v.id)
    for (const f of fds) f.close()
    throw e
  } finally {
    coll.close()
    quota.release()
  }
  return { reply: { maps, programs }, fds }
}

const adopt: Handler<Record<string, never>> = (ctx) => {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  const refs: ObjectRef[] = ctx.fds.map((r, i) => {
    if (r.kind === undefined || r.kind === 'token' || r.id === undefined) throw brokerError('EINVAL', `fds[${i}] is ${describeKind(r)}, not a map, program, link or BTF`)
    // The broker's pin and get_fd give a recorded map back read-write: a read-only (or write-only) fd must not become one.
    const access = r.kind === 'map' ? ownFdAccess(r.fd.fd) : READ | WRITE
    if (access !== (READ | WRITE)) {
      throw brokerError('EPERM', `fds[${i}] is a ${accessWords(access)} fd of map ${r.id}: adopt takes maps you can read and write`, { rule: 'adopt' })
    }
    return { kind: r.kind, id: r.id }
  })
  // Owned by another tenant (or by several: shared) reads as not existing.
  const owners = state.owners(tenant)
  for (const { kind, id } of refs) {
    const record = state.registry.find(kind, id)
    const own = owners.of(`${kind}:${id}`)
    if ((record && record.tenant !== tenant.name) || (own && own.owner !== tenant.name)) throw notInView(kind, id)
  }
  const add: Partial<Usage> = {}
  for (const { kind, id } of refs) {
    // Already counted: recorded, or made by the broker for this tenant and released (it counts while it lives).
    if (state.registry.find(kind, id) || lingers(state, tenant.name, kind, id)) continue
    if (kind === 'map') add.maps = (add.maps ?? 0) + 1
    if (kind === 'prog') add.progs = (add.progs ?? 0) + 1
    if (kind === 'link') add.links = (add.links ?? 0) + 1
  }
  using _quota = reserveQuota(state, tenant, add)
  const objects: ObjectView[] = []
  ctx.fds.forEach((r, i) => {
    const { kind, id } = refs[i]
    const existing = state.registry.find(kind, id)
    if (existing) {
      const owners = state.owners()
      objects.push(objectView(state, kind, id, r.fd, { owner: tenant.name, origin: existing.origin, pins: [...existing.pins] }, (k, n) => visible(owners, tenant.name, k, n)))
      return
    }
    const info = infoOf(kind, r.fd.fd)
    objects.push(register(ctx, tenant, kind, r.fd.fd, 'adopted', typeof info.name === 'string' ? info.name : ''))
  })
  return { reply: { objects } }
}

/** READ | WRITE as a map fd of this process was opened (BPF_F_RDONLY, BPF_F_WRONLY), from its fdinfo. */
function ownFdAccess(fd: number): number {
  const access = accessOfFdinfo(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
  if (access === 0) throw brokerError('EIO', `fdinfo of fd ${fd} has no valid flags line`)
  return access
}

const accessWords = (access: number): string => (access === READ ? 'read-only' : 'write-only')

const release: Handler<ObjectRef> = (ctx, req) => {
  const tenant = requireTenant(ctx)
  const { state } = ctx
  const record = state.registry.find(req.kind, req.id)
  if (!record || record.tenant !== tenant.name) throw notInView(req.kind, req.id)
  // The tenant's own pins of it go with it; then the broker's pin and the record.
  for (const name of record.pins) rmSync(join(state.config.tenantPinRoot, tenant.name, name), { force: true })
  // What still lives (the tenant's fds, a program using a map) keeps counting against its quota.
  letGo(state, record)
  state.discovery.invalidate(tenant.name)
  return { reply: {} }
}

export const objectHandlers: Record<'map_create' | 'prog_load' | 'collection_load' | 'adopt' | 'release', Handler> = {
  map_create: mapCreate,
  prog_load: progLoad,
  collection_load: collectionLoad,
  adopt,
  release,
}
