// What arrives on the broker's socket, checked before anything else reads
// it. Nothing here may throw anything but a BrokerError, whatever the bytes:
// EPROTO for what is not a request at all (not UTF-8, not JSON, nested too
// deep, not an object, another protocol, an unknown type, a bad seq), EINVAL
// naming the field for a request of the wrong shape (unknown keys, wrong
// types, out of range, fd counts). Parsed objects are never spread or
// handed on: every request is a new object built from the known keys, so a
// `__proto__` or `constructor` key in the JSON can reach nothing.
import { brokerError, type WireViolation } from './errors.js'
import {
  jsonLimits, kinds, mapReferences, origins, protocol, requestTypes,
  type AttachTarget, type Kind, type Origin, type Reply, type Request, type RequestType, type WireMapSpec, type WireProgSpec,
} from './protocol.js'
import { checkStrings, isU32, own, parse, plainCopy, proto, Reader, setKey, show, type Json } from './validate-fields.js'

export { nestingDepth } from './validate-fields.js'

const pinName = /^[A-Za-z0-9_-]{1,64}$/
const identifier = /^[A-Za-z_][A-Za-z0-9_.$]{0,255}$/
const errorCode = /^E[A-Z0-9]{1,15}$/
const maxVariables = 1024
const maxPrograms = 1024
const maxMapFds = 253

/**
 * Checks one request frame (its payload and how many fds came with it) and
 * returns a new, plain request. Errors: BrokerError EPROTO or EINVAL (the
 * field named, e.g. "map_create: spec.keySize must be ..."), nothing else.
 */
export function decodeRequest(data: Uint8Array, fdCount: number): Request {
  const top = parse(data, 'request')
  const p = own(top, 'protocol')
  if (p !== protocol) throw proto(`not a ${protocol} request: protocol is ${show(p)}`)
  const type = own(top, 'type')
  if (typeof type !== 'string' || !(requestTypes as readonly string[]).includes(type)) {
    throw proto(`unknown request type ${show(type)} (known: ${requestTypes.join(', ')})`)
  }
  const seq = own(top, 'seq')
  if (!isU32(seq)) throw proto(`${type}: seq must be an integer in 0..2^32-1, got ${show(seq)}`)
  if (!Number.isInteger(fdCount) || fdCount < 0) throw brokerError('EINVAL', `${type}: fd count must be a non-negative integer, got ${show(fdCount)}`)
  const r = new Reader(top, type as RequestType)
  const request = decoders[type as RequestType](r, seq)
  const want = fdsWanted(request)
  if (fdCount < want.min || fdCount > want.max) {
    const expected = want.min === want.max ? `${want.min}` : `${want.min} to ${want.max}`
    throw brokerError('EINVAL', `${type}: expected ${expected} fd${want.max === 1 ? '' : 's'} with the request (${want.why}), got ${fdCount}`)
  }
  return request
}

/** The seq of a frame, if it has a readable one: what the daemon echoes in the error reply to a bad request. */
export function peekSeq(data: Uint8Array): number | undefined {
  try {
    const seq = own(parse(data, 'request'), 'seq')
    return isU32(seq) ? seq : undefined
  } catch {
    return undefined
  }
}

/** How many fds a (decoded) request carries, and why. */
export function fdsWanted(r: Request): { min: number; max: number; why: string } {
  const token = 'token' in r && r.token === true ? 1 : 0
  const tokenWhy = token ? ', then the token' : ''
  switch (r.type) {
    case 'map_create': {
      const inner = r.spec.innerMap === 0 ? 1 : 0
      return { min: inner + token, max: inner + token, why: `${inner ? 'the inner map' : 'no inner map'}${tokenWhy}` }
    }
    case 'prog_load':
      return { min: r.maps + token, max: r.maps + token, why: `${r.maps} map fd${r.maps === 1 ? '' : 's'}${tokenWhy}` }
    case 'collection_load':
      return { min: token, max: token, why: token ? 'the token' : 'none' }
    case 'adopt':
      return { min: 1, max: jsonLimits.maxAdopt, why: 'the objects to adopt' }
    case 'delegate':
      return { min: 1, max: 1, why: 'a bpf filesystem context from fsopen' }
    default:
      return { min: 0, max: 0, why: 'none' }
  }
}

/**
 * Checks one reply frame. Errors: BrokerError EPROTO for anything that is not
 * a reply of this protocol. Its body is copied into new plain objects, where
 * a `__proto__` key is an own key like any other, never a prototype.
 */
export function decodeReply(data: Uint8Array): Reply {
  const raw = parse(data, 'reply')
  let top: Json
  try {
    top = plainCopy(raw, 'reply', 0, true) as Json
  } catch (e) {
    throw proto((e as Error).message)
  }
  if (top.protocol !== protocol) throw proto(`not a ${protocol} reply: protocol is ${show(top.protocol)}`)
  if (!isU32(top.seq)) throw proto(`reply: seq must be an integer in 0..2^32-1, got ${show(top.seq)}`)
  if (top.type === 'ok') return top as Reply
  if (top.type !== 'error') throw proto(`reply: type must be 'ok' or 'error', got ${show(top.type)}`)
  const { code, message, rule, violations } = top
  if (typeof code !== 'string' || !errorCode.test(code)) throw proto(`error reply: code must be an errno name like 'ENOENT', got ${show(code)}`)
  if (typeof message !== 'string') throw proto(`error reply: message must be a string, got ${show(message)}`)
  if (rule !== undefined && typeof rule !== 'string') throw proto(`error reply: rule must be a string, got ${show(rule)}`)
  const out: Reply = { protocol, seq: top.seq, type: 'error', code, message }
  if (rule !== undefined) out.rule = rule
  if (violations !== undefined) {
    if (!Array.isArray(violations)) throw proto(`error reply: violations must be an array, got ${show(violations)}`)
    out.violations = violations.map((v, i) => violationOf(v, `error reply: violations[${i}]`))
  }
  return out
}

function violationOf(v: unknown, where: string): WireViolation {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw proto(`${where} must be an object, got ${show(v)}`)
  const o = v as Json
  const str = (k: string, optional = false): string | undefined => {
    const x = o[k]
    if (x === undefined && optional) return undefined
    if (typeof x !== 'string') throw proto(`${where}.${k} must be a string, got ${show(x)}`)
    return x
  }
  const strings = (k: string): string[] => {
    const x = o[k]
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) throw proto(`${where}.${k} must be an array of strings`)
    return [...x] as string[]
  }
  const kind = str('kind')
  if (kind !== 'helper' && kind !== 'kfunc' && kind !== 'map') throw proto(`${where}.kind must be 'helper', 'kfunc' or 'map', got ${show(kind)}`)
  if (typeof o.insn !== 'number' || !Number.isInteger(o.insn)) throw proto(`${where}.insn must be an integer, got ${show(o.insn)}`)
  if (!Array.isArray(o.context) || !o.context.every((c) => Number.isInteger(c))) throw proto(`${where}.context must be an array of integers`)
  const out: WireViolation = { insn: o.insn, kind, name: str('name')!, context: [...o.context] as number[], allowedBy: strings('allowedBy'), message: str('message')! }
  const program = str('program', true)
  const source = str('source', true)
  const mapType = str('mapType', true)
  if (program !== undefined) out.program = program
  if (source !== undefined) out.source = source
  if (mapType !== undefined) out.mapType = mapType
  return out
}

type Decoder = (r: Reader, seq: number) => Request

const none = (type: 'adopt' | 'tenants' | 'stats' | 'enable_stats'): Decoder => (r, seq) => {
  r.object(r.top, '', [])
  return { protocol, type, seq } as Request
}

const decoders: Record<RequestType, Decoder> = {
  hello(r, seq) {
    r.object(r.top, '', ['client'])
    const client = r.string(r.top, 'client', '', { optional: true, max: 256 })
    return { protocol, type: 'hello', seq, ...(client === undefined ? {} : { client }) }
  },

  map_create(r, seq) {
    r.object(r.top, '', ['spec', 'token'])
    const s = r.sub(r.top, 'spec', '', false)!
    r.object(s, 'spec', ['type', 'keySize', 'valueSize', 'maxEntries', 'flags', 'name', 'mapExtra', 'numaNode', 'innerMap'])
    const spec: WireMapSpec = {
      type: r.enumValue(s, 'type', 'spec')!,
      keySize: r.u32(s, 'keySize', 'spec')!,
      valueSize: r.u32(s, 'valueSize', 'spec')!,
      maxEntries: r.u32(s, 'maxEntries', 'spec')!,
    }
    const flags = r.u32(s, 'flags', 'spec', { optional: true })
    const name = r.objectName(s, 'name', 'spec')
    const numaNode = r.u32(s, 'numaNode', 'spec', { optional: true })
    const mapExtra = own(s, 'mapExtra')
    if (mapExtra !== undefined) {
      const ok = typeof mapExtra === 'number' ? Number.isSafeInteger(mapExtra) && mapExtra >= 0
        : typeof mapExtra === 'string' && /^\d{1,20}$/.test(mapExtra) && BigInt(mapExtra) <= 0xffffffffffffffffn
      if (!ok) throw r.invalid('spec.mapExtra', `must be a u64 (an integer, or a decimal string), got ${show(mapExtra)}`)
    }
    const inner = own(s, 'innerMap')
    if (inner !== undefined && inner !== 0) throw r.invalid('spec.innerMap', `must be 0 (the first fd) when given, got ${show(inner)}`)
    if (flags !== undefined) spec.flags = flags
    if (name !== undefined) spec.name = name
    if (mapExtra !== undefined) spec.mapExtra = mapExtra as number | string
    if (numaNode !== undefined) spec.numaNode = numaNode
    if (inner === 0) spec.innerMap = 0
    const token = r.true(r.top, 'token')
    return { protocol, type: 'map_create', seq, spec, ...(token ? { token } : {}) }
  },

  prog_load(r, seq) {
    r.object(r.top, '', ['spec', 'maps', 'token'])
    const maps = r.u32(r.top, 'maps', '', { max: maxMapFds })!
    const s = r.sub(r.top, 'spec', '', false)!
    r.object(s, 'spec', ['type', 'name', 'license', 'insns', 'expectedAttachType', 'attachBtfId', 'flags', 'logLevel'])
    const bytes = r.bytes(s, 'insns', 'spec')
    if (bytes.length % 8 !== 0) throw r.invalid('spec.insns', `must be whole 8-byte instructions, got ${bytes.length} bytes`)
    let refs
    try {
      refs = mapReferences(bytes)
    } catch (e) {
      throw r.invalid('spec.insns', (e as Error).message.replace(/^instruction/, 'has instruction'))
    }
    for (const ref of refs) {
      if (ref.imm < 0 || ref.imm >= maps) {
        throw r.invalid('spec.insns', `instruction ${ref.slot} references map index ${ref.imm}, but the request has ${maps} map fd${maps === 1 ? '' : 's'}`)
      }
    }
    const spec: WireProgSpec = {
      type: r.enumValue(s, 'type', 'spec')!,
      license: r.string(s, 'license', 'spec', { max: 128 })!,
      insns: s.insns as string,
    }
    const name = r.objectName(s, 'name', 'spec')
    const attach = r.enumValue(s, 'expectedAttachType', 'spec', true)
    const attachBtfId = r.u32(s, 'attachBtfId', 'spec', { optional: true })
    const flags = r.u32(s, 'flags', 'spec', { optional: true })
    const logLevel = r.u32(s, 'logLevel', 'spec', { optional: true, max: 7 })
    if (name !== undefined) spec.name = name
    if (attach !== undefined) spec.expectedAttachType = attach
    if (attachBtfId !== undefined) spec.attachBtfId = attachBtfId
    if (flags !== undefined) spec.flags = flags
    if (logLevel !== undefined) spec.logLevel = logLevel
    const token = r.true(r.top, 'token')
    return { protocol, type: 'prog_load', seq, spec, maps, ...(token ? { token } : {}) }
  },

  collection_load(r, seq) {
    r.object(r.top, '', ['elf', 'name', 'variables', 'programs', 'token'])
    r.bytes(r.top, 'elf', '')
    const out: Request = { protocol, type: 'collection_load', seq, elf: r.top.elf as string }
    const name = r.string(r.top, 'name', '', { optional: true, pattern: pinName, rule: "1 to 64 letters, digits, '_' or '-'" })
    if (name !== undefined) out.name = name
    const vars = r.sub(r.top, 'variables', '', true)
    if (vars !== undefined) {
      const keys = Object.keys(vars)
      if (keys.length > maxVariables) throw r.invalid('variables', `has more than ${maxVariables} entries`)
      const copy: Record<string, number | string | boolean> = {}
      for (const k of keys) {
        if (!identifier.test(k) || k === '__proto__') throw r.invalid('variables', `has a key that is not a variable name: ${show(k)}`)
        const v = vars[k]
        if (typeof v === 'number' ? !Number.isFinite(v) : typeof v === 'string' ? v.length > jsonLimits.maxString : typeof v !== 'boolean') {
          throw r.invalid(`variables.${k}`, `must be a number, a boolean, or a string (a decimal integer or base64 bytes), got ${show(v)}`)
        }
        setKey(copy, k, v)
      }
      out.variables = copy
    }
    const programs = own(r.top, 'programs')
    if (programs !== undefined) {
      if (!Array.isArray(programs)) throw r.invalid('programs', `must be an array of program names, got ${show(programs)}`)
      if (programs.length > maxPrograms) throw r.invalid('programs', `has more than ${maxPrograms} entries`)
      out.programs = programs.map((p, i) => {
        if (typeof p !== 'string' || !identifier.test(p)) throw r.invalid(`programs[${i}]`, `must be a program name, got ${show(p)}`)
        return p
      })
    }
    if (r.true(r.top, 'token')) out.token = true
    return out
  },

  attach(r, seq) {
    r.object(r.top, '', ['progId', 'attachType', 'target', 'flags'])
    const progId = r.id(r.top, 'progId')
    const attachType = r.enumValue(r.top, 'attachType', '')!
    const t = r.sub(r.top, 'target', '', false)!
    let target: AttachTarget
    if (Object.hasOwn(t, 'cgroup')) {
      r.object(t, 'target', ['cgroup'])
      target = { cgroup: r.string(t, 'cgroup', 'target')! }
    } else if (Object.hasOwn(t, 'ifname')) {
      r.object(t, 'target', ['ifname', 'netdev'])
      const ifname = r.string(t, 'ifname', 'target', { pattern: /^[^/\s:]{1,15}$/, rule: "an interface name (1 to 15 bytes, no '/', ':' or spaces)" })!
      const netdev = own(t, 'netdev')
      if (netdev !== 'xdp' && netdev !== 'tcx' && netdev !== 'netkit') throw r.invalid('target.netdev', `must be 'xdp', 'tcx' or 'netkit', got ${show(netdev)}`)
      if (Buffer.byteLength(ifname) > 15) throw r.invalid('target.ifname', 'is longer than 15 bytes')
      target = { ifname, netdev }
    } else {
      throw r.invalid('target', 'must be { cgroup } or { ifname, netdev }')
    }
    const flags = r.u32(r.top, 'flags', '', { optional: true })
    return { protocol, type: 'attach', seq, progId, attachType, target, ...(flags === undefined ? {} : { flags }) }
  },

  detach(r, seq) {
    r.object(r.top, '', ['linkId'])
    return { protocol, type: 'detach', seq, linkId: r.id(r.top, 'linkId') }
  },

  list(r, seq) {
    r.object(r.top, '', ['kinds', 'origins'])
    const k = r.list<Kind>(r.top, 'kinds', kinds)
    const o = r.list<Origin>(r.top, 'origins', origins)
    return { protocol, type: 'list', seq, ...(k ? { kinds: k } : {}), ...(o ? { origins: o } : {}) }
  },

  show: byId('show'),
  get_fd: byId('get_fd'),
  release: byId('release'),

  pin(r, seq) {
    r.object(r.top, '', ['kind', 'id', 'name'])
    const kind = r.kind(r.top, 'kind')
    const id = r.id(r.top, 'id')
    const name = r.string(r.top, 'name', '', { pattern: pinName, rule: "1 to 64 letters, digits, '_' or '-'" })!
    return { protocol, type: 'pin', seq, kind, id, name }
  },

  unpin(r, seq) {
    r.object(r.top, '', ['name'])
    return { protocol, type: 'unpin', seq, name: r.string(r.top, 'name', '', { pattern: pinName, rule: "1 to 64 letters, digits, '_' or '-'" })! }
  },

  adopt: none('adopt'),

  delegate(r, seq) {
    r.object(r.top, '', ['policy'])
    const p = r.sub(r.top, 'policy', '', true)
    if (p === undefined) return { protocol, type: 'delegate', seq }
    let policy: Json
    try {
      policy = plainCopy(p, 'policy', 1) as Json
      checkStrings(policy, 'policy')
    } catch (e) {
      throw brokerError('EINVAL', `delegate: ${(e as Error).message}`)
    }
    return { protocol, type: 'delegate', seq, policy }
  },

  list_all(r, seq) {
    r.object(r.top, '', ['kinds'])
    const k = r.list<Kind>(r.top, 'kinds', kinds)
    return { protocol, type: 'list_all', seq, ...(k ? { kinds: k } : {}) }
  },

  tenants: none('tenants'),
  stats: none('stats'),
  enable_stats: none('enable_stats'),

  prog_xlated(r, seq) {
    r.object(r.top, '', ['id'])
    return { protocol, type: 'prog_xlated', seq, id: r.id(r.top, 'id') }
  },
}

function byId(type: 'show' | 'get_fd' | 'release'): Decoder {
  return (r, seq) => {
    r.object(r.top, '', ['kind', 'id'])
    return { protocol, type, seq, kind: r.kind(r.top, 'kind'), id: r.id(r.top, 'id') }
  }
}
