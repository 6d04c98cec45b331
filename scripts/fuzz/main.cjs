#!/usr/bin/env node
'use strict'
// npm run fuzz [-- options]: a bounded fuzz campaign over the raw addon and
// the public API of the built package (dist/). See the README, "Reliability".
//
//   --cases N      cases in all, split over the targets (default 6000)
//   --seconds S    wall-time budget; cases not started by then are skipped (default 150)
//   --seed N       PRNG seed (default: from the clock, printed); a case is (target, seed, index)
//   --short        the CI pass: seed 1, 1000 cases, 30 s
//   --long         50000 cases, 1800 s
//   --target T     comma-separated: addon, api, collection, broker, or a path to a target module (default all four)
//   --only N       run only case N (with --target and --seed: re-check one finding)
//   --batch N      cases per child process (default 25)
//   --jobs N       child processes at once (default 2)
//   --timeout MS   per-case time limit (default 8000; the machine may be shared and busy)
//   --out DIR      reproducers and summary.json (default .cache/fuzz/seed-<seed>)
//   --json         print the summary as JSON on the last line
const path = require('node:path')
const fs = require('node:fs')
const { Campaign } = require('./runner.cjs')
const { loadTarget } = require('./case.cjs')

const root = path.resolve(__dirname, '..', '..')

function parseArgs(argv) {
  const o = { cases: 6000, seconds: 150, seed: undefined, target: 'addon,api,collection,broker', batch: 25, jobs: 2, timeout: 8000, json: false, maxBisects: 20 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${a} needs a value`)
      return v
    }
    const int = () => {
      const v = Number(value())
      if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${a} must be a non-negative integer`)
      return v
    }
    switch (a) {
      case '--cases': o.cases = int(); break
      case '--seconds': o.seconds = int(); break
      case '--seed': o.seed = int(); break
      case '--target': o.target = value(); break
      case '--only': o.only = int(); break
      case '--batch': o.batch = Math.max(1, int()); break
      case '--jobs': o.jobs = Math.max(1, int()); break
      case '--timeout': o.timeout = int(); break
      case '--out': o.out = path.resolve(value()); break
      case '--max-bisects': o.maxBisects = int(); break
      case '--json': o.json = true; break
      case '--short': Object.assign(o, { seed: o.seed ?? 1, cases: 1000, seconds: 30 }); break
      case '--long': Object.assign(o, { cases: 50000, seconds: 1800 }); break
      default: throw new Error(`unknown option ${a} (see scripts/fuzz/main.cjs)`)
    }
  }
  o.seed ??= Date.now() % 1_000_000
  return o
}

/**
 * A private copy of dist/ and the built addon for the children to load, so
 * a rebuild during the run (tsc rewriting dist/, node-gyp relinking) cannot
 * mix versions or hand a child a half-written file. Reproducers load the
 * checkout itself.
 */
function snapshot() {
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bpfkit-fuzz-build-'))
  fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true })
  fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true })
  fs.copyFileSync(path.join(root, 'build', 'Release', 'bpfkit.node'), path.join(dir, 'build', 'Release', 'bpfkit.node'))
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'))
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'))
  return dir
}

async function main() {
  const o = parseArgs(process.argv.slice(2))
  const targets = o.target.split(',').map((t) => loadTarget(t.trim()))
  if (targets.some((t) => t.needsDist) && !fs.existsSync(path.join(root, 'dist/index.js'))) {
    throw new Error('dist/ is missing: run `npm run build:ts` first')
  }
  const cfg = {
    root, seed: o.seed, cases: o.cases, seconds: o.seconds, batch: o.batch, jobs: o.jobs, timeoutMs: o.timeout,
    maxBisects: o.maxBisects, outDir: o.out ?? path.join(root, '.cache', 'fuzz', `seed-${o.seed}`),
  }
  cfg.tmp = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'bpfkit-fuzz-run-'))
  process.on('exit', () => { for (const dir of [cfg.loadRoot, cfg.tmp]) if (dir) fs.rmSync(dir, { recursive: true, force: true }) })
  if (targets.some((t) => t.needsDist) && fs.existsSync(path.join(root, 'build', 'Release', 'bpfkit.node'))) cfg.loadRoot = snapshot()
  const started = Date.now()
  console.log(`fuzz: targets ${targets.map((t) => t.name).join(', ')}; seed ${o.seed}; up to ${o.only !== undefined ? 1 : o.cases} cases in ${o.seconds} s; ${o.jobs} jobs of ${o.batch}`)
  // A native function added after the generator was written is named, not silently skipped.
  for (const t of targets.filter((x) => x.covers)) {
    const { native } = require(path.join(cfg.loadRoot ?? root, 'dist/sys/addon.js'))
    const missing = Object.keys(native).filter((n) => !t.covers(n))
    if (missing.length) console.log(`fuzz: not fuzzed (add to scripts/fuzz/targets/${t.name}.cjs): ${missing.join(', ')}`)
  }
  const campaign = new Campaign(cfg)
  if (o.only !== undefined) {
    for (const t of targets) await campaign.runBatch(t, [o.only])
  } else {
    await campaign.run(targets)
  }
  for (const g of campaign.groups.values()) {
    console.log(`  ${g.count} x ${g.signature}\n    e.g. case ${g.first.index}: node ${g.reproducers[0]}`)
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1)
  const summary = { ...campaign.counts, calls: campaign.calls, children: campaign.children, skipped: campaign.skipped, skipReasons: Object.fromEntries(campaign.skipReasons), seed: o.seed, seconds: Number(secs), timedOut: campaign.timedOut ?? false, groups: [...campaign.groups.values()], findings: campaign.findings }
  fs.mkdirSync(cfg.outDir, { recursive: true })
  fs.writeFileSync(path.join(cfg.outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
  console.log(`fuzz: ${campaign.summaryLine()} (seed ${o.seed}, ${secs} s, ${campaign.calls} calls in ${campaign.children} children, ${campaign.skipped} skipped at setup${campaign.timedOut ? ', time budget reached' : ''})`)
  if (o.json) console.log(JSON.stringify(summary))
  process.exitCode = campaign.failed() ? 1 : 0
}

main().catch((e) => {
  console.error(`fuzz: ${e instanceof Error ? e.message : e}`)
  process.exitCode = 2
})
