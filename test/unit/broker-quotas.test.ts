// A tenant's usage and quotas (lib/broker/quotas.ts): usage from the
// registry's records, map bytes (ring buffers, arenas and per-CPU maps by
// their memory), what lingers after release, reservations, and EDQUOT naming
// the quota, its limit and the usage; and the guard's share of them
// (lib/broker/guard-sync.ts).
import { describe, expect, test } from 'vitest'
import type { ResolvedTenant } from '../../lib/broker/config.js'
import { BrokerError } from '../../lib/broker/errors.js'
import type { Kind } from '../../lib/broker/protocol.js'
import { checkQuota, Lingering, mapBytes, pageSize, Reservations, usageOf, type Usage } from '../../lib/broker/quotas.js'
import type { RegistryRecord } from '../../lib/broker/registry.js'
import { syncGuard } from '../../lib/broker/guard-sync.js'
import type { Guard } from '../../lib/guard/index.js'

function rec(tenant: string, kind: Kind, id: number, pins: string[] = []): RegistryRecord {
  return { tenant, kind, id, origin: 'made', name: '', createdAt: '2026-01-01T00:00:00.000Z', pins }
}

// Only what checkQuota reads: the name and the resolved quotas (Infinity when unset).
function tenant(quota: Partial<ResolvedTenant['quota']>): ResolvedTenant {
  const all = { maps: Infinity, bytes: Infinity, progs: Infinity, links: Infinity, pins: Infinity, connections: Infinity, ...quota }
  return { name: 't1', quota: all } as unknown as ResolvedTenant
}

const zero: Usage = { maps: 0, bytes: 0, progs: 0, links: 0, pins: 0, connections: 0 }

function refusal(f: () => void): BrokerError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError)
    return e as BrokerError
  }
  throw new Error('no refusal')
}

describe('mapBytes', () => {
  test('(key size + value size) × max entries, as the guard counts a map', () => {
    expect(mapBytes({ keySize: 4, valueSize: 8, maxEntries: 100 })).toBe(1200)
    expect(mapBytes({ keySize: 0, valueSize: 4, maxEntries: 1 })).toBe(4)
    expect(mapBytes({ keySize: 4, valueSize: 4, maxEntries: 0 })).toBe(0)
    // No 32-bit overflow: the guard counts in 64 bits.
    expect(mapBytes({ keySize: 0xffff, valueSize: 0xffff, maxEntries: 0xffffffff })).toBe(2 * 0xffff * 0xffffffff)
    expect(mapBytes({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 100 })).toBe(1200)
  })

  test('a ring buffer\'s max entries are its bytes (its key and value sizes are 0), by name or number', () => {
    expect(mapBytes({ type: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 1 << 20 })).toBe(1 << 20)
    expect(mapBytes({ type: 'user_ringbuf', keySize: 0, valueSize: 0, maxEntries: 4096 })).toBe(4096)
    expect(mapBytes({ type: 27, keySize: 0, valueSize: 0, maxEntries: 8192 })).toBe(8192)
  })

  test('an arena\'s max entries are pages', () => {
    expect(mapBytes({ type: 'arena', keySize: 0, valueSize: 0, maxEntries: 10 })).toBe(10 * pageSize())
    expect([4096, 16384, 65536]).toContain(pageSize())
  })

  test('a per-CPU map keeps each value, rounded up to 8 bytes, once per possible CPU; its keys once', () => {
    expect(mapBytes({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 100 }, 4)).toBe((4 + 8 * 4) * 100)
    expect(mapBytes({ type: 'percpu_hash', keySize: 8, valueSize: 4, maxEntries: 10 }, 3)).toBe((8 + 8 * 3) * 10)
    expect(mapBytes({ type: 'lru_percpu_hash', keySize: 4, valueSize: 12, maxEntries: 1 }, 2)).toBe(4 + 16 * 2)
    // The machine's CPUs when not given.
    expect(mapBytes({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: 1 })).toBeGreaterThanOrEqual(12)
  })
})

describe('Lingering', () => {
  test('entries() and from() round-trip; malformed entries are skipped and named', () => {
    const good = { tenant: 'a', kind: 'map' as const, id: 7, share: { maps: 1, bytes: 64 }, fingerprint: 'map 1 4 4 1 0 x' }
    const l = new Lingering()
    l.add(good)
    const bad: unknown[] = []
    const back = Lingering.from(JSON.parse(JSON.stringify([...l.entries(), { ...good, kind: 'btf' }, { ...good, id: -1 }, { ...good, share: { maps: 'x' } }, { ...good, share: { secret: 1 } }, null, 'x'])), (b) => bad.push(b))
    expect(back.entries()).toEqual([good])
    expect(bad).toHaveLength(6)
    expect(Lingering.from({ not: 'a list' }).size).toBe(0)
  })

  test('what the broker let go of counts while its object lives as it was; gone, re-recorded or replaced, it stops', () => {
    const l = new Lingering()
    l.add({ tenant: 't1', kind: 'map', id: 1, share: { maps: 1, bytes: 100 }, fingerprint: 'm1' })
    l.add({ tenant: 't1', kind: 'prog', id: 2, share: { progs: 1 }, fingerprint: 'p2' })
    l.add({ tenant: 't1', kind: 'link', id: 3, share: { links: 1 }, fingerprint: 'l3' })
    l.add({ tenant: 't2', kind: 'map', id: 4, share: { maps: 1, bytes: 7 }, fingerprint: 'm4' })
    const alive = new Map<string, string>([['map:1', 'm1'], ['prog:2', 'p2'], ['link:3', 'l3'], ['map:4', 'm4']])
    const ask = (kind: string, id: number) => alive.get(`${kind}:${id}`)
    const none = () => false
    expect(l.usage('t1', ask, none)).toEqual({ maps: 1, bytes: 100, progs: 1, links: 1, pins: 0, connections: 0 })
    expect(l.usage('t2', ask, none)).toEqual({ maps: 1, bytes: 7, progs: 0, links: 0, pins: 0, connections: 0 })
    // The map died; the program's id now names another program; the link was adopted back (its record counts it meanwhile).
    alive.delete('map:1')
    alive.set('prog:2', 'another')
    expect(l.usage('t1', ask, (kind, id) => kind === 'link' && id === 3)).toEqual({ maps: 0, bytes: 0, progs: 0, links: 0, pins: 0, connections: 0 })
    // Released again, the link counts again; the dead are forgotten for good, even if their fingerprint came back.
    alive.set('prog:2', 'p2')
    expect(l.usage('t1', ask, none)).toEqual({ maps: 0, bytes: 0, progs: 0, links: 1, pins: 0, connections: 0 })
    expect(l.size).toBe(2)
  })
})

describe('Reservations', () => {
  test('check and reserve in one step: a second request sees what the first is making; disposed, it comes back', () => {
    const r = new Reservations()
    const t = tenant({ progs: 2, maps: 3 })
    const first = r.reserve(t, zero, { progs: 1 })
    const second = r.reserve(t, zero, { progs: 1, maps: 3 })
    expect(r.of('t1')).toEqual({ ...zero, progs: 2, maps: 3 })
    expect(refusal(() => r.reserve(t, zero, { progs: 1 })).message).toBe('tenant t1: quota progs is 2 programs; it holds 2 and this needs 1 more')
    // What the tenant holds counts with what is reserved.
    first.release()
    expect(refusal(() => r.reserve(t, { ...zero, progs: 1 }, { progs: 1 })).code).toBe('EDQUOT')
    first.release() // twice is once
    expect(r.of('t1')).toEqual({ ...zero, progs: 1, maps: 3 })
    second[Symbol.dispose]()
    expect(r.of('t1')).toEqual(zero)
    using third = r.reserve(t, zero, { progs: 2 })
    expect(r.of('t1').progs).toBe(2)
    void third
  })
})

describe('usageOf', () => {
  const records = [
    rec('t1', 'map', 1, ['a', 'b']), rec('t1', 'map', 2), rec('t1', 'map', 3, ['c']),
    rec('t1', 'prog', 4), rec('t1', 'prog', 5, ['d']), rec('t1', 'link', 6), rec('t1', 'btf', 7, ['e']),
    rec('t2', 'map', 8, ['x']), rec('t2', 'prog', 9), rec('t2', 'link', 10),
  ]
  const bytes: Record<number, number> = { 1: 100, 2: 20, 8: 5000 }

  test('counts the tenant\'s records by kind, their pins, map bytes, and the connections given', () => {
    const asked: number[] = []
    const u = usageOf('t1', records, (r) => (asked.push(r.id), bytes[r.id] === undefined ? undefined : { bytes: bytes[r.id] }), 3)
    // Map 3's info cannot be read: it counts as a map, its bytes do not. BTF counts against nothing but its pins.
    expect(u).toEqual({ maps: 3, bytes: 120, progs: 2, links: 1, pins: 5, connections: 3 })
    // Bytes are asked for the tenant's maps only.
    expect(asked).toEqual([1, 2, 3])
  })

  test('another tenant\'s records never count', () => {
    expect(usageOf('t2', records, (r) => ({ bytes: bytes[r.id] ?? 0 }), 0)).toEqual({ maps: 1, bytes: 5000, progs: 1, links: 1, pins: 1, connections: 0 })
    expect(usageOf('t3', records, () => ({ bytes: 1 }), 1)).toEqual({ ...zero, connections: 1 })
  })
})

describe('checkQuota', () => {
  test('unset quotas (Infinity) never refuse', () => {
    expect(() => checkQuota(tenant({}), { maps: 1e9, bytes: 1e15, progs: 1e9, links: 1e9, pins: 1e9, connections: 1e9 }, { maps: 1, bytes: 1e15, progs: 1, links: 1, pins: 1, connections: 1 })).not.toThrow()
  })

  test('reaching a quota exactly is allowed; one more is EDQUOT naming the quota, its limit and the usage', () => {
    const t = tenant({ maps: 4 })
    expect(() => checkQuota(t, { ...zero, maps: 3 }, { maps: 1 })).not.toThrow()
    const e = refusal(() => checkQuota(t, { ...zero, maps: 4 }, { maps: 1 }))
    expect(e.code).toBe('EDQUOT')
    expect(e.remote).toBe(false)
    expect(e.message).toBe('tenant t1: quota maps is 4 maps; it holds 4 and this needs 1 more')
  })

  test('every quota is checked, each named in its own words', () => {
    const cases: [keyof Usage, string][] = [
      ['maps', 'tenant t1: quota maps is 1 map; it holds 1 and this needs 2 more'],
      ['bytes', 'tenant t1: quota bytes is 1 byte of maps; it holds 1 and this needs 2 more'],
      ['progs', 'tenant t1: quota progs is 1 program; it holds 1 and this needs 2 more'],
      ['links', 'tenant t1: quota links is 1 link; it holds 1 and this needs 2 more'],
      ['pins', 'tenant t1: quota pins is 1 pin; it holds 1 and this needs 2 more'],
      ['connections', 'tenant t1: quota connections is 1 connection; it holds 1 and this needs 2 more'],
    ]
    for (const [k, message] of cases) {
      const e = refusal(() => checkQuota(tenant({ [k]: 1 }), { ...zero, [k]: 1 }, { [k]: 2 }))
      expect(e.code).toBe('EDQUOT')
      expect(e.message).toBe(message)
    }
  })

  test('a quota of 0 refuses the first one', () => {
    const e = refusal(() => checkQuota(tenant({ bytes: 0 }), zero, { bytes: 4 }))
    expect(e.message).toBe('tenant t1: quota bytes is 0 bytes of maps; it holds 0 and this needs 4 more')
  })

  test('only what is added is checked: a tenant already over one quota may still add what another quota allows', () => {
    const t = tenant({ maps: 1, progs: 5 })
    expect(() => checkQuota(t, { ...zero, maps: 3 }, { progs: 1 })).not.toThrow()
    expect(() => checkQuota(t, { ...zero, maps: 3 }, { maps: 0 })).not.toThrow()
    expect(() => checkQuota(t, { ...zero, maps: 3 }, {})).not.toThrow()
    expect(refusal(() => checkQuota(t, { ...zero, maps: 3 }, { progs: 1, maps: 1 })).message).toMatch(/^tenant t1: quota maps is 1 map;/)
  })

  test('a request that passes two quotas names the first in the order maps, bytes, progs, links, pins, connections', () => {
    const t = tenant({ maps: 1, bytes: 10 })
    expect(refusal(() => checkQuota(t, zero, { bytes: 11, maps: 2 })).message).toMatch(/quota maps/)
    expect(refusal(() => checkQuota(t, zero, { bytes: 11, maps: 1 })).message).toMatch(/quota bytes is 10 bytes of maps; it holds 0 and this needs 11 more/)
  })
})

// The guard's share of a tenant's quota is maps and bytes; syncGuard hands
// them over with the tenant's match and policy. A recording stand-in for the
// guard shows the calls (the guard itself runs only in the VMs: trampolines).
describe('syncGuard', () => {
  type Call = [string, string, unknown?]
  function recorder() {
    const calls: Call[] = []
    const guard = {
      setTenant: (name: string, options: unknown) => void calls.push(['set', name, options]),
      removeTenant: (name: string) => (calls.push(['remove', name]), true),
    }
    return { calls, guard: guard as unknown as Guard }
  }
  const policy = {} as ResolvedTenant['policy']
  function guarded(name: string, match: ResolvedTenant['match'], quota: Partial<ResolvedTenant['quota']> = {}, on = true): ResolvedTenant {
    return { ...tenant(quota), name, match, policy, guard: on }
  }
  const cg = (dir: string) => ({ path: dir.replace('/sys/fs/cgroup/unified', ''), dir, id: 99n })

  test('registers guarded tenants with their cgroup directory, user namespace inode, policy and finite map quotas', () => {
    const { calls, guard } = recorder()
    const next = syncGuard(guard, [
      guarded('a', { cgroup: cg('/sys/fs/cgroup/unified/t/a'), userns: 4026532000 }, { maps: 3, bytes: 4096, progs: 1 }),
      guarded('b', { userns: 4026532001, uid: [1000] }),
      guarded('c', { cgroup: cg('/sys/fs/cgroup/unified/t/c') }, {}, false),
    ], new Set())
    expect(calls).toEqual([
      ['set', 'a', { match: { cgroup: '/sys/fs/cgroup/unified/t/a', userns: 4026532000 }, policy, quota: { maps: 3, bytes: 4096 } }],
      ['set', 'b', { match: { userns: 4026532001 }, policy, quota: {} }],
    ])
    expect([...next]).toEqual(['a', 'b'])
  })

  test('names gone from the tenants, or no longer guarded, are removed first', () => {
    const { calls, guard } = recorder()
    const next = syncGuard(guard, [guarded('a', { userns: 5 }), guarded('b', { userns: 6 }, {}, false)], new Set(['a', 'b', 'old']))
    expect(calls.map(([op, name]) => `${op} ${name}`)).toEqual(['remove b', 'remove old', 'set a'])
    expect([...next]).toEqual(['a'])
    expect(syncGuard(recorder().guard, [], new Set(['a'])).size).toBe(0)
  })

  test('a guarded tenant matched only by uid or a non-initial user namespace gives the guard nothing: TypeError, and the guard is not touched', () => {
    for (const match of [{ uid: [1000] }, { userns: 'non-initial' as const }]) {
      const { calls, guard } = recorder()
      expect(() => syncGuard(guard, [guarded('a', { userns: 5 }), guarded('z', match)], new Set(['gone']))).toThrow(/^tenant z: guard is on but its match has neither a cgroup nor a user namespace inode/)
      expect(calls).toEqual([])
    }
  })

  test('a refusal partway unregisters the names that call added, and only those (the caller re-syncs what it had)', () => {
    const { calls, guard } = recorder()
    const set = (guard as unknown as { setTenant: (n: string, o: unknown) => void }).setTenant
    ;(guard as unknown as { setTenant: (n: string, o: unknown) => void }).setTenant = (name, options) => {
      if (name === 'c') throw new RangeError('guard.setTenant: 64 tenants')
      set(name, options)
    }
    expect(() => syncGuard(guard, [guarded('kept', { userns: 5 }), guarded('new', { userns: 6 }), guarded('c', { userns: 7 })], new Set(['kept', 'gone'])))
      .toThrow('tenant c: guard.setTenant: 64 tenants')
    expect(calls.map(([op, name]) => `${op} ${name}`)).toEqual(['remove gone', 'set kept', 'set new', 'remove new'])
  })

  test('the guard\'s own refusal names the tenant', () => {
    const guard = { setTenant: () => { throw new TypeError("guard.setTenant: tenant 'x' already matches userns 5") }, removeTenant: () => true } as unknown as Guard
    expect(() => syncGuard(guard, [guarded('a', { userns: 5 })], new Set())).toThrow("tenant a: guard.setTenant: tenant 'x' already matches userns 5")
  })
})
