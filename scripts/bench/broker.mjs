// The tenant broker's cost (issue 16): requests per second and per-request
// latency (p50, p99) of `list` with 10 objects (1 client, then 16 at once)
// and of map_create + release, beside a map made and closed directly (the
// floor: what the broker's own BpfMap.create costs, before the socket, the
// checks, the pin and the registry's fsync'd save).
//
// The broker runs in the bench's process (startBroker) on a socket, state
// directory and bpffs of the bench's own; the clients run in a child
// process (this file with --client) that moves itself into a cgroup made
// for the bench, the tenant's match. Latencies come from a sorted array of
// per-request hrtimes: 2,000 requests after 200 warm-up ones. Everything the
// bench made goes (cgroup, mount, broker) whatever happens.
import { fork, execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const here = fileURLToPath(import.meta.url)

const WARMUP = 200
const REQUESTS = 2000
const OBJECTS = 10
const MANY = 16
const HASH = 1
const MAP = { keySize: 4, valueSize: 8, maxEntries: 64 }
const ITERS = 200

export const brokerRowNames = {
  list1: `broker list (${OBJECTS} objects), 1 client`,
  listMany: `broker list (${OBJECTS} objects), ${MANY} clients`,
  create: 'broker map_create+release',
  createTmpfs: 'broker map_create+release, state on tmpfs',
  floor: 'BpfMap.create+close direct (broker floor)',
}

/**
 * Adds the broker's rows. `bench` is index.mjs's toolkit: want, measure, c
 * (the C baseline), row, skipped, note, work.
 */
export async function brokerRows(bench) {
  const { want, measure, c, row, skipped, note, work } = bench
  const metrics = (name) => [`${name}: throughput`, `${name}: p50`, `${name}: p99`]
  const scenarios = { list1: brokerRowNames.list1, listMany: brokerRowNames.listMany, create: brokerRowNames.create, createTmpfs: brokerRowNames.createTmpfs }
  const wanted = Object.entries(scenarios).filter(([, name]) => metrics(name).some(want)).map(([k]) => k)
  if (want(brokerRowNames.floor)) {
    const { BpfMap } = require('../../dist/index.js')
    const v = measure({
      c: () => c('mapCreate', [], { type: HASH, ...MAP, iters: ITERS }),
      b: () => {
        const t0 = process.hrtime.bigint()
        for (let i = 0; i < ITERS; i++) BpfMap.create({ type: 'hash', ...MAP }).close()
        return Number(process.hrtime.bigint() - t0) / ITERS
      },
    })
    const us = (xs) => xs.map((x) => x / 1000)
    row(brokerRowNames.floor, 'µs', us(v.c), us(v.b), null)
  }
  if (!wanted.length) return

  let setup
  try {
    setup = await startBenchBrokers(work, wanted.includes('createTmpfs'))
  } catch (e) {
    // Only a kernel without what the broker needs (SO_PEERPIDFD, 6.5) skips the rows; anything else is the bench's failure.
    if (e?.name !== 'NotSupportedError') throw e
    for (const k of wanted) for (const m of metrics(scenarios[k])) if (want(m)) skipped(m, m.endsWith('throughput') ? 'req/s' : 'µs', e.message)
    note(`broker rows skipped: ${e.message}`)
    return
  }
  try {
    const result = await runClients(setup, wanted)
    for (const k of wanted) {
      const r = result[k]
      const name = scenarios[k]
      const [tp, p50, p99] = metrics(name)
      if (want(tp)) row(tp, 'req/s', null, [r.perSecond], null)
      if (want(p50)) row(p50, 'µs', null, [r.p50 / 1000], null)
      if (want(p99)) row(p99, 'µs', null, [r.p99 / 1000], null)
    }
    const st = setup.broker.stats()
    note(`broker: ${REQUESTS} requests per row after ${WARMUP} warm-up (${MANY} clients share theirs); p50/p99 from each request's own time; its state directory (registry.json, saved with two fsyncs before each reply that changed it) on ${setup.stateFs}, and on tmpfs for the last rows; the broker served ${st.requests} requests, ${st.errors} errors, registry ${st.objects} records at the end`)
    for (const b of [setup.broker, setup.tmpfs?.broker]) {
      const errors = b?.stats().errors ?? 0
      if (errors > 0) throw new Error(`bench: the broker answered ${errors} requests with an error`)
    }
  } finally {
    await setup.close()
  }
}

/** The cgroup v2 mount point and the mount's root within the hierarchy. */
function cgroup2Mount() {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right?.startsWith('cgroup2 ')) {
      const f = left.split(' ')
      return { root: f[3], point: f[4] }
    }
  }
  throw new Error('no cgroup2 mount: the broker matches the bench tenant by cgroup')
}

function removeCgroup(path) {
  // A task that just left may hold the cgroup busy for a moment.
  for (let tries = 0; ; tries++) {
    try {
      return rmdirSync(path)
    } catch (e) {
      if (e.code === 'ENOENT') return
      if (e.code !== 'EBUSY' || tries >= 100) throw e
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
    }
  }
}

/** The filesystem type of `path` (its mount in /proc/self/mountinfo). */
function fsType(path) {
  let best = { point: '', type: 'unknown' }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    const point = left?.split(' ')[4]
    if (point && right && (path === point || path.startsWith(point === '/' ? '/' : `${point}/`)) && point.length >= best.point.length) {
      best = { point, type: right.split(' ')[0] }
    }
  }
  return best.type
}

/**
 * The bench's brokers: one with its state under `work` (the temp dir's
 * disk, as /var/lib would be), and with `tmpfs` a second one whose state is
 * on /dev/shm, to tell the registry's fsyncs from the rest. Sockets under
 * `work`, pins on a private bpffs, one tenant: the bench's cgroup.
 */
async function startBenchBrokers(work, tmpfs) {
  const { startBroker } = require('../../dist/broker/index.js')
  const { features } = require('../../dist/index.js')
  features.havePeerPidfd()
  const mount = cgroup2Mount()
  const cgroup = join(mount.point, `bpfkit-bench-broker-${process.pid}`)
  const dir = mkdtempSync(join(work, 'broker-'))
  const shm = tmpfs ? mkdtempSync('/dev/shm/bpfkit-bench-broker-') : undefined
  const bpffs = join(dir, 'bpffs')
  mkdirSync(bpffs)
  mkdirSync(cgroup)
  let mounted = false
  const brokers = []
  const close = async () => {
    try {
      for (const b of brokers) await b.close()
    } finally {
      removeCgroup(cgroup)
      if (mounted) execFileSync('umount', [bpffs])
      rmSync(dir, { recursive: true, force: true })
      if (shm) rmSync(shm, { recursive: true, force: true })
    }
  }
  const start = async (name, stateDir) => {
    const b = await startBroker({
      socket: join(dir, `${name}.sock`),
      stateDir,
      pinRoot: join(bpffs, name, 'broker'),
      tenantPinRoot: join(bpffs, name, 'tenants'),
      tenants: [{ name: 'bench', match: { cgroup: `/${basename(cgroup)}` }, policy: { cmds: ['map_create'], maps: ['hash'] } }],
      guard: false,
      limits: { maxConnectionsPerTenant: MANY + 2 },
    })
    brokers.push(b)
    return { broker: b, socket: b.socketPath }
  }
  try {
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs])
    mounted = true
    const disk = await start('disk', join(dir, 'state'))
    const onTmpfs = shm ? await start('tmpfs', join(shm, 'state')) : undefined
    return { ...disk, tmpfs: onTmpfs, stateFs: fsType(dir), cgroup, close }
  } catch (e) {
    await close()
    throw e
  }
}

/** Runs the client side in a child process (in the tenant's cgroup) and gives its measures. */
function runClients(setup, wanted) {
  return new Promise((resolve, reject) => {
    const child = fork(here, ['--client'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000)
    let answer
    child.once('message', (m) => { answer = m })
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (answer?.ok) resolve(answer.result)
      else reject(new Error(`bench: the broker's client process failed: ${answer?.error ?? `exit ${code ?? signal}`}`))
    })
    child.send({ socket: setup.socket, tmpfsSocket: setup.tmpfs?.socket, cgroup: setup.cgroup, wanted })
  })
}

// ---- the client process ----

/** p50, p99 and requests per second from per-request times (ns) and the wall time of the run. */
function summary(times, wallNs) {
  const s = Float64Array.from(times).sort()
  const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]
  return { requests: s.length, p50: at(0.5), p99: at(0.99), perSecond: (s.length * 1e9) / wallNs }
}

/** `clients` loops at once, `total` timed requests (after `warmup`) shared among them. */
async function timed(clients, warmup, total, op) {
  const share = (n, i) => Math.floor(n / clients.length) + (i < n % clients.length ? 1 : 0)
  await Promise.all(clients.map(async (c, i) => { for (let k = share(warmup, i); k > 0; k--) await op(c) }))
  const times = []
  const t0 = process.hrtime.bigint()
  await Promise.all(clients.map(async (c, i) => {
    for (let k = share(total, i); k > 0; k--) {
      const a = process.hrtime.bigint()
      await op(c)
      times.push(Number(process.hrtime.bigint() - a))
    }
  }))
  return summary(times, Number(process.hrtime.bigint() - t0))
}

async function clientMain({ socket, tmpfsSocket, cgroup, wanted }) {
  const { BrokerClient } = require('../../dist/broker/index.js')
  // The tenant is whoever connects from the bench's cgroup: this whole process goes there.
  writeFileSync(join(cgroup, 'cgroup.procs'), String(process.pid))
  const out = {}
  const createRelease = async (c) => {
    const m = await c.createMap({ type: 'hash', ...MAP, name: 'bench_tmp' })
    const id = m.id
    m.close()
    await c.release('map', id)
  }
  const first = await BrokerClient.connect(socket)
  try {
    if (first.tenant !== 'bench') throw new Error(`connected as ${first.tenant}, not the bench's tenant`)
    const objects = []
    for (let i = 0; i < OBJECTS; i++) {
      const m = await first.createMap({ type: 'hash', ...MAP, name: `bench_${i}` })
      objects.push(m.id)
      m.close()
    }
    const list = async (c) => {
      const got = await c.list()
      if (got.length !== OBJECTS) throw new Error(`list gave ${got.length} objects, not ${OBJECTS}`)
    }
    if (wanted.includes('list1')) out.list1 = await timed([first], WARMUP, REQUESTS, list)
    if (wanted.includes('listMany')) {
      const many = [first]
      try {
        while (many.length < MANY) many.push(await BrokerClient.connect(socket))
        out.listMany = await timed(many, WARMUP, REQUESTS, list)
      } finally {
        for (const c of many.slice(1)) c.close()
      }
    }
    if (wanted.includes('create')) out.create = await timed([first], WARMUP, REQUESTS, createRelease)
    for (const id of objects) await first.release('map', id)
  } finally {
    first.close()
  }
  if (wanted.includes('createTmpfs')) {
    const c = await BrokerClient.connect(tmpfsSocket)
    try {
      out.createTmpfs = await timed([c], WARMUP, REQUESTS, createRelease)
    } finally {
      c.close()
    }
  }
  return out
}

if (process.argv[1] === here && process.argv[2] === '--client') {
  process.once('message', async (task) => {
    try {
      process.send({ ok: true, result: await clientMain(task) }, () => process.exit(0))
    } catch (e) {
      process.send({ ok: false, error: e instanceof Error ? e.stack : String(e) }, () => process.exit(1))
    }
  })
}
