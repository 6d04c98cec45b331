#!/usr/bin/env node
// node scripts/bench/perfbuf.mjs [--json] [--reps <n>]
//
// The perf buffer rows, beside the ring buffer rows of `npm run bench`:
// samples the kernel wrote to one CPU's ring (the attach-perfbuf fixture's tc
// program, run with repeat on a thread pinned to that CPU), drained by
// PerfBuffer (consume: an object per record; consumeBatches: offsets per
// batch) and by a C loop doing what libbpf's perf_buffer__consume does
// (perfbuf-baseline.c, compiled now). Records per second of draining; the
// median of the repetitions. Needs root and the built dist/ (npm run build,
// or any vitest run).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CollectionSpec } from '../../dist/index.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { PerfBuffer } = require('../../dist/map/perf-buffer.js')
const argv = process.argv.slice(2)
const json = argv.includes('--json')
const REPS = argv.includes('--reps') ? Number(argv[argv.indexOf('--reps') + 1]) : 9
const RECORDS = 50_000
const PAGES = 1024 // 4 MiB: 50,000 records of 56 bytes fit without a loss, and wrap
const DATA = new Uint8Array(64)

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const now = () => Number(process.hrtime.bigint())

const work = mkdtempSync(join(tmpdir(), 'bpfkit-bench-perfbuf-'))
const baseline = join(work, 'perfbuf-baseline')
execFileSync('cc', ['-O2', '-Wall', '-o', baseline, join(here, 'perfbuf-baseline.c')], { stdio: ['ignore', 'inherit', 'inherit'] })

// This thread's own affinity, narrowed to `cpu` while fn runs: the test runs
// (on this thread) then all write to that CPU's ring.
function onCpu(cpu, fn) {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()
  const before = execFileSync('taskset', ['-pc', tid], { encoding: 'utf8' }).trim().split(': ').pop()
  execFileSync('taskset', ['-pc', String(cpu), tid], { stdio: 'ignore' })
  try {
    return fn()
  } finally {
    execFileSync('taskset', ['-pc', before, tid], { stdio: 'ignore' })
  }
}

const coll = await CollectionSpec.fromFile(join(here, '..', '..', 'test', 'fixtures', 'bpf', 'attach-perfbuf.bpf.o')).load()
const rows = []
try {
  const events = coll.maps.events
  const prog = coll.programs.output_sample
  const cpu = 0
  const cRun = spawnSync(baseline, [`cpu=${cpu}`, `pages=${PAGES}`, `records=${RECORDS}`, `dataSize=${DATA.length}`, `reps=${REPS}`], {
    stdio: ['ignore', 'pipe', 'inherit', events.fd, prog.fd],
    encoding: 'utf8',
  })
  if (cRun.status !== 0) throw new Error(`perfbuf-baseline failed (status ${cRun.status})`)
  const cRate = median(cRun.stdout.trim().split(' ').map((ns) => 1e9 / Number(ns)))

  const measure = (drain) => {
    const pb = PerfBuffer.open(events, { pageCount: PAGES, cpus: [cpu] })
    try {
      const rates = []
      for (let r = -1; r < REPS; r++) {
        onCpu(cpu, () => prog.testRunSync({ data: DATA, repeat: RECORDS }))
        const t0 = now()
        const n = drain(pb)
        const dt = now() - t0
        if (n !== RECORDS) throw new Error(`consumed ${n} records, expected ${RECORDS} (lost ${pb.lost})`)
        if (r >= 0) rates.push((n * 1e9) / dt)
      }
      return median(rates)
    } finally {
      pb.close()
    }
  }
  let sink = 0
  const one = measure((pb) => pb.consume((rec) => { sink += rec.data[0] + rec.data.length }))
  const batches = measure((pb) => pb.consumeBatches((bytes, recs, count) => {
    let start = 0
    for (let i = 0; i < count; i++) {
      const end = recs[3 * i]
      sink += bytes[start] + (end - start)
      start = end
    }
  }))
  const row = (name, b) => ({ name, unit: 'records/s', c: Math.round(cRate), bpfkit: Math.round(b), ratio: Math.round((cRate / b) * 100) / 100 })
  rows.push(row('perfbuf consume 40B samples', one), row('perfbuf consume 40B samples, batches', batches))
  if (sink < 0) console.log(sink)
} finally {
  coll.close()
  rmSync(work, { recursive: true, force: true })
}

if (json) console.log(JSON.stringify(rows, null, 2))
else for (const r of rows) console.log(`| ${r.name.padEnd(36)} | ${r.unit} | C ${r.c} | bpfkit ${r.bpfkit} | C / bpfkit ${r.ratio.toFixed(2)} |`)
