// musl sysroots for the prebuilds: Debian's musl and musl-dev packages for
// amd64 and arm64, downloaded with `apt-get download` through the VM
// runner's private apt configuration (scripts/vm/kernels.mjs), here under
// .cache/prebuild/apt: the system's lists and dpkg status are neither read
// nor changed, only its Debian mirror's URI is taken. Unpacked under
// .cache/prebuild/.
// Debian has no C++ library built against musl, so the C++ side comes from
// the glibc toolchain's headers and the addon links libstdc++.so.6 by name:
// on Alpine that is Alpine's own libstdc++, which its Node links as well.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Apt } from './vm/kernels.mjs'
import { chooseMirror } from './vm/mirror.mjs'

// musl 1.2.3 (bookworm) is older than any supported Alpine's (3.17 has
// 1.2.3): building against the oldest keeps every newer musl compatible.
const SUITE = 'bookworm'
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'
const PACKAGES = ['musl', 'musl-dev']

/** Debian's architecture and the musl/GNU triplets for each prebuild arch. */
export const ARCHES = {
  x64: { deb: 'amd64', musl: 'x86_64-linux-musl', gnu: 'x86_64-linux-gnu', loader: 'ld-musl-x86_64.so.1' },
  arm64: { deb: 'arm64', musl: 'aarch64-linux-musl', gnu: 'aarch64-linux-gnu', loader: 'ld-musl-aarch64.so.1' },
}

/**
 * The unpacked musl sysroot for `arch` (x64 or arm64), fetched once:
 * { root, include, lib, crt, loader, version }. `lib` also holds the name the
 * addon's DT_NEEDED must carry, libc.musl-<arch>.so.1, as Alpine names it.
 */
export function muslSysroot(cacheDir, arch) {
  cacheDir = resolve(cacheDir) // apt takes its Dir:: settings relative to Dir::Etc
  const a = ARCHES[arch]
  const root = join(cacheDir, `musl-${a.deb}`)
  const done = join(root, '.complete')
  if (!existsSync(done)) {
    const debs = join(cacheDir, 'debs')
    const mirror = chooseMirror()
    const apt = new Apt(cacheDir, mirror, {
      sources: `deb [signed-by=${mirror.signedBy ?? KEYRING}] ${mirror.uri} ${SUITE} main\n`,
      architectures: Object.values(ARCHES).map((x) => x.deb),
    })
    apt.prepare({ log: console.log })
    const wanted = PACKAGES.map((p) => `${p}:${a.deb}`)
    console.log(`apt-get download ${wanted.join(' ')}`)
    apt.apt('apt-get', ['-q', 'download', ...wanted], { cwd: debs, stdio: ['ignore', 'ignore', 'inherit'] })
    rmSync(root, { recursive: true, force: true })
    for (const p of PACKAGES) {
      const deb = readdirSync(debs).find((f) => f.startsWith(`${p}_`) && f.endsWith(`_${a.deb}.deb`))
      if (!deb) throw new Error(`apt-get download ${p}:${a.deb} left no .deb in ${debs}`)
      execFileSync('dpkg-deb', ['-x', join(debs, deb), root])
    }
    const version = readdirSync(debs).find((f) => f.startsWith('musl-dev_') && f.endsWith(`_${a.deb}.deb`)).split('_')[1]
    // Debian's libc.so has no SONAME; linked under Alpine's name, the addon
    // asks for the file every musl system has (Alpine's is exactly this).
    symlinkSync('libc.so', join(root, 'lib', a.musl, `libc.musl-${a.musl.split('-')[0]}.so.1`))
    writeFileSync(done, `${version}\n`)
  }
  return {
    root,
    include: join(root, 'usr/include', a.musl),
    lib: join(root, 'lib', a.musl), // libc.so
    crt: join(root, 'usr/lib', a.musl), // crti.o, crtn.o
    loader: join(root, 'lib', a.loader),
    version: readFileSync(done, 'utf8').trim(),
  }
}
