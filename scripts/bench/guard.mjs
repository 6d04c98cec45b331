// The guard's own cost (issue 15): a small program load and an array map
// create + close, by the C baseline and by bpfkit, with no guard, with the
// guard running and no tenant registered (what every host load pays: the
// hooks look the loader up and let it go), and with the loading process a
// tenant (matched by its cgroup, under a policy with capabilities and
// contexts, so the guard walks the program's instructions and counts the
// map against the tenant's quota).
//
// Only the bench's own process becomes a tenant, and only for the tenant's
// measures: before each one it registers a child cgroup of its own and
// moves there, after it moves back and unregisters. The notes add the
// guard's hooks' own run time in the kernel (bpf stats) per operation, and
// check that the guard allowed exactly the tenant's requests. The guard is
// stopped whatever happens.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BpfMap, BpfProgram, enableStats, Guard, ids, NotSupportedError } from '../../dist/index.mjs'
import { smallProgram } from './programs.mjs'

const SOCKET_FILTER = 1
const ARRAY = 2
const ITERS = 200
const MAP = { keySize: 4, valueSize: 8, maxEntries: 64 }

// The tenant may load socket filters and make array maps. With capabilities
// and a context the guard checks each call instruction against the context's
// helpers (the bench's program has none: every instruction is read, none refused).
const tenantPolicy = {
  cmds: ['prog_load', 'map_create'],
  progs: ['socket_filter'],
  attachs: 'any',
  maps: ['array'],
  capabilities: { packets: { helpers: ['skb_load_bytes', 'ktime_get_ns'] } },
  contexts: [{ progs: ['socket_filter'], grant: ['packets'] }],
}

const STATES = [
  ['none', 'no guard'],
  ['on', 'guard on, not a tenant'],
  ['tenant', 'guard on, tenant'],
]

/**
 * Adds the guard's rows. `bench` is index.mjs's toolkit: want, measure, c
 * (the C baseline), row, skipped (a row that could not be measured), note, work.
 */
export async function guardRows(bench) {
  const { want, measure, c, row, skipped, note, work } = bench
  const small = smallProgram()
  const smallFile = join(work, 'guard-small.bin')
  writeFileSync(smallFile, small)
  const ops = [
    {
      name: `prog load ${small.length / 8} insns`,
      c: () => c('progLoad', [], { file: smallFile, type: SOCKET_FILTER, iters: ITERS }),
      b: perOp(() => BpfProgram.loadSync({ type: 'socket_filter', bytes: small, license: 'GPL' }).close()),
    },
    {
      name: `map create+close array ${MAP.maxEntries}x${MAP.valueSize}B`,
      c: () => c('mapCreate', [], { type: ARRAY, ...MAP, iters: ITERS }),
      b: perOp(() => BpfMap.create({ type: 'array', ...MAP }).close()),
    },
  ]
  const rowName = (op, state) => `guard: ${op.name}, ${STATES.find(([s]) => s === state)[1]}`
  const wanted = (state) => ops.filter((op) => want(rowName(op, state)))
  if (!STATES.some(([s]) => wanted(s).length)) return

  // The guard runs for every op at once: 'none' is measured before it
  // starts and again after it stops (one set of values: the machine's drift
  // falls on both sides), 'on' and 'tenant' in turns while it runs.
  const measured = new Map()
  const key = (op, state) => `${op.name}/${state}`
  const put = (op, state, v) => measured.set(key(op, state), v)
  for (const op of wanted('none')) put(op, 'none', measure({ c: op.c, b: op.b }))
  const guarded = wanted('on').length || wanted('tenant').length ? await measureWithGuard(ops, wanted, put, measure) : {}
  if (guarded.ran) {
    for (const op of wanted('none')) {
      const first = measured.get(key(op, 'none'))
      const again = measure({ c: op.c, b: op.b })
      put(op, 'none', { c: [...first.c, ...again.c], b: [...first.b, ...again.b] })
    }
  }

  for (const op of ops) {
    const rows = {}
    for (const [state] of STATES) {
      if (!want(rowName(op, state))) continue
      const v = measured.get(key(op, state))
      if (v) rows[state] = row(rowName(op, state), 'ns', v.c, v.b, null)
      else skipped(rowName(op, state), 'ns', guarded.skipped)
    }
    const ratios = ['on', 'tenant'].flatMap((s) => {
      const r = rows[s]
      if (!rows.none || !r) return []
      return [`${s === 'on' ? 'guard on' : 'tenant'} / no guard: C ${(r.c / rows.none.c).toFixed(2)}, bpfkit ${(r.bpfkit / rows.none.bpfkit).toFixed(2)}`]
    })
    if (ratios.length) note(`guard: ${op.name}: ${ratios.join('; ')}`)
  }
  if (guarded.skipped) note(`guard rows skipped: ${guarded.skipped}`)
  for (const t of guarded.hookTimes?.times ?? []) {
    const none = measured.get(key(ops.find((op) => op.name === t.op), 'none'))
    const share = none ? `, ${((100 * t.perOp) / median(none.c)).toFixed(1)}% of the C row with no guard` : ''
    const hooks = t.perHook.map((h) => `${h.name} ${Math.round(h.ns / h.runs)} ns × ${h.runs}`).join(', ')
    note(`guard: ${t.op}, ${STATES.find(([s]) => s === t.state)[1]}: the guard's hooks ran ${Math.round(t.perOp)} ns per operation in the kernel${share} (${hooks})`)
  }
  if (guarded.hookTimes?.error) note(`guard: no run time of its hooks: ${guarded.hookTimes.error}`)
  if (guarded.tenant) note(`guard: the bench made ${guarded.tenant.ops} loads and map creations as the tenant; the guard checked and allowed ${guarded.tenant.allowed}, refused none`)
}

/**
 * Starts the guard and measures the 'on' and 'tenant' states, `put` taking
 * each result; stops the guard whatever happens. Gives { skipped: the
 * NotSupportedError's message } when the guard cannot run here (nothing
 * measured), else { ran: true, tenant: requests made as the tenant, and
 * allowed (undefined when no tenant row was wanted), hookTimes }.
 */
async function measureWithGuard(ops, wanted, put, measure) {
  const earlier = new Set(ids.programIds())
  let guard
  try {
    guard = await Guard.start()
  } catch (e) {
    if (e instanceof NotSupportedError) return { skipped: e.message }
    throw e
  }
  let cgroup
  let hooks = []
  try {
    // The guard's programs, held open to read their run time.
    hooks = [...ids.programs()].filter((p) => !earlier.has(p.id) && p.name.startsWith('guard_')).map((p) => BpfProgram.fromId(p.id))
    // The bench is a tenant only for the tenant's measures: registered, moved
    // into its cgroup, moved back and unregistered around each, so that the
    // 'on' measures in between see a guard with no tenant at all.
    const tenantOps = { ops: 0, allowed: 0n }
    const asTenant = (f, n) => () => {
      guard.setTenant('bench', { match: { cgroup: cgroup.path }, policy: tenantPolicy })
      try {
        tenantOps.ops += n
        return cgroup.run(f)
      } finally {
        guard.removeTenant('bench')
      }
    }
    if (wanted('tenant').length) cgroup = ownChildCgroup()
    const before = guard.stats()
    for (const op of ops) {
      const on = wanted('on').includes(op)
      const tenant = wanted('tenant').includes(op)
      if (!on && !tenant) continue
      // The C baseline makes a warm-up repetition and a measured one: 2 × ITERS.
      const v = measure({ c: on && op.c, b: on && op.b, tc: tenant && asTenant(op.c, 2 * ITERS), tb: tenant && asTenant(op.b, ITERS) })
      if (on) put(op, 'on', { c: v.c, b: v.b })
      if (tenant) put(op, 'tenant', { c: v.tc, b: v.tb })
    }
    const hookTimes = hookRunTimes(hooks, ops, wanted, asTenant)
    // The guard allowed the tenant's loads and maps, each after its checks, and nothing else.
    tenantOps.allowed = expectStats(guard, before, tenantOps.ops)
    return { ran: true, tenant: cgroup && tenantOps, hookTimes }
  } finally {
    try {
      for (const h of hooks) h.close()
      cgroup?.remove()
    } finally {
      guard.stop()
    }
  }
}

/**
 * The guard's own run time in the kernel (BPF_ENABLE_STATS: every hook's
 * run_time_ns and run_cnt), per operation of the C baseline (a warm-up and a
 * measured repetition: 2 × ITERS), in each state the rows measure. Unlike
 * the rows, no drift between states reaches it; the stats cost a little
 * themselves, so it is measured apart from the rows. Frees (prog_free,
 * map_free) come after an RCU grace period: a few may fall in the next
 * state's count. Gives { error } when the kernel keeps no stats.
 */
function hookRunTimes(hooks, ops, wanted, asTenant) {
  let stats
  try {
    stats = enableStats()
  } catch (e) {
    return { error: e.message }
  }
  const snap = () => hooks.map((h) => {
    const { name, runTimeNs, runCount } = h.info()
    return { name, ns: runTimeNs, runs: runCount }
  })
  const out = []
  try {
    for (const op of ops) {
      for (const [state, run] of [['on', op.c], ['tenant', asTenant(op.c, 2 * ITERS)]]) {
        if (!wanted(state).includes(op)) continue
        const a = snap()
        run()
        const b = snap()
        const perHook = b.map((h, i) => ({ name: h.name, ns: Number(h.ns - a[i].ns), runs: Number(h.runs - a[i].runs) })).filter((h) => h.runs > 0)
        out.push({ op: op.name, state, perOp: perHook.reduce((t, h) => t + h.ns, 0) / (2 * ITERS), perHook })
      }
    }
  } finally {
    stats.close()
  }
  return { times: out }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** One repetition of ITERS operations, in ns per operation. */
function perOp(op) {
  return () => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < ITERS; i++) op()
    return Number(process.hrtime.bigint() - t0) / ITERS
  }
}

/**
 * The guard's counters since `before`: none refused, exactly `allowed`
 * allowed (the tenant's requests, each checked). A bench whose requests
 * the guard did not see as expected measures something else: it stops.
 */
function expectStats(guard, before, allowed) {
  const now = guard.stats()
  const d = { refused: now.refused - before.refused, allowed: now.allowed - before.allowed }
  if (d.refused !== 0n) throw new Error(`bench: the guard refused ${d.refused} of the bench's requests`)
  if (d.allowed !== BigInt(allowed)) throw new Error(`bench: the guard allowed ${d.allowed} requests, but the bench made ${allowed} as the tenant`)
  return d.allowed
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
  throw new Error('bench: no cgroup2 mount: the tenant rows need one')
}

/** The directory of this process's own cgroup v2 ("0::/path" in /proc/self/cgroup). */
function ownCgroupDir(mount) {
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))
  if (!line) throw new Error('bench: this process is in no cgroup v2')
  const path = line.slice(3)
  const rel = mount.root === '/' ? path : path.startsWith(mount.root) ? path.slice(mount.root.length) : undefined
  if (rel === undefined) throw new Error(`bench: this process's cgroup ${path} is outside the cgroup2 mount (root ${mount.root})`)
  return join(mount.point, rel)
}

/**
 * A child cgroup of the cgroup2 root, made for the bench. run(f) moves the
 * whole process (every thread; children spawned meanwhile start there too)
 * into it, calls f, and moves it back to the cgroup it came from.
 */
function ownChildCgroup() {
  const mount = cgroup2Mount()
  const home = ownCgroupDir(mount)
  const path = join(mount.point, `bpfkit-bench-${process.pid}`)
  mkdirSync(path)
  const moveTo = (dir) => writeFileSync(join(dir, 'cgroup.procs'), String(process.pid))
  return {
    path,
    run(f) {
      moveTo(path)
      try {
        return f()
      } finally {
        moveTo(home)
      }
    },
    remove() {
      // A task that just left may hold the cgroup busy for a moment.
      for (let tries = 0; ; tries++) {
        try {
          return rmdirSync(path)
        } catch (e) {
          if (e.code !== 'EBUSY' || tries >= 50) throw e
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
        }
      }
    },
  }
}
