// Delegation policies without a kernel: validation, masks, checks that
// mirror the kernel's token rules, and set operations.
import { describe, expect, test } from 'vitest'
import { Policy, bpffsMountEntry, readMountinfo } from '../../lib/policy/index.js'
import { walkArguments } from './walk-arguments.js'
import { PolicyError } from '../../lib/sys/errors.js'
import { attachTypes, commands, mapTypes, progTypes } from '../../lib/sys/generated/kernel-enums.js'

const ALL = (1n << 64n) - 1n

describe('validation', () => {
  test('names, numbers and any become masks; lists are normalized by value', () => {
    const p = Policy.from({ cmds: ['prog_load', 'map_create'], maps: [2, 'hash', 'hash'], progs: 'any' })
    expect(p.masks()).toEqual({
      cmds: (1n << BigInt(commands.map_create)) | (1n << BigInt(commands.prog_load)),
      maps: (1n << BigInt(mapTypes.hash)) | (1n << 2n),
      progs: ALL,
      attachs: 0n,
    })
    expect(p.cmds).toEqual(['map_create', 'prog_load'])
    expect(p.maps).toEqual(['hash', 'array'])
    expect(p.progs).toBe('any')
    expect(p.attachs).toEqual([])
    expect(Object.isFrozen(p)).toBe(true)
  })

  test('names match case-insensitively, as the kernel matches them', () => {
    expect(Policy.from({ cmds: ['MAP_CREATE' as 'map_create'] }).cmds).toEqual(['map_create'])
  })

  test('unknown keys, bad values and unknown names are precise TypeErrors', () => {
    expect(() => Policy.from({ map: ['hash'] } as never)).toThrow(new TypeError("policy: unknown key 'map' (known: cmds, maps, progs, attachs)"))
    expect(() => Policy.from({ maps: 'hash' } as never)).toThrow(new TypeError("policy.maps must be 'any' or a list of map types, got 'hash'"))
    expect(() => Policy.from({ maps: ['hash', 'hashh' as 'hash'] })).toThrow(new TypeError("policy.maps[1]: unknown map type 'hashh' (did you mean 'hash'?)"))
    expect(() => Policy.from({ progs: ['zzzzzzzzzzzz' as 'xdp'] })).toThrow(new TypeError("policy.progs[0]: unknown program type 'zzzzzzzzzzzz'"))
    expect(() => Policy.from({ cmds: [true as never] })).toThrow(new TypeError('policy.cmds[0]: a command must be a name or a number, got boolean true'))
    expect(() => Policy.from({ cmds: ['any' as never] })).toThrow(/'any' stands alone \(policy.cmds: 'any'\)/)
    expect(() => Policy.from(null as never)).toThrow(TypeError)
    expect(() => Policy.from([] as never)).toThrow(/got an array/)
  })

  test('numbers outside the 64-bit masks are RangeErrors', () => {
    expect(() => Policy.from({ attachs: [64] })).toThrow(new RangeError('policy.attachs[0]: 64 is out of range for attach types (0..63: delegation masks have 64 bits)'))
    expect(() => Policy.from({ attachs: ['x' as never, {} as never] })).toThrow(TypeError)
    expect(() => Policy.from({ attachs: [{} as never] })).toThrow('policy.attachs[0]: an attach type must be a name or a number, got an object')
    expect(() => Policy.from({ maps: [-1] })).toThrow(RangeError)
    expect(() => Policy.from({ maps: [1.5] })).toThrow(RangeError)
    expect(() => Policy.fromMasks({ maps: 1n << 64n })).toThrow(RangeError)
  })

  test('a number without a name stays a number', () => {
    const p = Policy.from({ maps: [62] })
    expect(p.maps).toEqual([62])
    expect(p.toMountOptions()).toEqual(['delegate_maps=0x4000000000000000'])
  })
})

describe('check mirrors the kernel', () => {
  const p = Policy.from({
    cmds: ['map_create', 'prog_load'],
    maps: ['hash', 'array'],
    progs: ['socket_filter', 'cgroup_skb', 'cgroup_sock'],
    attachs: ['cgroup_inet_egress', 'cgroup_inet_sock_create'],
  })

  test('allowed requests pass', () => {
    expect(p.explain({ cmd: 'map_create', mapType: 'hash' })).toBeUndefined()
    expect(p.explain({ cmd: 'prog_load', progType: 'cgroup_skb', attachType: 'cgroup_inet_egress' })).toBeUndefined()
    expect(p.allows({ cmd: 'map_create', mapType: mapTypes.array })).toBe(true)
  })

  test('a missing command, map type or program type is named', () => {
    const cmd = p.explain({ cmd: 'btf_load' }) as PolicyError
    expect(cmd).toBeInstanceOf(PolicyError)
    expect(cmd).toMatchObject({ rule: 'delegate_cmds', requested: 'btf_load', code: 'EPERM' })
    expect(cmd.message).toBe("token does not delegate command 'btf_load'; it delegates commands: map_create, prog_load")
    expect(() => p.check({ cmd: 'map_create', mapType: 'ringbuf' })).toThrow(
      "token does not delegate map type 'ringbuf'; it delegates map types: hash, array")
    expect(p.explain({ cmd: 'prog_load', progType: 'xdp', attachType: 'xdp' })).toMatchObject({ rule: 'delegate_progs', requested: 'xdp' })
  })

  test('the attach type is checked too, and none means attach type 0', () => {
    expect(p.explain({ cmd: 'prog_load', progType: 'cgroup_skb', attachType: 'cgroup_inet_ingress' }))
      .toMatchObject({ rule: 'delegate_attachs', requested: 'cgroup_inet_ingress' })
    const none = p.explain({ cmd: 'prog_load', progType: 'socket_filter' }) as PolicyError
    expect(none).toMatchObject({ rule: 'delegate_attachs', requested: 'cgroup_inet_ingress' })
    expect(none.message).toContain("a program loaded without an expected attach type asks for attach type 0, 'cgroup_inet_ingress'")
    expect(p.explain({ cmd: 'prog_load', progType: 'socket_filter', attachType: 0 })).toMatchObject({ requested: 'cgroup_inet_ingress' })
  })

  test('cgroup_sock and sk_reuseport get their default attach type first, as in the kernel', () => {
    expect(p.explain({ cmd: 'prog_load', progType: 'cgroup_sock' })).toBeUndefined()
    const q = Policy.from({ cmds: ['prog_load'], progs: ['sk_reuseport'], attachs: ['sk_reuseport_select'] })
    expect(q.explain({ cmd: 'prog_load', progType: 'sk_reuseport' })).toBeUndefined()
  })

  test('the subject is named', () => {
    expect(Policy.none().explain({ cmd: 'map_create' }, 'policy')?.message).toBe(
      "policy does not delegate command 'map_create'; it delegates no commands")
  })

  test('bad requests are errors, not refusals', () => {
    expect(() => p.explain({ cmd: 'nope' as 'map_create' })).toThrow(TypeError)
  })
})

describe('set operations', () => {
  const big = Policy.from({ cmds: 'any', maps: ['hash', 'array'], progs: ['xdp'] })
  const small = Policy.from({ cmds: ['map_create'], maps: ['hash'] })

  test('includes and intersect', () => {
    expect(big.includes(small)).toBe(true)
    expect(small.includes(big)).toBe(false)
    expect(big.intersect({ maps: 'any', cmds: ['prog_load'] }).toJSON()).toEqual({ cmds: ['prog_load'], maps: ['hash', 'array'], progs: [], attachs: [] })
  })

  test('a list of every known value equals any, as the kernel prints it', () => {
    const every = Policy.from({ progs: Object.values(progTypes) })
    expect(every.progs).toBe('any')
    expect(every.equals({ progs: 'any' })).toBe(true)
    expect(every.equals({ progs: ['xdp'] })).toBe(false)
  })

  test('empty, none and any', () => {
    expect(Policy.none().empty).toBe(true)
    expect(Policy.from({}).empty).toBe(true)
    expect(Policy.any().toMountOptions()).toEqual(['delegate_cmds=any', 'delegate_maps=any', 'delegate_progs=any', 'delegate_attachs=any'])
    expect(Policy.none().toString()).toBe('(nothing delegated)')
  })

  test('has, describe and JSON', () => {
    expect(big.has('maps', 'array')).toBe(true)
    expect(big.has('maps', mapTypes.ringbuf)).toBe(false)
    expect(big.has('attachs', attachTypes.xdp)).toBe(false)
    expect(big.describe()).toEqual(['commands: any', 'map types: hash, array', 'program types: xdp', 'attach types: none'])
    expect(JSON.parse(JSON.stringify(small))).toEqual({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] })
    expect(Policy.from(JSON.parse(JSON.stringify(big))).equals(big)).toBe(true)
  })
})

describe('bad arguments are named, never JavaScript internals', () => {
  test('every Policy entry point', () => {
    const p = Policy.from({ cmds: ['map_create'], maps: ['hash'] })
    const calls: Array<[string, (...a: unknown[]) => unknown, unknown[]]> = [
      ['Policy.from', (a) => Policy.from(a as never), [{ cmds: 'any' }]],
      ['Policy.fromMasks', (a) => Policy.fromMasks(a as never), [{ cmds: 1n }]],
      ['Policy.fromMountOptions', (a) => Policy.fromMountOptions(a as never), ['delegate_cmds=map_create']],
      ['Policy.fromMountinfo', (a, b) => Policy.fromMountinfo(a as never, b as never), ['/x', '1 2 0:1 / /x rw - bpf bpf rw,delegate_cmds=any\n']],
      ['Policy.fromFdinfo', (a) => Policy.fromFdinfo(a as never), ['allowed_cmds:\tany\nallowed_maps:\t0x0\nallowed_progs:\t0x0\nallowed_attachs:\t0x0\n']],
      ['has', (a, b) => p.has(a as never, b as never), ['cmds', 'map_create']],
      ['explain', (a, b) => p.explain(a as never, b as never), [{ cmd: 'map_create' }, 'token']],
      ['check', (a) => p.check(a as never), [{ cmd: 'map_create' }]],
      ['allows', (a) => p.allows(a as never), [{ cmd: 'map_create' }]],
      ['includes', (a) => p.includes(a as never), [{ cmds: ['map_create'] }]],
      ['intersect', (a) => p.intersect(a as never), [{ cmds: ['map_create'] }]],
      ['equals', (a) => p.equals(a as never), [{ cmds: ['map_create'] }]],
      ['readMountinfo', (a) => readMountinfo(a as never), ['']],
      ['bpffsMountEntry', (a, b) => bpffsMountEntry(a as never, b as never), ['/x', '1 2 0:1 / /x rw - bpf bpf rw\n']],
    ]
    for (const [name, call, valid] of calls) {
      for (const e of walkArguments(name, call, valid)) expect([TypeError, RangeError, Error]).toContain(e.constructor)
    }
    expect(() => Policy.fromMountOptions(null as never)).toThrow(new TypeError("mount options must be a string ('delegate_cmds=map_create,...') or an array of strings, got null"))
    expect(() => Policy.fromMountOptions([null] as never)).toThrow(new TypeError('mount options must be strings, got null'))
    expect(() => Policy.fromMasks(null as never)).toThrow(new TypeError('Policy.fromMasks: masks must be an object with cmds, maps, progs, attachs, got null'))
    expect(() => p.explain(null as never)).toThrow(/explain: request must be an object/)
    expect(() => p.has(null as never, 'x')).toThrow(new TypeError('has: kind must be one of cmds, maps, progs, attachs, got null'))
  })
})
