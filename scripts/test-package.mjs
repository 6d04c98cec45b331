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
  // A PATH with node itself and the system, but no node_modules/.bin: no node-gyp.
  const PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter)
  if (spawnSync('sh', ['-c', 'command -v node-gyp'], { env: { PATH } }).status === 0) throw new Error('node-gyp is on the test PATH')
  const env = { ...process.env, PATH, npm_config_node_gyp: '/nonexistent/node-gyp' }
  // Installed both ways: with --ignore-scripts as security-minded users do,
  // and with scripts on, where npm would run an implicit `node-gyp rebuild`
  // for a package shipping binding.gyp unless it says `"gypfile": false`.
  const install = (name, flags) => {
    const dir = join(work, name)
    run('mkdir', ['-p', dir])
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
    run('npm', ['install', ...flags, '--no-audit', '--no-fund', join(work, tarball)], { cwd: dir, env })
    if (existsSync(join(dir, 'node_modules', 'bpfkit', 'build'))) throw new Error(`npm install ${flags.join(' ')} compiled the addon; it must load from prebuilds/`)
    return dir
  }
  const withScripts = install('with-scripts', ['--foreground-scripts'])
  const app = install('app', ['--ignore-scripts'])
  const installed = join(app, 'node_modules', 'bpfkit')
  console.log(`prebuilds: ${readdirSync(join(installed, 'prebuilds')).join(', ')}`)

  const body = `
    const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2, name: 'pkg_test' })
    m.update(new Uint8Array(4), new Uint8Array([1, 2, 3, 4]))
    if (m.lookup(new Uint8Array(4))[3] !== 4) throw new Error('lookup mismatch')
    m.close()`
  // The policy schema is part of the package's interface, for editors.
  // So is the guard's BPF object (no compiler at install): its spec must parse.
  writeFileSync(join(app, 'cjs.cjs'), `const { BpfMap, CollectionSpec, guardObjectPath } = require('bpfkit')\nif (!require('bpfkit/policy.schema.json').$schema) throw new Error('policy schema missing')\nif (!CollectionSpec.fromFile(guardObjectPath).programs.guard_prog_load) throw new Error('guard object missing')\n${body}\nconsole.log('cjs ok')\n`)
  writeFileSync(join(app, 'esm.mjs'), `import { BpfMap } from 'bpfkit'\n${body}\nconsole.log('esm ok')\n`)
  for (const f of ['cjs.cjs', 'esm.mjs']) process.stdout.write(run(process.execPath, [f], { cwd: app, env }))
  process.stdout.write(run(process.execPath, [join(installed, 'dist/cli/main.js'), 'list', 'btf'], { cwd: app, env }))

  // Building from source stays possible when asked (npm brings node-gyp), and
  // node-gyp-build then prefers build/Release over the prebuild.
  run('npm', ['run', 'build:native', '--prefix', join(withScripts, 'node_modules', 'bpfkit')], { stdio: ['ignore', 'ignore', 'inherit'] })
  writeFileSync(join(withScripts, 'which.cjs'), `console.log('loaded ' + require('node-gyp-build').resolve(require('path').dirname(require.resolve('bpfkit/package.json'))))\n${body.replace(/^/, "const { BpfMap } = require('bpfkit')\n")}`)
  const which = run(process.execPath, ['which.cjs'], { cwd: withScripts, env })
  if (!which.includes('build/Release')) throw new Error(`a source build was not preferred: ${which}`)
  process.stdout.write(which)
  console.log('package test: 3 passed, 0 failed')
} finally {
  rmSync(work, { recursive: true, force: true })
}
