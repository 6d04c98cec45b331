'use strict'
// Reproducer files: a standalone script per finding that runs the same
// case source (or the run of cases a crash needed) through the same harness,
// and says whether the finding came back. `node <file>`: a crash crashes, a
// hang, leak or internal message prints and exits 1.
const fs = require('node:fs')
const path = require('node:path')
const { caseSource } = require('./case.cjs')

function writeReproducer(cfg, target, indices, finding) {
  fs.mkdirSync(cfg.outDir, { recursive: true })
  const last = indices[indices.length - 1]
  const file = path.join(cfg.outDir, `${target.name}-seed${cfg.seed}-case${last}-${finding.kind}.js`)
  const harness = path.relative(cfg.outDir, path.join(__dirname, 'case.cjs'))
  const describe = JSON.stringify({ ...finding, reproducer: undefined, cases: undefined }, null, 2).split('\n').map((l) => `// ${l}`).join('\n')
  const cases = indices.map((i) => {
    const body = caseSource(target, cfg.root, cfg.seed, i).split('\n').map((l) => `    ${l}`).join('\n')
    return `  // case ${i}\n  [${i}, async (require, h) => {\n${body}\n  }],`
  }).join('\n')
  fs.writeFileSync(file, `#!/usr/bin/env node
// bpfkit fuzz reproducer: target ${target.name}, seed ${cfg.seed}, case${indices.length > 1 ? 's' : ''} ${indices.join(', ')}.
// Re-run the whole campaign case: npm run fuzz -- --target ${target.name} --seed ${cfg.seed} --only ${last}
${describe}
'use strict'
const path = require('node:path')
const { runReproducer } = require(path.resolve(__dirname, ${JSON.stringify(harness)}))

runReproducer(${JSON.stringify(cfg.root)}, [
${cases}
])
`)
  const rel = path.relative(cfg.root, file)
  return rel.startsWith('..') ? file : rel
}

module.exports = { writeReproducer }
