'use strict'
// Fuzz target: the public API of the built package (dist/index.js), one to
// three scenarios per case, each making its own objects.
const path = require('node:path')
const maps = require('./api-maps.cjs')
const progs = require('./api-progs.cjs')
const ipc = require('./api-ipc.cjs')
const threads = require('./api-workers.cjs')
const kinds = require('./api-kinds.cjs')
const broker = require('./broker.cjs')

exports.name = 'api'
exports.needsDist = true

exports.prelude = (root) =>
  `const { BpfMap, BpfProgram, BpfLink, Btf, BtfReader, BtfBuilder, Policy, FdSocket, Fd, asm } = require(${JSON.stringify(path.join(root, 'dist/index.js'))})`

exports.warmUp = (h) => {
  // The package and its lazily opened state, before the first fd count.
  const { BpfMap } = h.api
  BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1 }).close()
}

const scenarios = [
  [4, maps.create], [3, maps.rawMapOps], [2, maps.typedMapOps], [1, maps.fdReuse],
  [3, progs.load], [1, progs.closeWhilePending], [3, progs.btf], [2, progs.policy],
  [2, kinds.wrongKind],
  [3, ipc.socket], [1, ipc.receiveLimit], [2, ipc.ringbuf], [2, ipc.mmap], [1, ipc.fdObjects], [1, threads.workers],
  [2, broker.decode],
]

exports.generate = (rng) => {
  const parts = []
  for (let i = rng.range(1, 3); i > 0; i--) parts.push(rng.weighted(scenarios.map(([w, f]) => [w, () => f(rng)])))
  return parts.join('\n')
}
