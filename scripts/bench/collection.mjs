// The collection loader against libbpf (issue 17): open + load of a
// clang-built object with 20 programs, 10 maps and globals, and the cost of
// 1,000 CO-RE relocations (open + load of the object that has them, less
// open + load of its twin without), each by a C program linked with
// Debian's libbpf (collection-baseline.c) and by bpfkit's CollectionSpec,
// in turns, from the same object bytes.
//
// Needs clang (clang-19) and libbpf-dev at bench time:
//   sudo apt install clang-19 libbpf-dev
// Without them the rows are shown as skipped, with what is missing.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CollectionSpec } from '../../dist/index.mjs'
import { buildObjects, findClang } from './collection-objects.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const ROWS = {
  many: 'collection open + load (20 progs, 10 maps, globals)',
  core: 'collection open + load, 1,000 CO-RE relocations',
  relocate: 'collection CO-RE: 1,000 relocations (with − without)',
}
// Loads per block: the CO-RE object takes libbpf a large part of a second.
const ITERS = { many: 10, core: 1, plain: 1 }

/** What the rows need and this machine lacks, or undefined. */
function missing() {
  const lacks = []
  if (!findClang()) lacks.push('clang (clang-19)')
  if (!existsSync('/usr/include/bpf/libbpf.h')) lacks.push('libbpf-dev (/usr/include/bpf/libbpf.h)')
  if (!existsSync('/sys/kernel/btf/vmlinux')) lacks.push('kernel BTF (/sys/kernel/btf/vmlinux)')
  return lacks.length ? `needs ${lacks.join(' and ')}: sudo apt install clang-19 libbpf-dev` : undefined
}

/**
 * Adds the collection rows. `bench` is index.mjs's toolkit: want,
 * measureAsync, row, goal, skipped, note, work, settle (the pause between
 * blocks of program loads).
 */
export async function collectionRows(bench) {
  const { want, measureAsync, row, goal, skipped, note, work, settle } = bench
  const names = Object.values(ROWS).filter(want)
  if (!names.length) return
  const lacks = missing()
  if (lacks) {
    for (const name of names) skipped(name, 'ms', lacks)
    note(`collection rows: ${lacks}`)
    return
  }
  const dir = join(work, 'collection')
  mkdirSync(dir, { recursive: true })
  const exe = join(dir, 'collection-baseline')
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', exe, join(here, 'collection-baseline.c'), '-lbpf'], { encoding: 'utf8' })
  if (cc.status !== 0) throw new Error(`bench: compiling collection-baseline.c failed:\n${cc.stderr}`)
  const clang = findClang()
  const objects = buildObjects(clang.clang, dir)

  // One block: `n` open + load + close in a fresh C process (after one warm-up), ns each.
  const c = (obj, n) => () => {
    const r = spawnSync(exe, [obj.file, String(n), '1'], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`collection-baseline ${obj.file} failed (${r.status}): ${r.stderr}`)
    return Number(r.stdout.trim())
  }
  const b = (obj, n) => async () => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) (await CollectionSpec.fromBuffer(obj.bytes).load()).close()
    return Number(process.hrtime.bigint() - t0) / n
  }
  const ms = (xs) => xs.map((x) => x / 1e6)

  if (want(ROWS.many)) {
    const v = await measureAsync({ c: c(objects.many, ITERS.many), b: b(objects.many, ITERS.many) }, { settle })
    goal(row(ROWS.many, 'ms', ms(v.c), ms(v.b), null), 'c', 1.2)
  }
  if (want(ROWS.core) || want(ROWS.relocate)) {
    const v = await measureAsync({
      cCore: c(objects.core, ITERS.core), cPlain: c(objects.plain, ITERS.plain),
      bCore: b(objects.core, ITERS.core), bPlain: b(objects.plain, ITERS.plain),
    }, { settle })
    // Per round: the object with relocations less its twin, measured in the same round.
    const less = (xs, ys) => xs.map((x, i) => x - ys[i])
    if (want(ROWS.core)) row(ROWS.core, 'ms', ms(v.cCore), ms(v.bCore), null)
    if (want(ROWS.relocate)) goal(row(ROWS.relocate, 'ms', ms(less(v.cCore, v.cPlain)), ms(less(v.bCore, v.bPlain)), null), 'c', 1.2)
  }
  note(`collection rows: objects built with ${clang.version}; libbpf from libbpf-dev; libbpf reads this kernel's vmlinux BTF on every load that has CO-RE relocations, bpfkit once per process`)
}
