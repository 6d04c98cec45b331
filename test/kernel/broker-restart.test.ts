// Nothing lost across a broker restart (issue 16, plan §5): the broker runs
// in a child process (the compiled package, built by the suite's global
// setup), two tenants (each a process in its own cgroup and user namespace,
// helpers/broker.ts) make maps, programs, a link and pins through it, the
// broker is killed with SIGKILL, started again on the same state, and every
// tenant lists the same objects, opens them, and still sees none of the
// other's. The crash points of the registry (BPFKIT_BROKER_TEST_CRASH) then
// kill it inside a request: after the pin (the object is recovered on
// start) and after the save (listed though the tenant saw no reply).
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import type { BrokerConfig } from '../../lib/broker/config.js'
import { BrokerError } from '../../lib/broker/errors.js'
import type { ObjectView } from '../../lib/broker/protocol.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { attachedTo, passIngress, startTestBroker, testPolicy, type TestBroker } from './helpers/broker.js'
import { repoRoot } from './helpers/raw.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { cgroup2Root } from './helpers/scratch.js'
import { userNamespacesMissing } from './helpers/tenant.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

// The daemon: startBroker from dist/ on a config file; every log line to
// stdout, then READY once it listens.
const DAEMON = String.raw`
const { startBroker } = require(process.env.BPFKIT_TEST_SERVER)
startBroker(process.argv[1], { log: (line) => process.stdout.write(line + '\n') })
  .then(() => process.stdout.write('READY\n'), (e) => { console.error(e); process.exit(1) })
`

interface Daemon {
  child: ChildProcess
  pid: number
  /** Log lines so far. */
  lines: string[]
  /** Resolves with the signal or status once the process is gone. */
  exited: Promise<string>
}

async function startDaemon(configPath: string, env: Record<string, string> = {}): Promise<Daemon> {
  const child = spawn(process.execPath, ['-e', DAEMON, configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BPFKIT_TEST_SERVER: join(repoRoot, 'dist', 'broker', 'server.js'), ...env },
  })
  const lines: string[] = []
  let stderr = ''
  let partial = ''
  const exited = new Promise<string>((resolve) => child.once('exit', (status, signal) => resolve(signal ?? `status ${status}`)))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      partial += d
      const parts = partial.split('\n')
      partial = parts.pop()!
      for (const line of parts) {
        if (line === 'READY') resolve()
        else lines.push(line)
      }
    })
    child.stderr!.on('data', (d) => { stderr += d })
    void exited.then((how) => reject(new Error(`the broker exited (${how}) before it listened: ${stderr.trim()}`)))
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  try {
    await ready
  } finally {
    clearTimeout(timer)
  }
  return { child, pid: child.pid as number, lines, exited }
}

async function kill9(d: Daemon): Promise<string> {
  process.kill(d.pid, 'SIGKILL')
  return d.exited
}

/** What must survive a restart of one object's view (info holds counters that move). */
const essence = (views: ObjectView[]) => views
  .map((v) => ({ kind: v.kind, id: v.id, origin: v.origin, name: v.name, pins: [...v.pins].sort(), type: v.info.type }))
  .sort((x, y) => `${x.kind}:${x.id}`.localeCompare(`${y.kind}:${y.id}`))



describe('broker restart: kill -9, start again, every tenant lists the same objects', () => {
  skipAllIf(why)
  let tb: TestBroker
  let configPath: string
  let daemon: Daemon | undefined

  beforeAll(async () => {
    if (why) return
    // The helper makes the tenants (processes, cgroups), a private bpffs and
    // the temp dir, and starts a broker in this process; that one is closed
    // and a daemon in a child process takes its place on the same socket,
    // state and pins, so that it can be killed.
    tb = await startTestBroker({ tenants: [{ name: 'a', attach: { cgroup: true } }, 'b'] })
    await tb.broker.close()
    const config: BrokerConfig = {
      socket: tb.socketPath, socketMode: 0o666, stateDir: tb.stateDir, pinRoot: tb.pinRoot, tenantPinRoot: tb.tenantPinRoot,
      cgroupRoot: cgroup2Root(), guard: false,
      tenants: tb.tenants.map((t) => ({
        name: t.name, policy: testPolicy, match: { cgroup: t.cgroupPath, userns: t.usernsIno }, ...(t.name === 'a' ? { attach: { cgroup: true } } : {}),
      })),
    }
    configPath = join(tb.dir, 'broker.json')
    writeFileSync(configPath, JSON.stringify(config))
    daemon = await startDaemon(configPath)
  }, 60_000)

  afterAll(async () => {
    if (daemon) await kill9(daemon)
    await tb?.close()
  })

  async function clients(): Promise<[BrokerClient, BrokerClient]> {
    return [await tb.tenant('a').client(), await tb.tenant('b').client()]
  }

  async function restart(env: Record<string, string> = {}): Promise<Daemon> {
    if (daemon) expect(await kill9(daemon)).toBe('SIGKILL')
    daemon = await startDaemon(configPath, env)
    return daemon
  }

  test('what both tenants made, pinned and attached is listed the same, opens, and stays each tenant\'s own', async () => {
    let before: Record<'a' | 'b', ReturnType<typeof essence>>
    let linkProg: number
    {
      const [a, b] = await clients()
      try {
        using counts = await a.createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: 'a_counts' })
        using table = await a.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 2, name: 'a_table' })
        using prog = await a.loadProgram(passIngress('a_pass'))
        using link = await a.attach(prog, 'cgroup_inet_ingress', { cgroup: '/' })
        linkProg = prog.id
        await a.pin('map', counts.id, 'a_counts_pin')
        counts.update(new Uint8Array([1, 0, 0, 0]), new Uint8Array(8).fill(9))
        using bm = await b.createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'b_counts' })
        using bp = await b.loadProgram({ type: 'socket_filter', name: 'b_filter', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] })
        await b.pin('prog', bp.id, 'b_filter_pin')
        expect([table.id, link.id, bm.id].every((id) => id > 0)).toBe(true)
        before = { a: essence(await a.list()), b: essence(await b.list()) }
      } finally {
        a.close()
        b.close()
      }
    }
    // Every fd the tenants got back is closed: only the broker's pins keep the objects.
    expect(before.a.map((v) => `${v.kind} ${v.origin} ${v.name}`).sort()).toEqual(['link made ', 'map made a_counts', 'map made a_table', 'prog made a_pass'])
    expect(before.a.find((v) => v.name === 'a_counts')?.pins).toHaveLength(1)
    expect(before.b.map((v) => `${v.kind} ${v.origin} ${v.name}`).sort()).toEqual(['map made b_counts', 'prog made b_filter'])

    const d = await restart()
    expect(d.lines.filter((l) => l.startsWith('registry:'))).toEqual([]) // nothing recovered, nothing dropped
    const [a, b] = await clients()
    try {
      expect(essence(await a.list())).toEqual(before.a)
      expect(essence(await b.list())).toEqual(before.b)
      // Each object opens by id for its tenant, and is the same object.
      for (const v of before.a) {
        using o = await a.open(v.kind, v.id)
        expect((o as { id: number }).id).toBe(v.id)
      }
      using counts = await a.open('map', before.a.find((v) => v.name === 'a_counts')!.id)
      expect(counts.lookup(new Uint8Array([1, 0, 0, 0]))).toEqual(new Uint8Array(8).fill(9))
      // The link held its program on the tenant's cgroup through the restart.
      expect(attachedTo(tb.tenant('a').cgroupDir)).toEqual([linkProg])
      // And neither tenant reaches the other's ids.
      for (const v of before.b) await expect(a.show(v.kind, v.id)).rejects.toMatchObject({ code: 'ENOENT', message: `no ${v.kind} ${v.id} in your view` })
      for (const v of before.a) await expect(b.open(v.kind, v.id)).rejects.toBeInstanceOf(BrokerError)
    } finally {
      a.close()
      b.close()
    }
    // The registry on disk names them all, whole.
    const saved = JSON.parse(readFileSync(join(tb.stateDir, 'registry.json'), 'utf8')) as { objects: { tenant: string; id: number }[] }
    expect(saved.objects.map((o) => `${o.tenant}:${o.id}`).sort()).toEqual([
      ...before.a.map((v) => `a:${v.id}`), ...before.b.map((v) => `b:${v.id}`),
    ].sort())
  })

  test('killed after the pin, before the save: the map is recovered on start and listed for its tenant', async () => {
    await restart({ NODE_ENV: 'test', BPFKIT_BROKER_TEST_CRASH: 'after-pin' })
    const a = await tb.tenant('a').client()
    try {
      await expect(a.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'a_crashed' })).rejects.toThrow()
    } finally {
      a.close()
    }
    expect(await daemon!.exited).toBe('SIGKILL')
    daemon = undefined
    const d = await restart()
    const recovered = d.lines.map((l) => /^registry: recovered map (\d+) of tenant a \(pinned, not recorded\)$/.exec(l)).filter((m) => m !== null)
    expect(recovered).toHaveLength(1)
    const id = Number(recovered[0]![1])
    const [a2, b2] = await clients()
    try {
      expect((await a2.list()).filter((v) => v.id === id && v.kind === 'map')).toMatchObject([{ origin: 'made', name: 'a_crashed' }])
      expect((await b2.list()).some((v) => v.kind === 'map' && v.id === id)).toBe(false)
    } finally {
      a2.close()
      b2.close()
    }
  })

  test('killed after the save, before the reply: the tenant saw an error, yet the map is listed (at least once)', async () => {
    await restart({ NODE_ENV: 'test', BPFKIT_BROKER_TEST_CRASH: 'after-save' })
    const b = await tb.tenant('b').client()
    try {
      await expect(b.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'b_unacked' })).rejects.toThrow()
    } finally {
      b.close()
    }
    expect(await daemon!.exited).toBe('SIGKILL')
    daemon = undefined
    const d = await restart()
    expect(d.lines.filter((l) => l.startsWith('registry:'))).toEqual([])
    const b2 = await tb.tenant('b').client()
    try {
      expect((await b2.list()).filter((v) => v.name === 'b_unacked')).toMatchObject([{ kind: 'map', origin: 'made' }])
    } finally {
      b2.close()
    }
  })
})
