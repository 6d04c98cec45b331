#!/usr/bin/env node
// npm run bench [-- --json] [-- --only <text>] [-- --reps <n>]
//
// bpfkit beside the physical floor: every operation measured, in one run, on
// the same maps and data, by a C program making raw bpf(2) calls (compiled
// now with the system compiler), by bpfkit, and by the npm `bpf` package
// where it has the operation. Each measure is repeated; the median is shown.
// The guard's cost (guard.mjs, `--only guard`) and the tenant broker's
// (broker.mjs, `--only broker`) come last.
// Needs root (or CAP_BPF + CAP_SYS_ADMIN) and the built dist/.
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, release, tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { BpfMap, BpfProgram, ids } from '../../dist/index.mjs'
import { largeProgram, ringProducer, smallProgram } from './programs.mjs'
import { guardRows } from './guard.mjs'
import { brokerRows } from './broker.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const json = argv.includes('--json')
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined
const REPS = argv.includes('--reps') ? Number(argv[argv.indexOf('--reps') + 1]) : 9

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

/** Runs the C baseline once on `fds` (seen by it as 3, 4, ...): one warm-up, one measured repetition. */
function c(op, fds, params) {
  const args = [op, ...Object.entries({ reps: 1, warmup: 1, ...params }).map(([k, v]) => `${k}=${v}`)]
  fds.forEach((fd, i) => args.push(`${['fd', 'prog'][i]}=${3 + i}`))
  const r = spawnSync(baseline, args, { stdio: ['ignore', 'pipe', 'inherit', ...fds], encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`C baseline ${op} failed (status ${r.status})`)
  return Number(r.stdout.trim())
}

/**
 * Runs the contenders in turns, REPS rounds after a warm-up round, so that
 * the machine's drift (other load, frequency) falls on all of them alike.
 * Each function makes one repetition and returns its value (ns per op...).
 */
function measure(fns) {
  const present = Object.entries(fns).filter(([, f]) => f)
  for (const [, f] of present) f()
  const out = Object.fromEntries(present.map(([k]) => [k, []]))
  for (let r = 0; r < REPS; r++) for (const [k, f] of present) out[k].push(f())
  return out
}
async function measureAsync(fns) {
  const present = Object.entries(fns).filter(([, f]) => f)
  for (const [, f] of present) await f()
  const out = Object.fromEntries(present.map(([k]) => [k, []]))
  for (let r = 0; r < REPS; r++) for (const [k, f] of present) out[k].push(await f())
  return out
}

// ---- rows ----
const rows = []
const notes = []
const targets = []

/**
 * One table row. `unit` 'ns' or 'ms' (lower is better) or 'records/s'
 * (higher is better: the ratio is then C / bpfkit, so that lower is always better).
 */
function row(name, unit, cVals, bVals, pVals, peerNote) {
  const cm = cVals ? median(cVals) : null
  const bm = median(bVals)
  const pm = pVals ? median(pVals) : null
  let ratio = null
  if (cm !== null && bm) ratio = unit === 'records/s' ? cm / bm : bm / cm
  const r = { name, unit, c: round(cm), bpfkit: round(bm), peer: round(pm), ratio: ratio === null ? null : Math.round(ratio * 100) / 100 }
  rows.push(r)
  if (pVals === null && peerNote) notes.push(`${name}: bpf (npm) ${peerNote}`)
  log(`  ${name.padEnd(30)} C ${fmt(r.c)}  bpfkit ${fmt(r.bpfkit)}  bpf ${fmt(r.peer)}  ${unit}  ratio ${r.ratio ?? '—'}`)
  return r
}
/** A row that cannot be measured on this machine: shown as skipped, `reason` in the JSON (and in a note, by the caller). */
function skipped(name, unit, reason) {
  rows.push({ name, unit, c: null, bpfkit: null, peer: null, ratio: null, skipped: reason })
  log(`  ${name.padEnd(30)} skipped: ${reason}`)
}
const round = (x) => (x === null || x === undefined ? null : x >= 100 ? Math.round(x) : Math.round(x * 100) / 100)
const fmt = (x) => (x === null ? '—' : String(x))
const want = (name) => !only || name.includes(only)

function target(name, what, value, met) {
  targets.push({ name, target: what, value, met })
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

function mapRows() {
  const N = 4096
  const ITERS = 20000
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
      try {
        for (const [op, name] of names) {
          if (!want(name)) continue
          let v
          if (op === 'lookup') {
            v = measure({
              c: () => c('lookup', [m.fd], { nkeys: N, iters: ITERS, valueBytes: size }),
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
            v = measure({
              c: () => c('delete', [m.fd], { nkeys: N, valueBytes: size }),
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
          const r = row(name, 'ns', v.c, v.b, v.p ?? null)
          target(name, '≤ 1.10× C', r.ratio, r.ratio <= 1.1)
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
    const ITERS = 20000
    const { key, set } = keyBuffer()
    const m = BpfMap.create({ type, keySize: 4, valueSize: 8, maxEntries: N })
    try {
      for (let i = 0; i < N; i++) m.update(u32(i), fill(m.valueBytes))
      const v = measure({
        c: () => c('lookup', [m.fd], { nkeys: N, iters: ITERS, valueBytes: m.valueBytes }),
        b: () => {
          const t0 = now()
          for (let i = 0; i < ITERS; i++) { set(i & (N - 1)); if (m.lookup(key) === undefined) throw new Error('miss') }
          return (now() - t0) / ITERS
        },
      })
      const r = row(name, 'ns', v.c, v.b, null, peer ? 'sizes lookup buffers by value_size, not per CPU (the kernel would write past them): not run' : undefined)
      target(name, '≤ 1.10× C', r.ratio, r.ratio <= 1.1)
    } finally {
      m.close()
    }
  }
}

// Batches of 1,024 entries, per element: packed bytes (lookupBatchBytes,
// updateBatchBytes) and [key, value] entries (lookupBatch, updateBatch).
function batchRows() {
  const COUNT = 1024
  for (const size of [8, 64]) {
    const names = ['lookup', 'update'].flatMap((op) => [`hash ${op} batch 1024 ${size}B`, `hash ${op} batch 1024 ${size}B entries`])
    if (!names.some(want)) continue
    const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: size, maxEntries: COUNT })
    const p = peer ? peerMap(m) : undefined
    try {
      const entries = Array.from({ length: COUNT }, (_, i) => [u32(i), Buffer.from(fill(size))])
      const keys = Buffer.concat(entries.map(([k]) => k))
      const values = Buffer.concat(entries.map(([, v]) => v))
      m.updateBatchBytes(keys, values)
      const perElem = (f) => () => {
        const t0 = now()
        const n = f()
        const dt = now() - t0
        if (n !== COUNT) throw new Error(`batch did ${n} elements`)
        return dt / n
      }
      const cLookup = () => c('lookupBatch', [m.fd], { count: COUNT, valueBytes: size, expect: COUNT })
      const cUpdate = () => c('updateBatch', [m.fd], { count: COUNT, valueBytes: size })
      const peerLookup = p && perElem(() => { let n = 0; for (const b of p.getBatch(COUNT)) n += b.length; return n })
      const peerUpdate = p && perElem(() => { p.setBatch(entries); return COUNT })
      const run = (name, cf, bf, pf) => {
        if (!want(name)) return
        const v = measure({ c: cf, b: perElem(bf), p: pf })
        const r = row(name, 'ns', v.c, v.b, v.p ?? null, pf ? undefined : peer ? 'gives only entries (next row)' : undefined)
        target(name, '≤ 1.20× C', r.ratio, r.ratio <= 1.2)
      }
      run(names[0], cLookup, () => m.lookupBatchBytes({ batchSize: COUNT }).count, undefined)
      run(names[1], cLookup, () => m.lookupBatch({ batchSize: COUNT }).length, peerLookup)
      run(names[2], cUpdate, () => m.updateBatchBytes(keys, values), undefined)
      run(names[3], cUpdate, () => m.updateBatch(entries), peerUpdate)
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
    const v = measure({ c: () => c('iterate', [m.fd], { expect: N }), b: walk(() => m.keys()), p: p && walk(() => p.keys()) })
    const r = row(name, 'ns', v.c, v.b, v.p ?? null)
    target(name, '≤ 1.10× C', r.ratio, r.ratio <= 1.1)
  } finally {
    p?.ref.close()
    m.close()
  }
}

// An mmap'd array element read, set against a syscall lookup of the same
// map: u64 values (each read makes a bigint) and u32 values (plain numbers).
function mmapRows() {
  for (const [desc, size] of [['u64', 8], ['u32', 4]]) {
    const name = `array mmap read ${desc}`
    if (!want(name)) continue
    const N = 4096
    const ITERS = 2_000_000
    const m = BpfMap.create({ type: 'array', key: 'u32', value: desc, maxEntries: N, flags: ['mmapable'] })
    const view = m.mmap({ writable: false })
    try {
      for (let i = 0; i < N; i++) m.set(i, desc === 'u64' ? BigInt(i) : i)
      const v = measure({
        c: () => c('mmapRead', [m.fd], { entries: N, valueSize: size, iters: ITERS }),
        b: desc === 'u64'
          ? () => {
            let sum = 0n
            const t0 = now()
            for (let i = 0; i < ITERS; i++) sum += view.get(i & (N - 1))
            const dt = now() - t0
            if (sum < 0n) throw new Error('unreachable')
            return dt / ITERS
          }
          : () => {
            let sum = 0
            const t0 = now()
            for (let i = 0; i < ITERS; i++) sum += view.get(i & (N - 1))
            const dt = now() - t0
            if (sum < 0) throw new Error('unreachable')
            return dt / ITERS
          },
        lookup: () => c('lookup', [m.fd], { nkeys: N, iters: 20000, valueBytes: size }),
      })
      const r = row(name, 'ns', v.c, v.b, null, peer ? 'has no mmap' : undefined)
      const speedup = median(v.lookup) / r.bpfkit
      target(name, '≥ 100× faster than a syscall lookup (C lookup of the same map / bpfkit mmap read)', Math.round(speedup), speedup >= 100)
    } finally {
      view.close()
      m.close()
    }
  }
}

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
    const v = measure({
      c: () => c('progLoad', [], { file: smallFile, type, iters: ITERS }),
      b: perLoad(() => BpfProgram.loadSync({ type: 'socket_filter', bytes: small, license: 'GPL' })),
    })
    const r = row(`prog load small (${small.length / 8} insns)`, 'ns', v.c, v.b, null, peer ? 'cannot load programs' : undefined)
    target(r.name, '≤ 1.05× C', r.ratio, r.ratio <= 1.05)
    const va = await measureAsync({
      c: () => c('progLoad', [], { file: smallFile, type, iters: ITERS }),
      b: async () => {
        const t0 = now()
        for (let i = 0; i < ITERS; i++) (await BpfProgram.load({ type: 'socket_filter', bytes: small, license: 'GPL' })).close()
        return (now() - t0) / ITERS
      },
    })
    const ra = row(`prog load small async`, 'ns', va.c, va.b, null)
    target(ra.name, '≤ 1.05× C', ra.ratio, ra.ratio <= 1.05)
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
        const h = monitorEventLoopDelay({ resolution: 1 })
        h.enable()
        const t0 = now()
        const prog = await BpfProgram.load({ type: 'socket_filter', bytes: large, license: 'GPL' })
        const dt = now() - t0
        h.disable()
        prog.close()
        stalls.push(h.max / 1e6)
        return dt
      },
    })
    // The same measure while the C baseline makes the same load in a child
    // process: the stalls this machine causes anyway (a second CPU busy in
    // the verifier, other load), for comparison.
    const cStalls = []
    for (let i = 0; i < REPS; i++) {
      const h = monitorEventLoopDelay({ resolution: 1 })
      h.enable()
      await new Promise((resolve, reject) => {
        const child = spawn(baseline, ['progLoad', `file=${largeFile}`, `type=${type}`, 'iters=1', 'warmup=0', 'reps=1'], { stdio: ['ignore', 'ignore', 'inherit'] })
        child.on('error', reject)
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`C baseline progLoad failed (${code})`))))
      })
      h.disable()
      cStalls.push(h.max / 1e6)
    }
    const ms = (xs) => xs.map((x) => x / 1e6)
    const r = row(`prog load large (${label})`, 'ms', ms(v.c), ms(v.b), null)
    target(r.name, '≤ 1.05× C', r.ratio, r.ratio <= 1.05)
    const ra = row(`prog load large async`, 'ms', ms(v.c), ms(v.a), null)
    target(ra.name, '≤ 1.05× C', ra.ratio, ra.ratio <= 1.05)
    const rs = row('event loop max stall, async large load', 'ms', cStalls, stalls.slice(-REPS), null)
    target(rs.name, '< 5 ms', rs.bpfkit, rs.bpfkit < 5)
  }
}
const stalls = []

// testRun: the kernel runs the program `repeat` times; per run.
async function testRunRows() {
  const name = 'testRun repeat 100000'
  if (!want('testRun')) return
  const REPEAT = 100_000
  const prog = BpfProgram.loadSync({ type: 'socket_filter', bytes: smallProgram(), license: 'GPL' })
  const data = new Uint8Array(64)
  try {
    const v = await measureAsync({
      c: () => c('testRun', [prog.fd], { repeat: REPEAT, dataSize: data.length }),
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
    const r = row(name, 'ns', v.c, v.b, null, peer ? 'cannot load programs' : undefined)
    target(r.name, '≤ 1.05× C', r.ratio, r.ratio <= 1.05)
    row(`${name} async`, 'ns', v.c, v.a, null)
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
      b: () => {
        const t0 = now()
        let n = 0
        for (const _ of ids.programs()) n++
        const dt = now() - t0
        if (n < 1000) throw new Error(`walked ${n} programs`)
        return dt / n
      },
    })
    const r = row(name, 'ns', v.c, v.b, null, peer ? 'has no ID iteration' : undefined)
    target(r.name, '≤ 1.2× C', r.ratio, r.ratio <= 1.2)
  } finally {
    for (const p of mine) p.close()
  }
}

// Ring buffer: records the kernel wrote (a producer program run with repeat),
// drained by the consumer; records per second of draining.
function ringRows() {
  const name = 'ringbuf consume 64B records'
  if (!want('ringbuf')) return
  const SIZE = 16 << 20
  const RECORDS = 100_000
  const ring = BpfMap.create({ type: 'ringbuf', maxEntries: SIZE })
  let prog
  try {
    prog = BpfProgram.loadSync({ type: 'socket_filter', bytes: ringProducer(ring, 64), license: 'GPL' })
    const data = new Uint8Array(64)
    const reader = ring.ringBuffer()
    let sink = 0
    const v = measure({
      c: () => 1e9 / c('ringbuf', [ring.fd, prog.fd], { size: SIZE, records: RECORDS, dataSize: data.length }),
      b: () => {
        prog.testRunSync({ data, repeat: RECORDS })
        const t0 = now()
        const n = reader.consume((rec) => { sink += rec[0] + rec.length })
        const dt = now() - t0
        if (n !== RECORDS) throw new Error(`consumed ${n} records`)
        return (n * 1e9) / dt
      },
    })
    const r = row(name, 'records/s', v.c, v.b, null, peer ? 'has no ring buffer' : undefined)
    target(r.name, '≥ 0.8× C records/s (C / bpfkit ≤ 1.25)', r.ratio, r.ratio <= 1.25)
    // consumeBatches: one callback per batch, records as offsets.
    const vb = measure({
      c: () => 1e9 / c('ringbuf', [ring.fd, prog.fd], { size: SIZE, records: RECORDS, dataSize: data.length }),
      b: () => {
        prog.testRunSync({ data, repeat: RECORDS })
        const t0 = now()
        const n = reader.consumeBatches((bytes, ends, count) => {
          let start = 0
          for (let i = 0; i < count; i++) {
            const end = ends[i]
            sink += bytes[start] + (end - start)
            start = end
          }
        })
        const dt = now() - t0
        if (n !== RECORDS) throw new Error(`consumed ${n} records`)
        return (n * 1e9) / dt
      },
    })
    const rb = row(`${name}, batches`, 'records/s', vb.c, vb.b, null)
    target(rb.name, '≥ 0.8× C records/s (C / bpfkit ≤ 1.25)', rb.ratio, rb.ratio <= 1.25)
  } finally {
    prog?.close()
    ring.close()
  }
}

async function main() {
  const started = now()
  log(`bench: ${REPS} repetitions per measure, turn by turn; C baseline built with ${ccVersion}`)
  if (!peer) log(`bench: ${peerReason}`)
  mapRows()
  perCpuRows()
  batchRows()
  iterateRows()
  mmapRows()
  ringRows()
  idRows()
  await testRunRows()
  await loadRows(work)
  await guardRows({ want, measure, c, row, skipped, note: (n) => notes.push(n), work })
  await brokerRows({ want, measure, c, row, skipped, note: (n) => notes.push(n), work })
  finish(started)
}

function machine() {
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
  }
}

function finish(started) {
  const m = machine()
  if (!peer) notes.unshift(`bpf (npm): — everywhere: ${peerReason}`)
  if (json) {
    console.log(JSON.stringify({ machine: m, rows, targets, notes }, null, 2))
  } else {
    console.log(table(m))
  }
  log(`bench: done in ${((now() - started) / 1e9).toFixed(1)} s`)
}

function table(m) {
  const head = ['operation', 'unit', 'C', 'bpfkit', 'bpf (npm)', 'bpfkit / C']
  const body = rows.map((r) => [r.name, r.unit, fmt(r.c), fmt(r.bpfkit), fmt(r.peer), r.skipped ? 'skipped' : r.ratio === null ? '—' : r.ratio.toFixed(2)])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells) => '| ' + cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |'
  const out = [
    `Machine: ${m.cpu}, ${m.cpus} CPUs, Linux ${m.kernel}, Node ${m.node}, ${m.cc}; peer: ${m.peer}`,
    '',
    line(head),
    '|' + widths.map((w, i) => (i < 2 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|',
    ...body.map(line),
    '',
    'Targets:',
    ...targets.map((t) => `  ${t.met ? 'met   ' : 'MISSED'}  ${t.name}: ${t.target} (${t.value ?? '—'})`),
  ]
  if (notes.length) out.push('', 'Notes:', ...notes.map((n) => '  ' + n))
  return out.join('\n')
}

try {
  await main()
} finally {
  rmSync(work, { recursive: true, force: true })
}
