#!/usr/bin/env node
// Proves the published package works the way users install it: a fresh
// prebuild, `npm pack`, and an install into an empty directory with
// --ignore-scripts and no node-gyp on the PATH; then CommonJS and ESM both load
// the addon from prebuilds/ and create a map.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const run = (cmd, args, opts = {}) => {
  console.log(`$ ${cmd} ${args.join(' ')}`)
  return execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...opts })
}

rmSync(join(root, 'prebuilds'), { recursive: true, force: true })
run('npm', ['run', 'prebuild'])
run('npm', ['run', 'build:ts'])
const work = mkdtempSync(join(tmpdir(), 'bpfkit-pkg-'))
try {
  const tarball = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work]).trim().split('\n').pop()
  const app = join(work, 'app')
  run('mkdir', ['-p', app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  // A PATH with node itself and the system, but no node_modules/.bin: no node-gyp.
  const PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter)
  if (spawnSync('sh', ['-c', 'command -v node-gyp'], { env: { PATH } }).status === 0) throw new Error('node-gyp is on the test PATH')
  const env = { ...process.env, PATH, npm_config_node_gyp: '/nonexistent/node-gyp' }
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', join(work, tarball)], { cwd: app, env })
  const installed = join(app, 'node_modules', 'bpfkit')
  if (existsSync(join(installed, 'build'))) throw new Error('the package ships a build/ directory; it must load from prebuilds/')
  console.log(`prebuilds: ${readdirSync(join(installed, 'prebuilds')).join(', ')}`)

  const body = `
    const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2, name: 'pkg_test' })
    m.update(new Uint8Array(4), new Uint8Array([1, 2, 3, 4]))
    if (m.lookup(new Uint8Array(4))[3] !== 4) throw new Error('lookup mismatch')
    m.close()`
  writeFileSync(join(app, 'cjs.cjs'), `const { BpfMap } = require('bpfkit')\n${body}\nconsole.log('cjs ok')\n`)
  writeFileSync(join(app, 'esm.mjs'), `import { BpfMap } from 'bpfkit'\n${body}\nconsole.log('esm ok')\n`)
  for (const f of ['cjs.cjs', 'esm.mjs']) process.stdout.write(run(process.execPath, [f], { cwd: app, env }))
  process.stdout.write(run(process.execPath, [join(installed, 'dist/cli/main.js'), 'list', 'btf'], { cwd: app, env }))
  console.log('package test: 1 passed, 0 failed')
} finally {
  rmSync(work, { recursive: true, force: true })
}
