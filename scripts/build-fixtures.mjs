#!/usr/bin/env node
// npm run build:fixtures [-- [--check] [DIR]]: compiles every DIR/*.bpf.c (default
// test/fixtures/bpf) into the .bpf.o beside it with Debian's clang, and writes
// DIR/manifest.json, which test/unit/fixtures-fresh.test.ts checks without a
// compiler: per object the sha256 of its source, of each header it includes
// from DIR, and of the object, and the clang that built it.
//
// Objects are reproducible: clang runs in DIR on the bare file name, and
// -fdebug-prefix-map rewrites DIR (DWARF comp_dir, the file names in .BTF line
// info) to '.', so the bytes do not depend on where the checkout lives. It must
// be '.': clang reads each source line into .BTF line info through the mapped
// path, and any other prefix leaves the lines (shown in verifier logs) empty. Each object is built twice and the two compared, so a flag or
// clang that breaks this fails here, not later as a "stale" fixture elsewhere.
//
// --check writes nothing: it rebuilds every object and fails, naming them, when
// the checked-in objects are not what this clang makes from the sources (to
// prove on another machine that the fixtures are reproducible).
//
// clang: $BPF_CLANG, else clang-19 (what Debian 12 ships and the objects were
// made with), else clang. The multiarch include dir (asm/types.h for
// <linux/bpf.h>) is asked of gcc or dpkg-architecture, not assumed.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...options })
  if (r.error) return { ok: false, missing: r.error.code === 'ENOENT', out: '', err: String(r.error.message) }
  return { ok: r.status === 0, missing: false, out: r.stdout, err: r.stderr }
}

function findClang() {
  const candidates = process.env.BPF_CLANG ? [process.env.BPF_CLANG] : ['clang-19', 'clang']
  for (const c of candidates) {
    const r = run(c, ['--version'])
    if (r.ok) return { clang: c, version: r.out.split('\n')[0].trim() }
    if (!r.missing) throw new Error(`${c} --version failed: ${r.err.trim()}`)
  }
  throw new Error(`no clang found (tried ${candidates.join(', ')}); install clang-19 or set BPF_CLANG`)
}

function multiarch() {
  for (const [cmd, args] of [['gcc', ['-print-multiarch']], ['dpkg-architecture', ['-qDEB_HOST_MULTIARCH']]]) {
    const r = run(cmd, args)
    const v = r.ok ? r.out.trim() : ''
    if (v) return v
  }
  throw new Error('cannot tell the multiarch include dir: neither `gcc -print-multiarch` nor `dpkg-architecture` answered')
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

/** Compiler flags, the same for every object (recorded in the manifest). */
function flagsFor(dir) {
  return ['-target', 'bpf', `-I/usr/include/${multiarch()}`, '-g', '-O2', `-fdebug-prefix-map=${dir}=.`]
}

/** Headers from `dir` that `source` includes (directly or not), by file name, from clang's own dependency list. */
function localHeaders(clang, flags, dir, source) {
  const r = run(clang, [...flags, '-M', '-MF', '-', source], { cwd: dir })
  if (!r.ok) throw new Error(`${source}: clang -M failed:\n${r.err}`)
  const deps = r.out.replace(/\\\n/g, ' ').split(':').slice(1).join(':').trim().split(/\s+/).filter(Boolean)
  return deps
    .map((d) => resolve(dir, d))
    .filter((d) => dirname(d) === dir && !d.endsWith('.bpf.c'))
    .map((d) => basename(d))
    .sort()
}

function compile(clang, flags, dir, source, out) {
  const r = run(clang, [...flags, '-c', source, '-o', out], { cwd: dir })
  if (!r.ok) throw new Error(`${source}: clang failed:\n${r.err}`)
}

/** Keys sorted at every level, two-space indent, final newline: one byte sequence per content. */
function stableJson(value) {
  const sortKeys = (v) => Array.isArray(v) ? v.map(sortKeys)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]))
      : v
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`
}

export function buildFixtures(dir = join(root, 'test/fixtures/bpf'), { check = false } = {}) {
  dir = resolve(dir)
  const differ = []
  const { clang, version } = findClang()
  const flags = flagsFor(dir)
  const scratch = mkdtempSync(join(tmpdir(), 'bpfkit-fixtures-'))
  const objects = {}
  try {
    for (const source of readdirSync(dir).filter((n) => n.endsWith('.bpf.c')).sort()) {
      const object = source.replace(/\.c$/, '.o')
      const first = join(scratch, `${object}.1`)
      const second = join(scratch, `${object}.2`)
      compile(clang, flags, dir, source, first)
      compile(clang, flags, dir, source, second)
      const bytes = readFileSync(first)
      if (!bytes.equals(readFileSync(second))) {
        throw new Error(`${source}: two builds gave different bytes; the object would not be reproducible`)
      }
      if (check) {
        const current = join(dir, object)
        const same = existsSync(current) && bytes.equals(readFileSync(current))
        if (!same) differ.push(object)
        console.log(`${relative(root, current)}  ${same ? 'reproduced' : 'DIFFERS'}`)
        continue
      }
      const headers = Object.fromEntries(localHeaders(clang, flags, dir, source).map((h) => [h, sha256(readFileSync(join(dir, h)))]))
      // The scratch dir may be another file system: write beside the target, then rename, so a reader never sees half an object.
      const tmp = join(dir, `.${object}.tmp`)
      writeFileSync(tmp, bytes)
      renameSync(tmp, join(dir, object))
      objects[object] = { clang: version, headers, objectSha256: sha256(bytes), source, sourceSha256: sha256(readFileSync(join(dir, source))) }
      console.log(`${relative(root, join(dir, object))}  ${objects[object].objectSha256.slice(0, 16)}`)
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
  if (check) {
    if (differ.length) throw new Error(`${differ.join(', ')}: not what ${version} makes from the sources; run npm run build:fixtures`)
    return undefined
  }
  const manifest = {
    comment: 'Generated by `npm run build:fixtures` (scripts/build-fixtures.mjs); checked by test/unit/fixtures-fresh.test.ts. Do not edit.',
    // The prefix map's left side is this checkout's path: recorded as <dir> so the manifest does not depend on it.
    flags: flags.map((f) => f.replace(`=${dir}=`, '=<dir>=')),
    objects,
  }
  writeFileSync(join(dir, 'manifest.json'), stableJson(manifest))
  return manifest
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const args = process.argv.slice(2)
    const check = args.includes('--check')
    const dirs = args.filter((a) => a !== '--check')
    if (dirs.length > 1 || dirs.some((a) => a.startsWith('-'))) throw new Error(`usage: build-fixtures.mjs [--check] [DIR], got ${args.join(' ')}`)
    buildFixtures(dirs[0], { check })
  } catch (e) {
    console.error(`build-fixtures: ${e.message}`)
    process.exit(1)
  }
}
