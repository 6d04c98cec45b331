// Quotas that a tenant could walk past: releasing an
// object it still holds and making another; racing creates on two
// connections; collection maps and their bytes; ringbuf and per-CPU sizes.
// Tenants are real peers (test/kernel/helpers/broker.ts).
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { BrokerError } from '../../lib/broker/errors.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import { ElfFile } from '../../lib/collection/elf.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { kernel, native } from '../../lib/sys/index.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'
import { startBroker, type Broker } from '../../lib/broker/server.js'
import { repoRoot } from './helpers/raw.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

/** The code a broker call rejects with ('ok' when it succeeds; what it made is closed). */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p
    closeIt(v)
    return 'ok'
  } catch (e) {
    if (!(e instanceof BrokerError)) throw e
    return String(e.code)
  }
}

function closeIt(v: unknown): void {
  if (v && typeof (v as { close?: unknown }).close === 'function') (v as { close(): void }).close()
  else if (v && typeof v === 'object') for (const x of Object.values(v)) closeIt(x)
}

/** Polls `f` until it is true (objects die when their last fd closes; a link's id goes a little later). */
async function until(f: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await f())) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 20))
  }
}

const tinyArray = { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } as const
const passAll = { type: 'socket_filter' as const, license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] }

/**
 * legacy-maps.bpf.o with its two SEC("maps") definitions rewritten: five u32
 * each (type, key_size, value_size, max_entries, map_flags).
 */
function legacyObject(defs: [number, number, number, number, number][]): Uint8Array {
  const bytes = Uint8Array.from(readFileSync(join(repoRoot, 'test/fixtures/bpf/legacy-maps.bpf.o')))
  const elf = new ElfFile(bytes)
  const at = elf.section('maps')!.offset
  const view = new DataView(bytes.buffer)
  defs.forEach((d, i) => d.forEach((w, j) => view.setUint32(at + 20 * i + 4 * j, w, true)))
  return bytes
}

describe('broker: quotas', () => {
  skipAllIf(why)
  let tb: TestBroker

  beforeAll(async () => {
    if (why) return
    tb = await startTestBroker({
      tenants: [
        { name: 'rel', quota: { maps: 1, progs: 1 } },
        { name: 'race', quota: { maps: 2, progs: 2 } },
        { name: 'coll', quota: { maps: 4, bytes: 4096 } },
        { name: 'size', quota: { bytes: 64 * 1024 } },
      ],
      limits: { maxConnectionsPerTenant: 16 },
    })
  }, 60_000)

  // The broker a test restarted on the same state (tb.close() closes only the one it started).
  let restarted: Broker | undefined

  afterAll(async () => {
    await restarted?.close()
    await tb?.close()
  })

  test('release of an object still held does not give its quota back: it counts while it lives', async () => {
    using c = await tb.tenant('rel').client()
    const first = await c.createMap({ ...tinyArray, name: 'first' })
    const firstId = first.id
    // The tenant's own task holds it, as a tenant would after making it.
    await tb.tenant('rel').hold([first.fd])
    first.close()
    await c.release('map', firstId)
    expect(await outcome(c.createMap({ ...tinyArray, name: 'second' }))).toBe('EDQUOT')
    const e = await c.createMap({ ...tinyArray, name: 'second' }).catch((x: unknown) => x as BrokerError)
    expect((e as BrokerError).message).toMatch(/quota maps is 1 map; it holds 1/)
    // Once the last holder lets go the object is gone, and so is its share.
    await tb.tenant('rel').drop()
    await until(() => {
      try {
        native.closeFd(native.mapGetFdById(firstId))
        return false
      } catch {
        return true
      }
    })
    using second = await c.createMap({ ...tinyArray, name: 'second' })
    expect(second.id).not.toBe(firstId)
    await c.release('map', second.id)
  })

  test('a restart keeps counting what the broker let go of (released.json in its state directory)', async () => {
    {
      using c = await tb.tenant('rel').client()
      const kept = await c.createMap({ ...tinyArray, name: 'kept' })
      const keptId = kept.id
      await tb.tenant('rel').hold([kept.fd])
      kept.close()
      await c.release('map', keptId)
      const saved = JSON.parse(readFileSync(join(tb.stateDir, 'released.json'), 'utf8')) as { tenant: string; id: number }[]
      expect(saved).toEqual([expect.objectContaining({ tenant: 'rel', kind: 'map', id: keptId, share: { maps: 1, bytes: 8 } })])
    }
    const config = tb.broker.state.config
    await tb.broker.close()
    restarted = await startBroker(config)
    using c = await tb.tenant('rel').client()
    expect(await outcome(c.createMap({ ...tinyArray, name: 'second' }))).toBe('EDQUOT')
    // Once the tenant lets go, the object goes, and with it its share (and its entry in the file).
    await tb.tenant('rel').drop()
    let second: Awaited<ReturnType<BrokerClient['createMap']>> | undefined
    await until(async () => (second = await c.createMap({ ...tinyArray, name: 'second' }).catch(() => undefined)) !== undefined)
    expect(JSON.parse(readFileSync(join(tb.stateDir, 'released.json'), 'utf8'))).toEqual([])
    const secondId = second!.id
    second!.close()
    await c.release('map', secondId)
  })

  test('adopting back what the broker made and releasing it again does not launder it', async () => {
    using c = await tb.tenant('rel').client()
    using map = await c.createMap({ ...tinyArray, name: 'again' })
    await c.release('map', map.id)
    const [view] = await c.adopt([map])
    expect(view).toMatchObject({ kind: 'map', id: map.id, origin: 'adopted' })
    // Counted once while adopted: by its record.
    expect(await outcome(c.createMap({ ...tinyArray, name: 'other' }))).toBe('EDQUOT')
    await c.release('map', map.id)
    expect(await outcome(c.createMap({ ...tinyArray, name: 'other' }))).toBe('EDQUOT')
  })

  test('release of a program still held does not give its quota back either', async () => {
    using c = await tb.tenant('rel').client()
    const prog = await c.loadProgram({ ...passAll, name: 'p1' })
    const id = prog.id
    await c.release('prog', id)
    expect(await outcome(c.loadProgram({ ...passAll, name: 'p2' }))).toBe('EDQUOT')
    prog.close()
    await until(async () => (await outcome(c.loadProgram({ ...passAll, name: 'p3' }).then(async (p) => {
      await c.release('prog', p.id)
      return p
    }))) === 'ok')
  })

  test('two connections racing creates stop at the quota (maps 2, progs 2)', async () => {
    const clients: BrokerClient[] = []
    try {
      for (let i = 0; i < 6; i++) clients.push(await tb.tenant('race').client())
      const progs = await Promise.all(clients.map((c, i) => outcome(c.loadProgram({ ...passAll, name: `race${i}` }))))
      expect(progs.filter((o) => o === 'ok')).toHaveLength(2)
      expect(progs.filter((o) => o !== 'ok').every((o) => o === 'EDQUOT')).toBe(true)
      // A collection's maps (awaited on a worker while programs load) and map_create in between.
      const elf = legacyObject([[kernel.mapTypes.array, 4, 8, 4, 0], [kernel.mapTypes.array, 4, 8, 4, 0]])
      const mixed = await Promise.all(clients.map((c, i) => outcome(i % 2 === 0 ? c.loadCollection(elf, { programs: [] }) : c.createMap({ ...tinyArray, name: `m${i}` }))))
      const views = await clients[0].list({ kinds: ['map'], origins: ['made'] })
      expect(views.length, JSON.stringify(mixed)).toBeLessThanOrEqual(2)
      for (const v of await clients[0].list({ origins: ['made'] })) await clients[0].release(v.kind, v.id)
    } finally {
      for (const c of clients) c.close()
    }
  })

  test('a collection\'s maps count their bytes against the quota (bytes 4096)', async () => {
    using c = await tb.tenant('coll').client()
    // 2 × (4 + 8) × 1000 bytes, far over 4096.
    const big = legacyObject([[kernel.mapTypes.array, 4, 8, 1000, 0], [kernel.mapTypes.array, 4, 8, 1000, 0]])
    const e = await c.loadCollection(big, { programs: [] }).then((v) => {
      closeIt(v)
      return undefined
    }, (x: unknown) => x as BrokerError)
    expect(e?.code).toBe('EDQUOT')
    expect(e?.message).toMatch(/quota bytes is 4096 bytes of maps; it holds 0 and this needs 24000 more/)
    expect(await c.list({ origins: ['made'] })).toEqual([])
    // Within the quota: (4 + 8) × 100 × 2 = 2400 bytes.
    const small = legacyObject([[kernel.mapTypes.array, 4, 8, 100, 0], [kernel.mapTypes.array, 4, 8, 100, 0]])
    const { maps } = await c.loadCollection(small, { programs: [] })
    expect(Object.keys(maps).sort()).toEqual(['legacy_array', 'legacy_hash'])
    for (const m of Object.values(maps)) {
      await c.release('map', m.id)
      m.close()
    }
  })

  test('a ring buffer counts its max_entries as bytes; a per-CPU map its values once per possible CPU', async () => {
    using c = await tb.tenant('size').client()
    // 1 MiB of ring: key and value sizes are 0, so (key + value) × entries would be 0.
    expect(await outcome(c.createMap({ type: 'ringbuf', maxEntries: 1 << 20 } as never))).toBe('EDQUOT')
    using ring = await c.createMap({ type: 'ringbuf', maxEntries: 16 * 1024 } as never)
    const cpus = native.possibleCpus()
    // 4 + 8 × cpus per entry: past 64 KiB with 2 CPUs or more, within it counted once.
    const entries = Math.floor((64 * 1024 - 16 * 1024) / 12)
    const perCpu = outcome(c.createMap({ type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: entries }))
    expect(await perCpu).toBe(cpus > 1 ? 'EDQUOT' : 'ok')
    for (const v of await c.list({ origins: ['made'] })) await c.release(v.kind, v.id)
  })
})
