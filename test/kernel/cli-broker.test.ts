// The broker's command line against a real broker: `bpfkit --broker SOCK`
// as two tenants (each a process in its own user namespace and cgroup; the
// command line runs in-process and reaches the broker through the tenant's
// own connection, helpers/broker.ts), `bpfkit list --by-tenant` as the
// admin, and `bpfkit broker --config` as the daemon in a child process
// (SIGHUP reloads, SIGTERM stops).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { BrokerClient } from '../../lib/broker/client.js'
import type { ObjectView } from '../../lib/broker/protocol.js'
import { startBroker } from '../../lib/broker/server.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import type { PolicyDocument } from '../../lib/policy/index.js'
import { runCli } from './helpers/cli.js'
import { fixture } from './helpers/collection.js'
import { startTestBroker, testPolicy, type TestBroker } from './helpers/broker.js'
import { repoRoot } from './helpers/raw.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateBpffs } from './helpers/scratch.js'
import { userNamespacesMissing } from './helpers/tenant.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

// Tenant b may load socket filters, and its capability sets grant them nothing.
const strict: PolicyDocument = { ...(testPolicy as PolicyDocument), capabilities: { none: { helpers: [] } }, contexts: [{ progs: ['socket_filter'], grant: ['none'] }] }

describe('bpfkit --broker: two tenants and the admin', () => {
  skipAllIf(why)
  let tb: TestBroker
  let A: string
  let B: string

  beforeAll(async () => {
    if (why) return
    tb = await startTestBroker({ tenants: ['a', { name: 'b', policy: strict }] })
    A = tb.tenant('a').socketPath
    B = tb.tenant('b').socketPath
  }, 60_000)

  afterAll(async () => {
    await tb?.close()
  })

  const listJson = async (sock: string, ...args: string[]): Promise<Record<string, ObjectView[]>> => {
    const r = await runCli('--broker', sock, 'list', '--json', ...args)
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    return JSON.parse(r.out)
  }

  test('load, list, show, pin, unpin, attach and release as tenant a; b and the admin see what they should', async () => {
    const loaded = await runCli('--broker', A, 'load', fixture('counter.bpf.o'), '--json')
    expect(loaded.err).toBe('')
    expect(loaded.code).toBe(0)
    const ids = JSON.parse(loaded.out) as { maps: Record<string, number>; programs: Record<string, number> }
    const progId = ids.programs.count_packets
    const mapId = ids.maps.counts
    expect(progId).toBeGreaterThan(0)
    expect(mapId).toBeGreaterThan(0)

    // The text listing: bpfkit list's lines with the origin column.
    const text = await runCli('--broker', A, 'list')
    expect(text.code).toBe(0)
    expect(text.out).toMatch(new RegExp(`^${progId}: socket_filter  name count_packets  tag [0-9a-f]{16}  gpl  origin made\\n\\txlated \\d+B  jited \\d+B  map_ids [0-9,]*${mapId}`, 'm'))
    // Its btf_id shows: the collection's BTF is a's too (made with it), so the broker does not redact it.
    expect(text.out).toMatch(new RegExp(`^${mapId}: array  name counts  flags 0x0  origin made\\n\\tkey 4B  value 8B  max_entries 1  btf_id (\\d+)$`, 'm'))
    const btfId = /btf_id (\d+)$/m.exec(text.out)![1]
    expect(text.out).toMatch(new RegExp(`^# btf\\n${btfId}: name <anon>  size \\d+B  origin made$`, 'm'))
    expect(text.out.split('\n').filter((l) => l.startsWith('#'))).toEqual(['# progs', '# maps', '# links', '# btf'])
    const all = await listJson(A)
    expect(all.progs.map((v) => v.id)).toContain(progId)
    expect(all.maps.map((v) => v.id)).toContain(mapId)

    const shown = await runCli('--broker', A, 'show', 'map', String(mapId), '--json')
    expect(JSON.parse(shown.out)).toMatchObject({ kind: 'map', id: mapId, origin: 'made', name: 'counts', info: { type: 'array', maxEntries: 1 } })

    // Pins under a's prefix, shown in the listing.
    const pinned = await runCli('--broker', A, 'pin', 'map', String(mapId), 'cli_counts')
    expect(pinned.err).toBe('')
    const path = join(tb.tenantPinRoot, 'a', 'cli_counts')
    expect(pinned.out).toBe(`pinned map ${mapId} at ${path}\n`)
    expect(existsSync(path)).toBe(true)
    expect((await runCli('--broker', A, 'show', 'maps', String(mapId))).out).toContain('\n\tpinned cli_counts')
    expect((await runCli('--broker', A, 'unpin', 'cli_counts')).out).toBe('unpinned cli_counts\n')
    expect(existsSync(path)).toBe(false)

    // Tenant b: the same IDs are not in its view, by any command.
    expect((await listJson(B)).progs.map((v) => v.id)).not.toContain(progId)
    for (const args of [['show', 'prog', String(progId)], ['pin', 'map', String(mapId), 'stolen'], ['release', 'map', String(mapId)]]) {
      const r = await runCli('--broker', B, ...args)
      expect(r.code, args.join(' ')).toBe(1)
      expect(r.err).toBe(`bpfkit: broker refused ${args[0]}: ENOENT: no ${args[1]} ${args[2]} in your view\n`)
    }

    // The admin (this process: root in the initial namespaces, in no tenant's cgroup) sees a's objects with their owner.
    const admin = await runCli('list', '--by-tenant', '--broker', tb.socketPath, 'maps')
    expect(admin.err).toBe('')
    expect(admin.out).toMatch(new RegExp(`^${mapId}: array  name counts  flags 0x0  owner a  origin made$`, 'm'))
    const adminJson = JSON.parse((await runCli('--broker', tb.socketPath, 'list', '--by-tenant', '--json', 'progs')).out) as ObjectView[]
    expect(adminJson.find((v) => v.id === progId)).toMatchObject({ owner: 'a', origin: 'made' })

    // Released: gone from a's view (the broker's pin dropped; nothing else holds it).
    for (const [kind, id] of [['prog', progId], ['map', mapId]] as const) {
      const r = await runCli('--broker', A, 'release', kind, String(id))
      expect(r.err).toBe('')
      expect(r.out).toBe(`released ${kind} ${id}\n`)
    }
    for (const id of Object.values(ids.maps)) if (id !== mapId) await runCli('--broker', A, 'release', 'map', String(id))
    const after = await listJson(A)
    expect(after.progs.map((v) => v.id)).not.toContain(progId)
    expect(after.maps.map((v) => v.id)).not.toContain(mapId)
  })

  test('attach: a cgroup_skb program to the tenant\'s own cgroup, listed as a link; detach by release', async () => {
    using client = await tb.tenant('a').client()
    using prog = await client.loadProgram({
      type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', name: 'cli_pass', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()],
    })
    const r = await runCli('--broker', A, 'attach', String(prog.id), 'cgroup_inet_ingress', '--cgroup', '.')
    expect(r.err).toBe('')
    const linkId = Number(/^link (\d+): prog \d+ attached as cgroup_inet_ingress to cgroup \.$/m.exec(r.out)?.[1])
    expect(linkId).toBeGreaterThan(0)
    const links = await runCli('--broker', A, 'list', 'links')
    expect(links.out).toMatch(new RegExp(`^${linkId}: cgroup  prog ${prog.id}  attach_type cgroup_inet_ingress  origin made$`, 'm'))
    // Outside its cgroup: refused by the broker, named.
    const out = await runCli('--broker', A, 'attach', String(prog.id), 'cgroup_inet_ingress', '--cgroup', '../..')
    expect(out.code).toBe(1)
    expect(out.err).toMatch(/^bpfkit: broker refused attach: EPERM \(attach\.cgroup\): /)
    await client.detach(linkId)
    await client.release('link', linkId).catch(() => {})
    await client.release('prog', prog.id)
  })

  test('a program its capabilities do not grant: EPERM with the violation, exit 1', async () => {
    const r = await runCli('--broker', B, 'load', fixture('counter.bpf.o'))
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
    expect(r.err).toMatch(/^bpfkit: broker refused load: EPERM \(capabilities\): /)
    expect(r.err).toMatch(/helper map_lookup_elem is not granted to socket_filter/)
  })

  test('a socket nobody listens on: exit 1 naming it; a tenant asking for the admin\'s listing: EACCES', async () => {
    const gone = join(tb.dir, 'nobody.sock')
    const r = await runCli('--broker', gone, 'list')
    expect(r.code).toBe(1)
    expect(r.err).toContain(gone)
    expect(r.err).toMatch(/ENOENT/)
    const t = await runCli('--broker', A, 'list', '--by-tenant')
    expect(t.code).toBe(1)
    expect(t.err).toMatch(/^bpfkit: broker refused list: EACCES/)
  })
})

describe('bpfkit broker --config (the daemon)', () => {
  skipAllIf(requireFeature(havePeerPidfd))

  test('listens, answers the admin, reloads on SIGHUP, stops on SIGTERM and removes its socket', async () => {
    using fs = privateBpffs()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-broker-'))
    try {
      const config = join(dir, 'broker.json')
      const socket = join(dir, 'broker.sock')
      const write = (tenants: unknown[]) => writeFileSync(config, JSON.stringify({
        socket: join(dir, 'ignored.sock'), stateDir: join(dir, 'state'), pinRoot: join(fs.path, 'broker'), tenantPinRoot: join(fs.path, 'tenants'), tenants,
      }))
      write([])
      const child = spawn(process.execPath, [join(repoRoot, 'dist/cli/main.js'), 'broker', '--config', config, '--socket', socket], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      let err = ''
      child.stdout.on('data', (d) => { out += d })
      child.stderr.on('data', (d) => { err += d })
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      const until = async (re: RegExp) => {
        for (let i = 0; i < 200 && !re.test(out); i++) {
          if (child.exitCode !== null) throw new Error(`the broker exited (${child.exitCode}): ${err}`)
          await new Promise((r) => setTimeout(r, 50))
        }
        expect(out).toMatch(re)
      }
      try {
        // --socket wins over the config's.
        await until(new RegExp(`listening on ${socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, 0 tenants \\(none\\)`))
        expect(existsSync(join(dir, 'ignored.sock'))).toBe(false)
        const admin = await runCli('--broker', socket, 'list', '--by-tenant')
        expect(admin.err).toBe('')
        expect(admin.code).toBe(0)

        // A bad edit is logged and the running config kept; a good one is taken.
        writeFileSync(config, '{ not json')
        child.kill('SIGHUP')
        await until(/reload of .* failed, keeping the running config: .*not JSON/)
        write([{ name: 'later', match: { uid: [4242] }, policy: { cmds: ['map_create'], maps: ['hash'] } }])
        child.kill('SIGHUP')
        await until(/reloaded .*broker\.json: 1 tenant$/m)

        child.kill('SIGTERM')
        expect(await exited).toBe(0)
        expect(out).toContain('SIGTERM, closing')
        expect(existsSync(socket)).toBe(false)
        expect(err).toBe('')
      } finally {
        child.kill('SIGKILL')
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('systemd socket activation: the socket on fd 3 (LISTEN_FDS), as packaging/systemd starts it', async (ctx) => {
    const activate = spawnSync('systemd-socket-activate', ['--help'], { encoding: 'utf8' })
    if (activate.error !== undefined) ctx.skip('systemd-socket-activate (systemd) is not installed')
    using fs = privateBpffs()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-broker-'))
    try {
      const config = join(dir, 'broker.json')
      const socket = join(dir, 'activated.sock')
      writeFileSync(config, JSON.stringify({ stateDir: join(dir, 'state'), pinRoot: join(fs.path, 'broker'), tenantPinRoot: join(fs.path, 'tenants'), tenants: [] }))
      // It listens, and execs the broker (same pid) at the first connection, with LISTEN_PID/LISTEN_FDS set.
      const child = spawn('systemd-socket-activate', ['-l', socket, process.execPath, join(repoRoot, 'dist/cli/main.js'), 'broker', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d) => { out += d })
      child.stderr.on('data', (d) => { out += d })
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      try {
        // Its own line comes after listen(); the file alone exists from bind() on, and a connect between the two is refused.
        for (let i = 0; i < 100 && !out.includes('Listening on'); i++) await new Promise((r) => setTimeout(r, 50))
        const admin = await runCli('--broker', socket, 'list', '--by-tenant', 'maps')
        expect(admin.err).toBe('')
        expect(admin.code).toBe(0)
        expect(out).toContain('bpfkit broker: listening on fd 3 (socket activation), 0 tenants (none)')
        child.kill('SIGTERM')
        expect(await exited).toBe(0)
      } finally {
        child.kill('SIGKILL')
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('broker gc: what a removed tenant left is dropped, only with the broker stopped', async () => {
    using fs = privateBpffs()
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-broker-'))
    try {
      const file = join(dir, 'broker.json')
      const base = { socket: join(dir, 'broker.sock'), stateDir: join(dir, 'state'), pinRoot: join(fs.path, 'broker'), tenantPinRoot: join(fs.path, 'tenants') }
      // This process is tenant 'old' (uid 0 matches it before the admin rule).
      const old = { name: 'old', match: { uid: [0] }, policy: testPolicy }
      writeFileSync(file, JSON.stringify({ ...base, tenants: [old] }))
      const broker = await startBroker(file)
      let mapId: number
      try {
        using client = await BrokerClient.connect(base.socket)
        expect(client.tenant).toBe('old')
        using map = await client.createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'left_over' })
        mapId = map.id
        expect(await client.pin('map', mapId, 'left')).toBe(join(base.tenantPinRoot, 'old', 'left'))
        // Running: gc refuses.
        const busy = await runCli('broker', 'gc', '--config', file)
        expect(busy.code).toBe(1)
        expect(busy.err).toMatch(/broker gc: a broker is running at .*broker\.sock; stop it first/)
      } finally {
        await broker.close()
      }
      expect(existsSync(join(base.pinRoot, 'old', 'map', String(mapId)))).toBe(true)
      // The tenant leaves the config; gc drops its record, the broker's pin and the tenant pin the broker made.
      writeFileSync(file, JSON.stringify({ ...base, tenants: [] }))
      const r = await runCli('broker', 'gc', '--config', file)
      expect(r.err).toBe('')
      expect(r.code).toBe(0)
      expect(r.out).toBe(`dropped map ${mapId} ('left_over', made) of removed tenant old\nbroker gc: 1 record of removed tenants dropped; 0 kept\n`)
      expect(existsSync(join(base.pinRoot, 'old'))).toBe(false)
      expect(existsSync(join(base.tenantPinRoot, 'old', 'left'))).toBe(false)
      expect(JSON.parse(readFileSync(join(base.stateDir, 'registry.json'), 'utf8')).objects).toEqual([])
      // Nothing left: a second run drops nothing.
      expect((await runCli('broker', 'gc', '--config', file)).out).toBe('broker gc: 0 records of removed tenants dropped; 0 kept\n')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a config that does not load: exit 1 naming the file and the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-broker-'))
    try {
      const config = join(dir, 'broker.json')
      writeFileSync(config, JSON.stringify({ tenants: [{ name: 'bad name', match: { uid: [1] }, policy: {} }] }))
      const r = await runCli('broker', '--config', config)
      expect(r.code).toBe(1)
      expect(r.err).toBe(`bpfkit: ${config}: tenants[0].name must be 1-63 of A-Z a-z 0-9 _ -, got 'bad name'\n`)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
