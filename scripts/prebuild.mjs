#!/usr/bin/env node
// The four prebuilds the package ships, built on an x86-64 Debian machine:
// linux-x64 and linux-arm64, each for glibc and for musl, named with
// prebuildify's libc tag (bpfkit.glibc.node, bpfkit.musl.node) so that
// node-gyp-build picks the one that matches where it runs.
//
//   arm64 glibc  Debian's cross compiler (g++-aarch64-linux-gnu)
//   musl         the same GCC drivers with musl's headers and libc from
//                Debian's musl packages (prebuild-musl.mjs) in place of
//                glibc's, through a specs file written here
//
// Each target builds in its own copy of the sources under .cache/prebuild,
// so the checkout's build/Release (what the tests load) is never replaced
// by a foreign binary. Run by `npm pack` (prepack), never at install.
// `node scripts/prebuild.mjs x64-glibc` builds only the targets named.
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { arch as hostArch } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ARCHES, muslSysroot } from './prebuild-musl.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cache = join(root, '.cache', 'prebuild')
const GCC = 12 // bookworm's GCC, native and cross

export const TARGETS = ['x64-glibc', 'arm64-glibc', 'x64-musl', 'arm64-musl']

/** The GNU toolchain for `arch` on this x86-64 host: its command prefix and where its C++ parts live. */
function gnuToolchain(arch) {
  const gnu = ARCHES[arch].gnu
  if (arch === 'x64') {
    return { prefix: '', cxxInclude: `/usr/include/c++/${GCC}`, cxxTarget: `/usr/include/${gnu}/c++/${GCC}`, gccLib: `/usr/lib/gcc/${gnu}/${GCC}`, libDir: `/usr/lib/${gnu}`, kernelInclude: '/usr/include', kernelAsm: `/usr/include/${gnu}/asm` }
  }
  const sys = `/usr/${gnu}`
  return { prefix: `${gnu}-`, cxxInclude: `${sys}/include/c++/${GCC}`, cxxTarget: `${sys}/include/c++/${GCC}/${gnu}`, gccLib: `/usr/lib/gcc-cross/${gnu}/${GCC}`, libDir: `${sys}/lib`, kernelInclude: `${sys}/include`, kernelAsm: `${sys}/include/asm` }
}

/**
 * A GCC specs file that swaps glibc for musl: no standard include or
 * library directories, the C++ headers of GCC itself, musl's C headers, the
 * kernel's uapi headers (linux/, asm/), musl's crt files and dynamic linker,
 * and libc named as Alpine names it. libstdc++ and libgcc_s are linked by
 * their sonames from the glibc toolchain (their ABI does not depend on the
 * libc; Alpine's Node brings its own copies of both).
 */
function muslSpecs(arch, tc) {
  const a = ARCHES[arch]
  const musl = muslSysroot(cache, arch)
  const dir = join(cache, `musl-${arch}-toolchain`)
  rmSync(dir, { recursive: true, force: true })
  // linux/ and asm/ without the rest of the glibc include tree.
  mkdirSync(join(dir, 'include'), { recursive: true })
  for (const d of ['linux', 'asm-generic']) symlinkSync(join(tc.kernelInclude, d), join(dir, 'include', d))
  symlinkSync(tc.kernelAsm, join(dir, 'include', 'asm'))
  // Only these libraries are visible to the linker: never glibc's libc or libm.
  mkdirSync(join(dir, 'lib'))
  symlinkSync(join(tc.libDir, 'libstdc++.so.6'), join(dir, 'lib', 'libstdc++.so'))
  symlinkSync(join(tc.libDir, 'libgcc_s.so.1'), join(dir, 'lib', 'libgcc_s.so'))
  symlinkSync(join(tc.gccLib, 'libgcc.a'), join(dir, 'lib', 'libgcc.a'))
  writeFileSync(join(dir, 'lib', 'libm.a'), '!<arch>\n') // musl's libm is in libc
  const includes = [join(root, 'scripts', 'prebuild-musl'), tc.cxxInclude, tc.cxxTarget, `${tc.cxxInclude}/backward`, join(tc.gccLib, 'include'), musl.include, join(dir, 'include')]
  // aarch64 GCC calls libgcc's outline atomics, whose setup asks glibc's
  // __getauxval (musl has only getauxval): inline LSE/LL-SC sequences instead.
  const cpu = arch === 'arm64' ? '-mno-outline-atomics ' : ''
  const isystem = `${cpu}-nostdinc ${includes.map((d) => `-isystem ${d}`).join(' ')}`
  const libc = `libc.musl-${a.musl.split('-')[0]}.so.1`
  const specs = join(dir, 'musl.specs')
  writeFileSync(specs, [
    '*cc1:', `%(cc1_cpu) ${isystem}`,
    '', '*cc1plus:', isystem,
    '', '*startfile:', `${musl.crt}/crti.o crtbeginS.o%s`,
    '', '*endfile:', `crtendS.o%s ${musl.crt}/crtn.o`,
    '', '*link:', `-dynamic-linker /lib/${a.loader} -nostdlib %{shared:-shared} %{rdynamic:-export-dynamic}`,
    '', '*link_libgcc:', `-L${join(dir, 'lib')} -L${musl.lib}`,
    '', '*libgcc:', '-lgcc_s -lgcc',
    '', '*lib:', `-l:${libc}`,
    '',
  ].join('\n'))
  return { specs, musl }
}

/** Node's headers from the running Node's own install, so node-gyp downloads nothing. */
function nodedir() {
  const dir = dirname(dirname(process.execPath))
  if (!existsSync(join(dir, 'include', 'node', 'node_api.h'))) {
    throw new Error(`no Node headers in ${dir}/include/node: set npm_config_nodedir to a Node source or headers tree`)
  }
  return dir
}

export function buildTarget(target) {
  const [arch, libc] = target.split('-')
  if (!ARCHES[arch] || !['glibc', 'musl'].includes(libc)) throw new Error(`unknown target ${target}: one of ${TARGETS.join(', ')}`)
  const tc = gnuToolchain(arch)
  let cc = `${tc.prefix}gcc`
  let cxx = `${tc.prefix}g++`
  for (const tool of [cc, cxx]) {
    if (spawnOk('sh', ['-c', `command -v ${tool}`]) === false) throw new Error(`${tool} not found: apt-get install ${arch === 'x64' ? 'g++' : 'g++-aarch64-linux-gnu'} (.ci/run does)`)
  }
  if (libc === 'musl') {
    const { specs } = muslSpecs(arch, tc)
    cc += ` -specs=${specs}`
    cxx += ` -specs=${specs}`
  }
  // A copy of what node-gyp reads; node-addon-api resolves from the
  // checkout's node_modules, two levels up.
  const src = join(cache, `src-${target}`)
  rmSync(src, { recursive: true, force: true })
  mkdirSync(src, { recursive: true })
  for (const f of ['binding.gyp', 'package.json', 'native']) cpSync(join(root, f), join(src, f), { recursive: true })
  console.log(`prebuild ${target}: ${cxx}`)
  const prebuildify = join(root, 'node_modules', 'prebuildify', 'bin.js')
  execFileSync(process.execPath, [prebuildify, '--napi', '--strip', `--arch=${arch}`, '--tag-libc', `--libc=${libc}`, `--strip-bin=${tc.prefix}strip`, `--out=${root}`, src], {
    cwd: src,
    stdio: ['ignore', 'inherit', 'inherit'],
    // JOBS: node-gyp's make -j (all cores unless the caller says otherwise).
    env: { ...process.env, CC: cc, CXX: cxx, LINK: cxx, JOBS: process.env.JOBS || 'max', npm_config_nodedir: process.env.npm_config_nodedir || nodedir() },
  })
  const out = join(root, 'prebuilds', `linux-${arch}`, `bpfkit.${libc}.node`)
  if (!existsSync(out)) throw new Error(`prebuild ${target}: ${out} was not written`)
  return out
}

function spawnOk(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (hostArch() !== 'x64') throw new Error(`prebuilds are cross-built from an x86-64 host; this one is ${hostArch()}`)
  const wanted = process.argv.length > 2 ? process.argv.slice(2) : TARGETS
  // A full run replaces prebuilds/ whole: no stale file from an older layout.
  if (wanted.length === TARGETS.length) rmSync(join(root, 'prebuilds'), { recursive: true, force: true })
  for (const t of wanted) console.log(`wrote ${buildTarget(t)}`)
  console.log(`prebuilds: ${readdirSync(join(root, 'prebuilds')).map((d) => `${d}/{${readdirSync(join(root, 'prebuilds', d)).join(',')}}`).join(' ')}`)
}
