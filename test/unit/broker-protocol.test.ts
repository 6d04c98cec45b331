// The broker's wire protocol without a socket: every request type round-trips
// through encodeFrame and decodeRequest; every class of bad frame is refused
// with EPROTO or EINVAL naming the field, and nothing but a BrokerError ever
// comes out of the validator; errors of every family cross the wire and
// come back as the same code, rule and violations.
import { describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { BrokerError, brokerError, fromErrorReply, toErrorReply, type WireViolation } from '../../lib/broker/errors.js'
import {
  encodeFrame, errorReply, mapReferences, okReply, protocol, requestTypes, rewriteMapReferences, toWire, withMapFds,
  type Request, type RequestType,
} from '../../lib/broker/protocol.js'
import { decodeReply, decodeRequest, fdsWanted, nestingDepth, peekSeq } from '../../lib/broker/validate.js'
import { ElfError } from '../../lib/collection/elf.js'
import { DelegationRefusedError } from '../../lib/delegation/errors.js'
import { ProtocolError } from '../../lib/ipc/errors.js'
import { ProgramPolicyError, type Violation } from '../../lib/policy/check.js'
import { Policy } from '../../lib/policy/policy.js'
import { BpfError, NotSupportedError, PolicyError, SyscallError, VerifierError } from '../../lib/sys/errors.js'

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')

// r1 = map index 0; r2 = &value of map index 1 at offset 8; r0 = 0; exit
function insnBytes(imms: [number, number] = [0, 1]): Uint8Array {
  const bytes = new Uint8Array(6 * 8)
  const v = new DataView(bytes.buffer)
  const put = (slot: number, code: number, regs: number, imm: number) => {
    v.setUint8(slot * 8, code)
    v.setUint8(slot * 8 + 1, regs)
    v.setInt32(slot * 8 + 4, imm, true)
  }
  put(0, 0x18, (1 << 4) | 1, imms[0])
  put(2, 0x18, (2 << 4) | 2, imms[1])
  v.setInt32(3 * 8 + 4, 8, true) // second slot: the value offset
  put(4, 0xb7, 0, 0)
  put(5, 0x95, 0, 0)
  return bytes
}

const policyJson = Policy.from({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] }).toJSON()

// One request of each type, with every optional field, and the fds it carries.
const samples: { req: Request; fds: number }[] = [
  { req: { protocol, type: 'hello', seq: 1, client: 'bpfkit' }, fds: 0 },
  { req: { protocol, type: 'hello', seq: 0 }, fds: 0 },
  {
    req: { protocol, type: 'map_create', seq: 2, spec: { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16, flags: 1, name: 'counts', mapExtra: '18446744073709551615', numaNode: 0 } },
    fds: 0,
  },
  { req: { protocol, type: 'map_create', seq: 3, spec: { type: 12, keySize: 4, valueSize: 4, maxEntries: 1, innerMap: 0 }, token: true }, fds: 2 },
  {
    req: {
      protocol, type: 'prog_load', seq: 4, maps: 2, token: true,
      spec: { type: 'socket_filter', name: 'f.x', license: 'GPL', insns: b64(insnBytes()), expectedAttachType: 'cgroup_inet_ingress', attachBtfId: 7, flags: 0, logLevel: 2 },
    },
    fds: 3,
  },
  { req: { protocol, type: 'prog_load', seq: 5, maps: 0, spec: { type: 1, license: '', insns: b64(asm.assemble([asm.mov64Imm(asm.R0, 0), asm.exit()])) } }, fds: 0 },
  { req: { protocol, type: 'collection_load', seq: 6, elf: b64(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])), name: 'obj-1', variables: { threshold: 3, big: '123456789012345678', on: true, bytes: 'AAEC' }, programs: ['count_packets'], token: true }, fds: 1 },
  { req: { protocol, type: 'attach', seq: 7, progId: 12, attachType: 'cgroup_inet_ingress', target: { cgroup: '/web' }, flags: 0 }, fds: 0 },
  { req: { protocol, type: 'attach', seq: 8, progId: 12, attachType: 37, target: { ifname: 'veth0', netdev: 'tcx' } }, fds: 0 },
  { req: { protocol, type: 'detach', seq: 9, linkId: 3 }, fds: 0 },
  { req: { protocol, type: 'list', seq: 10, kinds: ['map', 'prog', 'link', 'btf'], origins: ['made', 'adopted', 'held', 'pinned', 'cgroup'] }, fds: 0 },
  { req: { protocol, type: 'list', seq: 11 }, fds: 0 },
  { req: { protocol, type: 'show', seq: 12, kind: 'map', id: 1 }, fds: 0 },
  { req: { protocol, type: 'get_fd', seq: 13, kind: 'btf', id: 0xffffffff }, fds: 0 },
  { req: { protocol, type: 'pin', seq: 14, kind: 'prog', id: 5, name: 'my_prog-1' }, fds: 0 },
  { req: { protocol, type: 'unpin', seq: 15, name: 'x' }, fds: 0 },
  { req: { protocol, type: 'adopt', seq: 16 }, fds: 16 },
  { req: { protocol, type: 'release', seq: 17, kind: 'link', id: 9 }, fds: 0 },
  { req: { protocol, type: 'delegate', seq: 18, policy: policyJson as unknown as Record<string, unknown> }, fds: 1 },
  { req: { protocol, type: 'delegate', seq: 19 }, fds: 1 },
  { req: { protocol, type: 'list_all', seq: 20, kinds: ['map'] }, fds: 0 },
  { req: { protocol, type: 'tenants', seq: 21 }, fds: 0 },
  { req: { protocol, type: 'stats', seq: 0xffffffff }, fds: 0 },
  { req: { protocol, type: 'enable_stats', seq: 22 }, fds: 0 },
  { req: { protocol, type: 'prog_xlated', seq: 23, id: 5 }, fds: 0 },
]

const text = (s: string) => Buffer.from(s, 'utf8')
const frame = (o: object) => encodeFrame(o)

/** The BrokerError decodeRequest throws (a failure when it throws anything else or nothing). */
function refusal(data: Uint8Array, fds = 0): BrokerError {
  try {
    decodeRequest(data, fds)
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError)
    expect((e as BrokerError).remote).toBe(false)
    return e as BrokerError
  }
  throw new Error(`accepted: ${Buffer.from(data).toString('utf8').slice(0, 200)}`)
}

function expectRefused(data: Uint8Array, code: 'EPROTO' | 'EINVAL', message: RegExp, fds = 0): void {
  const e = refusal(data, fds)
  expect({ code: e.code, message: e.message }).toEqual({ code, message: expect.stringMatching(message) })
}

describe('requests round-trip', () => {
  test('every request type is covered by a sample', () => {
    expect(new Set(samples.map((s) => s.req.type))).toEqual(new Set(requestTypes))
  })

  test.each(samples.map((s) => [`${s.req.type} seq ${s.req.seq}`, s] as const))('%s', (_name, { req, fds }) => {
    const decoded = decodeRequest(encodeFrame(req), fds)
    expect(decoded).toEqual(req)
    // A new object, with the ordinary prototype: nothing of the parsed JSON is handed on.
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(peekSeq(encodeFrame(req))).toBe(req.seq)
    const want = fdsWanted(decoded)
    expect(fds).toBeGreaterThanOrEqual(want.min)
    expect(fds).toBeLessThanOrEqual(want.max)
  })

  test('replies round-trip: ok with a body (bigints and bytes made wire-safe), error with rule and violations', () => {
    const ok = decodeReply(encodeFrame(okReply(7, { object: { kind: 'map', id: 3, origin: 'made', name: 'm', pins: [], info: { memlock: 4096n, tag: new Uint8Array([1, 2]) } } })))
    expect(ok).toEqual({ protocol, seq: 7, type: 'ok', object: { kind: 'map', id: 3, origin: 'made', name: 'm', pins: [], info: { memlock: '4096', tag: 'AQI=' } } })
    const v: WireViolation = { insn: 3, kind: 'helper', name: 'ktime_get_ns', context: [0], allowedBy: ['time'], message: 'insn 3: helper ktime_get_ns is not granted' }
    const err = decodeReply(encodeFrame(errorReply(8, { code: 'EPERM', message: 'no', rule: 'capabilities', violations: [v] })))
    expect(err).toEqual({ protocol, seq: 8, type: 'error', code: 'EPERM', message: 'no', rule: 'capabilities', violations: [v] })
    // A '__proto__' key (a map an ELF named so) is data, never a prototype.
    const named = decodeReply(text(`{"protocol":"${protocol}","seq":1,"type":"ok","maps":{"__proto__":{"x":1}}}`)) as unknown as { maps: object }
    expect(Object.getPrototypeOf(named.maps)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(named.maps, '__proto__')?.value).toEqual({ x: 1 })
    expect(({} as { x?: unknown }).x).toBeUndefined()
    // A body cannot override the envelope.
    expect(decodeReply(encodeFrame(okReply(9, { seq: 1, type: 'error', protocol: 'x' })))).toMatchObject({ protocol, seq: 9, type: 'ok' })
  })
})

describe('frames that are not requests: EPROTO', () => {
  test.each([
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /not UTF-8/],
    ['not JSON', text('{"protocol":'), /not JSON/],
    ['empty', new Uint8Array(), /not JSON/],
    ['an array', text('[1,2]'), /must be a JSON object/],
    ['null', text('null'), /must be a JSON object/],
    ['a number', text('42'), /must be a JSON object/],
    ['a string', text('"hello"'), /must be a JSON object/],
    ['no protocol', frame({ type: 'hello', seq: 1 }), /protocol is nothing$/],
    ['another protocol', frame({ protocol: 'bpfkit-broker/2', type: 'hello', seq: 1 }), /protocol is 'bpfkit-broker\/2'/],
    ['an unknown type', frame({ protocol, type: 'format_disk', seq: 1 }), /unknown request type 'format_disk'/],
    ['type from the prototype', frame({ protocol, type: 'constructor', seq: 1 }), /unknown request type/],
    ['type not a string', frame({ protocol, type: ['hello'], seq: 1 }), /unknown request type an array/],
    ['no seq', frame({ protocol, type: 'hello' }), /seq must be/],
    ['negative seq', frame({ protocol, type: 'hello', seq: -1 }), /seq must be/],
    ['seq 2^32', frame({ protocol, type: 'hello', seq: 2 ** 32 }), /seq must be/],
    ['fractional seq', frame({ protocol, type: 'hello', seq: 1.5 }), /seq must be/],
    ['seq as a string', frame({ protocol, type: 'hello', seq: '1' }), /seq must be/],
  ])('%s', (_name, data, message) => {
    expectRefused(data, 'EPROTO', message)
  })

  test('nesting deeper than 32 is refused before it is parsed or walked, at any depth', () => {
    const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
    expectRefused(text(`{"protocol":"${protocol}","type":"hello","seq":1,"client":${nest(32)}}`), 'EPROTO', /nested deeper than 32/)
    expectRefused(text(`{"protocol":"${protocol}","type":"delegate","seq":1,"policy":${nest(64)}}`), 'EPROTO', /nested deeper than 32/)
    // A frame's worth of brackets, which a recursive parser or walker would not survive.
    expectRefused(text(`{"a":${nest(500_000)}}`), 'EPROTO', /nested deeper than 32/)
    expectRefused(text('{'.repeat(1 << 20)), 'EPROTO', /nested deeper than 32/)
    // 32 levels in all are fine (the top object is the first): the refusal is then about the field.
    expectRefused(text(`{"protocol":"${protocol}","type":"hello","seq":1,"client":${nest(31)}}`), 'EINVAL', /client must be a string/)
  })

  test('brackets inside strings do not count as nesting', () => {
    expect(nestingDepth('{"a":"[[[[{{{{\\"[[[["}')).toBe(1)
    expect(nestingDepth('[{"a":[1,{"b":"]]]]"}]}]')).toBe(4)
    const client = '['.repeat(100)
    expect(decodeRequest(frame({ protocol, type: 'hello', seq: 1, client }), 0)).toMatchObject({ client })
  })

  test('peekSeq reads the seq of what it can and never throws', () => {
    expect(peekSeq(frame({ protocol, type: 'nonsense', seq: 42 }))).toBe(42)
    expect(peekSeq(text('{"seq":'))).toBeUndefined()
    expect(peekSeq(frame({ seq: -4 }))).toBeUndefined()
    expect(peekSeq(Buffer.from([0xff]))).toBeUndefined()
  })
})

const base = (type: RequestType, seq = 1) => ({ protocol, type, seq })
const mapSpec = { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16 }
const progSpec = { type: 'socket_filter', license: 'GPL', insns: b64(insnBytes()) }

describe('requests of the wrong shape: EINVAL naming the field', () => {
  test.each<[string, object, RegExp, number?]>([
    ['an unknown key', { ...base('hello'), extra: 1 }, /hello: unknown key 'extra'/],
    ['a key on a request without fields', { ...base('stats'), kinds: [] }, /stats: unknown key 'kinds' \(this request has no fields\)/],
    ['an unknown key in spec', { ...base('map_create'), spec: { ...mapSpec, btf: true } }, /unknown key 'btf' in spec/],
    ['spec not an object', { ...base('map_create'), spec: [mapSpec] }, /spec must be an object, got an array/],
    ['spec missing', { ...base('map_create') }, /spec must be an object, got nothing$/],
    ['a negative size', { ...base('map_create'), spec: { ...mapSpec, keySize: -1 } }, /spec.keySize must be an integer in 0..2\^32-1, got number -1/],
    ['a fractional size', { ...base('map_create'), spec: { ...mapSpec, valueSize: 1.5 } }, /spec.valueSize must be an integer/],
    ['a size as a string', { ...base('map_create'), spec: { ...mapSpec, maxEntries: '16' } }, /spec.maxEntries must be an integer/],
    ['a size over u32', { ...base('map_create'), spec: { ...mapSpec, maxEntries: 2 ** 32 } }, /spec.maxEntries must be an integer/],
    ['a type that is no name', { ...base('map_create'), spec: { ...mapSpec, type: 'hash; rm -rf' } }, /spec.type must be a kernel name/],
    ['a type of the wrong type', { ...base('map_create'), spec: { ...mapSpec, type: { name: 'hash' } } }, /spec.type must be a string, got an object/],
    ['a name over 15 bytes', { ...base('map_create'), spec: { ...mapSpec, name: 'a'.repeat(16) } }, /spec.name must be at most 15/],
    ['a name with other characters', { ...base('map_create'), spec: { ...mapSpec, name: 'a b' } }, /spec.name must be at most 15/],
    ['a mapExtra over u64', { ...base('map_create'), spec: { ...mapSpec, mapExtra: '18446744073709551616' } }, /spec.mapExtra must be a u64/],
    ['a negative mapExtra', { ...base('map_create'), spec: { ...mapSpec, mapExtra: -1 } }, /spec.mapExtra must be a u64/],
    ['innerMap other than 0', { ...base('map_create'), spec: { ...mapSpec, innerMap: 1 } }, /spec.innerMap must be 0/],
    ['token other than true', { ...base('map_create'), spec: mapSpec, token: false }, /token must be true when given/],
    ['insns not base64', { ...base('prog_load'), maps: 2, spec: { ...progSpec, insns: 'not base64!' } }, /spec.insns is not base64/],
    ['insns empty', { ...base('prog_load'), maps: 2, spec: { ...progSpec, insns: '' } }, /spec.insns is empty/],
    ['insns not whole instructions', { ...base('prog_load'), maps: 0, spec: { ...progSpec, insns: b64(new Uint8Array(12)) } }, /spec.insns must be whole 8-byte instructions/],
    ['a map index past the fds', { ...base('prog_load'), maps: 1, spec: progSpec }, /spec.insns instruction 2 references map index 1, but the request has 1 map fd/],
    ['a negative map index', { ...base('prog_load'), maps: 2, spec: { ...progSpec, insns: b64(insnBytes([-1, 0])) } }, /references map index -1/],
    ['an ld_imm64 cut short', { ...base('prog_load'), maps: 2, spec: { ...progSpec, insns: b64(insnBytes().subarray(0, 8)) } }, /spec.insns has instruction 0: ld_imm64 has no second slot/],
    ['maps by fd_array index', { ...base('prog_load'), maps: 0, spec: { ...progSpec, insns: b64(new Uint8Array([0x18, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])) } }, /fd_array index/],
    ['maps over SCM_MAX_FD', { ...base('prog_load'), maps: 254, spec: progSpec }, /maps must be an integer in 0..253/],
    ['no license', { ...base('prog_load'), maps: 2, spec: { ...progSpec, license: undefined } }, /spec.license must be a string/],
    ['logLevel out of range', { ...base('prog_load'), maps: 2, spec: { ...progSpec, logLevel: 8 } }, /spec.logLevel must be an integer in 0..7/],
    ['elf missing', { ...base('collection_load') }, /elf must be a base64 string/],
    ['a variable that is an object', { ...base('collection_load'), elf: 'AAAA', variables: { x: {} } }, /variables.x must be a number, a boolean, or a string/],
    ['a variable name that is no name', { ...base('collection_load'), elf: 'AAAA', variables: { 'a-b': 1 } }, /variables has a key that is not a variable name: 'a-b'/],
    ['programs not a list', { ...base('collection_load'), elf: 'AAAA', programs: 'all' }, /programs must be an array/],
    ['a program name that is no name', { ...base('collection_load'), elf: 'AAAA', programs: ['../x'] }, /programs\[0\] must be a program name/],
    ['progId 0', { ...base('attach'), progId: 0, attachType: 'xdp', target: { cgroup: '/' } }, /progId must be an integer in 1..2\^32-1/],
    ['a target of neither kind', { ...base('attach'), progId: 1, attachType: 'xdp', target: { path: '/' } }, /target must be \{ cgroup \} or \{ ifname, netdev \}/],
    ['a target of both kinds', { ...base('attach'), progId: 1, attachType: 'xdp', target: { cgroup: '/', ifname: 'lo', netdev: 'xdp' } }, /unknown key 'ifname' in target/],
    ['an unknown netdev family', { ...base('attach'), progId: 1, attachType: 'xdp', target: { ifname: 'lo', netdev: 'tc' } }, /target.netdev must be 'xdp', 'tcx' or 'netkit'/],
    ['an ifname over 15 bytes', { ...base('attach'), progId: 1, attachType: 'xdp', target: { ifname: 'x'.repeat(16), netdev: 'xdp' } }, /target.ifname must be an interface name/],
    ['an ifname with a slash', { ...base('attach'), progId: 1, attachType: 'xdp', target: { ifname: '../lo', netdev: 'xdp' } }, /target.ifname must be an interface name/],
    ['a string over 4096 characters', { ...base('attach'), progId: 1, attachType: 'xdp', target: { cgroup: '/a'.repeat(2049) } }, /target.cgroup is longer than 4096 characters/],
    ['a NUL in a path', { ...base('attach'), progId: 1, attachType: 'xdp', target: { cgroup: '/a\0b' } }, /target.cgroup contains a NUL/],
    ['an unknown kind', { ...base('show'), kind: 'token', id: 1 }, /kind must be one of map, prog, link, btf, got 'token'/],
    ['an id as a string', { ...base('get_fd'), kind: 'map', id: '1' }, /id must be an integer in 1..2\^32-1/],
    ['kinds not a list', { ...base('list'), kinds: 'map' }, /kinds must be an array/],
    ['an unknown kind in kinds', { ...base('list'), kinds: ['map', 'maps'] }, /kinds\[1\] must be one of/],
    ['an unknown origin', { ...base('list'), origins: ['stolen'] }, /origins\[0\] must be one of made, adopted, held, pinned, cgroup/],
    ['a pin name with a dot', { ...base('pin'), kind: 'map', id: 1, name: '..' }, /name must be 1 to 64 letters, digits, '_' or '-'/],
    ['a pin name with a slash', { ...base('unpin'), name: 'a/b' }, /name must be 1 to 64 letters/],
    ['a pin name over 64', { ...base('unpin'), name: 'a'.repeat(65) }, /name must be 1 to 64 letters/],
    ['an empty pin name', { ...base('unpin'), name: '' }, /name must be 1 to 64 letters/],
    ['a policy that is not an object', { ...base('delegate'), policy: 'any' }, /policy must be an object/, 1],
    ['a policy string over 4096', { ...base('delegate'), policy: { cmds: ['x'.repeat(5000)] } }, /policy.cmds\[0\] is longer than 4096/, 1],
  ])('%s', (_name, request, message, fds = 0) => {
    expectRefused(frame(request), 'EINVAL', message, fds)
  })

  test('__proto__ and constructor keys reach nothing', () => {
    const raw = (body: string) => text(`{"protocol":"${protocol}","type":"hello","seq":1,${body}}`)
    expectRefused(raw('"__proto__":{"admin":true}'), 'EINVAL', /unknown key '__proto__'/)
    expectRefused(raw('"constructor":{"prototype":{"admin":true}}'), 'EINVAL', /unknown key 'constructor'/)
    const delegate = text(`{"protocol":"${protocol}","type":"delegate","seq":1,"policy":{"cmds":"any","__proto__":{"polluted":1}}}`)
    expectRefused(delegate, 'EINVAL', /policy: key '__proto__' is not allowed/, 1)
    const vars = text(`{"protocol":"${protocol}","type":"collection_load","seq":1,"elf":"AAAA","variables":{"__proto__":1}}`)
    expectRefused(vars, 'EINVAL', /not a variable name: '__proto__'/)
    // An own 'constructor' variable is a name like any other, kept as data.
    const ok = decodeRequest(text(`{"protocol":"${protocol}","type":"collection_load","seq":1,"elf":"AAAA","variables":{"constructor":1}}`), 0)
    expect(ok.type === 'collection_load' && Object.getOwnPropertyDescriptor(ok.variables, 'constructor')?.value).toBe(1)
    expect(({} as Record<string, unknown>).admin).toBeUndefined()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  test.each<[string, object, number, RegExp]>([
    ['map_create without its inner map', { ...base('map_create'), spec: { ...mapSpec, innerMap: 0 } }, 0, /map_create: expected 1 fd with the request \(the inner map\), got 0/],
    ['map_create without its token', { ...base('map_create'), spec: mapSpec, token: true }, 0, /expected 1 fd .*no inner map, then the token/],
    ['map_create with a stray fd', { ...base('map_create'), spec: mapSpec }, 1, /expected 0 fds/],
    ['prog_load with fewer map fds', { ...base('prog_load'), maps: 2, spec: progSpec }, 1, /expected 2 fds with the request \(2 map fds\), got 1/],
    ['prog_load with the token missing', { ...base('prog_load'), maps: 2, spec: progSpec, token: true }, 2, /expected 3 fds/],
    ['collection_load with a stray fd', { ...base('collection_load'), elf: 'AAAA' }, 1, /expected 0 fds/],
    ['adopt with nothing', { ...base('adopt') }, 0, /adopt: expected 1 to 16 fds/],
    ['adopt with 17', { ...base('adopt') }, 17, /adopt: expected 1 to 16 fds .*got 17/],
    ['delegate without a context', { ...base('delegate') }, 0, /delegate: expected 1 fd .*fsopen/],
    ['delegate with two', { ...base('delegate') }, 2, /expected 1 fd/],
    ['list with an fd', { ...base('list') }, 1, /list: expected 0 fds/],
  ])('fd count: %s', (_name, request, fds, message) => {
    expectRefused(frame(request), 'EINVAL', message, fds)
  })

  test('random and mutated frames never throw anything but a BrokerError', () => {
    let seed = 16
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!
    const values = [null, true, 0, -1, 1.5, 2 ** 53, '', 'x', '__proto__', [], {}, [[]], { a: { b: {} } }, 'A'.repeat(5000)]
    let refused = 0
    for (let i = 0; i < 3000; i++) {
      let data: Uint8Array
      if (i % 3 === 0) data = Uint8Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))
      else {
        const s = structuredClone(pick(samples).req) as unknown as Record<string, unknown>
        const target = s.spec && rand() < 0.5 ? (s.spec as Record<string, unknown>) : s
        const keys = Object.keys(target)
        if (rand() < 0.2) target[`k${i % 7}`] = pick(values)
        else target[pick(keys)] = pick(values)
        data = frame(s)
        if (i % 3 === 2) data = data.subarray(0, Math.floor(rand() * data.length))
      }
      try {
        decodeRequest(data, Math.floor(rand() * 4))
      } catch (e) {
        expect(e).toBeInstanceOf(BrokerError)
        expect(['EPROTO', 'EINVAL']).toContain((e as BrokerError).code)
        refused++
      }
    }
    expect(refused).toBeGreaterThan(2000)
  })
})

describe('replies that are not replies: EPROTO', () => {
  test.each([
    ['not JSON', text('{'), /not JSON/],
    ['another protocol', frame({ protocol: 'x', seq: 1, type: 'ok' }), /not a bpfkit-broker\/1 reply/],
    ['no seq', frame({ protocol, type: 'ok' }), /seq must be/],
    ['an unknown type', frame({ protocol, seq: 1, type: 'maybe' }), /type must be 'ok' or 'error'/],
    ['an error without a code', frame({ protocol, seq: 1, type: 'error', message: 'x' }), /code must be an errno name/],
    ['an error code that is no errno', frame({ protocol, seq: 1, type: 'error', code: 'oops', message: 'x' }), /code must be an errno name/],
    ['an error without a message', frame({ protocol, seq: 1, type: 'error', code: 'EIO' }), /message must be a string/],
    ['violations of the wrong shape', frame({ protocol, seq: 1, type: 'error', code: 'EPERM', message: 'x', violations: [{ kind: 'syscall' }] }), /violations\[0\].kind must be/],
    ['nesting too deep', text(`{"protocol":"${protocol}","seq":1,"type":"ok","x":${'['.repeat(40)}${']'.repeat(40)}}`), /nested deeper/],
  ])('%s', (_name, data, message) => {
    let error: unknown
    try {
      decodeReply(data)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(BrokerError)
    expect((error as BrokerError).code).toBe('EPROTO')
    expect((error as BrokerError).message).toMatch(message)
  })
})

describe('errors cross the wire', () => {
  const violation: Violation = {
    program: 'prog', insn: 4, source: undefined, kind: 'helper', name: 'ktime_get_ns', context: [0], allowedBy: ['time'],
    message: 'insn 4: helper ktime_get_ns is not granted to socket_filter; capability sets that allow it: time',
  }

  // Through a real frame, as the daemon sends it and the client reads it.
  const roundTrip = (e: unknown) => fromErrorReply(decodeReply(encodeFrame(errorReply(5, toErrorReply(e)))) as never)

  test.each<[string, unknown, { code: string; message: RegExp; rule?: string; violations?: WireViolation[] }]>([
    ['BrokerError', brokerError('ENOENT', 'no map 7 in your view'), { code: 'ENOENT', message: /^no map 7 in your view$/ }],
    ['BrokerError with a rule', brokerError('EDQUOT', 'quota maps (4) reached', { rule: 'maps' }), { code: 'EDQUOT', message: /quota maps/, rule: 'maps' }],
    ['PolicyError', new PolicyError('maps', 'ringbuf', "policy does not delegate map type 'ringbuf'"), { code: 'EPERM', message: /does not delegate map type 'ringbuf'/, rule: 'maps' }],
    ['ProgramPolicyError', new ProgramPolicyError('prog', 'program prog uses what its policy does not grant', [violation]),
      { code: 'EPERM', message: /does not grant/, rule: 'capabilities', violations: [{ program: 'prog', insn: 4, kind: 'helper', name: 'ktime_get_ns', context: [0], allowedBy: ['time'], message: violation.message }] }],
    ['BpfError', new BpfError('map_create', 7, 'map_create: E2BIG: too big'), { code: 'E2BIG', message: /^map_create: E2BIG: too big$/ }],
    ['VerifierError', new VerifierError('prog_load', 13, ['0: R0 !read_ok'], 'prog_load: EACCES: R0 !read_ok'), { code: 'EACCES', message: /R0 !read_ok/ }],
    ['SyscallError', new SyscallError('openat2', 18, 'openat2: EXDEV: escaped'), { code: 'EXDEV', message: /escaped/ }],
    ['NotSupportedError', new NotSupportedError('peerPidfd', '6.5'), { code: 'EOPNOTSUPP', message: /needs Linux 6.5/ }],
    ['TypeError', new TypeError("unknown map type 'hsah'"), { code: 'EINVAL', message: /unknown map type/ }],
    ['RangeError', new RangeError('maxEntries must be a power of two'), { code: 'EINVAL', message: /power of two/ }],
    ['ElfError', new ElfError('not an ELF file'), { code: 'EINVAL', message: /not an ELF file/ }],
    ['ProtocolError', new ProtocolError('fds arrived in the middle of a message'), { code: 'EPROTO', message: /middle of a message/ }],
    ['DelegationRefusedError', new DelegationRefusedError('wants more than offered'), { code: 'EACCES', message: /wants more than offered/ }],
    ["Node's system error", Object.assign(new Error("ENOENT: no such file or directory, open '/x'"), { code: 'ENOENT', errno: -2, syscall: 'open' }), { code: 'ENOENT', message: /no such file/ }],
    ['another Error', new Error('disk on fire'), { code: 'EIO', message: /^disk on fire$/ }],
    ['not an Error', 42, { code: 'EIO', message: /internal error: 42/ }],
  ])('%s', (_name, error, want) => {
    const back = roundTrip(error)
    expect(back).toBeInstanceOf(BrokerError)
    expect(back.remote).toBe(true)
    expect(back.code).toBe(want.code)
    expect(back.message).toMatch(want.message)
    expect(back.rule).toBe(want.rule)
    expect(back.violations).toEqual(want.violations)
  })

  test('a code that is no errno name becomes EIO; brokerError is local', () => {
    expect(toErrorReply(brokerError('bad code', 'x')).code).toBe('EIO')
    const e = brokerError('EPERM', 'no', { rule: 'cmds' })
    expect({ remote: e.remote, code: e.code, rule: e.rule, name: e.name }).toEqual({ remote: false, code: 'EPERM', rule: 'cmds', name: 'BrokerError' })
    expect(e).toBeInstanceOf(Error)
  })
})

describe('wire values', () => {
  test('toWire: bigints, bytes, nesting, undefined and toJSON', () => {
    const policy = Policy.from({ cmds: 'any', maps: [], progs: [], attachs: [] })
    expect(toWire({ a: 1n << 64n, b: new Uint8Array([255, 0]), c: [1n, undefined, { d: undefined, e: 'x' }], p: policy, f: undefined }))
      .toEqual({ a: '18446744073709551616', b: '/wA=', c: ['1', null, { e: 'x' }], p: policy.toJSON() })
    const o = toWire(JSON.parse('{"__proto__":{"x":1}}')) as Record<string, unknown>
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype)
    expect(Object.keys(o)).toEqual(['__proto__'])
  })

  test('map references: found, rewritten to indexes and back to fds', () => {
    const bytes = insnBytes([41, 42])
    expect(mapReferences(bytes)).toEqual([{ slot: 0, src: 1, imm: 41 }, { slot: 2, src: 2, imm: 42 }])
    const indexed = rewriteMapReferences(bytes, (fd) => fd - 41)
    expect(mapReferences(indexed).map((r) => r.imm)).toEqual([0, 1])
    // Everything but the two imm fields is as it was (the value offset in the second slot included).
    const restored = withMapFds(indexed, [41, 42])
    expect(Buffer.from(restored).equals(Buffer.from(bytes))).toBe(true)
    expect(() => withMapFds(indexed, [41])).toThrow(/map index 1 is not one of the 1 map fds/)
    expect(() => mapReferences(new Uint8Array(7))).toThrow(RangeError)
    // A ld_imm64 of a plain constant is no map reference.
    expect(mapReferences(asm.assemble([asm.ldImm64(asm.R1, 5n), asm.exit()]))).toEqual([])
  })
})
