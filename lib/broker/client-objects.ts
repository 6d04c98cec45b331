// The typed side of the broker client: what a tenant asks for as BpfMap,
// BpfProgram, BpfLink or Btf options becomes a request (checked here first
// through MapSpec, ProgramSpec and the tenant's policy, map references in
// the instructions rewritten to fd indexes), and the fds that come back
// become those objects again, each checked to be the kind expected. The
// connection (one request at a time, its failures) is client.ts, which
// hands itself in as a BrokerConnection.
import { readFileSync } from 'node:fs'
import { Fd, bpfObjectKind, enumName, kernel, type TokenLike } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { encode } from '../asm/assemble.js'
import { Btf } from '../btf/btf.js'
import { BpfMap } from '../map/map.js'
import { MapSpec, type KeyOf, type MapCreateOptions, type ValueOf } from '../map/spec.js'
import { BpfProgram } from '../prog/program.js'
import { ProgramSpec, type ProgramLoadOptions } from '../prog/spec.js'
import { BpfLink } from '../link/link.js'
import { Policy, type PolicyLike } from '../policy/index.js'
import { attachMount, openBpffsContext } from '../delegation/mount.js'
import type { Delegation } from '../delegation/tenant.js'
import { brokerError } from './errors.js'
import {
  jsonLimits, kinds as allKinds, rewriteMapReferences, toWire,
  type AttachTarget, type Kind, type ObjectView, type OkReply, type ReplyBodies, type RequestBody, type RequestType, type WireMapSpec, type WireProgSpec,
} from './protocol.js'

/** The objects a tenant can hand over (adopt) or that come back by kind. */
export type BrokerObject = BpfMap<any, any> | BpfProgram | BpfLink | Btf
export type ObjectOfKind<K extends Kind> = K extends 'map' ? BpfMap : K extends 'prog' ? BpfProgram : K extends 'link' ? BpfLink : Btf

export interface LoadCollectionOptions {
  variables?: Record<string, number | bigint | boolean | Uint8Array>
  programs?: string[]
  name?: string
  token?: TokenLike | null
}

export interface LoadedCollection {
  maps: Record<string, BpfMap>
  programs: Record<string, BpfProgram>
}

/** What these requests need of the client: its queue (request) and the tenant's policy from hello. */
export interface BrokerConnection {
  request<T extends RequestType>(type: T, body?: RequestBody<T>, fds?: readonly (Fd | number)[]): Promise<{ reply: OkReply; fds: Fd[] }>
  request(type: string, body?: Record<string, unknown>, fds?: readonly (Fd | number)[]): Promise<{ reply: OkReply; fds: Fd[] }>
  readonly policy: Policy | undefined
}

export function closeAll(fds: readonly Fd[]): void {
  for (const f of fds) f.close()
}

/** The fds of a reply, exactly `n` of them, or EPROTO (all closed). */
export function expectFds(fds: Fd[], n: number, type: string): Fd[] {
  if (fds.length === n) return fds
  closeAll(fds)
  throw brokerError('EPROTO', `${type}: the broker sent ${fds.length} fd${fds.length === 1 ? '' : 's'}, expected ${n}`)
}

/** The work of BrokerClient.createMap (`map_create`), options checked by MapSpec.from. */
export async function createMap<const O extends MapCreateOptions>(broker: BrokerConnection, options: O): Promise<BpfMap<KeyOf<O>, ValueOf<O>>> {
  const spec = MapSpec.from(options)
  if (spec.btf !== undefined) throw new TypeError('createMap: btf does not travel to the broker; create the map without it')
  if (spec.innerMap instanceof MapSpec) throw new TypeError('createMap: through the broker, innerMap must be an existing map (a BpfMap), not a template')
  broker.policy?.check({ cmd: 'map_create', mapType: spec.type }, 'policy')
  const wire: WireMapSpec = { type: spec.type, keySize: spec.keySize, valueSize: spec.valueSize, maxEntries: spec.maxEntries }
  if (spec.flags !== 0) wire.flags = spec.flags
  if (spec.name !== undefined) wire.name = spec.name
  if (spec.mapExtra !== undefined) wire.mapExtra = Number.isSafeInteger(Number(spec.mapExtra)) ? Number(spec.mapExtra) : String(spec.mapExtra)
  if (spec.numaNode !== undefined) wire.numaNode = spec.numaNode
  const fds: number[] = []
  if (spec.innerMap !== undefined) {
    wire.innerMap = 0
    fds.push(spec.innerMap.fd)
  }
  const token = tokenFd('createMap', spec.token)
  if (token !== undefined) fds.push(token)
  const r = await broker.request('map_create', { spec: wire, ...(token !== undefined ? { token: true as const } : {}) }, fds)
  const [fd] = expectFds(r.fds, 1, 'map_create')
  return objectOf('map', fd!, { key: spec.key, value: spec.value }) as unknown as BpfMap<KeyOf<O>, ValueOf<O>>
}

/** The work of BrokerClient.loadProgram (`prog_load`), its map references sent as fds. */
export async function loadProgram(broker: BrokerConnection, options: ProgramLoadOptions): Promise<BpfProgram> {
  if (options === null || typeof options !== 'object') throw new TypeError(`loadProgram: options must be an object with type and insns or bytes, got ${describeValue(options)}`)
  for (const k of ['btf', 'funcInfo', 'lineInfo', 'fdArray', 'attachBtfObjFd', 'attachProgFd', 'kernVersion', 'logSize', 'externs'] as const) {
    if (options[k] !== undefined) throw new TypeError(`loadProgram: option '${k}' does not travel to the broker`)
  }
  const spec = ProgramSpec.from(options)
  const maps: number[] = []
  const insns = rewriteMapReferences(spec.bytes ?? encode(spec.insns!), (fd, slot) => {
    let index = maps.indexOf(fd)
    if (index < 0) {
      if (bpfObjectKind(fd) !== 'map') throw new TypeError(`loadProgram: instruction ${slot} references fd ${fd}, which is not a BPF map`)
      index = maps.push(fd) - 1
    }
    return index
  })
  // After the map references were checked: the checker reads the maps' types through their fds.
  spec.policy?.assertProgram(spec)
  const policy = broker.policy
  if (policy) {
    policy.check({ cmd: 'prog_load', progType: spec.type, attachType: spec.expectedAttachType }, 'policy')
    policy.assert(spec)
  }
  const wire: WireProgSpec = { type: spec.type, license: spec.license ?? '', insns: Buffer.from(insns).toString('base64') }
  if (spec.name !== undefined) wire.name = spec.name
  if (spec.expectedAttachType !== undefined) wire.expectedAttachType = spec.expectedAttachType
  if (spec.attachBtfId !== undefined) wire.attachBtfId = spec.attachBtfId
  if (spec.flags !== 0) wire.flags = spec.flags
  if (spec.logLevel !== undefined) wire.logLevel = spec.logLevel
  const token = tokenFd('loadProgram', spec.token)
  const fds = token === undefined ? maps : [...maps, token]
  const r = await broker.request('prog_load', { spec: wire, maps: maps.length, ...(token !== undefined ? { token: true as const } : {}) }, fds)
  const [fd] = expectFds(r.fds, 1, 'prog_load')
  const prog = objectOf('prog', fd!)
  // What BpfProgram.load would have kept: the log, and what the program was loaded as (for the attach families).
  const log = typeof r.reply.log === 'string' ? r.reply.log : ''
  const attachId = spec.expectedAttachTypeId
  const attach = attachId === undefined ? undefined : enumName(kernel.attachTypes, attachId)
  setFacts(prog, { log, expectedAttachType: attach, section: spec.section, attachTo: spec.attachTo })
  return prog
}

/** The work of BrokerClient.loadCollection (`collection_load`). */
export async function loadCollection(broker: BrokerConnection, pathOrBytes: string | Uint8Array, options: LoadCollectionOptions = {}): Promise<LoadedCollection> {
  checkOptions('loadCollection', options, ['variables', 'programs', 'name', 'token'], { types: { variables: 'object', programs: 'object', name: 'string' } })
  let elf: Uint8Array
  if (typeof pathOrBytes === 'string') elf = readFileSync(pathOrBytes)
  else if (pathOrBytes instanceof Uint8Array) elf = pathOrBytes
  else throw new TypeError(`loadCollection: give a path or the object's bytes, got ${describeValue(pathOrBytes)}`)
  if (elf.length === 0) throw new RangeError('loadCollection: the object file is empty')
  const body: Record<string, unknown> = { elf: Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength).toString('base64') }
  if (options.name !== undefined) body.name = options.name
  if (options.variables !== undefined) {
    for (const [k, v] of Object.entries(options.variables)) {
      if (!['number', 'bigint', 'boolean'].includes(typeof v) && !(v instanceof Uint8Array)) {
        throw new TypeError(`loadCollection: variables.${k} must be a number, bigint, boolean or Uint8Array, got ${describeValue(v)}`)
      }
    }
    body.variables = toWire(options.variables)
  }
  if (options.programs !== undefined) {
    if (!Array.isArray(options.programs) || !options.programs.every((p) => typeof p === 'string')) throw new TypeError('loadCollection: programs must be an array of program names')
    body.programs = [...options.programs]
  }
  const token = tokenFd('loadCollection', options.token)
  if (token !== undefined) body.token = true
  const r = await broker.request('collection_load', body, token === undefined ? [] : [token])
  const reply = r.reply as unknown as ReplyBodies['collection_load']
  const mapNames = Object.keys(reply.maps ?? {})
  const progNames = Object.keys(reply.programs ?? {})
  const fds = expectFds(r.fds, mapNames.length + progNames.length, 'collection_load')
  const maps: Record<string, BpfMap> = {}
  const programs: Record<string, BpfProgram> = {}
  const made: BrokerObject[] = []
  try {
    mapNames.forEach((name, i) => made.push(define(maps, name, objectOf('map', fds[i]!))))
    progNames.forEach((name, i) => made.push(define(programs, name, objectOf('prog', fds[mapNames.length + i]!))))
  } catch (e) {
    for (const o of made) o.close()
    closeAll(fds.slice(made.length + 1))
    throw e
  }
  return { maps, programs }
}

/** The work of BrokerClient.attach (`attach`), answered with the link. */
export async function attach(broker: BrokerConnection, prog: BpfProgram | number, attachType: string, target: AttachTarget, options: { flags?: number } = {}): Promise<BpfLink> {
  checkOptions('attach', options, ['flags'], { types: { flags: 'number' } })
  const progId = typeof prog === 'number' ? prog : prog instanceof BpfProgram ? prog.id : undefined
  if (progId === undefined) throw new TypeError(`attach: prog must be a BpfProgram or a program id, got ${describeValue(prog)}`)
  if (target === null || typeof target !== 'object') throw new TypeError(`attach: target must be { cgroup } or { ifname, netdev }, got ${describeValue(target)}`)
  const t = 'cgroup' in target ? { cgroup: target.cgroup } : { ifname: target.ifname, netdev: target.netdev }
  const r = await broker.request('attach', { progId, attachType, target: t, ...(options.flags === undefined ? {} : { flags: options.flags }) })
  const [fd] = expectFds(r.fds, 1, 'attach')
  return objectOf('link', fd!)
}

/** The work of BrokerClient.open (`get_fd`), as the typed object. */
export async function openObject<K extends Kind>(broker: BrokerConnection, kind: K, id: number): Promise<ObjectOfKind<K>> {
  if (!allKinds.includes(kind)) throw new TypeError(`open: kind must be one of ${allKinds.join(', ')}, got ${describeValue(kind)}`)
  const r = await broker.request('get_fd', { kind, id })
  const [fd] = expectFds(r.fds, 1, 'get_fd')
  return objectOf(kind, fd!) as ObjectOfKind<K>
}

/** The work of BrokerClient.adopt (`adopt`): the objects' fds handed over. */
export async function adopt(broker: BrokerConnection, objects: (BrokerObject | Fd)[]): Promise<ObjectView[]> {
  if (!Array.isArray(objects) || objects.length === 0 || objects.length > jsonLimits.maxAdopt) {
    throw new RangeError(`adopt: give 1 to ${jsonLimits.maxAdopt} objects, got ${Array.isArray(objects) ? objects.length : describeValue(objects)}`)
  }
  const fds = objects.map((o, i) => {
    if (o instanceof Fd) return o.fd
    if (o instanceof Btf) return o.fd.fd
    if (o instanceof BpfMap || o instanceof BpfProgram || o instanceof BpfLink) return o.fd
    throw new TypeError(`adopt: objects[${i}] must be a BpfMap, BpfProgram, BpfLink, Btf or Fd, got ${describeValue(o)}`)
  })
  const r = await broker.request('adopt', {}, fds)
  expectFds(r.fds, 0, 'adopt')
  return views(r.reply.objects, 'adopt')
}

/** The work of BrokerClient.requestDelegation (`delegate`): a bpffs context out, the configured mount back. */
export async function requestDelegation(broker: BrokerConnection, options: { policy?: PolicyLike; mountAt?: string } = {}): Promise<Delegation> {
  checkOptions('requestDelegation', options, ['policy', 'mountAt'], { types: { mountAt: 'string' } })
  const wanted = options.policy === undefined ? undefined : Policy.from(options.policy)
  const context = openBpffsContext()
  let r
  try {
    r = await broker.request('delegate', wanted ? { policy: wanted.toJSON() as unknown as Record<string, unknown> } : {}, [context])
  } finally {
    context.close()
  }
  const [mount] = expectFds(r.fds, 1, 'delegate')
  try {
    let policy: Policy
    try {
      policy = Policy.from(r.reply.policy as PolicyLike)
    } catch (e) {
      throw brokerError('EPROTO', `delegate: the broker granted an invalid policy: ${(e as Error).message}`)
    }
    if (options.mountAt !== undefined) attachMount(mount!, options.mountAt)
    return { mount: mount!, policy, ...(options.mountAt !== undefined ? { mountAt: options.mountAt } : {}) }
  } catch (e) {
    mount!.close()
    throw e
  }
}

// ---- helpers ----

function tokenFd(where: string, token: TokenLike | null | undefined): number | undefined {
  if (token === undefined || token === null) return undefined
  if (typeof token !== 'object' || !('fd' in token)) throw new TypeError(`${where}: token must be a BpfToken, got ${describeValue(token)}`)
  return token.fd
}

// A property whose name came from the broker: defined, so that '__proto__' stays a name.
function define<T>(out: Record<string, T>, name: string, value: T): T {
  Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true })
  return value
}

// BpfProgram.fromFd knows nothing of how the program was loaded; the client does.
function setFacts(prog: BpfProgram, facts: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(facts)) {
    if (v !== undefined) Object.defineProperty(prog, k, { value: v, enumerable: true, writable: false, configurable: true })
  }
}

/** The typed object for an fd the broker sent as `kind`; the fd is closed when it is something else (EPROTO). */
function objectOf(kind: 'map', fd: Fd, options?: { key?: unknown; value?: unknown }): BpfMap
function objectOf(kind: 'prog', fd: Fd): BpfProgram
function objectOf(kind: 'link', fd: Fd): BpfLink
function objectOf(kind: Kind, fd: Fd): BrokerObject
function objectOf(kind: Kind, fd: Fd, options: { key?: unknown; value?: unknown } = {}): BrokerObject {
  const actual = bpfObjectKind(fd.fd)
  if (actual !== kind) {
    fd.close()
    throw brokerError('EPROTO', `the broker sent ${actual ? `a ${actual}` : 'an fd that is not a BPF object'} where a ${kind} was expected`)
  }
  switch (kind) {
    case 'map': {
      const o: Record<string, unknown> = {}
      if (options.key !== undefined) o.key = options.key
      if (options.value !== undefined) o.value = options.value
      return BpfMap.fromFd(fd, o)
    }
    case 'prog':
      return BpfProgram.fromFd(fd)
    case 'link':
      return BpfLink.fromLinkFd(fd)
    case 'btf':
      return Btf.fromFd(fd)
  }
}

export function view(v: unknown, type: string): ObjectView {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw brokerError('EPROTO', `${type}: the broker answered without an object`)
  const o = v as ObjectView
  if (!allKinds.includes(o.kind) || typeof o.id !== 'number') throw brokerError('EPROTO', `${type}: the broker answered with an object of no known kind or id`)
  return o
}

export function views(v: unknown, type: string): ObjectView[] {
  if (!Array.isArray(v)) throw brokerError('EPROTO', `${type}: the broker answered without an objects list`)
  return v.map((x) => view(x, type))
}
