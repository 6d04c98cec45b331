// The "Done when", broker side: two tenants, each a process in its
// own user namespace and cgroup, create maps and load programs through the
// broker, list and open them, and never reach each other's objects by any
// route the broker offers (list, show, get_fd, release, adopt, an inner map
// template, a program's map fds). Attach and pin routes: broker-attach and
// broker-pins tests.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { BpfMap } from '../../lib/map/map.js'
import { BrokerError } from '../../lib/broker/errors.js'
import { BrokerClient } from '../../lib/broker/client.js'
import type { ObjectView } from '../../lib/broker/protocol.js'
import { checkInitialNamespaces, startBroker } from '../../lib/broker/server.js'
import { skipAllIf, requireFeature } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { rawRequest, startTestBroker, testPolicy, type TestBroker } from './helpers/broker.js'
import { repoRoot } from './helpers/raw.js'
import { decodeReply } from '../../lib/broker/validate.js'
import { join } from 'node:path'
import { Btf } from '../../lib/btf/btf.js'
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { bpfObjectKind, native } from '../../lib/sys/index.js'
import { openBpffsContext } from '../../lib/delegation/index.js'
import { tmpdir } from 'node:os'
import { cgroup2Root, privateBpffs } from './helpers/scratch.js'
import { spawnSync } from 'node:child_process'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

/** The error a broker call rejects with, as data. */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; remote: boolean }> {
  try {
    const v = await p
    if (v && typeof (v as { close?: unknown }).close === 'function') (v as { close(): void }).close()
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError)
    const b = e as BrokerError
    return { code: String(b.code), message: b.message, remote: b.remote }
  }
  throw new Error('expected the broker to refuse')
}

const ids = (views: ObjectView[]) => views.map((v) => `${v.kind}:${v.id}`)

describe('broker end to end: two tenants', () => {
  skipAllIf(why)
  let tb: TestBroker
  let a: BrokerClient
  let b: BrokerClient

  beforeAll(async () => {
    if (why) return
    // A short discovery cache, so that a list sees what a tenant's task took up a moment ago.
    tb = await startTestBroker({ tenants: ['a', 'b'], strangers: 1, limits: { discoveryTtlMs: 50 } })
    a = await tb.tenant('a').client()
    b = await tb.tenant('b').client()
  }, 60_000)

  afterAll(async () => {
    a?.close()
    b?.close()
    await tb?.close()
  })

  test('hello names each tenant and its policy', () => {
    expect(a.tenant).toBe('a')
    expect(b.tenant).toBe('b')
    expect(a.admin).toBe(false)
    expect(a.policy?.allows({ cmd: 'map_create', mapType: 'hash' })).toBe(true)
  })

  test('each tenant creates, lists, shows and opens its own maps; never the other\'s', async () => {
    using ma = await a.createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'a_counts' })
    using mb = await b.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, name: 'b_table' })
    const idA = ma.info().id
    const idB = mb.info().id
    // The fd the broker handed back is the real map: writes through it are seen by id.
    ma.update(new Uint8Array([1, 0, 0, 0]), new Uint8Array(8).fill(7))

    const listA = await a.list()
    const listB = await b.list()
    expect(ids(listA)).toContain(`map:${idA}`)
    expect(ids(listA)).not.toContain(`map:${idB}`)
    expect(ids(listB)).toContain(`map:${idB}`)
    expect(ids(listB)).not.toContain(`map:${idA}`)
    const viewA = listA.find((v) => v.id === idA)!
    expect(viewA).toMatchObject({ kind: 'map', origin: 'made', name: 'a_counts' })
    expect(viewA.info).toMatchObject({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })

    expect((await a.show('map', idA)).id).toBe(idA)
    using again = (await a.open('map', idA)) as BpfMap
    expect(again.lookup(new Uint8Array([1, 0, 0, 0]))).toEqual(new Uint8Array(8).fill(7))

    // B's id through every by-id route of A: the same answer as an id that does not exist.
    for (const route of [() => a.show('map', idB), () => a.open('map', idB), () => a.release('map', idB)]) {
      const r = await refusal(route())
      expect(r).toEqual({ code: 'ENOENT', message: `no map ${idB} in your view`, remote: true })
    }
    const none = await refusal(a.show('map', 0x7ffffff0))
    expect(none.message).toBe(`no map ${0x7ffffff0} in your view`)

    await a.release('map', idA)
    await b.release('map', idB)
    expect(ids(await a.list())).not.toContain(`map:${idA}`)
  })

  test('a program may use only maps in the tenant\'s view, even when the tenant holds a foreign fd', async () => {
    using mb = await b.createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, name: 'b_only' })
    using ma = await a.createMap({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, name: 'a_own' })
    const insnsUsing = (map: BpfMap) => [
      asm.mov64Imm(asm.R1, 0), asm.stxW(asm.R10, asm.R1, -4),
      asm.ldMapFd(asm.R1, map), asm.mov64Reg(asm.R2, asm.R10), asm.add64Imm(asm.R2, -4),
      asm.call('map_lookup_elem'), asm.mov64Imm(asm.R0, 0), asm.exit(),
    ]
    // A holds B's map (B handed it over, as fds travel between processes), and tries it through the broker.
    const foreign = await refusal(a.loadProgram({ type: 'socket_filter', license: 'GPL', insns: insnsUsing(mb) }))
    expect(foreign).toEqual({ code: 'ENOENT', message: `no map ${mb.info().id} in your view`, remote: true })
    // With its own map the same program loads, and lists with that map.
    using prog = await a.loadProgram({ type: 'socket_filter', license: 'GPL', insns: insnsUsing(ma), name: 'a_prog' })
    const view = await a.show('prog', prog.info().id)
    expect(view).toMatchObject({ kind: 'prog', origin: 'made', name: 'a_prog' })
    expect(view.info.mapIds).toEqual([ma.info().id])
    expect(ids(await b.list())).not.toContain(`prog:${prog.info().id}`)
    expect((await refusal(b.show('prog', prog.info().id))).code).toBe('ENOENT')
    // Adopting a foreign object: not in your view either.
    expect((await refusal(a.adopt([mb]))).code).toBe('ENOENT')
    // A foreign map as an inner map template: likewise.
    const inner = await refusal(a.request('map_create', { spec: { type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 1, innerMap: 0 } }, [mb.fd]))
    expect(inner.code).toBe('ENOENT')
    await a.release('prog', prog.info().id)
    await a.release('map', ma.info().id)
    await b.release('map', mb.info().id)
  })

  test('policy refusals are EPERM with the rule', async () => {
    const r = await refusal(a.request('map_create', { spec: { type: 'lru_hash', keySize: 4, valueSize: 4, maxEntries: 1 } }))
    expect(r.code).toBe('EPERM')
    expect(r.message).toMatch(/lru_hash/)
  })

  test('a raw connection made by the tenant\'s process is that tenant; bad frames get their own error', async () => {
    const raw = await tb.tenant('b').connect()
    try {
      const hello = await rawRequest(raw, 'hello', {})
      expect(hello.reply).toMatchObject({ type: 'ok', tenant: 'b', admin: false })
      const bad = await rawRequest(raw, 'show', { kind: 'map' })
      expect(bad.reply).toMatchObject({ type: 'error', code: 'EINVAL' })
      // The connection still serves.
      const list = await rawRequest(raw, 'list', {})
      expect(list.reply.type).toBe('ok')
    } finally {
      raw.close()
    }
  })

  test('objects a tenant\'s task holds are its own (held), by fdinfo discovery; adopting them records them', async () => {
    // Made here (root, in no tenant), then held by a's process only once this test closes its own fd.
    const made = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'held_by_a' })
    const id = made.info().id
    await tb.tenant('a').hold([made.fd])
    made.close()
    try {
      await new Promise((r) => setTimeout(r, 100))
      const view = (await a.list()).find((v) => v.kind === 'map' && v.id === id)
      expect(view).toMatchObject({ origin: 'held', name: 'held_by_a' })
      expect(ids(await b.list())).not.toContain(`map:${id}`)
      expect((await refusal(b.show('map', id))).message).toBe(`no map ${id} in your view`)
      using opened = (await a.open('map', id)) as BpfMap
      const [adopted] = await a.adopt([opened])
      expect(adopted).toMatchObject({ kind: 'map', id, origin: 'adopted' })
      // B cannot adopt it now either (it is a's, by the registry).
      expect((await refusal(b.adopt([opened]))).code).toBe('ENOENT')
      await a.release('map', id)
    } finally {
      await tb.tenant('a').drop()
    }
  })

  test('a held object the tenant pins by the pin request stays in its view once no task holds it (origin pinned)', async () => {
    const made = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'pinned_by_a' })
    const id = made.info().id
    await tb.tenant('a').hold([made.fd])
    made.close()
    let path: string | undefined
    try {
      await new Promise((r) => setTimeout(r, 100))
      expect((await a.list()).find((v) => v.kind === 'map' && v.id === id)).toMatchObject({ origin: 'held' })
      path = await a.pin('map', id, 'held_pin')
      expect(path).toBe(join(tb.tenantPinRoot, 'a', 'held_pin'))
      await tb.tenant('a').drop()
      await new Promise((r) => setTimeout(r, 100))
      // Only the tenant pin keeps it alive now: found again by walking tenantPinRoot/a.
      const view = (await a.list()).find((v) => v.kind === 'map' && v.id === id)
      expect(view).toMatchObject({ origin: 'pinned', name: 'pinned_by_a' })
      expect(ids(await b.list())).not.toContain(`map:${id}`)
      await a.unpin('held_pin')
      path = undefined
    } finally {
      await tb.tenant('a').drop()
      if (path !== undefined) rmSync(path, { force: true })
    }
  })

  test('a whole object file loads through the broker, with its variables set', async () => {
    const { maps, programs } = await a.loadCollection(join(repoRoot, 'test/fixtures/bpf/counter.bpf.o'), { variables: { threshold: 3 } })
    try {
      expect(Object.keys(programs)).toEqual(['count_packets'])
      expect(Object.keys(maps)).toContain('counts')
      const progId = programs.count_packets.info().id
      const listA = ids(await a.list())
      const listB = ids(await b.list())
      expect(listA).toContain(`prog:${progId}`)
      expect(listB).not.toContain(`prog:${progId}`)
      for (const m of Object.values(maps)) {
        expect(listA).toContain(`map:${m.info().id}`)
        expect(listB).not.toContain(`map:${m.info().id}`)
      }
      // The program runs with the threshold the tenant set: the 4th packet on is dropped (0);
      // before that it returns skb->len, the packet less the Ethernet header test runs take off.
      const packet = new Uint8Array(64)
      const results = []
      for (let i = 0; i < 4; i++) results.push((await programs.count_packets.testRun({ data: packet })).retval)
      expect(results).toEqual([50, 50, 50, 0])
      await a.release('prog', progId)
      for (const m of Object.values(maps)) await a.release('map', m.info().id)
    } finally {
      for (const o of [...Object.values(maps), ...Object.values(programs)]) o.close()
    }
  })

  test('the BTF of a collection the broker loaded is its tenant\'s (made), once no fd of it is held: listed, opened; not the other\'s', async () => {
    const { maps, programs } = await a.loadCollection(join(repoRoot, 'test/fixtures/bpf/counter.bpf.o'), { variables: { threshold: 3 } })
    const progId = programs.count_packets.info().id
    const mapIds = Object.values(maps).map((m) => m.info().id)
    const btfId = programs.count_packets.info().btfId
    expect(btfId).toBeGreaterThan(0)
    // Only the broker's pins of the program and maps keep the BTF now: no one holds a fd of it.
    for (const o of [...Object.values(maps), ...Object.values(programs)]) o.close()
    try {
      const view = (await a.list()).find((v) => v.kind === 'btf' && v.id === btfId)
      expect(view).toMatchObject({ kind: 'btf', origin: 'made' })
      expect(ids(await b.list())).not.toContain(`btf:${btfId}`)
      using btf = await a.open('btf', btfId)
      expect(btf).toBeInstanceOf(Btf)
      expect(btf.id).toBe(btfId)
      await expect(b.open('btf', btfId)).rejects.toMatchObject({ code: 'ENOENT' })
      await expect(b.show('btf', btfId)).rejects.toMatchObject({ code: 'ENOENT' })
    } finally {
      await a.release('prog', progId)
      for (const id of mapIds) await a.release('map', id)
    }
  })

  test('a peer in no tenant is refused with the reason', async () => {
    const raw = await tb.strangers[0].connect()
    try {
      const m = await raw.receive({ maxBytes: 1 << 16 })
      expect(m).toBeDefined()
      const reply = decodeReply(m!.data)
      expect(reply).toMatchObject({ type: 'error', code: 'EACCES' })
      expect(await raw.receive()).toBeUndefined()
    } finally {
      raw.close()
    }
  })

  test('a tenant set at run time is recognised on its next connection; once removed, refused again', async () => {
    const stranger = tb.strangers[0]
    tb.broker.setTenant({ name: 'late', match: { cgroup: stranger.cgroupDir.slice(cgroup2Root().length) }, policy: testPolicy })
    try {
      const raw = await stranger.connect()
      try {
        expect((await rawRequest(raw, 'hello', {})).reply).toMatchObject({ type: 'ok', tenant: 'late' })
      } finally {
        raw.close()
      }
    } finally {
      tb.broker.removeTenant('late')
    }
    const again = await stranger.connect()
    try {
      const m = await again.receive({ maxBytes: 1 << 16 })
      expect(decodeReply(m!.data)).toMatchObject({ type: 'error', code: 'EACCES' })
    } finally {
      again.close()
    }
  })

  test('root on the host is the admin: hello says so, and tenant requests are refused to it', async () => {
    using admin = await BrokerClient.connect(tb.socketPath, { timeoutMs: 10_000 })
    expect(admin.admin).toBe(true)
    expect(admin.tenant).toBeNull()
    expect((await refusal(admin.list())).code).toBe('EACCES')
  })

  test('admin requests are refused to tenants', async () => {
    expect((await refusal(a.request('stats', {}))).code).toBe('EACCES')
  })
})

describe('broker limits and refusals', () => {
  skipAllIf(why)
  let tb: TestBroker

  beforeAll(async () => {
    if (why) return
    tb = await startTestBroker({
      tenants: [{
        name: 'c',
        quota: { connections: 3, maps: 1 },
        policy: {
          cmds: ['map_create', 'prog_load'], maps: ['array'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'],
          capabilities: { count: { helpers: ['map_lookup_elem'], maps: ['array'] } },
          contexts: [{ progs: ['socket_filter'], grant: ['count'] }],
        },
      }, { name: 't', loadAs: 'token' }],
      limits: { idleTimeoutMs: 500 },
    })
  }, 60_000)

  afterAll(async () => {
    await tb?.close()
  })

  test('the capability checker refuses a helper the policy does not grant: EPERM with the violations', async () => {
    const raw = await tb.tenant('c').connect()
    try {
      const insns = asm.assemble([asm.call('ktime_get_ns'), asm.mov64Imm(asm.R0, 0), asm.exit()])
      const { reply } = await rawRequest(raw, 'prog_load', { spec: { type: 'socket_filter', license: 'GPL', insns: Buffer.from(insns).toString('base64') }, maps: 0 })
      expect(reply).toMatchObject({ type: 'error', code: 'EPERM', rule: 'capabilities' })
      const violations = (reply as { violations?: { kind: string; name: string }[] }).violations
      expect(violations?.map((v) => [v.kind, v.name])).toEqual([['helper', 'ktime_get_ns']])
    } finally {
      raw.close()
    }
  })

  test('a tenant that loads with its token must send one, and its token is used', async () => {
    // The token first: making it (a child in a user namespace) can outlast this broker's 500 ms idle limit under emulation.
    using token = await tb.tenant('t').token()
    const raw = await tb.tenant('t').connect()
    try {
      const { reply } = await rawRequest(raw, 'map_create', { spec: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })
      expect(reply).toMatchObject({ type: 'error', code: 'EINVAL' })
      expect((reply as { message?: string }).message).toMatch(/own token/)
      // A map fd where the token should be: EINVAL naming it.
      using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
      const wrong = await rawRequest(raw, 'map_create', { spec: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 }, token: true }, [m.fd])
      expect(wrong.reply).toMatchObject({ type: 'error', code: 'EINVAL', message: 'fds[0] is a map, not a BPF token' })
      // With the token it made in its own user namespace, the broker creates and loads with it.
      // A token is no anon inode but a pseudo file of the tenant's bpffs: recognised by its fdinfo there.
      expect(readlinkSync(`/proc/self/fd/${token.fd}`)).not.toMatch(/^anon_inode:/)
      expect(bpfObjectKind(token.fd)).toBe('token')
      expect(bpfObjectKind(m.fd)).toBe('map')
      using context = openBpffsContext()
      expect(bpfObjectKind(context.fd)).toBeUndefined()
      const made = await rawRequest(raw, 'map_create', { spec: { type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, name: 't_map' }, token: true }, [token])
      expect(made.reply, JSON.stringify(made.reply)).toMatchObject({ type: 'ok', object: { kind: 'map', origin: 'made', name: 't_map' } })
      using map = BpfMap.fromFd(made.fds[0])
      const insns = asm.assemble([asm.mov64Imm(asm.R0, 0), asm.exit()])
      const loaded = await rawRequest(raw, 'prog_load', { spec: { type: 'socket_filter', license: 'GPL', insns: Buffer.from(insns).toString('base64') }, maps: 0, token: true }, [token])
      expect(loaded.reply).toMatchObject({ type: 'ok', object: { kind: 'prog', origin: 'made' } })
      for (const f of loaded.fds) f.close()
      const listed = await rawRequest(raw, 'list', {})
      const objects = (listed.reply as unknown as { objects: ObjectView[] }).objects
      expect(objects.map((o) => o.kind).sort()).toEqual(['map', 'prog'])
      for (const o of objects) expect((await rawRequest(raw, 'release', { kind: o.kind, id: o.id })).reply.type).toBe('ok')
      expect(map.info().name).toBe('t_map')
    } finally {
      raw.close()
    }
  })

  test('quotas: a second map over maps: 1 is EDQUOT; a connection over connections: 3 is EBUSY', async () => {
    const one = await tb.tenant('c').connect()
    const two = await tb.tenant('c').connect()
    const extra = await tb.tenant('c').connect()
    try {
      const first = await rawRequest(one, 'map_create', { spec: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })
      expect(first.reply.type).toBe('ok')
      for (const f of first.fds) f.close()
      const second = await rawRequest(two, 'map_create', { spec: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })
      expect(second.reply).toMatchObject({ type: 'error', code: 'EDQUOT' })
      const three = await tb.tenant('c').connect()
      try {
        const m = await three.receive({ maxBytes: 1 << 16 })
        expect(decodeReply(m!.data)).toMatchObject({ type: 'error', code: 'EBUSY' })
      } finally {
        three.close()
      }
      const obj = (first.reply as unknown as { object: ObjectView }).object
      expect((await rawRequest(one, 'release', { kind: 'map', id: obj.id })).reply.type).toBe('ok')
    } finally {
      one.close()
      two.close()
      extra.close()
    }
  })

  test('an idle connection is told why and closed; the broker\'s fd table is back where it was', async () => {
    // Let the quota test's connections go first.
    await new Promise((r) => setTimeout(r, 100))
    const before = tb.broker.stats()
    const raw = await tb.tenant('c').connect()
    try {
      const m = await raw.receive({ maxBytes: 1 << 16 })
      expect(decodeReply(m!.data)).toMatchObject({ type: 'error', code: 'ETIMEDOUT' })
      expect(await raw.receive()).toBeUndefined()
    } finally {
      raw.close()
    }
    await new Promise((r) => setTimeout(r, 50))
    const after = tb.broker.stats()
    expect(after.connections).toBe(before.connections)
    expect(after.fds).toBe(before.fds)
  })
})

describe('startBroker', () => {
  test('runs only in the initial pid, user and cgroup namespaces, and says which one is wrong', (ctx) => {
    expect(() => checkInitialNamespaces()).not.toThrow()
    const missing = userNamespacesMissing()
    if (missing) ctx.skip(missing)
    // The compiled package in a child that is root of its own user namespace.
    const script = `require(${JSON.stringify(join(repoRoot, 'dist', 'index.js'))}).startBroker({ tenants: [] }).then(() => process.exit(3), (e) => { console.log(e.message); process.exit(0) })`
    const r = spawnSync('unshare', ['--user', '--map-root-user', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/must run in the initial user namespace/)
  })

  test('replaces a stale socket nobody listens on (mode from the config); refuses a path that is not a socket', async (ctx) => {
    if (why) ctx.skip(why)
    using fs = privateBpffs()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-broker-stale-'))
    try {
      const path = join(dir, 'broker.sock')
      // A listener killed outright leaves its socket file behind.
      spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`])
      expect(lstatSync(path).isSocket()).toBe(true)
      const config = { socket: path, socketMode: 0o660, stateDir: join(dir, 'state'), pinRoot: join(fs.path, 'b'), tenantPinRoot: join(fs.path, 't'), tenants: [] }
      const broker = await startBroker(config)
      try {
        expect(statSync(path).mode & 0o777).toBe(0o660)
        using admin = await BrokerClient.connect(path, { timeoutMs: 10_000 })
        expect(admin.admin).toBe(true)
      } finally {
        await broker.close()
      }
      writeFileSync(path, 'not a socket')
      await expect(startBroker(config)).rejects.toMatchObject({ code: 'EEXIST' })
      expect(readFileSync(path, 'utf8')).toBe('not a socket')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('listens on an inherited socket fd (socket activation: config.socket { fd })', async (ctx) => {
    if (why) ctx.skip(why)
    using fs = privateBpffs()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-broker-fd-'))
    try {
      // A listening socket made here stands in for systemd's: its fd is
      // kept (a dup) and the file moved aside, so that closing Node's own
      // server (which unlinks the path it bound) leaves both.
      const bound = join(dir, 'bound.sock')
      const path = join(dir, 'activated.sock')
      const srv = createServer()
      await new Promise<void>((resolve) => srv.listen(bound, () => resolve()))
      const fd = native.dupFd((srv as unknown as { _handle: { fd: number } })._handle.fd)
      renameSync(bound, path)
      await new Promise<void>((resolve) => srv.close(() => resolve()))
      const broker = await startBroker({ socket: { fd }, stateDir: join(dir, 'state'), pinRoot: join(fs.path, 'b'), tenantPinRoot: join(fs.path, 't'), tenants: [] })
      try {
        expect(broker.socketPath).toBe(`fd:${fd}`)
        using admin = await BrokerClient.connect(path, { timeoutMs: 10_000 })
        expect(admin.admin).toBe(true)
      } finally {
        await broker.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('refuses a socket path where a broker already listens, before it opens the state of the broker there', async (ctx) => {
    if (why) ctx.skip(why)
    const tb = await startTestBroker({ tenants: ['solo'] })
    try {
      await expect(startBroker({ socket: tb.socketPath, stateDir: tb.stateDir + '2', pinRoot: tb.pinRoot + '2', tenantPinRoot: tb.tenantPinRoot + '2', tenants: [] }))
        .rejects.toMatchObject({ code: 'EADDRINUSE' })
      // The same state directory: refused before its registry is opened (and reconciled, or its files touched).
      // (Opening it would remove a save's leftover tmp file; here one stands in for a save in flight.)
      const stray = join(tb.stateDir, 'registry.json.tmp')
      writeFileSync(stray, '{}')
      await expect(startBroker({ socket: tb.socketPath, stateDir: tb.stateDir, pinRoot: tb.pinRoot, tenantPinRoot: tb.tenantPinRoot, tenants: [] }))
        .rejects.toMatchObject({ code: 'EADDRINUSE' })
      expect(statSync(stray).isFile()).toBe(true)
      rmSync(stray)
    } finally {
      await tb.close()
    }
  })
})
