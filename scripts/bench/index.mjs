#!/usr/bin/env node
// npm run bench [-- --json] [-- --only <text>] [-- --skip <text>] [-- --rounds <n>] [-- --runs <n>] [-- --cpu <n>|none] [-- --out <file>]
//
// bpfkit beside the physical floor: every operation measured, in one run, on
// the same maps and data, by a C program making raw bpf(2) calls (compiled
// now with the system compiler), by the floor (the same raw syscalls made
// from this Node process through a minimal Node-API function, floor.c,
// compiled now against Node's headers), by bpfkit, and by the npm `bpf`
// package where it has the operation. The contenders take turns in short
// blocks, round after round (the order rotating each round); each row shows
// the median of the rounds and the JSON their spread. `--runs 3` makes the
// whole measure three times, each in a fresh process, and says per row
// whether the three medians agree within 10%.
// The guard's cost (guard.mjs, `--only guard`) and the tenant broker's
// (broker.mjs, `--only broker`) come last; `--skip <text>` leaves rows out.
// Needs root (or CAP_BPF + CAP_SYS_ADMIN) and the built dist/.
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, homedir, loadavg, release, tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { stat } from 'node:fs/promises'
import { BpfMap, BpfProgram, ids } from '../../dist/index.mjs'
import { largeProgram, ringProducer, smallProgram } from './programs.mjs'
import { guardRows } from './guard.mjs'
import { brokerRows } from './broker.mjs'
import { collectionRows } from './collection.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const json = argv.includes('--json')
const opt = (name) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined)
const only = opt('--only')
// --skip may come more than once: rows whose names hold any of the texts are left out.
const skips = argv.flatMap((a, i) => (a === '--skip' && argv[i + 1] !== undefined ? [argv[i + 1]] : []))
// Rounds of turns per measure (--reps is the older name).
const REPS = Number(opt('--rounds') ?? opt('--reps') ?? 25)
// --cpu <n>|none: the CPU the main thread and the C baseline run on (the last
// one by default). Unpinned, the C process often ran on the other vCPU than
// Node, and on a shared VM the two vCPUs' speeds differ and change: C's
// figures moved 20-40% between runs while the floor's and bpfkit's did not.
const cpuOpt = opt('--cpu') ?? String(cpus().length - 1)
// --out <file>: the JSON written there as well (beside the table).
const outFile = opt('--out')
const RUNS = opt('--runs') === undefined ? 1 : Number(opt('--runs'))
if (!(REPS >= 1) || !(RUNS >= 1)) {
  console.error('bench: --rounds and --runs take a positive number')
  process.exit(2)
}

const log = (...a) => { if (!json) console.error(...a) }
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const now = () => Number(process.hrtime.bigint())

// ---- the peer: the npm bpf package, if it loads here ----
let peer
let peerReason
try {
  peer = createRequire(import.meta.url)('bpf')
} catch (e) {
  peerReason = `the npm bpf package did not load: ${String(e.message).split('\n')[0]}`
}

// ---- the C baseline ----
const work = mkdtempSync(join(tmpdir(), 'bpfkit-bench-'))
const baseline = join(work, 'baseline')
let ccVersion
try {
  ccVersion = execFileSync('cc', ['--version'], { encoding: 'utf8' }).split('\n')[0]
  execFileSync('cc', ['-O2', '-Wall', '-o', baseline, join(here, 'baseline.c')], { stdio: ['ignore', 'inherit', 'inherit'] })
} catch (e) {
  console.error(`bench: compiling the C baseline failed: ${e.message}`)
  process.exit(1)
}

// ---- the floor: floor.c as a Node-API addon, built now ----
const floor = buildFloor()

/**
 * Node's headers: beside the running node (a distribution's or an official
 * tarball's include/node), or where node-gyp keeps them for this version.
 */
function nodeHeaders() {
  const version = process.versions.node
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', version, 'include', 'node'),
    join(homedir(), '.node-gyp', version, 'include', 'node'),
  ].filter(Boolean)
  const found = candidates.find((d) => existsSync(join(d, 'node_api.h')))
  if (!found) {
    console.error(`bench: no Node headers (node_api.h) for Node ${version} in ${candidates.join(', ')}; the floor column needs them: install them (npx node-gyp install, or the distribution's nodejs headers package) or set npm_config_nodedir`)
    process.exit(1)
  }
  return found
}

function buildFloor() {
  const out = join(work, 'floor.node')
  try {
    execFileSync('cc', ['-O2', '-Wall', '-shared', '-fPIC', '-I', nodeHeaders(), '-o', out, join(here, 'floor.c')], { stdio: ['ignore', 'inherit', 'inherit'] })
    return createRequire(import.meta.url)(out)
  } catch (e) {
    console.error(`bench: building the floor addon (floor.c) failed: ${e.message}`)
    process.exit(1)
  }
}
const ENOENT = 2
// floor.c adds this to the last batch call's element count.
const LAST_BATCH = 0x10000
const BPF = { lookup: 1, update: 2, delete: 3, lookupBatch: 24, updateBatch: 26 }
/** Makes the prepared floor call, failing unless it returns `expect`. */
const floorCall = (expect) => {
  const r = floor.call()
  if (r !== expect) throw new Error(`floor call returned ${r}, expected ${expect}`)
}

/** Runs the C baseline once on `fds` (seen by it as 3, 4, ...): one warm-up, one measured repetition. */
function c(op, fds, params) {
  const args = [op, ...Object.entries({ reps: 1, warmup: 1, ...params }).map(([k, v]) => `${k}=${v}`)]
  fds.forEach((fd, i) => args.push(`${['fd', 'prog'][i]}=${3 + i}`))
  const r = spawnSync(baseline, args, { stdio: ['ignore', 'pipe', 'inherit', ...fds], encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`C baseline ${op} failed (status ${r.status})`)
  return Number(r.stdout.trim())
}

/**
 * Runs the contenders in turns, round after round after a warm-up round, so
 * that the machine's drift (other load, frequency) falls on all of them
 * alike; the order rotates each round, so that none always follows the same
 * one (after C's process exits, say). Each function makes one short block (a
 * few milliseconds) and returns its value (ns per op...).
 *
 * At least REPS rounds; then more, until every contender's median is known
 * within ±3% (the 95% confidence interval of a median, from the order
 * statistics of its rounds), up to 4 x REPS rounds or 30 s for the measure:
 * rows whose blocks spread widely (program loads, collections) get more
 * rounds, the steady ones stop at REPS. `settle`, when given, runs untimed
 * before every block (SETTLE_MS).
 */
function measure(fns, { settle } = {}) {
  const present = Object.entries(fns).filter(([, f]) => f)
  for (const [, f] of present) { settle?.(); f() }
  const out = Object.fromEntries(present.map(([k]) => [k, []]))
  const t0 = now()
  for (let r = 0; r < REPS || (r < MAX_ROUNDS && now() - t0 < BUDGET_NS && !settled(out)); r++) {
    for (const [k, f] of rotate(present, r)) { settle?.(); out[k].push(f()) }
  }
  return out
}
async function measureAsync(fns, { settle } = {}) {
  const present = Object.entries(fns).filter(([, f]) => f)
  for (const [, f] of present) { settle?.(); await f() }
  const out = Object.fromEntries(present.map(([k]) => [k, []]))
  const t0 = now()
  for (let r = 0; r < REPS || (r < MAX_ROUNDS && now() - t0 < BUDGET_NS && !settled(out)); r++) {
    for (const [k, f] of rotate(present, r)) { settle?.(); out[k].push(await f()) }
  }
  return out
}
const rotate = (xs, r) => xs.map((_, i) => xs[(i + r) % xs.length])
const MAX_ROUNDS = 4 * REPS
const BUDGET_NS = 30e9
/** Whether every contender's median is known within ±3%. */
const settled = (out) => Object.values(out).every((xs) => medianCi(xs) <= 0.06)
/** The width of the 95% confidence interval of the median of `xs`, relative to it (0-based order statistics (n-1)/2 ± 0.98√n). */
function medianCi(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  const h = 0.98 * Math.sqrt(n)
  const lo = Math.max(0, Math.floor((n - 1) / 2 - h))
  const hi = Math.min(n - 1, Math.ceil((n - 1) / 2 + h))
  const m = median(s)
  return m ? (s[hi] - s[lo]) / Math.abs(m) : 0
}
/** Sleeps `ms` milliseconds without the event loop (the sync rows' settle). */
const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)

// ---- rows ----
const rows = []
const notes = []

const HIGHER = new Set(['records/s', 'req/s'])
const r2 = (x) => Math.round(x * 100) / 100

/** min, median, max and the interquartile range relative to the median, of one contender's rounds. */
function spread(xs) {
  if (!xs || !xs.length) return null
  const s = [...xs].sort((a, b) => a - b)
  const q = (p) => {
    const i = (s.length - 1) * p
    const lo = Math.floor(i)
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo)
  }
  const m = median(s)
  // No IQR of one or two values (the broker's rows are one measure each).
  return { min: round(s[0]), median: round(m), max: round(s[s.length - 1]), iqr: m && s.length >= 3 ? r2((q(0.75) - q(0.25)) / m) : null }
}

/**
 * One table row. `unit` 'ns', 'µs' or 'ms' (lower is better) or 'records/s',
 * 'req/s' (higher is better: the ratios are then C / bpfkit and floor /
 * bpfkit, so that lower is always better). `extra.floor`: the floor's values;
 * `extra.lookup`: a C lookup's, for the mmap rows' target.
 */
function row(name, unit, cVals, bVals, pVals, peerNote, extra = {}) {
  const fVals = extra.floor ?? null
  const higher = HIGHER.has(unit)
  const cm = cVals ? median(cVals) : null
  const fm = fVals ? median(fVals) : null
  const bm = median(bVals)
  const pm = pVals ? median(pVals) : null
  const ratioOf = (base) => (base === null || !bm ? null : r2(higher ? base / bm : bm / base))
  const r = {
    name,
    unit,
    c: round(cm),
    floor: round(fm),
    bpfkit: round(bm),
    peer: round(pm),
    ratio: ratioOf(cm),
    ratioFloor: ratioOf(fm),
    floorOverC: fm !== null && cm ? r2(higher ? cm / fm : fm / cm) : null,
    rounds: bVals.length,
    spread: { c: spread(cVals), floor: spread(fVals), bpfkit: spread(bVals), peer: spread(pVals) },
  }
  if (extra.lookup) r.lookup = round(median(extra.lookup))
  rows.push(r)
  if (pVals === null && peerNote) notes.push(`${name}: bpf (npm) ${peerNote}`)
  log(`  ${name.padEnd(38)} C ${fmt(r.c)}  floor ${fmt(r.floor)}  bpfkit ${fmt(r.bpfkit)}  bpf ${fmt(r.peer)}  ${unit}  /C ${r.ratio ?? '—'}  /floor ${r.ratioFloor ?? '—'}  IQR ${worstIqr(r)}`)
  return r
}
/** A row that cannot be measured on this machine: shown as skipped, `reason` in the JSON (and in a note, by the caller). */
function skipped(name, unit, reason) {
  rows.push({ name, unit, c: null, floor: null, bpfkit: null, peer: null, ratio: null, ratioFloor: null, skipped: reason })
  log(`  ${name.padEnd(38)} skipped: ${reason}`)
}
const round = (x) => (x === null || x === undefined ? null : x >= 100 ? Math.round(x) : Math.round(x * 100) / 100)
const fmt = (x) => (x === null || x === undefined ? '—' : String(x))
const want = (name) => (!only || name.includes(only)) && !skips.some((s) => name.includes(s))
const COLUMNS = ['c', 'floor', 'bpfkit', 'peer']
/** The widest relative IQR of a row's columns, as a percentage. */
function worstIqr(r) {
  const iqrs = COLUMNS.map((k) => r.spread?.[k]?.iqr).filter((x) => x !== null && x !== undefined)
  return iqrs.length ? `${Math.round(100 * Math.max(...iqrs))}%` : '—'
}

/**
 * The row's target, judged from its figures (so that `--runs` can judge the
 * runs' combined figures the same way). basis 'floor': bpfkit / floor ≤
 * limit; 'c': bpfkit / C ≤ limit; 'rate': bpfkit / C ≥ limit (records/s);
 * 'value': bpfkit < limit; 'speedup': (C lookup / bpfkit) ≥ limit.
 */
function goal(r, basis, limit) {
  r.goal = { basis, limit }
}
function judge(r) {
  const { basis, limit } = r.goal
  if (r.skipped) return { name: r.name, target: '', value: null, met: false }
  switch (basis) {
    case 'floor': return { name: r.name, target: `≤ ${limit}× floor`, value: r.ratioFloor, met: r.ratioFloor !== null && r.ratioFloor <= limit }
    case 'c': return { name: r.name, target: `≤ ${limit}× C`, value: r.ratio, met: r.ratio !== null && r.ratio <= limit }
    case 'rate': {
      const v = r.ratio ? r2(1 / r.ratio) : null
      return { name: r.name, target: `≥ ${limit}× C records/s`, value: v, met: v !== null && v >= limit }
    }
    case 'value': return { name: r.name, target: `< ${limit} ${r.unit}`, value: r.bpfkit, met: r.bpfkit < limit }
    case 'speedup': {
      const v = Math.round(r.lookup / r.bpfkit)
      return { name: r.name, target: `≥ ${limit}× faster than a syscall lookup (C lookup of the same map / bpfkit mmap read)`, value: v, met: v >= limit }
    }
  }
  throw new Error(`unknown target basis ${basis}`)
}

const fill = (n) => new Uint8Array(n).fill(7)
const u32 = (i) => { const b = Buffer.alloc(4); b.writeUInt32LE(i); return b }

function peerMap(m) {
  return new peer.RawMap(peer.createMapRef(m.fd))
}

// Map operations per op: hash and array, 8/64/256 byte values, u32 keys.
// Like the C loop, which builds each key in a local variable, each
// contender writes the next key into one key buffer of its own.
function keyBuffer() {
  const key = Buffer.alloc(4)
  return { key, set: (i) => { key.writeUInt32LE(i) } }
}

// Operations per block of the per-call rows: a few milliseconds each.
const ITERS = 4096

function mapRows() {
  const N = 4096
  for (const type of ['hash', 'array']) {
    for (const size of [8, 64, 256]) {
      const names = ['lookup', 'lookupInto', 'update', ...(type === 'hash' ? ['delete'] : [])].map((op) => [op, `${type} ${op} ${size}B`])
      if (!names.some(([, n]) => want(n))) continue
      const m = BpfMap.create({ type, keySize: 4, valueSize: size, maxEntries: N })
      const value = fill(size)
      const refill = () => { for (let i = 0; i < N; i++) m.update(u32(i), value) }
      refill()
      const p = peer ? peerMap(m) : undefined
      const pValue = Buffer.from(value)
      const bk = keyBuffer()
      const pk = keyBuffer()
      const fk = keyBuffer()
      const fValue = fill(size)
      // The floor's loop: the key written as the others write theirs, then the prepared call.
      const floorLoop = (cmd, n, each) => () => {
        const { key, set } = fk
        // A delete passes no value: the kernel refuses attribute fields its command does not use.
        floor.elem(cmd, m.fd, key, cmd === BPF.delete ? null : fValue, 0)
        const t0 = now()
        for (let i = 0; i < n; i++) { set(each(i)); floorCall(0) }
        return (now() - t0) / n
      }
      try {
        for (const [op, name] of names) {
          if (!want(name)) continue
          let v
          if (op === 'lookup') {
            v = measure({
              c: () => c('lookup', [m.fd], { nkeys: N, iters: ITERS, valueBytes: size }),
              f: floorLoop(BPF.lookup, ITERS, (i) => i & (N - 1)),
              b: () => {
                const { key, set } = bk
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (m.lookup(key) === undefined) throw new Error('miss') }
                return (now() - t0) / ITERS
              },
              p: p && (() => {
                const { key, set } = pk
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (p.get(key) === undefined) throw new Error('miss') }
                return (now() - t0) / ITERS
              }),
            })
          } else if (op === 'lookupInto') {
            // The allocation-free form: the value copied into the caller's buffer.
            const out = new Uint8Array(size)
            v = measure({
              c: () => c('lookup', [m.fd], { nkeys: N, iters: ITERS, valueBytes: size }),
              f: floorLoop(BPF.lookup, ITERS, (i) => i & (N - 1)),
              b: () => {
                const { key, set } = bk
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (!m.lookupInto(key, out)) throw new Error('miss') }
                return (now() - t0) / ITERS
              },
              p: p && (() => {
                const { key, set } = pk
                const pOut = Buffer.alloc(size)
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (p.get(key, 0, pOut) === undefined) throw new Error('miss') }
                return (now() - t0) / ITERS
              }),
            })
          } else if (op === 'update') {
            v = measure({
              c: () => c('update', [m.fd], { nkeys: N, iters: ITERS, valueBytes: size }),
              f: floorLoop(BPF.update, ITERS, (i) => { fValue[0] = i; return i & (N - 1) }),
              b: () => {
                const { key, set } = bk
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); value[0] = i; m.update(key, value) }
                return (now() - t0) / ITERS
              },
              p: p && (() => {
                const { key, set } = pk
                const t0 = now()
                for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); pValue[0] = i; p.set(key, pValue) }
                return (now() - t0) / ITERS
              }),
            })
          } else {
            const fDelete = floorLoop(BPF.delete, N, (i) => i)
            v = measure({
              c: () => c('delete', [m.fd], { nkeys: N, valueBytes: size }),
              f: () => { refill(); return fDelete() },
              b: () => {
                refill()
                const { key, set } = bk
                const t0 = now()
                for (let i = 0; i < N; i++) { set(i); if (!m.delete(key)) throw new Error('miss') }
                return (now() - t0) / N
              },
              p: p && (() => {
                refill()
                const { key, set } = pk
                const t0 = now()
                for (let i = 0; i < N; i++) { set(i); if (!p.delete(key)) throw new Error('miss') }
                return (now() - t0) / N
              }),
            })
            refill()
          }
          const r = row(name, 'ns', v.c, v.b, v.p ?? null, undefined, { floor: v.f })
          // An allocating lookup makes its result; the others only copy.
          goal(r, 'floor', op === 'lookup' ? 1.15 : 1.05)
        }
      } finally {
        p?.ref.close()
        m.close()
      }
    }
  }
}

// Per-CPU lookup: one value per possible CPU comes back.
function perCpuRows() {
  for (const type of ['percpu_hash', 'percpu_array']) {
    const name = `${type.replace('_', ' ')} lookup 8B`
    if (!want(name)) continue
    const N = 4096
    const { key, set } = keyBuffer()
    const fk = keyBuffer()
    const m = BpfMap.create({ type, keySize: 4, valueSize: 8, maxEntries: N })
    const fValue = new Uint8Array(m.valueBytes)
    try {
      for (let i = 0; i < N; i++) m.update(u32(i), fill(m.valueBytes))
      const v = measure({
        c: () => c('lookup', [m.fd], { nkeys: N, iters: ITERS, valueBytes: m.valueBytes }),
        f: () => {
          floor.elem(BPF.lookup, m.fd, fk.key, fValue, 0)
          const t0 = now()
          for (let i = 0; i < ITERS; i++) { fk.set(i & (N - 1)); floorCall(0) }
          return (now() - t0) / ITERS
        },
        b: () => {
          const t0 = now()
          for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (m.lookup(key) === undefined) throw new Error('miss') }
          return (now() - t0) / ITERS
        },
      })
      const r = row(name, 'ns', v.c, v.b, null, peer ? 'sizes lookup buffers by value_size, not per CPU (the kernel would write past them): not run' : undefined, { floor: v.f })
      goal(r, 'floor', 1.2)
    } finally {
      m.close()
    }
  }
}

// Batches of 1,024 entries, per element: packed bytes (lookupBatchInto,
// updateBatchBytes) and [key, value] entries (lookupBatch, updateBatch).
// A block makes BATCHES whole-map batches (a batch alone is 0.1-0.5 ms: one
// preemption or collection would be most of it).
function batchRows() {
  const COUNT = 1024
  const BATCHES = 32
  for (const size of [8, 64]) {
    const names = [`hash lookup batch 1024 ${size}B into`, `hash lookup batch 1024 ${size}B entries`, `hash update batch 1024 ${size}B`, `hash update batch 1024 ${size}B entries`]
    if (!names.some(want)) continue
    const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: size, maxEntries: COUNT })
    const p = peer ? peerMap(m) : undefined
    try {
      const entries = Array.from({ length: COUNT }, (_, i) => [u32(i), Buffer.from(fill(size))])
      const keys = Buffer.concat(entries.map(([k]) => k))
      const values = Buffer.concat(entries.map(([, v]) => v))
      m.updateBatchBytes(keys, values)
      const perElem = (f) => () => {
        let n = 0
        const t0 = now()
        for (let i = 0; i < BATCHES; i++) n += f()
        const dt = now() - t0
        if (n !== COUNT * BATCHES) throw new Error(`${BATCHES} batches did ${n} elements`)
        return dt / n
      }
      const cLookup = () => c('lookupBatch', [m.fd], { count: COUNT, valueBytes: size, expect: COUNT, iters: BATCHES })
      const cUpdate = () => c('updateBatch', [m.fd], { count: COUNT, valueBytes: size, iters: BATCHES })
      // The floor: the same batch calls on buffers of its own, prepared outside the timing.
      const fKeys = Buffer.from(keys)
      const fValues = Buffer.from(values)
      const fOutKeys = Buffer.alloc(keys.length)
      const fOutValues = Buffer.alloc(values.length)
      const fLookup = () => {
        floor.batch(BPF.lookupBatch, m.fd, fOutKeys, fOutValues, COUNT)
        return perElem(() => {
          let n = 0
          for (;;) {
            const r = floor.call()
            if (r < 0) throw new Error(`floor batch lookup failed: ${r}`)
            if (r >= LAST_BATCH) return n + r - LAST_BATCH
            n += r
          }
        })()
      }
      const fUpdate = () => {
        floor.batch(BPF.updateBatch, m.fd, fKeys, fValues, COUNT)
        return perElem(() => floor.call())()
      }
      const peerLookup = p && perElem(() => { let n = 0; for (const b of p.getBatch(COUNT)) n += b.length; return n })
      const peerUpdate = p && perElem(() => { p.setBatch(entries); return COUNT })
      const run = (name, cf, ff, bf, pf, limit) => {
        if (!want(name)) return
        const v = measure({ c: cf, f: ff, b: perElem(bf), p: pf })
        const r = row(name, 'ns', v.c, v.b, v.p ?? null, pf ? undefined : peer ? 'gives only entries (next row)' : undefined, { floor: v.f })
        goal(r, 'c', limit)
      }
      // Packed lookups into buffers of the caller's, as C and the floor read into theirs.
      const bKeys = new Uint8Array(keys.length)
      const bValues = new Uint8Array(values.length)
      run(names[0], cLookup, fLookup, () => m.lookupBatchInto(bKeys, bValues, { batchSize: COUNT }), undefined, 1.2)
      run(names[1], cLookup, fLookup, () => m.lookupBatch({ batchSize: COUNT }).length, peerLookup, 1.6)
      run(names[2], cUpdate, fUpdate, () => m.updateBatchBytes(keys, values), undefined, 1.2)
      run(names[3], cUpdate, fUpdate, () => m.updateBatch(entries), peerUpdate, 1.6)
    } finally {
      p?.ref.close()
      m.close()
    }
  }
}

// Walking 10,000 keys with GET_NEXT_KEY, per key.
function iterateRows() {
  const name = 'hash iterate 10000 keys'
  if (!want(name)) return
  const N = 10000
  const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: N })
  const p = peer ? peerMap(m) : undefined
  try {
    m.updateBatch(Array.from({ length: N }, (_, i) => [u32(i), fill(8)]))
    const walk = (it) => () => {
      const t0 = now()
      let n = 0
      for (const _ of it()) n++
      const dt = now() - t0
      if (n !== N) throw new Error(`walked ${n} keys`)
      return dt / n
    }
    const f = () => {
      floor.nextKey(m.fd)
      const t0 = now()
      let n = 0
      let r
      while ((r = floor.call()) === 0) n++
      const dt = now() - t0
      if (r !== -ENOENT || n !== N) throw new Error(`floor walked ${n} keys, then ${r}`)
      return dt / n
    }
    const v = measure({ c: () => c('iterate', [m.fd], { expect: N }), f, b: walk(() => m.keys()), p: p && walk(() => p.keys()) })
    const r = row(name, 'ns', v.c, v.b, v.p ?? null, undefined, { floor: v.f })
    goal(r, 'c', 1.3)
  } finally {
    p?.ref.close()
    m.close()
  }
}

// An mmap'd array element read, set against a syscall lookup of the same
// map: u64 values (each read makes a bigint) and u32 values (plain numbers).
// Each block function is first run in short blocks, so that V8 optimizes it
// whole, with feedback for every site, before the first timed block: left to
// tier up inside its first long block, it was compiled on-stack (OSR) and,
// depending on a race with the background compile, later blocks ran the OSR
// code or a whole-function compile: the u32 row read 3.3 or 5 ns per run
// (issue 17). The u32 sum wraps as C's does ((s + x) | 0): a sum growing
// past 2^31 deoptimized the loop halfway through its first block. (The
// u64 row's reads no longer slow the u32 row's either: each element type
// has its own get, lib/map/mmap.ts.)
function mmapRows() {
  const N = 4096
  // Where the sums go, so that the reads cannot be optimized away.
  let sink
  const blocks = {
    u64: (view) => (iters) => {
      let sum = 0n
      const t0 = now()
      for (let i = 0; i < iters; i++) sum += view.get(i & (N - 1))
      const dt = now() - t0
      sink = sum
      return dt / iters
    },
    u32: (view) => (iters) => {
      let sum = 0
      const t0 = now()
      for (let i = 0; i < iters; i++) sum = (sum + view.get(i & (N - 1))) | 0
      const dt = now() - t0
      sink = sum
      return dt / iters
    },
  }
  for (const [desc, size] of [['u64', 8], ['u32', 4]]) {
    const name = `array mmap read ${desc}`
    if (!want(name)) continue
    const ITERS = 2_000_000
    const m = BpfMap.create({ type: 'array', key: 'u32', value: desc, maxEntries: N, flags: ['mmapable'] })
    const view = m.mmap({ writable: false })
    try {
      for (let i = 0; i < N; i++) m.set(i, desc === 'u64' ? BigInt(i) : i)
      const block = blocks[desc](view)
      for (let i = 0; i < 2000; i++) block(1000)
      const v = measure({
        c: () => c('mmapRead', [m.fd], { entries: N, valueSize: size, iters: ITERS }),
        b: () => block(ITERS),
        lookup: () => c('lookup', [m.fd], { nkeys: N, iters: 20000, valueBytes: size }),
      })
      const r = row(name, 'ns', v.c, v.b, null, peer ? 'has no mmap' : undefined, { lookup: v.lookup })
      goal(r, 'speedup', 100)
    } finally {
      view.close()
      m.close()
    }
  }
}

// Between two blocks of program loads (200 programs, or 10 collections of
// 20): time for the kernel to free the previous block's programs (an RCU
// grace period, then a workqueue item each that frees the JIT image). It
// does not remove the rows' split into fast and slow blocks, which C's blocks
// show as well (100 ms made no difference); it removes one known cause.
const SETTLE_MS = 20

// Program loads: the same instruction bytes, loaded and closed.
async function loadRows(work) {
  const small = smallProgram()
  const smallFile = join(work, 'small.bin')
  writeFileSync(smallFile, small)
  const type = 1 // socket_filter
  const ITERS = 200
  if (want('prog load small')) {
    const perLoad = (load) => () => {
      const t0 = now()
      for (let i = 0; i < ITERS; i++) load().close()
      return (now() - t0) / ITERS
    }
    // The floor: the prepared load, and a close of its fd (two calls, as bpfkit's load and close).
    const license = Buffer.from('GPL\0')
    const f = () => {
      floor.progLoad(type, small, license)
      const t0 = now()
      for (let i = 0; i < ITERS; i++) {
        const fd = floor.call()
        if (fd < 0) throw new Error(`floor prog load failed: ${fd}`)
        floor.closeFd(fd)
      }
      return (now() - t0) / ITERS
    }
    const v = measure({
      c: () => c('progLoad', [], { file: smallFile, type, iters: ITERS }),
      f,
      b: perLoad(() => BpfProgram.loadSync({ type: 'socket_filter', bytes: small, license: 'GPL' })),
    }, { settle: () => pause(SETTLE_MS) })
    const r = row(`prog load small (${small.length / 8} insns)`, 'ns', v.c, v.b, null, peer ? 'cannot load programs' : undefined, { floor: v.f })
    goal(r, 'c', 1.15)
    const va = await measureAsync({
      c: () => c('progLoad', [], { file: smallFile, type, iters: ITERS }),
      f,
      b: async () => {
        const t0 = now()
        for (let i = 0; i < ITERS; i++) (await BpfProgram.load({ type: 'socket_filter', bytes: small, license: 'GPL' })).close()
        return (now() - t0) / ITERS
      },
    }, { settle: () => pause(SETTLE_MS) })
    const ra = row(`prog load small async`, 'ns', va.c, va.b, null, undefined, { floor: va.f })
    goal(ra, 'c', 1.5)
  }
  if (want('prog load large') || want('event loop')) {
    const large = largeProgram()
    const largeFile = join(work, 'large.bin')
    writeFileSync(largeFile, large)
    const label = `${Math.round(large.length / 8 / 1000)}k insns`
    const v = await measureAsync({
      c: () => c('progLoad', [], { file: largeFile, type, iters: 1, warmup: 0 }),
      b: () => {
        const t0 = now()
        BpfProgram.loadSync({ type: 'socket_filter', bytes: large, license: 'GPL' }).close()
        return now() - t0
      },
      a: async () => {
        const e0 = performance.eventLoopUtilization()
        const t0 = now()
        const prog = await BpfProgram.load({ type: 'socket_filter', bytes: large, license: 'GPL' })
        const dt = now() - t0
        busy.push(performance.eventLoopUtilization(e0).active)
        prog.close()
        return dt
      },
    })
    // How long the event loop was kept busy (not waiting in epoll) while the
    // verifier ran for ~340 ms: libuv's own idle-time count, so only what ran
    // on the loop (bpfkit's call, the completion, the promise) counts, never
    // the machine's other work. (Its earlier form, the maximum event-loop
    // delay, measured the machine: libuv's millisecond timers and the other
    // load gave 1-12 ms whatever was loading, C's child process included.)
    // No C column: C has no event loop (a synchronous load keeps a loop
    // busy for the whole load, the row above).
    // Unpinned from here on: the guard's and broker's rows (their clients are
    // child processes) measure the machine as it is.
    unpin()
    const ms = (xs) => xs.map((x) => x / 1e6)
    const r = row(`prog load large (${label})`, 'ms', ms(v.c), ms(v.b), null)
    goal(r, 'c', 1.05)
    const ra = row(`prog load large async`, 'ms', ms(v.c), ms(v.a), null)
    goal(ra, 'c', 1.05)
    // The median round, as every row; the worst round is in the JSON (spread.bpfkit.max).
    const rs = row('event loop busy, async large load', 'ms', null, busy.slice(-v.a.length), null)
    goal(rs, 'value', 5)
  }
}
const busy = []

// testRun: the kernel runs the program `repeat` times; per run.
async function testRunRows() {
  const name = 'testRun repeat 100000'
  if (!want('testRun')) return
  const REPEAT = 100_000
  const prog = BpfProgram.loadSync({ type: 'socket_filter', bytes: smallProgram(), license: 'GPL' })
  const data = new Uint8Array(64)
  const fData = new Uint8Array(64)
  try {
    const v = await measureAsync({
      c: () => c('testRun', [prog.fd], { repeat: REPEAT, dataSize: data.length }),
      f: () => {
        floor.testRun(prog.fd, fData, REPEAT)
        const t0 = now()
        floorCall(0)
        return (now() - t0) / REPEAT
      },
      b: () => {
        const t0 = now()
        prog.testRunSync({ data, repeat: REPEAT })
        return (now() - t0) / REPEAT
      },
      a: async () => {
        const t0 = now()
        await prog.testRun({ data, repeat: REPEAT })
        return (now() - t0) / REPEAT
      },
    })
    const r = row(name, 'ns', v.c, v.b, null, peer ? 'cannot load programs' : undefined, { floor: v.f })
    goal(r, 'floor', 1.05)
    row(`${name} async`, 'ns', v.c, v.a, null, undefined, { floor: v.f })
  } finally {
    prog.close()
  }
}

// ID iteration with info, over 1,000 programs of our own (and whatever else is loaded).
function idRows() {
  const name = 'prog ID walk + info, per prog'
  if (!want('ID')) return
  const small = smallProgram()
  const mine = []
  try {
    for (let i = 0; i < 1000; i++) mine.push(BpfProgram.loadSync({ type: 'socket_filter', bytes: small, license: 'GPL', name: 'bench' }))
    const v = measure({
      c: () => c('ids', [], {}),
      f: () => {
        floor.ids()
        const t0 = now()
        let n = 0
        let r
        while ((r = floor.call()) > 0) n++
        const dt = now() - t0
        if (r !== -ENOENT || n < 1000) throw new Error(`floor walked ${n} programs, then ${r}`)
        return dt / n
      },
      b: () => {
        const t0 = now()
        let n = 0
        for (const _ of ids.programs()) n++
        const dt = now() - t0
        if (n < 1000) throw new Error(`walked ${n} programs`)
        return dt / n
      },
    })
    const r = row(name, 'ns', v.c, v.b, null, peer ? 'has no ID iteration' : undefined, { floor: v.f })
    goal(r, 'c', 1.3)
  } finally {
    for (const p of mine) p.close()
  }
}

// Ring buffer: records the kernel wrote (a producer program run with repeat),
// drained by the consumer; records per second of draining. The floor here is
// not a Node-API call but C draining as bpfkit must (ringbufCopy): the kernel
// maps the ring's data read-only and Node 20 has no read-only ArrayBuffer, so
// every record is copied out before JavaScript sees it. bpfkit / floor is
// then what bpfkit adds beyond that copy; the targets stay against C's
// in-place drain (libbpf's way), as issue 17 sets them.
function ringRows() {
  const name = 'ringbuf consume 64B records'
  if (!want('ringbuf')) return
  const SIZE = 16 << 20
  const RECORDS = 100_000
  // Fill-and-drain cycles per block: C drains 100,000 records in well under a millisecond.
  const CYCLES = 8
  const ring = BpfMap.create({ type: 'ringbuf', maxEntries: SIZE })
  let prog
  try {
    prog = BpfProgram.loadSync({ type: 'socket_filter', bytes: ringProducer(ring, 64), license: 'GPL' })
    const data = new Uint8Array(64)
    const reader = ring.ringBuffer()
    let sink = 0
    const cDrain = (op) => () => 1e9 / c(op, [ring.fd, prog.fd], { size: SIZE, records: RECORDS, dataSize: data.length, iters: CYCLES })
    const cRing = cDrain('ringbuf')
    const fCopy = cDrain('ringbufCopy')
    // The drains' time only: each cycle's fill (a test run of the producer) is left out.
    const cycles = (drain) => () => {
      let dt = 0
      for (let i = 0; i < CYCLES; i++) {
        prog.testRunSync({ data, repeat: RECORDS })
        const t0 = now()
        const n = drain()
        dt += now() - t0
        if (n !== RECORDS) throw new Error(`consumed ${n} records`)
      }
      return (CYCLES * RECORDS * 1e9) / dt
    }
    const v = measure({
      c: cRing,
      f: fCopy,
      b: cycles(() => reader.consume((rec) => { sink += rec[0] + rec.length })),
    })
    const r = row(name, 'records/s', v.c, v.b, null, peer ? 'has no ring buffer' : undefined, { floor: v.f })
    goal(r, 'rate', 0.3)
    // consumeBatches: one callback per batch, records as offsets.
    const vb = measure({
      c: cRing,
      f: fCopy,
      b: cycles(() => reader.consumeBatches((bytes, ends, count) => {
        let start = 0
        for (let i = 0; i < count; i++) {
          const end = ends[i]
          sink += bytes[start] + (end - start)
          start = end
        }
      })),
    })
    const rb = row(`${name}, batches`, 'records/s', vb.c, vb.b, null, undefined, { floor: vb.f })
    goal(rb, 'rate', 0.8)
  } finally {
    prog?.close()
    ring.close()
  }
}

async function main() {
  const started = now()
  if (cpuOpt !== 'none') {
    // libuv's thread pool starts on its first use and its threads take the
    // affinity of the thread that starts them: started now, before the pin,
    // async work keeps every CPU, as it does outside the bench.
    await stat(here)
    const r = floor.pin(Number(cpuOpt))
    if (r !== 0) {
      console.error(`bench: pinning to CPU ${cpuOpt} failed (${r}); --cpu none runs unpinned`)
      process.exit(1)
    }
  }
  log(`bench: ${REPS} rounds per measure, contenders in turns; C baseline built with ${ccVersion}; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  if (!peer) log(`bench: ${peerReason}`)
  const load0 = loadavg()[0]
  mapRows()
  perCpuRows()
  batchRows()
  iterateRows()
  mmapRows()
  ringRows()
  idRows()
  // The ID walk's 1,000 programs were just closed: the kernel frees them over
  // the next moments, which otherwise lands in the rows that follow.
  if (want('ID')) pause(2000)
  await testRunRows()
  await loadRows(work)
  await collectionRows({ want, measureAsync, row, goal, skipped, note: (n) => notes.push(n), work, settle: () => pause(SETTLE_MS) })
  unpin()
  await guardRows({ want, measure, c, row, skipped, note: (n) => notes.push(n), work })
  await brokerRows({ want, measure, c, row, skipped, note: (n) => notes.push(n), work })
  finish(started, load0)
}

function unpin() {
  if (cpuOpt !== 'none' && floor.pin(-1) !== 0) throw new Error('bench: unpinning the main thread failed')
}

function machine(load0) {
  const cpu = cpus()
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cpus: cpu.length,
    kernel: release(),
    node: process.version,
    cc: ccVersion,
    bpfkit: createRequire(import.meta.url)('../../package.json').version,
    peer: peer ? `bpf ${createRequire(import.meta.url)('bpf/package.json').version} (libbpf ${peer.version})` : `— (${peerReason})`,
    date: new Date().toISOString(),
    rounds: REPS,
    pinned: cpuOpt === 'none' ? null : Number(cpuOpt),
    // The 1-minute load average when the run began and when it ended: the machine may be shared.
    load: [r2(load0), r2(loadavg()[0])],
  }
}

function finish(started, load0) {
  const m = machine(load0)
  if (!peer) notes.unshift(`bpf (npm): — everywhere: ${peerReason}`)
  const targets = rows.filter((r) => r.goal).map(judge)
  const result = { machine: m, rows, targets, notes }
  if (outFile) writeFileSync(outFile, JSON.stringify(result, null, 2))
  if (json) {
    console.log(JSON.stringify(result, null, 2))
  } else {
    console.log(table(m, rows, targets, notes))
  }
  log(`bench: done in ${((now() - started) / 1e9).toFixed(1)} s`)
}

/** Millions as 161.8M (records/s). */
const big = (x) => (x !== null && x !== undefined && x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : fmt(x))
const ratioText = (x) => (x === null || x === undefined ? '—' : x.toFixed(2))

/** The Markdown table (as the README shows it); `agree` adds the --runs column. */
function table(m, rows, targets, notes, agree) {
  const byName = new Map(targets.map((t) => [t.name, t]))
  const head = ['operation', 'unit', 'C', 'floor', 'bpfkit', 'bpf (npm)', 'bpfkit / C', 'bpfkit / floor', 'IQR', 'target']
  if (agree) head.push(`${m.runs} runs: medians`, 'ratios')
  const body = rows.map((r) => {
    const t = byName.get(r.name)
    const cells = [r.name, r.unit, big(r.c), big(r.floor), big(r.bpfkit), big(r.peer)]
    if (r.skipped) cells.push('skipped', '', '', '')
    else cells.push(ratioText(r.ratio), ratioText(r.ratioFloor), worstIqr(r), t ? `${t.met ? 'met' : 'missed'} (${t.target.split(' (')[0]})` : '')
    if (agree) cells.push(...(agree.get(r.name) ?? ['', '']))
    return cells
  })
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const left = (i) => i < 2 || i >= 9 // name, unit, target and the --runs verdicts
  const line = (cells) => '| ' + cells.map((c, i) => (left(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |'
  const out = [
    `Machine: ${m.cpu}, ${m.cpus} CPUs, Linux ${m.kernel}, Node ${m.node}, ${m.cc}; peer: ${m.peer}; ${m.rounds} rounds; ${m.pinned === null ? 'unpinned' : `main thread and C on CPU ${m.pinned}`}; load ${m.load.join(' → ')}; ${m.date}`,
    '',
    line(head),
    '|' + widths.map((w, i) => (left(i) ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|',
    ...body.map(line),
    '',
    'Targets:',
    ...targets.map((t) => `  ${t.met ? 'met   ' : 'MISSED'}  ${t.name}: ${t.target} (${t.value ?? '—'})`),
  ]
  if (notes.length) out.push('', 'Notes:', ...notes.map((n) => '  ' + n))
  return out.join('\n')
}

/**
 * --runs N: the whole measure N times, one after the other, each in a fresh
 * process (as N consecutive `npm run bench` runs), then per row the median
 * of the runs' medians and whether they agree: every column's N medians
 * within 10% of each other ((max - min) / min).
 */
async function runMany() {
  const args = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs' || argv[i] === '--out') i++
    else if (argv[i] !== '--json') args.push(argv[i])
  }
  const results = []
  for (let i = 0; i < RUNS; i++) {
    log(`bench: run ${i + 1} of ${RUNS}`)
    const out = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
      let text = ''
      child.stdout.setEncoding('utf8').on('data', (d) => { text += d })
      child.on('error', reject)
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`bench run ${i + 1} failed (exit ${code})`))))
    })
    const r = JSON.parse(out)
    results.push(r)
    log(`bench: run ${i + 1}: ${r.rows.length} rows, load ${r.machine.load.join(' → ')}`)
  }
  const combined = []
  const agreement = []
  const agree = new Map()
  for (const first of results[0].rows) {
    const all = results.map((res) => res.rows.find((r) => r.name === first.name))
    if (all.some((r) => !r || r.skipped)) {
      combined.push(first)
      continue
    }
    const c = { ...first, runs: {} }
    let worst = { column: null, spread: 0 }
    for (const k of COLUMNS) {
      const vals = all.map((r) => r[k])
      if (vals.some((v) => v === null || v === undefined)) continue
      c[k] = round(median(vals))
      c.runs[k] = vals
      const sp = Math.min(...vals) > 0 ? (Math.max(...vals) - Math.min(...vals)) / Math.min(...vals) : 0
      if (sp >= worst.spread) worst = { column: k, spread: sp }
    }
    const higher = HIGHER.has(c.unit)
    const ratioOf = (base) => (base === null || !c.bpfkit ? null : r2(higher ? base / c.bpfkit : c.bpfkit / base))
    c.ratio = ratioOf(c.c)
    c.ratioFloor = ratioOf(c.floor)
    c.floorOverC = c.floor !== null && c.c ? r2(higher ? c.c / c.floor : c.floor / c.c) : null
    // Each run's spread stays in `runs`; the combined row's is the widest of them.
    c.spread = Object.fromEntries(COLUMNS.map((k) => {
      const iqrs = all.map((r) => r.spread?.[k]?.iqr).filter((x) => x !== null && x !== undefined)
      return [k, iqrs.length ? { iqr: Math.max(...iqrs) } : null]
    }))
    if (first.lookup) c.lookup = round(median(all.map((r) => r.lookup)))
    const ok = worst.spread <= 0.1
    // The ratios' own spread across the runs, for reading: the verdict is on the medians.
    const ratioSpread = (k) => {
      const vals = all.map((r) => r[k]).filter((v) => v !== null && v !== undefined)
      return vals.length === all.length && vals.length ? r2((Math.max(...vals) - Math.min(...vals)) / Math.min(...vals)) : null
    }
    // On a shared machine the absolute figures follow the others' load; the
    // ratios, measured in the same rounds, should not: their agreement is shown apart.
    const ratios = [ratioSpread('ratio'), ratioSpread('ratioFloor')].filter((x) => x !== null)
    const ratioWorst = ratios.length ? Math.max(...ratios) : null
    const ratiosOk = ratioWorst === null || ratioWorst <= 0.1
    agreement.push({ name: c.name, agree: ok, worstColumn: worst.column, spread: r2(worst.spread), ratioSpread: ratioSpread('ratio'), ratioFloorSpread: ratioSpread('ratioFloor'), ratiosAgree: ratiosOk })
    agree.set(c.name, [`${ok ? 'yes' : 'NO'} (${Math.round(100 * worst.spread)}%${ok ? '' : ' ' + worst.column})`, ratioWorst === null ? '—' : `${ratiosOk ? 'yes' : 'NO'} (${Math.round(100 * ratioWorst)}%)`])
    combined.push(c)
  }
  const targets = combined.filter((r) => r.goal && !r.skipped).map(judge)
  const m = { ...results[0].machine, runs: RUNS, load: results.flatMap((r) => r.machine.load), dates: results.map((r) => r.machine.date) }
  const notes = [...new Set(results.flatMap((r) => r.notes))]
  const disagree = agreement.filter((a) => !a.agree)
  const result = { machine: m, rows: combined, targets, agreement, notes, runs: results }
  if (outFile) writeFileSync(outFile, JSON.stringify(result, null, 2))
  if (json) {
    console.log(JSON.stringify(result, null, 2))
  } else {
    console.log(table(m, combined, targets, notes, agree))
    console.log(`\n${RUNS} runs: ${agreement.length - disagree.length} of ${agreement.length} rows' medians agree within 10%${disagree.length ? `; not: ${disagree.map((a) => `${a.name} (${a.worstColumn} ${Math.round(100 * a.spread)}%)`).join(', ')}` : ''}`)
    const ratiosOff = agreement.filter((a) => !a.ratiosAgree)
    console.log(`${RUNS} runs: ${agreement.length - ratiosOff.length} of ${agreement.length} rows' ratios (bpfkit / C, bpfkit / floor) agree within 10%${ratiosOff.length ? `; not: ${ratiosOff.map((a) => a.name).join(', ')}` : ''}`)
  }
}

try {
  if (RUNS > 1) await runMany()
  else await main()
} finally {
  rmSync(work, { recursive: true, force: true })
}
