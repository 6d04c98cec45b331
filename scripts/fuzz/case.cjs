'use strict'
// One fuzz case: its source (from the target's generator, seeded by target
// name, seed and index) and its run, shared by the child process and by
// reproducer files so that both do exactly the same thing.
const path = require('node:path')
const { Rng } = require('./prng.cjs')
const { SetupFailed, listFds, newFds } = require('./harness.cjs')

const AsyncFunction = (async () => {}).constructor

function loadTarget(spec) {
  // A bare name is one of ours; anything with a slash is a path (the harness test's fixtures).
  const file = spec.includes('/') ? path.resolve(spec) : path.join(__dirname, 'targets', `${spec}.cjs`)
  const target = require(file)
  return { ...target, file }
}

/** The case's source: the target's prelude (its imports), then the generated body. */
function caseSource(target, root, seed, index) {
  const rng = new Rng(target.name, seed, index)
  return `${target.prelude(root)}\n${target.generate(rng, index)}`
}

function compile(source) {
  return new AsyncFunction('require', 'h', source)
}

/**
 * Runs one case: its findings (JavaScript-internal messages), a hang when
 * it does not settle within timeoutMs, and the fds still open after the
 * harness closed everything the case owned. A leak counts only when a
 * second run leaks again, so a one-time cache opened on first use is not one.
 */
async function runCase(h, fn, { timeoutMs, confirmLeaks = true }) {
  const first = await runOnce(h, fn, timeoutMs)
  if (first.hang || first.leaks.length === 0 || !confirmLeaks) return first
  const again = await runOnce(h, fn, timeoutMs)
  if (again.hang) return again
  return { ...first, leaks: again.leaks.length ? first.leaks : [], cachedFds: again.leaks.length ? [] : first.leaks }
}

async function runOnce(h, fn, timeoutMs) {
  h.findings = []
  const before = listFds()
  let timer
  const hung = new Promise((resolve) => { timer = setTimeout(() => resolve('hang'), timeoutMs) })
  let skipReason
  const ran = (async () => fn())().then(
    () => 'ok',
    (e) => {
      if (e instanceof SetupFailed) {
        skipReason = e.message
        return 'skipped'
      }
      h.classify('case body', e)
      return 'ok'
    })
  const outcome = await Promise.race([ran, hung])
  clearTimeout(timer)
  if (outcome === 'hang') return { hang: `did not settle within ${timeoutMs} ms`, findings: h.findings, leaks: [] }
  await h.closeAll()
  return { skipped: outcome === 'skipped' ? skipReason : undefined, findings: h.findings, leaks: newFds(before, listFds()) }
}

module.exports = { loadTarget, caseSource, compile, runCase }

/** What a reproducer file calls: runs its cases in order in this process and reports what they found. */
async function runReproducer(root, cases) {
  const { Harness } = require('./harness.cjs')
  const h = new Harness({ root })
  let found = 0
  process.on('unhandledRejection', (e) => { found++; console.log('unhandled rejection:', e) })
  for (const [index, fn] of cases) {
    const r = await runCase(h, () => fn(require, h), { timeoutMs: 10_000 })
    for (const f of r.findings) { found++; console.log(`case ${index}: internal message in ${f.label}: ${f.message}${f.at ? `\n    at ${f.at}` : ''}`) }
    if (r.leaks.length) { found++; console.log(`case ${index}: leaked fds: ${r.leaks.join(', ')}`) }
    if (r.hang) { found++; console.log(`case ${index}: hang: ${r.hang}`) }
    if (r.hang) break
  }
  h.cleanup()
  console.log(found ? `${found} finding(s) reproduced` : 'nothing reproduced (a crash would have ended the process)')
  process.exit(found ? 1 : 0)
}

module.exports.runReproducer = runReproducer
