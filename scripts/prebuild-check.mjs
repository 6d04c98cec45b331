// What can be checked of a prebuild without running it on its platform:
// its ELF header (machine, 64-bit little-endian), the libraries it asks for
// (glibc's libc.so.6, or musl's libc.musl-<arch>.so.1 as Alpine names it,
// never both), the glibc symbol versions it needs, and for musl that every
// C library symbol it uses is one musl's libc.so defines (a glibc-only
// symbol would fail at load on Alpine, where no Node of ours can run here).
import { execFileSync } from 'node:child_process'
import { ARCHES, muslSysroot } from './prebuild-musl.mjs'

// Newest glibc symbol version the glibc prebuilds may need (README,
// Requirements): 2.33, where stat() and friends became real symbols; Debian
// 12, Ubuntu 21.04, RHEL 9 and newer. Raising it is a README change.
export const GLIBC_MAX = '2.33'
const MACHINE = { x64: 'Advanced Micro Devices X86-64', arm64: 'AArch64' }

const readelf = (args) => execFileSync('readelf', ['-W', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
const versionCmp = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number))
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0)
  return 0
}

/** The undefined dynamic symbols of `file`: [{ name, version, weak }]. */
function undefinedSymbols(file) {
  const out = []
  for (const line of readelf(['--dyn-syms', file]).split('\n')) {
    const f = line.trim().split(/\s+/)
    // Num: Value Size Type Bind Vis Ndx Name
    if (f.length < 8 || f[6] !== 'UND' || !f[7]) continue
    const [name, version] = f[7].split('@')
    out.push({ name, version, weak: f[4] === 'WEAK' })
  }
  return out
}

/** Symbols musl's libc.so defines for `arch`. */
function muslDefines(cacheDir, arch) {
  const { lib } = muslSysroot(cacheDir, arch)
  const names = new Set()
  for (const line of readelf(['--dyn-syms', `${lib}/libc.so`]).split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length >= 8 && f[6] !== 'UND') names.add(f[7].split('@')[0])
  }
  return names
}

/**
 * Checks the prebuild `file` for `arch` (x64, arm64) and `libc` (glibc,
 * musl); throws naming what is wrong. Returns a one-line summary.
 */
export function checkPrebuild(file, arch, libc, cacheDir) {
  const header = readelf(['-h', file])
  const field = (k) => header.match(new RegExp(`^\\s*${k}:\\s*(.*)$`, 'm'))?.[1].trim()
  const problems = []
  if (field('Machine') !== MACHINE[arch]) problems.push(`machine is ${field('Machine')}, not ${MACHINE[arch]}`)
  if (field('Class') !== 'ELF64' || !field('Data')?.includes('little endian')) problems.push(`${field('Class')} ${field('Data')}: not 64-bit little-endian`)
  if (field('Type')?.split(' ')[0] !== 'DYN') problems.push(`type ${field('Type')}: not a shared object`)
  const needed = [...readelf(['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1])
  const syms = undefinedSymbols(file)
  const glibcVersions = [...new Set(syms.map((s) => s.version).filter((v) => v?.startsWith('GLIBC_')).map((v) => v.slice(6)))].sort(versionCmp)
  const muslLibc = `libc.musl-${ARCHES[arch].musl.split('-')[0]}.so.1`
  let summary
  if (libc === 'glibc') {
    if (!needed.includes('libc.so.6') || needed.includes(muslLibc)) problems.push(`NEEDED ${needed.join(', ')}: expected libc.so.6 and no musl`)
    const max = glibcVersions.at(-1) ?? '(none)'
    if (glibcVersions.length && versionCmp(max, GLIBC_MAX) > 0) problems.push(`needs GLIBC_${max}, newer than the ${GLIBC_MAX} the README promises`)
    summary = `glibc >= ${max}`
  } else {
    const glibcOnly = needed.filter((n) => /^lib(c|m|pthread|dl|rt)\.so\.\d/.test(n))
    if (!needed.includes(muslLibc) || glibcOnly.length) problems.push(`NEEDED ${needed.join(', ')}: expected ${muslLibc} and no glibc library`)
    if (glibcVersions.length) problems.push(`asks for glibc symbol versions ${glibcVersions.join(', ')}`)
    // Unversioned and not Node's (napi_*, uv_*): the C library's to resolve.
    const musl = muslDefines(cacheDir, arch)
    const fromLibc = syms.filter((s) => !s.version && !s.weak && !/^(napi_|node_api_|uv_)/.test(s.name))
    const missing = fromLibc.filter((s) => !musl.has(s.name)).map((s) => s.name)
    if (missing.length) problems.push(`uses symbols musl does not define: ${missing.join(', ')}`)
    // libstdc++'s locale ABI differs between glibc and musl builds of it.
    const glibcAbi = syms.filter((s) => s.name.includes('__locale_struct')).map((s) => s.name)
    if (glibcAbi.length) problems.push(`uses libstdc++'s glibc locale ABI: ${glibcAbi.join(', ')}`)
    summary = `${fromLibc.length} C library symbols, all in musl ${muslSysroot(cacheDir, arch).version}`
  }
  if (problems.length) throw new Error(`${file}:\n  ${problems.join('\n  ')}`)
  return `${arch} ${libc}: ${MACHINE[arch]}, NEEDED ${needed.join(' ')}; ${summary}`
}
