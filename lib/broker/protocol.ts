// The wire protocol `bpfkit-broker/1` between the broker and its tenants.
// Frames are FdSocket frames (u32 LE length, then the payload) whose payload
// is UTF-8 JSON; fds ride on the frame's header (SCM_RIGHTS). Every request
// is { protocol, type, seq, ...body }; every reply { protocol, seq, type:
// 'ok', ...body } or { protocol, seq, type: 'error', code, message, rule?,
// violations? }. One request at a time per connection; the client picks seq
// (a u32) and the broker echoes it. Bigints travel as decimal strings,
// instruction and ELF bytes as base64. validate.ts checks what arrives.
import type { PolicyJSON } from '../policy/index.js'
import type { ErrorBody, WireViolation } from './errors.js'

export const protocol = 'bpfkit-broker/1'

export type Kind = 'map' | 'prog' | 'link' | 'btf'
export type Origin = 'made' | 'adopted' | 'held' | 'pinned' | 'cgroup'
export const kinds: readonly Kind[] = ['map', 'prog', 'link', 'btf']
export const origins: readonly Origin[] = ['made', 'adopted', 'held', 'pinned', 'cgroup']

/** One object as a tenant sees it. `info` is the lib/sys/info.ts object, redacted and wire-safe (toWire). */
export interface ObjectView {
  kind: Kind
  id: number
  origin: Origin
  name: string
  pins: string[]
  info: Record<string, unknown>
  /** admin list_all only: the owning tenant, '-' (none) or 'shared'. */
  owner?: string
}

/**
 * Default limits (config.limits overrides them). Worst-case buffered bytes
 * are maxConnections x maxFrameBytes (256 MiB with these).
 */
export const defaultLimits = {
  maxFrameBytes: 1 << 20,
  maxFds: 64,
  idleTimeoutMs: 60_000,
  maxConnections: 256,
  maxConnectionsPerTenant: 8,
  discoveryTtlMs: 1000,
}

/** Limits of the JSON itself, checked by validate.ts. */
export const jsonLimits = {
  /** Nesting of arrays and objects. */
  maxDepth: 32,
  /** Every string but the base64 of instructions and ELF bytes (bounded by the frame). */
  maxString: 4096,
  /** Fds that come with an adopt request. */
  maxAdopt: 16,
}

// ---- requests ----

interface Envelope<T extends string> {
  protocol: typeof protocol
  type: T
  seq: number
}

/** map_create's spec: MapSpec fields that can travel. `innerMap: 0` means the first fd is the inner map template. */
export interface WireMapSpec {
  type: string | number
  keySize: number
  valueSize: number
  maxEntries: number
  flags?: number
  name?: string
  /** A u64: a number, or a decimal string when over 2^53. */
  mapExtra?: number | string
  numaNode?: number
  innerMap?: 0
}

/**
 * prog_load's spec. `insns` is the base64 of the 8-byte instructions; each
 * ld_imm64 with src_reg 1 (BPF_PSEUDO_MAP_FD) or 2 (BPF_PSEUDO_MAP_VALUE)
 * has imm = an index into the frame's map fds (0..maps-1): see
 * mapReferences / withMapFds.
 */
export interface WireProgSpec {
  type: string | number
  name?: string
  license: string
  insns: string
  expectedAttachType?: string | number
  attachBtfId?: number
  flags?: number
  logLevel?: number
}

export type AttachTarget = { cgroup: string } | { ifname: string; netdev: 'xdp' | 'tcx' | 'netkit' }

export interface HelloRequest extends Envelope<'hello'> { client?: string }
/** fds: the inner map (when spec.innerMap is 0), then the token (when token). */
export interface MapCreateRequest extends Envelope<'map_create'> { spec: WireMapSpec; token?: true }
/** fds: `maps` map fds, then the token (when token). */
export interface ProgLoadRequest extends Envelope<'prog_load'> { spec: WireProgSpec; maps: number; token?: true }
/** variables: a number or boolean as is; a string is a decimal integer for integer variables and base64 bytes otherwise. fds: the token (when token). */
export interface CollectionLoadRequest extends Envelope<'collection_load'> {
  elf: string
  name?: string
  variables?: Record<string, number | string | boolean>
  programs?: string[]
  token?: true
}
export interface AttachRequest extends Envelope<'attach'> { progId: number; attachType: string | number; target: AttachTarget; flags?: number }
export interface DetachRequest extends Envelope<'detach'> { linkId: number }
export interface ListRequest extends Envelope<'list'> { kinds?: Kind[]; origins?: Origin[] }
export interface ShowRequest extends Envelope<'show'> { kind: Kind; id: number }
export interface GetFdRequest extends Envelope<'get_fd'> { kind: Kind; id: number }
export interface PinRequest extends Envelope<'pin'> { kind: Kind; id: number; name: string }
export interface UnpinRequest extends Envelope<'unpin'> { name: string }
/** fds: 1..16 BPF objects. */
export interface AdoptRequest extends Envelope<'adopt'> {}
export interface ReleaseRequest extends Envelope<'release'> { kind: Kind; id: number }
/** fds: one bpf filesystem context (fsopen('bpf')). policy: a PolicyDocument (checked by Policy.from on the broker). */
export interface DelegateRequest extends Envelope<'delegate'> { policy?: Record<string, unknown> }
export interface ListAllRequest extends Envelope<'list_all'> { kinds?: Kind[] }
export interface TenantsRequest extends Envelope<'tenants'> {}
export interface StatsRequest extends Envelope<'stats'> {}
/** Turns BPF_ENABLE_STATS on for as long as this connection lives (handlers/run-stats.ts). */
export interface EnableStatsRequest extends Envelope<'enable_stats'> {}
/** A program's translated instructions, as the kernel would give an unprivileged reader (handlers/xlated.ts). */
export interface ProgXlatedRequest extends Envelope<'prog_xlated'> { id: number }

export type Request = HelloRequest | MapCreateRequest | ProgLoadRequest | CollectionLoadRequest | AttachRequest | DetachRequest | ListRequest
  | ShowRequest | GetFdRequest | PinRequest | UnpinRequest | AdoptRequest | ReleaseRequest | DelegateRequest | ListAllRequest | TenantsRequest | StatsRequest | EnableStatsRequest | ProgXlatedRequest
export type RequestType = Request['type']
/** A request's body: what the caller gives besides protocol, type and seq. */
export type RequestBody<T extends RequestType> = Omit<Extract<Request, { type: T }>, 'protocol' | 'type' | 'seq'>

export const requestTypes: readonly RequestType[] = [
  'hello', 'map_create', 'prog_load', 'collection_load', 'attach', 'detach', 'list', 'show', 'get_fd',
  'pin', 'unpin', 'adopt', 'release', 'delegate', 'list_all', 'tenants', 'stats', 'enable_stats', 'prog_xlated',
]

/** Requests only the admin may make (a tenant gets EACCES). */
export const adminRequests: readonly RequestType[] = ['list_all', 'tenants', 'stats']

// ---- replies ----

/** The ok bodies, by request type (fds out in the comments). */
export interface ReplyBodies {
  hello: { tenant: string | null; policy: PolicyJSON | null; quota: Record<string, number | null>; usage: Record<string, number>; broker: string; admin: boolean }
  /** 1 map fd. */
  map_create: { object: ObjectView }
  /** 1 prog fd. */
  prog_load: { object: ObjectView; log?: string }
  /** fds: the maps, then the programs, each in the key order of its record. */
  collection_load: { maps: Record<string, ObjectView>; programs: Record<string, ObjectView> }
  /** 1 link fd. */
  attach: { object: ObjectView }
  detach: Record<string, never>
  list: { objects: ObjectView[] }
  show: { object: ObjectView }
  /** 1 fd of the object's kind. */
  get_fd: { object: ObjectView }
  /** The host path of the tenant pin. */
  pin: { path: string }
  unpin: Record<string, never>
  adopt: { objects: ObjectView[] }
  release: Record<string, never>
  /** 1 detached bpffs mount fd. */
  delegate: { policy: PolicyJSON }
  list_all: { objects: ObjectView[] }
  tenants: { tenants: unknown[] }
  stats: { stats: Record<string, number> }
  /** already: this connection had turned them on before. */
  enable_stats: { already: boolean }
  /** insns: base64 of the 8-byte instructions. */
  prog_xlated: { insns: string }
}

export interface OkReply { protocol: typeof protocol; seq: number; type: 'ok'; [key: string]: unknown }
export interface ErrorReply extends ErrorBody { protocol: typeof protocol; seq: number; type: 'error'; violations?: WireViolation[] }
export type Reply = OkReply | ErrorReply

/** A reply frame's message, ready for encodeFrame. */
export function okReply(seq: number, body: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...(toWire(body) as Record<string, unknown>), protocol, seq, type: 'ok' }
}

export function errorReply(seq: number, error: ErrorBody): Record<string, unknown> {
  return { ...(toWire(error) as Record<string, unknown>), protocol, seq, type: 'error' }
}

// ---- encoding ----

/**
 * A value as JSON can carry it: bigint → decimal string, Uint8Array →
 * base64 string, arrays and plain objects recursively (undefined members
 * left out); other values as JSON.stringify would take them. Objects with a
 * toJSON (a Policy) give that.
 */
export function toWire(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : toWire(x)))
  if (v !== null && typeof v === 'object') {
    const j = (v as { toJSON?: unknown }).toJSON
    if (typeof j === 'function') return toWire(j.call(v))
    const out: Record<string, unknown> = {}
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue
      // defineProperty: a key '__proto__' stays a plain key.
      Object.defineProperty(out, k, { value: toWire(x), enumerable: true, writable: true, configurable: true })
    }
    return out
  }
  return v
}

/** A frame's payload: the message as UTF-8 JSON (toWire first). */
export function encodeFrame(msg: object): Buffer {
  return Buffer.from(JSON.stringify(toWire(msg)), 'utf8')
}

// ---- instructions: map references ----

const LD_IMM64 = 0x18
/** src_reg values of ld_imm64 that name a map by fd. */
const PSEUDO_MAP_FD = 1
const PSEUDO_MAP_VALUE = 2
/** ... and by index into fd_array (5.12+): not accepted through the broker. */
const PSEUDO_MAP_IDX = 5
const PSEUDO_MAP_IDX_VALUE = 6

/** One ld_imm64 naming a map: its slot and its imm (an fd number, or an index on the wire). */
export interface MapReferenceSlot {
  slot: number
  src: 1 | 2
  imm: number
}

/**
 * Every ld_imm64 of `bytes` that names a map by fd (src_reg 1 or 2).
 * Errors: RangeError for bytes that are not whole instructions or end in
 * the middle of an ld_imm64; TypeError for an ld_imm64 with src_reg 5 or 6
 * (maps by fd_array index), which the broker does not pass on.
 */
export function mapReferences(bytes: Uint8Array): MapReferenceSlot[] {
  if (bytes.length % 8 !== 0) throw new RangeError(`instructions must be whole 8-byte instructions, got ${bytes.length} bytes`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out: MapReferenceSlot[] = []
  for (let at = 0; at < bytes.length; at += 8) {
    if (v.getUint8(at) !== LD_IMM64) continue
    if (at + 8 >= bytes.length) throw new RangeError(`instruction ${at / 8}: ld_imm64 has no second slot`)
    const src = v.getUint8(at + 1) >> 4
    if (src === PSEUDO_MAP_IDX || src === PSEUDO_MAP_IDX_VALUE) {
      throw new TypeError(`instruction ${at / 8}: ld_imm64 names a map by fd_array index (src_reg ${src}); reference maps by fd`)
    }
    if (src === PSEUDO_MAP_FD || src === PSEUDO_MAP_VALUE) out.push({ slot: at / 8, src, imm: v.getInt32(at + 4, true) })
    at += 8
  }
  return out
}

/**
 * A copy of `bytes` whose map references have imm = `imm(old)`: the client
 * turns its fd numbers into indexes, the broker indexes into its own fd
 * numbers (withMapFds). Errors as mapReferences.
 */
export function rewriteMapReferences(bytes: Uint8Array, imm: (old: number, slot: number) => number): Uint8Array {
  const out = Uint8Array.from(bytes)
  const v = new DataView(out.buffer)
  for (const r of mapReferences(bytes)) v.setInt32(r.slot * 8 + 4, imm(r.imm, r.slot), true)
  return out
}

/**
 * The broker's side: each map index (already checked < fds.length by
 * decodeRequest) replaced by the broker's own fd number for it.
 */
export function withMapFds(bytes: Uint8Array, fds: readonly number[]): Uint8Array {
  return rewriteMapReferences(bytes, (index, slot) => {
    if (!Number.isInteger(index) || index < 0 || index >= fds.length) throw new RangeError(`instruction ${slot}: map index ${index} is not one of the ${fds.length} map fds`)
    return fds[index]!
  })
}
