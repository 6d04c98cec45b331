// Who owns what (lib/broker/scope.ts, plan §4.3): the registry over
// discovery, made over adopted, pinned over cgroup over held within one
// tenant, 'shared' for what two tenants reach and no record claims; and
// redaction of other objects' ids from info.
import { describe, expect, test } from 'vitest'
import type { Discovered, Ref } from '../../lib/broker/discovery.js'
import type { Kind } from '../../lib/broker/protocol.js'
import type { RegistryRecord } from '../../lib/broker/registry.js'
import { redact, resolveOwners, visible } from '../../lib/broker/scope.js'

function rec(tenant: string, kind: Kind, id: number, origin: 'made' | 'adopted' = 'made', pins: string[] = []): RegistryRecord {
  return { tenant, kind, id, origin, name: `${kind}${id}`, createdAt: '2026-01-01T00:00:00.000Z', pins }
}

function found(d: { held?: Ref[]; cgroup?: Ref[]; pinned?: Record<Ref, string[]> }): Discovered {
  return { held: new Set(d.held ?? []), cgroup: new Set(d.cgroup ?? []), pinned: new Map(Object.entries(d.pinned ?? {}) as [Ref, string[]][]), at: 0 }
}

const none = new Map<string, Discovered>()

describe('resolveOwners: the registry', () => {
  test('a made and an adopted record each belong to their tenant, with the record\'s pin names', () => {
    const o = resolveOwners([rec('a', 'map', 1, 'made', ['counts']), rec('b', 'prog', 2, 'adopted')], none)
    expect(o.of('map:1')).toEqual({ owner: 'a', origin: 'made', pins: ['counts'] })
    expect(o.of('prog:2')).toEqual({ owner: 'b', origin: 'adopted', pins: [] })
    expect(o.of('map:2')).toBeUndefined()
  })

  test('made wins over adopted for one object, in either order', () => {
    for (const records of [[rec('a', 'map', 1, 'adopted'), rec('b', 'map', 1, 'made')], [rec('b', 'map', 1, 'made'), rec('a', 'map', 1, 'adopted')]]) {
      const o = resolveOwners(records, none)
      expect(o.of('map:1')).toMatchObject({ owner: 'b', origin: 'made' })
      expect(visible(o, 'a', 'map', 1)).toBe(false)
    }
  })

  test('among records of equal rank the first stands', () => {
    const o = resolveOwners([rec('a', 'map', 1, 'adopted'), rec('b', 'map', 1, 'adopted')], none)
    expect(o.of('map:1')?.owner).toBe('a')
  })

  test('a record wins over any tenant\'s discovery: the registered owner keeps it, whoever else holds or pins it', () => {
    const discovered = new Map([
      ['b', found({ held: ['map:1'], pinned: { 'prog:2': ['/sys/fs/bpf/stolen'] }, cgroup: ['link:3'] })],
    ])
    const o = resolveOwners([rec('a', 'map', 1), rec('a', 'prog', 2, 'adopted'), rec('a', 'link', 3)], discovered)
    for (const ref of ['map:1', 'prog:2', 'link:3'] as const) expect(o.of(ref)?.owner).toBe('a')
    expect(o.of('prog:2')).toEqual({ owner: 'a', origin: 'adopted', pins: [] }) // b's pin path is not shown to a
    expect(visible(o, 'b', 'map', 1)).toBe(false)
    expect(o.refsOf('b')).toEqual([])
  })

  test('the registered owner\'s own pins found by discovery are listed after the record\'s names, once', () => {
    const discovered = new Map([['a', found({ pinned: { 'map:1': ['/sys/fs/bpf/x', 'counts'] } })]])
    const o = resolveOwners([rec('a', 'map', 1, 'made', ['counts'])], discovered)
    expect(o.of('map:1')).toEqual({ owner: 'a', origin: 'made', pins: ['counts', '/sys/fs/bpf/x'] })
  })

  test('a record\'s pin found again under tenantPinRoot (discovery walks it) is listed once, by its name', () => {
    const discovered = new Map([['a', found({ pinned: { 'map:1': ['/sys/fs/bpf/tenants/a/counts', '/sys/fs/bpf/tenants/a/other'] } })]])
    const o = resolveOwners([rec('a', 'map', 1, 'made', ['counts'])], discovered, { tenantPinRoot: '/sys/fs/bpf/tenants' })
    expect(o.of('map:1')?.pins).toEqual(['counts', '/sys/fs/bpf/tenants/a/other'])
  })

  test('the record\'s pins array is copied, not shared', () => {
    const r = rec('a', 'map', 1, 'made', ['p'])
    const o = resolveOwners([r], new Map([['a', found({ pinned: { 'map:1': ['/q'] } })]]))
    expect(r.pins).toEqual(['p'])
    expect(o.of('map:1')?.pins).toEqual(['p', '/q'])
  })
})

describe('resolveOwners: discovery', () => {
  test('one tenant\'s discovery: pinned over cgroup over held, pins kept', () => {
    const o = resolveOwners([], new Map([
      ['a', found({
        held: ['map:1', 'map:2', 'link:3', 'prog:4'],
        cgroup: ['link:3', 'prog:5'],
        pinned: { 'map:1': ['/sys/fs/bpf/m'], 'link:3': ['/sys/fs/bpf/l'] },
      })],
    ]))
    expect(o.of('map:1')).toEqual({ owner: 'a', origin: 'pinned', pins: ['/sys/fs/bpf/m'] })
    expect(o.of('map:2')).toEqual({ owner: 'a', origin: 'held', pins: [] })
    expect(o.of('link:3')).toEqual({ owner: 'a', origin: 'pinned', pins: ['/sys/fs/bpf/l'] })
    expect(o.of('prog:4')).toEqual({ owner: 'a', origin: 'held', pins: [] })
    expect(o.of('prog:5')).toEqual({ owner: 'a', origin: 'cgroup', pins: [] })
  })

  test('cgroup over held', () => {
    const o = resolveOwners([], new Map([['a', found({ held: ['link:9'], cgroup: ['link:9'] })]]))
    expect(o.of('link:9')?.origin).toBe('cgroup')
  })

  test('an object two tenants reach and no record claims is shared: visible to neither, listed for neither', () => {
    const o = resolveOwners([], new Map([
      ['a', found({ held: ['map:1'], pinned: { 'map:7': ['/a/p'] } })],
      ['b', found({ held: ['map:7'], cgroup: ['map:1'] })],
    ]))
    expect(o.of('map:1')).toEqual({ owner: 'shared', origin: 'cgroup', pins: [], shared: true })
    expect(o.of('map:7')).toEqual({ owner: 'shared', origin: 'pinned', pins: ['/a/p'], shared: true })
    for (const t of ['a', 'b']) {
      expect(visible(o, t, 'map', 1)).toBe(false)
      expect(visible(o, t, 'map', 7)).toBe(false)
      expect(o.refsOf(t)).toEqual([])
    }
    expect(o.refsOf('shared')).toEqual([])
  })

  test('a tenant named "shared" does not see shared objects', () => {
    const o = resolveOwners([], new Map([['a', found({ held: ['map:1'] })], ['b', found({ held: ['map:1'] })], ['shared', found({})]]))
    expect(visible(o, 'shared', 'map', 1)).toBe(false)
  })

  test('a shared object is still one record\'s once a tenant adopts it', () => {
    const o = resolveOwners([rec('b', 'map', 1, 'adopted')], new Map([['a', found({ held: ['map:1'] })], ['b', found({ held: ['map:1'] })]]))
    expect(o.of('map:1')).toEqual({ owner: 'b', origin: 'adopted', pins: [] })
    expect(visible(o, 'b', 'map', 1)).toBe(true)
    expect(visible(o, 'a', 'map', 1)).toBe(false)
  })

  test('a tenant whose discovery found nothing sees nothing', () => {
    const o = resolveOwners([], new Map([['a', found({ held: ['map:1'] })], ['b', found({})]]))
    expect(o.refsOf('b')).toEqual([])
    expect(visible(o, 'b', 'map', 1)).toBe(false)
  })
})

describe('resolveOwners: the BTF a tenant\'s maps and programs use', () => {
  const uses = (table: Record<string, number>) => (ref: Ref) => table[ref]

  test('a made program\'s BTF is its tenant\'s, made; an adopted map\'s is adopted', () => {
    const o = resolveOwners([rec('a', 'prog', 1), rec('b', 'map', 2, 'adopted')], none, { btfOf: uses({ 'prog:1': 10, 'map:2': 20 }) })
    expect(o.of('btf:10')).toEqual({ owner: 'a', origin: 'made', pins: [] })
    expect(o.of('btf:20')).toEqual({ owner: 'b', origin: 'adopted', pins: [] })
    expect(o.refsOf('a')).toContain('btf:10')
    expect(o.refsOf('b')).not.toContain('btf:10')
  })

  test('BTF used by two tenants\' objects is shared: neither sees it', () => {
    const o = resolveOwners([rec('a', 'prog', 1), rec('b', 'map', 2)], none, { btfOf: uses({ 'prog:1': 10, 'map:2': 10 }) })
    expect(o.of('btf:10')).toMatchObject({ owner: 'shared', shared: true })
    expect(visible(o, 'a', 'btf', 10)).toBe(false)
    expect(visible(o, 'b', 'btf', 10)).toBe(false)
  })

  test('a record\'s BTF stays its owner\'s when another tenant\'s task holds it; discovered objects\' BTF fills gaps only', () => {
    const discovered = new Map([
      ['b', found({ held: ['btf:10', 'map:3'] })],
      ['c', found({ held: ['prog:4'] })],
    ])
    const o = resolveOwners([rec('a', 'prog', 1)], discovered, { btfOf: uses({ 'prog:1': 10, 'map:3': 30, 'prog:4': 10 }) })
    expect(o.of('btf:10')).toEqual({ owner: 'a', origin: 'made', pins: [] })
    expect(o.of('btf:30')).toEqual({ owner: 'b', origin: 'held', pins: [] })
  })

  test('objects without BTF, links, and shared objects derive nothing', () => {
    const discovered = new Map([['a', found({ held: ['map:5'] })], ['b', found({ held: ['map:5'] })]])
    const asked: Ref[] = []
    const o = resolveOwners([rec('a', 'link', 6), rec('a', 'map', 7)], discovered, { btfOf: (ref) => { asked.push(ref); return undefined } })
    expect(asked).toEqual(['map:7'])
    expect([...o.all().keys()].filter((r) => r.startsWith('btf:'))).toEqual([])
  })
})

describe('visible, refsOf, all', () => {
  const o = resolveOwners([rec('a', 'map', 7), rec('a', 'prog', 8)], new Map([['a', found({ held: ['btf:9'] })], ['b', found({ held: ['link:7'] })]]))

  test('an id is visible only under its own kind and only to its owner', () => {
    expect(visible(o, 'a', 'map', 7)).toBe(true)
    expect(visible(o, 'a', 'prog', 7)).toBe(false)
    expect(visible(o, 'a', 'link', 7)).toBe(false)
    expect(visible(o, 'b', 'link', 7)).toBe(true)
    expect(visible(o, 'b', 'map', 7)).toBe(false)
    expect(visible(o, 'a', 'map', 70)).toBe(false)
    expect(visible(o, 'nobody', 'map', 7)).toBe(false)
  })

  test('refsOf lists registry objects first, then discovered ones', () => {
    expect(o.refsOf('a')).toEqual(['map:7', 'prog:8', 'btf:9'])
    expect(o.refsOf('b')).toEqual(['link:7'])
  })

  test('all() is a copy', () => {
    const all = o.all()
    expect([...all.keys()].sort()).toEqual(['btf:9', 'link:7', 'map:7', 'prog:8'])
    all.delete('map:7')
    expect(o.of('map:7')).toBeDefined()
  })
})

describe('redact', () => {
  const mine = new Set(['map:1', 'prog:2', 'btf:3', 'link:4'])
  const isVisible = (kind: Kind, id: number) => mine.has(`${kind}:${id}`)

  test('a program: foreign map ids are dropped, a foreign btfId becomes 0, the rest stays', () => {
    const info = { id: 2, type: 'socket_filter', name: 'p', mapIds: [1, 50, 51], btfId: 60, loadTime: 5n }
    expect(redact('prog', info, isVisible)).toEqual({ id: 2, type: 'socket_filter', name: 'p', mapIds: [1], btfId: 0, loadTime: 5n })
    expect(redact('prog', { ...info, btfId: 3 }, isVisible)).toMatchObject({ btfId: 3 })
    // The input is not changed.
    expect(info.mapIds).toEqual([1, 50, 51])
    expect(info.btfId).toBe(60)
  })

  test('a map: a foreign btfId becomes 0, its own stays', () => {
    expect(redact('map', { id: 1, btfId: 60, keySize: 4 }, isVisible)).toEqual({ id: 1, btfId: 0, keySize: 4 })
    expect(redact('map', { id: 1, btfId: 3 }, isVisible)).toEqual({ id: 1, btfId: 3 })
  })

  test('a link: foreign progId and mapId become 0; cgroup id, ifindex, netns inode stay', () => {
    const info = { id: 4, type: 'cgroup', progId: 77, mapId: 78, cgroupId: 1234n, ifindex: 5, netnsIno: 4026531840 }
    expect(redact('link', info, isVisible)).toEqual({ id: 4, type: 'cgroup', progId: 0, mapId: 0, cgroupId: 1234n, ifindex: 5, netnsIno: 4026531840 })
    expect(redact('link', { id: 4, progId: 2, mapId: 1 }, isVisible)).toEqual({ id: 4, progId: 2, mapId: 1 })
  })

  test('a tracing link\'s targetObjId stays when visible as a program or as BTF, else becomes 0', () => {
    expect(redact('link', { id: 4, progId: 2, targetObjId: 2, targetBtfId: 100 }, isVisible)).toMatchObject({ targetObjId: 2, targetBtfId: 100 })
    expect(redact('link', { id: 4, progId: 2, targetObjId: 3, targetBtfId: 100 }, isVisible)).toMatchObject({ targetObjId: 3 })
    expect(redact('link', { id: 4, progId: 2, targetObjId: 99, targetBtfId: 100 }, isVisible)).toMatchObject({ targetObjId: 0, targetBtfId: 100 })
  })

  test('zero ids (none) are not looked up and stay 0; missing fields stay missing', () => {
    const asked: string[] = []
    const spy = (kind: Kind, id: number) => (asked.push(`${kind}:${id}`), false)
    expect(redact('link', { id: 4, progId: 0, targetObjId: 0 }, spy)).toEqual({ id: 4, progId: 0, targetObjId: 0 })
    expect(redact('prog', { id: 2, mapIds: [], btfId: 0 }, spy)).toEqual({ id: 2, mapIds: [], btfId: 0 })
    expect(asked).toEqual([])
    expect(redact('link', { id: 4 }, spy)).toEqual({ id: 4 })
  })

  test('BTF info has no other objects\' ids: unchanged', () => {
    const info = { id: 3, name: 'vmlinux', size: 100, kernelBtf: true }
    expect(redact('btf', info, () => false)).toEqual(info)
  })

  test('the object\'s own id is never redacted', () => {
    for (const kind of ['map', 'prog', 'link', 'btf'] as const) expect(redact(kind, { id: 999 }, () => false)).toEqual({ id: 999 })
  })
})
