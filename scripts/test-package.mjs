#!/usr/bin/env node
// Proves the published package works the way users install it: the four
// prebuilds (linux-x64 and linux-arm64, each for glibc and musl), `npm pack`,
// and an install into an empty directory with --ignore-scripts and no
// node-gyp on the PATH. Then each prebuild is checked as far as this x86-64
// glibc machine allows:
//   every one    its ELF: machine, libc it links, symbols (prebuild-check.mjs)
//   x64 glibc    CommonJS and ESM load it and make a map, the CLI lists BTF
//   arm64 glibc  an arm64 Node under qemu-user loads it from the installed
//                package and runs the library's user-space parts; its map
//                round trip needs bpf(), which qemu-user does not pass on
//   musl         no musl Node is reachable here (npm, Debian): ELF only
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkPrebuild } from './prebuild-check.mjs'
import { arm64Node } from './prebuild-emulate.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cache = join(root, '.cache', 'prebuild')
const PREBUILDS = [['x64', 'glibc'], ['arm64', 'glibc'], ['x64', 'musl'], ['arm64', 'musl']]
const run = (cmd, args, opts = {}) => {
  console.log(`$ ${cmd} ${args.join(' ')}`)
  return execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...opts })
}
let passed = 0
const ok = (what) => {
  passed++
  console.log(`ok ${passed}: ${what}`)
}

run('npm', ['run', 'build:prebuilds'], { stdio: ['ignore', 'inherit', 'inherit'] })
run('npm', ['run', 'build:ts'])
const work = mkdtempSync(join(tmpdir(), 'bpfkit-pkg-'))
try {
  const tarball = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work]).trim().split('\n').pop()
  const packed = run('tar', ['tzf', join(work, tarball)]).split('\n').filter((f) => f.startsWith('package/prebuilds/') && f.endsWith('.node')).sort()
  const expected = PREBUILDS.map(([a, l]) => `package/prebuilds/linux-${a}/bpfkit.${l}.node`).sort()
  if (packed.join() !== expected.join()) throw new Error(`the package holds prebuilds ${packed.join(', ') || '(none)'}; expected ${expected.join(', ')}`)
  ok(`npm pack: ${packed.length} prebuilds`)

  // A PATH with node itself and the system, but no node_modules/.bin: no node-gyp.
  const PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter)
  if (spawnSync('sh', ['-c', 'command -v node-gyp'], { env: { PATH } }).status === 0) throw new Error('node-gyp is on the test PATH')
  const env = { ...process.env, PATH, npm_config_node_gyp: '/nonexistent/node-gyp' }
  // Installed both ways: with --ignore-scripts as security-minded users do,
  // and with scripts on, where npm would run an implicit `node-gyp rebuild`
  // for a package shipping binding.gyp unless it says `"gypfile": false`.
  const install = (name, flags) => {
    const dir = join(work, name)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
    run('npm', ['install', ...flags, '--no-audit', '--no-fund', join(work, tarball)], { cwd: dir, env })
    if (existsSync(join(dir, 'node_modules', 'bpfkit', 'build'))) throw new Error(`npm install ${flags.join(' ')} compiled the addon; it must load from prebuilds/`)
    return dir
  }
  const withScripts = install('with-scripts', ['--foreground-scripts'])
  const app = install('app', ['--ignore-scripts'])
  const installed = join(app, 'node_modules', 'bpfkit')

  for (const [arch, libc] of PREBUILDS) {
    ok(`ELF ${checkPrebuild(join(installed, 'prebuilds', `linux-${arch}`, `bpfkit.${libc}.node`), arch, libc, cache)}`)
  }

  // Which file node-gyp-build picks, then a map round trip (when `bpf` is
  // true) and the parts that need no kernel: the guard object's spec, the
  // assembler, the policy schema (part of the package's interface).
  const body = `
    const path = require('path')
    const pkg = path.dirname(require.resolve('bpfkit/package.json'))
    const picked = path.relative(pkg, require('node-gyp-build').path(pkg))
    if (picked !== process.argv[2]) throw new Error('loaded ' + picked + ', expected ' + process.argv[2])
    const { BpfMap, CollectionSpec, asm, guardObjectPath } = require('bpfkit')
    if (!require('bpfkit/policy.schema.json').$schema) throw new Error('policy schema missing')
    if (!CollectionSpec.fromFile(guardObjectPath).programs.guard_prog_load) throw new Error('guard object missing')
    if (asm.assemble([asm.mov64Imm(asm.R0, 0), asm.exit()]).length !== 16) throw new Error('assembler')
    let m
    try {
      m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 2, name: 'pkg_test' })
    } catch (e) {
      if (process.argv[3] !== 'no-bpf' || e.code !== 'ENOSYS') throw e
      console.log(picked + ': loaded; map round trip not run: bpf() is ENOSYS here')
      process.exit(0)
    }
    m.update(new Uint8Array(4), new Uint8Array([1, 2, 3, 4]))
    if (m.lookup(new Uint8Array(4))[3] !== 4) throw new Error('lookup mismatch')
    m.close()
    console.log(picked + ': loaded, map round trip ok')`
  writeFileSync(join(app, 'cjs.cjs'), body)
  writeFileSync(join(app, 'esm.mjs'), `import { BpfMap } from 'bpfkit'\nconst m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })\nm.close()\nconsole.log('esm ok')\n`)
  process.stdout.write(run(process.execPath, ['cjs.cjs', 'prebuilds/linux-x64/bpfkit.glibc.node'], { cwd: app, env }))
  process.stdout.write(run(process.execPath, ['esm.mjs'], { cwd: app, env }))
  process.stdout.write(run(process.execPath, [join(installed, 'dist/cli/main.js'), 'list', 'btf'], { cwd: app, env }))
  ok('x64 glibc: CommonJS and ESM load the prebuild, map round trip, CLI')

  const arm64 = arm64Node(cache)
  process.stdout.write(arm64.run(['cjs.cjs', 'prebuilds/linux-arm64/bpfkit.glibc.node', 'no-bpf'], { cwd: app, env }))
  ok(`arm64 glibc: Node ${process.versions.node} for arm64 under qemu-user loads the prebuild`)
  console.log('musl: checked as ELF only (no musl Node is reachable from npm or Debian here)')

  // Building from source stays possible when asked (npm brings node-gyp), and
  // node-gyp-build then prefers build/Release over the prebuild.
  run('npm', ['run', 'build:native', '--prefix', join(withScripts, 'node_modules', 'bpfkit')], { stdio: ['ignore', 'ignore', 'inherit'] })
  writeFileSync(join(withScripts, 'cjs.cjs'), body)
  process.stdout.write(run(process.execPath, ['cjs.cjs', 'build/Release/bpfkit.node'], { cwd: withScripts, env }))
  ok('a source build is preferred over the prebuild')
  console.log(`package test: ${passed} passed, 0 failed`)
} finally {
  rmSync(work, { recursive: true, force: true })
}
