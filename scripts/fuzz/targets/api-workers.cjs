'use strict'
// Public-API cases with worker_threads (issue 11 items 2 and 3): maps used
// from several workers at once, and a worker terminated while its program
// load is pending. A worker closes every object it made, so an fd left open
// afterwards is one the library lost (the result of a load nobody awaits).

const workerCode = (dist, ops, loadAndWait) => `
const { BpfMap, BpfProgram, asm } = require(${JSON.stringify(dist)})
const { parentPort } = require('node:worker_threads')
;(async () => {
  for (let i = 0; i < ${ops}; i++) {
    const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 })
    const k = new Uint8Array(4).fill(i & 3)
    m.update(k, new Uint8Array(8)); m.lookup(k); m.delete(k); m.delete(k)
    m.close()
  }
  ${loadAndWait ? `const loading = BpfProgram.load({ type: 'socket_filter', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()] })
  parentPort.postMessage('loading')
  ;(await loading).close()` : ''}
  parentPort.postMessage('done')
})()
`

const workers = (rng) => {
  // Small: a worker costs a fresh Node environment, and several cases may share the machine.
  const count = rng.range(2, 3)
  const ops = rng.pick([10, 50])
  const terminate = rng.bool(0.5)
  return `{
  const { Worker } = require('node:worker_threads')
  const { once } = require('node:events')
  const dist = require('node:path').join(h.root, 'dist/index.js')
  const workers = Array.from({ length: ${count} }, (_, i) => new Worker(${JSON.stringify(workerCode('DIST', ops, terminate))}.replace('"DIST"', JSON.stringify(dist)), { eval: true }))
  const exits = workers.map((w) => new Promise((resolve, reject) => { w.on('error', reject); w.on('exit', resolve) }))
  ${terminate ? `// Terminated right after its load started: the load's fd must not outlive the worker.
  await once(workers[0], 'message')
  await workers[0].terminate()` : ''}
  await h.call('workers', () => Promise.all(exits))
}`
}

module.exports = { workers }
