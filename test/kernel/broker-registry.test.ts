// The broker's registry (lib/broker/registry.ts, plan §5) on a real bpffs the
// test mounts itself: objects pinned at <pinRoot>/<tenant>/<kind>/<id>, then
// registry.json written atomically; on open, pins and records reconciled
// both ways; and the two kill -9 windows of add(), crashed for real in a
// child process.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfMap, BpfProgram, Btf } from '../../lib/index.js'
import { Registry, type RegistryRecord } from '../../lib/broker/registry.js'
import { BrokerError } from '../../lib/broker/errors.js'
import { btfInfoByFd, linkInfoByFd, mapInfoByFd, progInfoByFd } from '../../lib/sys/index.js'
import type { Kind } from '../../lib/broker/protocol.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'
import { intBtf, repoRoot } from './helpers/raw.js'

let fs: ReturnType<typeof privateBpffs>
let stateDir: string
let pinRoot: string
let lines: string[]
const log = (line: string) => lines.push(line)

beforeEach(() => {
  fs = privateBpffs()
  pinRoot = join(fs.path, 'broker')
  stateDir = mkdtempSync(join(tmpdir(), 'bpfkit-registry-'))
  lines = []
})

afterEach(() => {
  // Unmounting the private bpffs drops every pin, so the objects die with it.
  fs[Symbol.dispose]()
  rmSync(stateDir, { recursive: true, force: true })
})

const file = () => join(stateDir, 'registry.json')
const saved = () => JSON.parse(readFileSync(file(), 'utf8')) as { version: number; pinRoot: string; objects: RegistryRecord[] }
const idOf = (kind: Kind, fd: number) => ({ map: mapInfoByFd, prog: progInfoByFd, link: linkInfoByFd, btf: btfInfoByFd })[kind](fd).id
const mode = (path: string) => statSync(path).mode & 0o777
const newMap = (name = 'regmap') => BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4, name })
const newProg = () => BpfProgram.load({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL', name: 'regprog' })

describe('Registry.open', () => {
  test('makes pinRoot and stateDir (0700) and writes an empty registry', () => {
    const dir = join(stateDir, 'deeper', 'state')
    const r = Registry.open(dir, pinRoot)
    expect(r.pinRoot).toBe(pinRoot)
    expect(r.records()).toEqual([])
    expect(mode(pinRoot)).toBe(0o700)
    expect(mode(dir)).toBe(0o700)
    expect(JSON.parse(readFileSync(join(dir, 'registry.json'), 'utf8'))).toEqual({ version: 1, pinRoot, objects: [] })
    expect(mode(join(dir, 'registry.json'))).toBe(0o600)
    expect(existsSync(join(dir, 'registry.json.tmp'))).toBe(false)
  })

  test('a pinRoot outside a bpffs is a TypeError, and nothing is made there', () => {
    const outside = join(stateDir, 'not-bpffs', 'pins')
    expect(() => Registry.open(stateDir, outside)).toThrow(TypeError)
    expect(() => Registry.open(stateDir, outside)).toThrow(/pinRoot .* is not in a bpffs/)
    expect(existsSync(join(stateDir, 'not-bpffs'))).toBe(false)
  })
})

describe('add, find, openObject, remove', () => {
  test('maps, programs and links are pinned at <pinRoot>/<tenant>/<kind>/<id> (dirs 0700), recorded and saved', async () => {
    using cg = childCgroup()
    const r = Registry.open(stateDir, pinRoot, { log })
    using map = newMap()
    using prog = await newProg()
    using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    const added = [
      r.add('a', 'map', map.fd, 'made', 'counts'),
      r.add('a', 'prog', prog.fd, 'adopted', 'regprog'),
      r.add('b', 'link', link.fd, 'made', 'egress'),
    ]
    const ids = { map: map.id, prog: prog.id, link: link.id, btf: 0 }
    for (const rec of added) {
      expect(rec.id).toBe(ids[rec.kind])
      expect(rec.pins).toEqual([])
      expect(Date.parse(rec.createdAt)).toBeGreaterThan(Date.now() - 60_000)
      const path = r.pinPathOf(rec)
      expect(path).toBe(join(pinRoot, rec.tenant, rec.kind, String(rec.id)))
      expect(existsSync(path)).toBe(true)
      expect(mode(join(pinRoot, rec.tenant))).toBe(0o700)
      expect(mode(join(pinRoot, rec.tenant, rec.kind))).toBe(0o700)
      expect(r.find(rec.kind, rec.id)).toBe(rec)
    }
    expect(added[0]).toMatchObject({ tenant: 'a', kind: 'map', origin: 'made', name: 'counts' })
    expect(added[1]).toMatchObject({ tenant: 'a', kind: 'prog', origin: 'adopted', name: 'regprog' })
    expect(r.forTenant('a').map((x) => x.kind)).toEqual(['map', 'prog'])
    expect(r.forTenant('b').map((x) => x.kind)).toEqual(['link'])
    expect(r.forTenant('c')).toEqual([])
    expect(r.find('map', ids.prog)).toBeUndefined()
    expect(saved()).toEqual({ version: 1, pinRoot, objects: JSON.parse(JSON.stringify(added)) })

    // openObject: a fresh fd from the broker pin, for exactly that object.
    for (const rec of added) {
      using fd = r.openObject(rec)
      expect(fd.kind).toBe(rec.kind)
      expect(idOf(rec.kind, fd.fd)).toBe(ids[rec.kind])
    }

    // remove: the broker pin and the record go; the object lives on while we hold it.
    expect(r.remove('map', ids.map)).toBe(added[0])
    expect(existsSync(r.pinPathOf(added[0]))).toBe(false)
    expect(r.find('map', ids.map)).toBeUndefined()
    expect(saved().objects.map((o) => o.kind)).toEqual(['prog', 'link'])
    expect(map.id).toBe(ids.map)
    expect(r.remove('map', ids.map)).toBeUndefined()
    expect(() => r.openObject(added[0])).toThrow(BrokerError)
    expect(lines).toEqual([])
  })

  test('setPins replaces the tenant pin names and saves', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    const rec = r.add('a', 'map', map.fd, 'made', 'm')
    r.setPins(rec, ['one', 'two'])
    expect(r.find('map', map.id)?.pins).toEqual(['one', 'two'])
    expect(saved().objects[0].pins).toEqual(['one', 'two'])
    expect(() => r.setPins({ ...rec, tenant: 'b' }, [])).toThrow(/not registered for tenant b/)
  })

  test('refusals: a fd of another kind, an object already registered, a tenant name bpffs or a path cannot take', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    expect(() => r.add('a', 'prog', map.fd, 'made', 'x')).toThrow(/fd \d+ is a map, not a prog/)
    r.add('a', 'map', map.fd, 'made', 'x')
    let err: unknown
    try {
      r.add('b', 'map', map.fd, 'adopted', 'x')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(BrokerError)
    expect(err).toMatchObject({ code: 'EEXIST', message: `map ${map.id} is already registered (made for tenant a)` })
    using other = newMap()
    for (const bad of ['a.b', '../x', 'a/b', '', 'x'.repeat(64)]) expect(() => r.add(bad, 'map', other.fd, 'made', 'x')).toThrow(TypeError)
    expect(() => r.add('a', 'token' as never, other.fd, 'made', 'x')).toThrow(TypeError)
    // The kernel pins programs, maps and links, never BTF: a BTF object cannot outlive the broker by a pin.
    using btf = Btf.loadSync(intBtf())
    expect(() => r.add('a', 'btf', btf.fd, 'made', 'types')).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/^BTF objects cannot be pinned in a bpffs/) }))
    expect(existsSync(join(pinRoot, 'a', 'btf'))).toBe(false)
    // Nothing of the refusals was pinned or recorded.
    expect(r.records()).toHaveLength(1)
    expect(saved().objects).toHaveLength(1)
  })

  test('openObject refuses a pin that holds another object (ENOENT)', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    using other = newMap()
    const rec = r.add('a', 'map', map.fd, 'made', 'm')
    unlinkSync(r.pinPathOf(rec))
    other.pin(r.pinPathOf(rec))
    expect(() => r.openObject(rec)).toThrow(/holds another object/)
  })
})

describe('save', () => {
  test('registry.json is replaced whole: the tmp file never stays and every version parses', () => {
    const r = Registry.open(stateDir, pinRoot)
    const maps = Array.from({ length: 5 }, (_, i) => newMap(`m${i}`))
    try {
      for (const [i, m] of maps.entries()) {
        r.add('a', 'map', m.fd, 'made', `m${i}`)
        expect(existsSync(`${file()}.tmp`)).toBe(false)
        expect(saved().objects.map((o) => o.name)).toEqual(maps.slice(0, i + 1).map((_, j) => `m${j}`))
      }
    } finally {
      for (const m of maps) m.close()
    }
  })

  test('a tmp file left by a save cut short is removed at open; registry.json stands', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    r.add('a', 'map', map.fd, 'made', 'kept')
    writeFileSync(`${file()}.tmp`, '{"version": 1, "objec')
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toEqual(r.records())
    expect(existsSync(`${file()}.tmp`)).toBe(false)
    expect(lines).toEqual([])
  })
})

describe('reconcile on open', () => {
  test('(a) pin and record: kept as they were, tenant pin names and all', async () => {
    const r = Registry.open(stateDir, pinRoot)
    let ids: number[]
    {
      using map = newMap()
      using prog = await newProg()
      const rec = r.add('a', 'map', map.fd, 'made', 'counts')
      r.setPins(rec, ['counts'])
      r.add('b', 'prog', prog.fd, 'adopted', 'filter')
      ids = [map.id, prog.id]
    }
    // Our fds are closed: only the broker pins keep the objects.
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toEqual(r.records())
    expect(again.records().map((x) => x.id)).toEqual(ids)
    using fd = again.openObject(again.records()[0])
    expect(fd.kind).toBe('map')
    expect(lines).toEqual([])
  })

  test('(b) a pin without a record is recovered: origin made, name from the kernel, logged', async () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap('lostmap')
    using prog = await newProg()
    r.add('a', 'map', map.fd, 'adopted', 'given')
    r.add('a', 'prog', prog.fd, 'made', 'p')
    // The map's record is deleted from the file by hand.
    const doc = saved()
    writeFileSync(file(), JSON.stringify({ ...doc, objects: doc.objects.filter((o) => o.kind !== 'map') }))
    const again = Registry.open(stateDir, pinRoot, { log })
    const rec = again.find('map', map.id)
    expect(rec).toMatchObject({ tenant: 'a', kind: 'map', id: map.id, origin: 'made', name: 'lostmap', pins: [] })
    expect(again.find('prog', prog.id)).toMatchObject({ origin: 'made', name: 'p' })
    expect(lines).toEqual([`registry: recovered map ${map.id} of tenant a (pinned, not recorded)`])
    // And it was saved: the next open finds both, silently.
    lines = []
    expect(Registry.open(stateDir, pinRoot, { log }).records()).toEqual(again.records())
    expect(lines).toEqual([])
  })

  test('(c) a record whose pin is gone is dropped and logged', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    using kept = newMap()
    const rec = r.add('a', 'map', map.fd, 'made', 'gone')
    r.add('a', 'map', kept.fd, 'made', 'kept')
    unlinkSync(r.pinPathOf(rec))
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records().map((x) => x.name)).toEqual(['kept'])
    expect(lines).toEqual([`registry: dropped map ${map.id} of tenant a (its pin ${r.pinPathOf(rec)} is gone or holds another object)`])
    expect(saved().objects.map((o) => o.name)).toEqual(['kept'])
  })

  test('(c) a record whose pin holds another object is dropped; that pin is left alone, not adopted', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    using other = newMap()
    const rec = r.add('a', 'map', map.fd, 'made', 'swapped')
    const path = r.pinPathOf(rec)
    unlinkSync(path)
    other.pin(path)
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toEqual([])
    expect(lines).toEqual([
      `registry: ${path} pins map ${other.id}, not ${map.id}; ignored`,
      `registry: dropped map ${map.id} of tenant a (its pin ${path} is gone or holds another object)`,
    ])
    expect(existsSync(path)).toBe(true)
  })

  test('pins of a tenant the config may no longer name are kept; stray files and directories are ignored', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    using loose = newMap()
    r.add('removed-tenant', 'map', map.fd, 'made', 'old')
    mkdirSync(join(pinRoot, 'a', 'prog'), { recursive: true })
    mkdirSync(join(pinRoot, 'a', 'sockets'))
    loose.pin(join(pinRoot, 'a', 'prog', 'notanid'))
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toEqual(r.records())
    expect(lines.sort()).toEqual([
      `registry: ${join(pinRoot, 'a', 'prog', 'notanid')} is not an object pin; ignored`,
      `registry: ${join(pinRoot, 'a', 'sockets')} is not a kind directory; ignored`,
    ])
  })

  test('a registry.json that is not JSON is rebuilt from the pins', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap('fromjunk')
    r.add('a', 'map', map.fd, 'adopted', 'x')
    writeFileSync(file(), '{"version": 1, "obj')
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toMatchObject([{ tenant: 'a', kind: 'map', id: map.id, origin: 'made', name: 'fromjunk' }])
    expect(lines[0]).toMatch(/registry\.json is not JSON .*rebuilding it from the pins/)
    expect(lines[1]).toBe(`registry: recovered map ${map.id} of tenant a (pinned, not recorded)`)
  })

  test('malformed records are dropped one by one, the good ones kept', () => {
    const r = Registry.open(stateDir, pinRoot)
    using map = newMap()
    const rec = r.add('a', 'map', map.fd, 'made', 'good')
    const bad = [{ ...rec, kind: 'token' }, { ...rec, id: -1 }, { ...rec, tenant: 'a.b' }, { ...rec, pins: [1] }, null, 'x']
    writeFileSync(file(), JSON.stringify({ version: 1, pinRoot, objects: [...bad, rec] }))
    const again = Registry.open(stateDir, pinRoot, { log })
    expect(again.records()).toEqual([rec])
    expect(lines).toHaveLength(bad.length)
    for (const l of lines) expect(l).toMatch(/^registry: dropped a malformed record /)
  })
})

describe('kill -9 inside add (BPFKIT_BROKER_TEST_CRASH, tests only)', () => {
  // A child adds one map through the compiled registry (dist/, built by the
  // suite's global setup) and is killed at the crash point.
  function addInChild(crash: string, env: Record<string, string | undefined>): { id: number; signal: NodeJS.Signals | null; status: number | null; stderr: string } {
    const script = `
      const { writeSync } = require('node:fs')
      const { Registry } = require(${JSON.stringify(join(repoRoot, 'dist/broker/registry.js'))})
      const { BpfMap } = require(${JSON.stringify(join(repoRoot, 'dist/index.js'))})
      const r = Registry.open(process.argv[1], process.argv[2])
      const m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'crashmap' })
      writeSync(1, String(m.id) + '\\n')
      r.add('a', 'map', m.fd, 'made', 'given')
    `
    const r = spawnSync(process.execPath, ['-e', script, stateDir, pinRoot], {
      env: { ...process.env, BPFKIT_BROKER_TEST_CRASH: crash, ...env }, encoding: 'utf8', timeout: 20_000,
    })
    return { id: Number(r.stdout.trim()), signal: r.signal, status: r.status, stderr: r.stderr }
  }

  test('after-pin: the child dies pinned but unrecorded; the next open recovers the object', () => {
    const c = addInChild('after-pin', { NODE_ENV: 'test' })
    expect(c.signal).toBe('SIGKILL')
    expect(c.id).toBeGreaterThan(0)
    expect(existsSync(join(pinRoot, 'a', 'map', String(c.id)))).toBe(true)
    expect(saved().objects).toEqual([])
    const r = Registry.open(stateDir, pinRoot, { log })
    expect(r.records()).toMatchObject([{ tenant: 'a', kind: 'map', id: c.id, origin: 'made', name: 'crashmap' }])
    expect(lines).toEqual([`registry: recovered map ${c.id} of tenant a (pinned, not recorded)`])
    using fd = r.openObject(r.records()[0])
    expect(fd.kind).toBe('map')
  })

  test('after-save: the child dies with the record saved; the next open keeps it as it was', () => {
    const c = addInChild('after-save', { NODE_ENV: 'test' })
    expect(c.signal).toBe('SIGKILL')
    expect(saved().objects).toMatchObject([{ tenant: 'a', kind: 'map', id: c.id, origin: 'made', name: 'given' }])
    expect(existsSync(`${file()}.tmp`)).toBe(false)
    const r = Registry.open(stateDir, pinRoot, { log })
    expect(r.records()).toEqual(saved().objects)
    expect(lines).toEqual([])
  })

  test('outside tests (no NODE_ENV=test, no VITEST) the variable is ignored', () => {
    const c = addInChild('after-pin', { NODE_ENV: 'production', VITEST: undefined })
    expect(c.stderr).toBe('')
    expect(c.status).toBe(0)
    expect(saved().objects).toMatchObject([{ id: c.id, name: 'given' }])
  })
})

