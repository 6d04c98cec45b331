// Debian kernels for the VM suite, fetched with `apt-get download` through an
// apt configuration of our own under .cache/vm/apt: the system's lists and
// dpkg status are never read or changed, and of its sources only the Debian
// mirror's URI is taken (mirror.mjs), so this works the same on a bookworm CI
// machine and on a developer's laptop with other sources.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'

// One kernel per Debian suite: the kernel users of that release run. The
// `name` is what --kernel takes; for backports it is the series ("7.x"),
// because the exact release moves with the archive.
export const KERNELS = [
  { name: '5.10', suite: 'bullseye' },
  { name: '6.1', suite: 'bookworm' },
  { name: '6.12', suite: 'trixie' },
  { name: '7.x', suite: 'trixie-backports' },
]

/**
 * The KERNELS entries a --kernel value names: 'all', a name, a version in a
 * series ('7.3', '7' for '7.x'), or a comma-separated list of those.
 */
export function selectKernels(spec) {
  if (spec === 'all') return KERNELS
  const out = []
  for (const one of spec.split(',')) {
    const hit = KERNELS.find((k) => k.name === one || (k.name.endsWith('.x') && (one === k.name.slice(0, -2) || one.startsWith(k.name.slice(0, -1)))))
    if (!hit) throw new Error(`--kernel ${one}: not one of ${KERNELS.map((k) => k.name).join(', ')}, all`)
    if (!out.includes(hit)) out.push(hit)
  }
  return out
}

/** The private sources.list: every suite KERNELS needs, from `mirror` ({ uri, signedBy } from chooseMirror). */
export function sourcesList(mirror) {
  const suites = [...new Set(KERNELS.map((k) => k.suite))]
  return suites.map((s) => `deb [signed-by=${mirror.signedBy ?? KEYRING}] ${mirror.uri} ${s} main\n`).join('')
}

export class Apt {
  /** `sources` and `architectures` default to the kernels'; the prebuilds' musl packages take others (scripts/prebuild-musl.mjs). */
  constructor(cacheDir, mirror, { sources = sourcesList(mirror), architectures = ['amd64'] } = {}) {
    this.mirror = mirror
    this.sources = sources
    this.architectures = architectures
    this.dir = join(cacheDir, 'apt')
    this.debs = join(cacheDir, 'debs')
    this.conf = join(this.dir, 'apt.conf')
  }

  /** Writes the private configuration and refreshes its lists when they are missing or a day old. */
  prepare({ log }) {
    const d = this.dir
    for (const sub of ['etc/sources.list.d', 'etc/preferences.d', 'etc/apt.conf.d', 'state/lists/partial', 'cache/archives/partial']) {
      mkdirSync(join(d, sub), { recursive: true })
    }
    mkdirSync(this.debs, { recursive: true })
    const sources = this.sources
    writeFileSync(join(d, 'etc/sources.list'), sources)
    if (!existsSync(join(d, 'state/status'))) writeFileSync(join(d, 'state/status'), '')
    // Every Dir:: that would otherwise fall back to /etc/apt or /var/lib/apt is
    // pointed here; APT_CONFIG replaces /etc/apt/apt.conf, and parts points at
    // our own empty directory so the system's apt.conf.d is not read either.
    writeFileSync(this.conf, [
      `Dir::Etc "${join(d, 'etc')}";`,
      `Dir::Etc::sourcelist "${join(d, 'etc/sources.list')}";`,
      `Dir::Etc::sourceparts "${join(d, 'etc/sources.list.d')}";`,
      `Dir::Etc::preferences "${join(d, 'etc/preferences')}";`,
      `Dir::Etc::preferencesparts "${join(d, 'etc/preferences.d')}";`,
      `Dir::Etc::parts "${join(d, 'etc/apt.conf.d')}";`,
      `Dir::State "${join(d, 'state')}";`,
      `Dir::State::status "${join(d, 'state/status')}";`,
      `Dir::Cache "${join(d, 'cache')}";`,
      `APT::Architecture "amd64";`,
      `APT::Architectures { ${this.architectures.map((a) => `"${a}";`).join(' ')} };`,
      `Acquire::Languages "none";`,
      // The cache lives in the repo, which apt's _apt user may not be able to write.
      `APT::Sandbox::User "root";`,
      '',
    ].join('\n'))
    // The lists are fresh when the last update was less than a day ago and
    // from the same sources (another mirror has other list files).
    const stamp = join(d, 'state/updated')
    const fresh = existsSync(stamp) && readFileSync(stamp, 'utf8') === sources && Date.now() - statSync(stamp).mtimeMs < 24 * 3600e3
    if (!fresh) {
      log(`apt-get update from ${this.mirror.uri} (private configuration in ${d})`)
      this.apt('apt-get', ['-q', 'update'], { stdio: ['ignore', 'ignore', 'inherit'] })
      writeFileSync(stamp, sources)
    }
  }

  apt(cmd, args, opts = {}) {
    return execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, APT_CONFIG: this.conf }, maxBuffer: 64 << 20, ...opts })
  }

  field(pkgver, name) {
    const text = this.apt('apt-cache', ['show', '--no-all-versions', pkgver])
    const m = text.match(new RegExp(`^${name}: (.*)$`, 'm'))
    return m ? m[1] : ''
  }

  /**
   * The packages that hold the kernel image and modules of `suite`'s
   * linux-image-amd64: the image package itself up to 6.18, or from 6.19 on
   * the linux-binary-* and linux-modules-* it depends on, with linux-base-*
   * (modules.builtin, without which modprobe cannot tell a built-in driver
   * from a missing one).
   */
  resolve(suite) {
    const madison = this.apt('apt-cache', ['madison', 'linux-image-amd64'])
    const line = madison.split('\n').find((l) => new RegExp(`\\s${suite}/main\\s`).test(l))
    if (!line) throw new Error(`no linux-image-amd64 in ${suite}`)
    const metaVersion = line.split('|')[1].trim()
    const dep = this.field(`linux-image-amd64=${metaVersion}`, 'Depends').match(/\b(linux-image-[^ ,]+-amd64) \(= ([^)]+)\)/)
    if (!dep) throw new Error(`linux-image-amd64=${metaVersion}: no linux-image-*-amd64 dependency`)
    const [, image, version] = dep
    const release = image.replace(/^linux-image-/, '')
    const deps = this.field(`${image}=${version}`, 'Depends')
    const split = [`linux-binary-${release}`, `linux-modules-${release}`, `linux-base-${release}`]
    const packages = split.every((p) => deps.includes(`${p} `)) ? split : [image]
    return { release, version, packages }
  }

  /** Downloads (once) and unpacks (once) the kernel; returns the unpacked tree. */
  fetch(kernelsDir, { release, version, packages }, { log }) {
    const tree = join(kernelsDir, release)
    if (existsSync(join(tree, '.complete'))) return tree
    const fileVersion = version.replace(/:/g, '%3a')
    const have = new Set(readdirSync(this.debs))
    const debOf = (p) => `${p}_${fileVersion}_amd64.deb`
    const missing = packages.filter((p) => !have.has(debOf(p)))
    if (missing.length) {
      log(`apt-get download ${missing.map((p) => `${p}=${version}`).join(' ')}`)
      this.apt('apt-get', ['-q', 'download', ...missing.map((p) => `${p}=${version}`)], { cwd: this.debs, stdio: ['ignore', 'ignore', 'inherit'] })
    }
    const tmp = `${tree}.tmp`
    rmSync(tmp, { recursive: true, force: true })
    mkdirSync(tmp, { recursive: true })
    for (const p of packages) execFileSync('dpkg-deb', ['-x', join(this.debs, debOf(p)), tmp])
    // Newer packages install under /usr/lib only; depmod -b looks in <base>/lib.
    if (!existsSync(join(tmp, 'lib')) && existsSync(join(tmp, 'usr/lib'))) symlinkSync('usr/lib', join(tmp, 'lib'))
    execFileSync('depmod', ['-b', tmp, release])
    writeFileSync(join(tmp, '.complete'), `${packages.join(' ')} ${version}\n`)
    rmSync(tree, { recursive: true, force: true })
    renameSync(tmp, tree)
    return tree
  }
}

/** The kernel image in an unpacked tree: /boot/vmlinuz-<release> or, from 6.19, /usr/lib/modules/<release>/vmlinuz. */
export function vmlinuz(tree, release) {
  for (const p of [`boot/vmlinuz-${release}`, `usr/lib/modules/${release}/vmlinuz`, `lib/modules/${release}/vmlinuz`]) {
    if (existsSync(join(tree, p))) return join(tree, p)
  }
  throw new Error(`no vmlinuz in ${tree}`)
}
