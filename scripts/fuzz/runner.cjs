'use strict'
// The parent side: runs batches of cases in child processes, turns a
// signal, an abort or an early exit into a crash and a stuck case into a
// hang, bisects a crash to the case (or the shortest run of cases) that
// reproduces it, and writes a reproducer file for every finding.
const { spawn } = require('node:child_process')
const path = require('node:path')
const { writeReproducer } = require('./reproducer.cjs')

const childPath = path.join(__dirname, 'child.cjs')
const brokenBuild = /symbol lookup error|undefined symbol|Cannot find module|ERR_DLOPEN_FAILED|invalid ELF header|file too short/

/** Runs `indices` in one child. Resolves with per-case results and, if the child died or hung, where. */
function runBatch(cfg, target, indices) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', childPath, JSON.stringify({ root: cfg.loadRoot ?? cfg.root, tmp: cfg.tmp, target, seed: cfg.seed, indices, timeoutMs: cfg.timeoutMs })], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      cwd: cfg.loadRoot ?? cfg.root,
    })
    const done = new Map()
    const late = []
    let current
    let hang
    let fatal
    let ended = false
    let stderr = ''
    let timer
    const arm = () => {
      clearTimeout(timer)
      // The child reports its own hangs; this catches a call stuck in the kernel or a blocked event loop.
      timer = setTimeout(() => {
        hang = { index: current, message: `no progress within ${cfg.timeoutMs + 5000} ms (blocked)` }
        child.kill('SIGKILL')
      }, cfg.timeoutMs + 5000)
    }
    arm()
    child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000) })
    let buf = ''
    child.stdio[3].on('data', (d) => {
      buf += d
      let nl
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if ('start' in msg) { current = msg.start; arm() }
        else if ('done' in msg) done.set(msg.done, msg)
        else if ('hang' in msg) hang = { index: msg.hang, message: msg.message }
        else if ('late' in msg) late.push(msg)
        else if ('end' in msg) ended = true
        else if ('fatal' in msg) fatal = msg.fatal
      }
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      for (const l of late) done.get(l.late)?.findings.push(l.finding)
      const result = { done, late, stderr: stderr.trim() }
      if (fatal) result.fatal = fatal
      else if (hang) result.hang = hang
      else if (!ended || code !== 0) {
        result.crash = { index: current, how: signal ? `signal ${signal}` : `exit code ${code}${ended ? '' : ' before finishing'}` }
      }
      resolve(result)
    })
  })
}

/** Finds what reproduces a crash seen at `index` after `before` in one child. */
async function bisectCrash(cfg, target, before, index) {
  const crashesAt = async (indices) => (await runBatch(cfg, target, indices)).crash?.index === index
  if (await crashesAt([index])) return { indices: [index] }
  const run = [...before, index]
  if (!(await crashesAt(run))) return { indices: run, flaky: true }
  // The shortest tail of the batch that still crashes at `index`.
  let lo = 0
  let hi = run.length - 1
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (await crashesAt(run.slice(mid))) lo = mid
    else hi = mid - 1
  }
  // Then drop the cases in between that the crash does not need (a few tries at most).
  let kept = run.slice(lo)
  for (let i = kept.length - 2; i >= 1 && kept.length > 2 && i >= kept.length - 9; i--) {
    const without = kept.filter((_, j) => j !== i)
    if (await crashesAt(without)) kept = without
  }
  return { indices: kept }
}

/** What makes two findings the same defect: kind, target, call and message without its numbers. */
function signature(f) {
  const what = f.kind === 'crash' ? f.how : f.kind === 'leak' ? f.fds.map((x) => x.replace(/^\d+ -> /, '').replace(/\[\d+\]/, '')).join(', ') : f.message
  return `${f.kind}: ${f.target}${f.label ? ` ${f.label}` : ''}: ${String(what).replace(/\d+/g, 'N')}`
}

class Campaign {
  constructor(cfg) {
    this.cfg = cfg
    this.counts = { cases: 0, crashes: 0, hangs: 0, leaks: 0, 'internal-messages': 0 }
    this.findings = []
    this.groups = new Map()
    this.bisects = 0
    /** Cases whose setup failed: a count that grows means the generators no longer fit the API. */
    this.skipped = 0
    this.skipReasons = new Map()
    this.calls = 0
    this.children = 0
  }

  /** Counts a finding under its signature; the first few of each signature get a reproducer file. */
  record(kind, target, indices, detail) {
    const finding = { kind, target: target.name, seed: this.cfg.seed, index: indices[indices.length - 1], ...detail }
    const key = signature(finding)
    const group = this.groups.get(key) ?? { signature: key, count: 0, first: finding, reproducers: [] }
    this.groups.set(key, group)
    group.count++
    finding.cases = indices
    if (group.reproducers.length < 3) {
      finding.reproducer = writeReproducer(this.cfg, target, indices, finding)
      group.reproducers.push(finding.reproducer)
    }
    this.findings.push(finding)
  }

  /** Runs one batch, and again from after a crash or hang until every case ran. */
  async runBatch(target, indices) {
    let rest = indices
    while (rest.length > 0) {
      const r = await runBatch(this.cfg, target.file, rest)
      this.children++
      // The child's counters are cumulative: its last report holds its totals.
      this.calls += Math.max(0, ...[...r.done.values()].map((d) => d.calls ?? 0))
      if (r.fatal) throw new Error(`fuzz child failed to start (${target.name}):\n${r.fatal}`)
      for (const index of rest) {
        const d = r.done.get(index)
        if (!d) continue
        this.counts.cases++
        if (d.skipped) {
          this.skipped++
          const why = String(d.skipped).replace(/\d+/g, 'N').slice(0, 160)
          this.skipReasons.set(why, (this.skipReasons.get(why) ?? 0) + 1)
        }
        for (const f of d.findings) {
          this.counts['internal-messages']++
          this.record('internal-message', target, [index], { message: f.message, label: f.label, at: f.at })
        }
        if (d.leaks.length) {
          this.counts.leaks++
          this.record('leak', target, [index], { fds: d.leaks })
        }
      }
      // A half-built addon (someone rebuilding it mid-run) is not a finding: stop and say so.
      if (r.crash && brokenBuild.test(r.stderr)) throw new Error(`the addon or dist/ could not be loaded (being rebuilt?):\n${r.stderr}`)
      const stop = r.crash ?? r.hang
      if (!stop) return
      if (stop.index === undefined) throw new Error(`fuzz child died before its first case (${target.name}): ${r.crash?.how}\n${r.stderr}`)
      const at = rest.indexOf(stop.index)
      this.counts.cases++
      if (r.hang) {
        this.counts.hangs++
        this.record('hang', target, [stop.index], { message: stop.message })
      } else {
        this.counts.crashes++
        const before = rest.slice(0, at)
        const bisected = this.bisects++ < this.cfg.maxBisects
          ? await bisectCrash(this.cfg, target.file, before, stop.index)
          : { indices: [stop.index], unbisected: true }
        this.record('crash', target, bisected.indices, { how: r.crash.how, stderr: r.stderr.split('\n').slice(-6).join('\n'), flaky: bisected.flaky, unbisected: bisected.unbisected })
      }
      rest = rest.slice(at + 1)
    }
  }

  /** Batches of every target, interleaved, run `jobs` at a time until the cases or the time run out. */
  async run(targets) {
    const { cases, batch, jobs, seconds } = this.cfg
    const queue = []
    const perTarget = Math.ceil(cases / targets.length)
    for (let start = 0; start < perTarget; start += batch) {
      for (const t of targets) {
        const indices = []
        for (let i = start; i < Math.min(start + batch, perTarget); i++) indices.push(i)
        queue.push([t, indices])
      }
    }
    const deadline = Date.now() + seconds * 1000
    const worker = async () => {
      while (queue.length > 0 && Date.now() < deadline) {
        const [t, indices] = queue.shift()
        await this.runBatch(t, indices)
      }
    }
    await Promise.all(Array.from({ length: jobs }, worker))
    this.timedOut = queue.length > 0
    return this
  }

  summaryLine() {
    return Object.entries(this.counts).map(([k, v]) => `${k} ${v}`).join(', ')
  }

  failed() {
    return this.counts.crashes + this.counts.hangs + this.counts.leaks + this.counts['internal-messages'] > 0
  }
}

module.exports = { Campaign, runBatch, bisectCrash }
