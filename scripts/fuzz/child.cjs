'use strict'
// A fuzz child: runs a batch of cases in order and reports each on fd 3
// ("start" before, "done" after), so that when the process dies the parent
// knows which case was running. A hang is reported, then the child kills
// itself: the state of a process with a stuck call is not worth trusting.
const fs = require('node:fs')
const { Harness } = require('./harness.cjs')
const { loadTarget, caseSource, compile, runCase } = require('./case.cjs')

const cfg = JSON.parse(process.argv[2])
const report = (msg) => fs.writeSync(3, `${JSON.stringify(msg)}\n`)

async function main() {
  const target = loadTarget(cfg.target)
  const h = new Harness({ root: cfg.root, tmp: cfg.tmp })
  let current = -1
  const lost = (label) => (e) => {
    if (e instanceof Error && e.message.startsWith('fuzz:')) return
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e)
    report({ late: current, finding: { kind: 'internal', label, message } })
  }
  process.on('unhandledRejection', lost('unhandled rejection'))
  process.on('uncaughtException', lost('uncaught exception'))
  // What every case may use is opened before the first fd count.
  target.warmUp?.(h)
  void h.fifo

  for (const index of cfg.indices) {
    current = index
    report({ start: index })
    const fn = compile(caseSource(target, cfg.root, cfg.seed, index))
    const r = await runCase(h, () => fn(require, h), { timeoutMs: cfg.timeoutMs })
    if (r.hang) {
      report({ hang: index, message: r.hang })
      h.cleanup()
      process.kill(process.pid, 'SIGKILL')
    }
    report({ done: index, findings: r.findings, leaks: r.leaks, skipped: r.skipped, calls: h.calls, errors: h.errors })
  }
  report({ end: true })
  h.cleanup()
  // Whatever a case left registered (a wait on a closed fd) must not keep the child alive.
  process.exit(0)
}

main().catch((e) => {
  report({ fatal: e instanceof Error ? e.stack : String(e) })
  process.exit(70)
})
