#!/usr/bin/env node
// npm run test:vm -- [--kernel 5.10|6.1|6.12|7.x|all] [--timeout MIN] [vitest args...]
//
// Runs the kernel test suite inside qemu guests booted on Debian kernels. The
// guest sees the host's root read-only over 9p with a tmpfs overlay on top,
// so it runs this very checkout with the host's node and tools, and nothing
// it writes reaches the host. The exit code is the suite's (the first failing
// kernel's), 124 on a timeout, 125 when the guest could not run the suite.
import { execFileSync, spawn } from 'node:child_process'
import { accessSync, constants, copyFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Apt, KERNELS, selectKernels, sourcesList, vmlinuz } from './kernels.mjs'
import { chooseMirror, MIRROR_ENV } from './mirror.mjs'
import { buildFixtures } from '../../test/setup/build-fixtures.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..', '..')
const cacheDir = join(root, '.cache', 'vm')
const log = (msg) => console.log(`[test:vm] ${msg}`)

function usage(code) {
  console.log(`usage: npm run test:vm -- [--kernel ${KERNELS.map((k) => k.name).join('|')}|all|A,B] [--timeout MIN] [--accel kvm|tcg] [--cmd SHELL-CMD] [--dry-run] [vitest args]
  default: --kernel all, test/kernel; vitest args replace the test selection;
  --timeout: minutes per guest (default 40); 7.x also answers to 7.3 or 7;
  --dry-run: print the mirror and the apt sources the run would use, then stop;
  kernels come from the Debian mirror in this machine's apt sources, or ${MIRROR_ENV} when set`)
  process.exit(code)
}

function parseArgs(argv) {
  const opts = { kernel: 'all', timeoutMin: 40, accel: undefined, vitest: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) usage(2)
      return argv[++i]
    }
    if (a === '--kernel' || a === '-k') opts.kernel = value()
    else if (a.startsWith('--kernel=')) opts.kernel = a.slice(9)
    else if (a === '--timeout') opts.timeoutMin = Number(value())
    else if (a === '--accel') opts.accel = value()
    // A shell command to run in the guest instead of the suite (debugging).
    else if (a === '--cmd') opts.cmd = value()
    else if (a === '--dry-run') opts.dryRun = true
    else if (a === '--help' || a === '-h') usage(0)
    else opts.vitest.push(a)
  }
  if (!(opts.timeoutMin > 0)) usage(2)
  if (opts.accel && !['kvm', 'tcg'].includes(opts.accel)) usage(2)
  if (opts.vitest.length === 0) opts.vitest = ['test/kernel']
  return opts
}

function need(cmd, pkg) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
  } catch {
    throw new Error(`${cmd} not found; install the Debian package ${pkg}`)
  }
}

const sq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`

/** The .ko files (dependencies first) that must be in the initramfs for 9p and overlayfs; built-in ones are skipped. */
function initramfsModules(tree, release) {
  const out = []
  for (const mod of ['virtio_pci', '9pnet_virtio', '9p', 'overlay']) {
    const text = execFileSync('modprobe', ['-d', tree, '-S', release, '--show-depends', mod], { encoding: 'utf8' })
    for (const line of text.split('\n')) {
      const m = line.match(/^insmod (\S+)/)
      if (m && !out.includes(m[1])) out.push(m[1])
    }
  }
  return out
}

function buildInitramfs(work, { tree, release, env, modules }) {
  const dir = join(work, 'initramfs')
  for (const sub of ['bin', 'proc', 'sys', 'dev', 'modules']) mkdirSync(join(dir, sub), { recursive: true })
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'))
  chmodSync(join(dir, 'bin/busybox'), 0o755)
  copyFileSync(join(here, 'init.sh'), join(dir, 'init'))
  chmodSync(join(dir, 'init'), 0o755)
  copyFileSync(join(here, 'job.sh'), join(dir, 'job.sh'))
  writeFileSync(join(dir, 'job.env'), Object.entries(env).map(([k, v]) => `${k}=${sq(v)}\n`).join(''))
  // busybox insmod takes plain .ko files only; unpack them here.
  const names = []
  modules.forEach((path, i) => {
    const base = path.split('/').pop().replace(/\.(xz|zst|gz)$/, '')
    const name = `${String(i).padStart(2, '0')}-${base}`
    const tool = path.endsWith('.xz') ? 'xz' : path.endsWith('.zst') ? 'zstd' : path.endsWith('.gz') ? 'gzip' : undefined
    const data = tool ? execFileSync(tool, ['-dc', path], { maxBuffer: 256 << 20 }) : execFileSync('cat', [path], { maxBuffer: 256 << 20 })
    writeFileSync(join(dir, 'modules', name), data)
    names.push(name)
  })
  writeFileSync(join(dir, 'modules/order'), names.join('\n') + '\n')
  const image = join(work, 'initramfs.cpio')
  execFileSync('sh', ['-c', `cd ${sq(dir)} && find . | cpio -o -H newc --quiet > ${sq(image)}`])
  return image
}

/** KVM only counts when a guest actually boots with it: this host offers a /dev/kvm that stock kernels cannot use. */
async function kvmWorks(kernel, initrd) {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK)
  } catch {
    return false
  }
  const r = await boot({ kernel, initrd, accel: 'kvm', timeoutMs: 60_000, quiet: true })
  return r.code === 0
}

let current // the running qemu, killed on SIGINT/SIGTERM
const snapshots = [] // copies of the checkout, removed on the way out
process.on('exit', () => {
  for (const s of snapshots) rmSync(s, { recursive: true, force: true })
})
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) current.kill('SIGKILL')
    process.exit(130)
  })
}

/**
 * The bpf LSM must be active for BPF LSM programs to run (the guard, lsm
 * attach tests): when the kernel has it built in but its default list
 * (CONFIG_LSM) leaves it out, the boot's lsm= adds it at the end.
 */
function lsmArgs(tree, release) {
  const config = join(tree, 'boot', `config-${release}`)
  if (!existsSync(config)) return []
  const text = readFileSync(config, 'utf8')
  const list = /^CONFIG_LSM="([^"]*)"/m.exec(text)?.[1]
  if (!/^CONFIG_BPF_LSM=y/m.test(text) || list === undefined || list.split(',').includes('bpf')) return []
  return [`lsm=${list ? `${list},` : ''}bpf`]
}

/** Boots one guest; resolves with the suite's exit code (or ours: 124 timeout, 125 no result). */
function boot({ kernel, initrd, accel, timeoutMs, quiet = false, extra = [] }) {
  const append = [
    ...extra,
    'console=ttyS0', 'quiet', 'loglevel=4',
    // A crashed kernel must end the run at once instead of hanging it: an
    // oops panics, a panic reboots, and -no-reboot turns that into an exit.
    'oops=panic', 'panic=-1',
    // Emulated hardware has nothing to protect; the mitigations only cost time.
    'mitigations=off',
  ].join(' ')
  const args = [
    '-nodefaults', '-no-user-config', '-no-reboot',
    '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-smp', '2', '-m', '4G',
    '-kernel', kernel, '-initrd', initrd, '-append', append,
    '-display', 'none', '-monitor', 'none', '-serial', 'stdio',
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
  ]
  return new Promise((resolve) => {
    const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    current = q
    let exit
    let started = false
    let panic = false
    let timedOut = false
    let pending = ''
    const onLine = (line) => {
      const m = line.match(/BPFKIT-VM-EXIT=(\d+)/)
      if (m) exit = Number(m[1])
      if (line.startsWith('BPFKIT-VM: ')) started = true
      if (/Kernel panic|BUG: |Oops: /.test(line)) panic = true
    }
    q.stdout.on('data', (chunk) => {
      if (!quiet) process.stdout.write(chunk)
      pending += chunk.toString('utf8')
      const lines = pending.split('\n')
      pending = lines.pop()
      for (const l of lines) onLine(l.replace(/\r$/, ''))
    })
    q.stderr.on('data', (chunk) => {
      if (!quiet) process.stderr.write(chunk)
    })
    const timer = setTimeout(() => {
      timedOut = true
      q.kill('SIGKILL')
    }, timeoutMs)
    q.on('close', (status, signal) => {
      clearTimeout(timer)
      current = undefined
      onLine(pending)
      let code = exit
      let why
      if (timedOut) {
        code = 124
        why = `guest timed out after ${Math.round(timeoutMs / 60e3)} min (hung?) and was killed`
      } else if (code === undefined) {
        code = 125
        why = panic
          ? 'guest kernel crashed (panic/oops above) before the suite finished'
          : `guest stopped before the suite finished (qemu ${signal ? `killed by ${signal}` : `exited ${status}`})`
      }
      resolve({ code, why, started, panic })
    })
    q.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: 125, why: `cannot start qemu: ${e.message}` })
    })
  })
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const kernels = selectKernels(opts.kernel)
  const mirror = chooseMirror()
  if (opts.dryRun) {
    log(`mirror ${mirror.uri} (from ${mirror.from}); kernels ${kernels.map((k) => `${k.name} (${k.suite})`).join(', ')}; private apt sources:`)
    process.stdout.write(sourcesList(mirror))
    return
  }
  for (const [cmd, pkg] of [['qemu-system-x86_64', 'qemu-system-x86'], ['busybox', 'busybox-static'], ['modprobe', 'kmod'], ['depmod', 'kmod'], ['cpio', 'cpio'], ['apt-get', 'apt'], ['dpkg-deb', 'dpkg'], ['xz', 'xz-utils'], ['zstd', 'zstd'], ['ip', 'iproute2']]) need(cmd, pkg)
  if (!existsSync(join(root, 'build/Release'))) throw new Error('no build/Release: run npm install first')

  const apt = new Apt(cacheDir, mirror)
  apt.prepare({ log })
  // The guests run a copy of the checkout taken now: a run lasts many
  // minutes, and edits (or a rebuild of the addon) meanwhile must not mix
  // old and new files inside one run.
  const repo = mkdtempSync(join(cacheDir, 'snapshot-'))
  snapshots.push(repo)
  log(`copying the checkout to ${repo.slice(root.length + 1)} for the guests`)
  execFileSync('sh', ['-c', `tar -C ${sq(root)} --exclude=./.cache --exclude=./.git -cf - . | tar -C ${sq(repo)} -xf -`])
  // The guest cannot afford tsc (minutes under emulation): compile here, as
  // the suite's global setup would, and let the guest use the result.
  log('compiling dist/ (tsc -p tsconfig.build.json)')
  execFileSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json')], { stdio: 'inherit' })
  buildFixtures(repo)

  const vitest = ['node', 'node_modules/vitest/vitest.mjs', 'run', '--config', 'scripts/vm/vitest.config.mts', ...opts.vitest]
  const results = []
  let accel = opts.accel
  for (const k of kernels) {
    const started = Date.now()
    const pkg = apt.resolve(k.suite)
    const tree = apt.fetch(join(cacheDir, 'kernels'), pkg, { log })
    const kernel = vmlinuz(tree, pkg.release)
    const modules = initramfsModules(tree, pkg.release)
    const moddir = existsSync(join(tree, 'usr/lib/modules', pkg.release)) ? join(tree, 'usr/lib/modules', pkg.release) : join(tree, 'lib/modules', pkg.release)
    const work = mkdtempSync(join(cacheDir, 'run-'))
    try {
      const env = { KVER: pkg.release, MODDIR: moddir, REPO: repo }
      if (accel === undefined) {
        const probe = buildInitramfs(join(work, 'probe'), { tree, release: pkg.release, env: { ...env, CMD: 'true' }, modules })
        accel = (await kvmWorks(kernel, probe)) ? 'kvm' : 'tcg'
        log(accel === 'kvm' ? 'KVM works: using it' : 'KVM is not usable here: software emulation (TCG)')
      }
      const slowdown = accel === 'kvm' ? 3 : 20
      // The guest's console is a terminal whatever ours is: colours follow ours.
      const color = process.stdout.isTTY && !process.env.NO_COLOR ? '' : 'NO_COLOR=1 '
      const cmd = opts.cmd ?? `${color}BPFKIT_TEST_SLOWDOWN=${slowdown} ${vitest.map(sq).join(' ')}`
      const initrd = buildInitramfs(work, { tree, release: pkg.release, env: { ...env, CMD: cmd }, modules })
      log(`${k.name}: booting Linux ${pkg.release} (${k.suite}, ${pkg.packages.join(' + ')} ${pkg.version}) with ${accel}`)
      let r
      for (let attempt = 1; ; attempt++) {
        r = await boot({ kernel, initrd, accel, timeoutMs: opts.timeoutMin * 60e3, extra: lsmArgs(tree, pkg.release) })
        // qemu 7.2's multi-threaded TCG now and then breaks the kernel's
        // live patching of its own code at boot (an int3 oops in early
        // idle), before anything of ours ran: that is the emulator, so boot
        // again. A crash once the suite has started is the kernel's, and fails.
        if (!(r.panic && !r.started && r.code === 125 && attempt < 3)) break
        log(`${k.name}: the guest kernel crashed while booting, before the suite started; booting again (${attempt + 1}/3)`)
      }
      const secs = Math.round((Date.now() - started) / 1000)
      if (r.why) console.error(`[test:vm] ${k.name}: ${r.why}`)
      log(`${k.name}: Linux ${pkg.release}: ${r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`} in ${secs} s`)
      results.push({ name: k.name, release: pkg.release, code: r.code, secs })
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
  }
  if (results.length > 1) {
    log('summary:')
    for (const r of results) log(`  ${r.name.padEnd(5)} ${r.release.padEnd(22)} ${r.code === 0 ? 'passed' : `FAILED (${r.code})`}  ${r.secs} s`)
  }
  process.exit(results.find((r) => r.code !== 0)?.code ?? 0)
}

main().catch((e) => {
  console.error(`[test:vm] ${e.message}`)
  process.exit(125)
})
