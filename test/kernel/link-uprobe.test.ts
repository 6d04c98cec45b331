// uprobes, uretprobes and uprobe.multi (lib/link/uprobe.ts) on a binary this
// test builds with `cc` (test/fixtures/uprobe/target.c) in a temp dir, and on
// the shared library it links: each target child waits on stdin until the
// test has attached, calls the probed functions N times and exits. The
// programs (test/fixtures/bpf/attach-uprobe.bpf.c) count into `counts`.
// Probes are attached for the test's own children (by pid) or on its own
// binary, and are detached (and gone from the link IDs) before each test ends.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { haveUprobeMulti, haveUprobes, havePerfLink, supportsPerfLink } from '../../lib/features/index.js'
import { asm, BpfProgram, type Collection } from '../../lib/index.js'
import { functionOffset, readBinary } from '../../lib/link/binary-symbols.js'
import type { BpfLink } from '../../lib/link/link.js'
import { attachUprobe, attachUprobeMulti, uprobeSectionTarget } from '../../lib/link/uprobe.js'
import { links } from '../../lib/sys/ids.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec } from './helpers/collection.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const src = resolve(__dirname, '..', 'fixtures', 'uprobe')
const haveCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0
const N = 5
const triangle = (n: number) => (n * (n + 1)) / 2 // sum of uprobe_target_add(i, 1) for i < n

let dir = ''
const target = () => join(dir, 'target')
const lib = () => join(dir, 'libuprobetarget.so')

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-uprobe-'))
  if (!haveCc) return
  execFileSync('cc', ['-O2', '-shared', '-fPIC', `-Wl,--version-script=${join(src, 'lib.map')}`, '-o', lib(), join(src, 'lib.c')])
  execFileSync('cc', ['-O2', '-DWITH_LIB', '-o', target(), join(src, 'target.c'), `-L${dir}`, '-luprobetarget', '-Wl,-rpath,$ORIGIN'])
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Target {
  pid: number
  /** Lets it run; resolves with its output once it exited 0. */
  run(): Promise<string>
}

/** Starts the target (n calls of each function, mode 'lib' also through the library); resolves once it waits on stdin. */
function startTarget(n: number, mode = ''): Promise<Target> {
  const child = spawn(target(), [String(n), mode], { stdio: ['pipe', 'pipe', 'inherit'] })
  let out = ''
  const exited = new Promise<string>((ok, fail) => {
    child.on('error', fail)
    child.on('exit', (code) => (code === 0 ? ok(out) : fail(new Error(`target exited ${code}: ${out}`))))
  })
  return new Promise((ok, fail) => {
    child.on('error', fail)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out === 'ready\n') {
        ok({
          pid: child.pid!,
          run: () => {
            child.stdin.end('go\n')
            return exited
          },
        })
      }
    })
  })
}

async function load(...programs: string[]): Promise<Collection> {
  return await fixtureSpec('attach-uprobe').load({ programs })
}

const count = (coll: Collection, slot: number): bigint => (coll.maps as Record<string, { get(k: number): unknown }>).counts.get(slot) as bigint
const linkIds = () => new Set([...links()].map((l) => l.id))

// Detaches, and checks a kernel link is gone from the IDs.
function detachAndCheck(link: BpfLink): void {
  const id = link.info().id
  link.close()
  if (id !== 0) expect(linkIds().has(id)).toBe(false)
}

describe('attachUprobe', () => {
  skipAllIf(requireFeature(haveUprobes) ?? (haveCc ? undefined : 'needs a C compiler (cc) to build the target binary'))

  test('a uprobe for one pid counts exactly its N calls; another process running the binary is not counted; detached, nothing more', async () => {
    using coll = await load('count_entry')
    const mine = await startTarget(N)
    const other = await startTarget(N + 3)
    const link = attachUprobe(coll.programs.count_entry, { binary: target(), symbol: 'uprobe_target_add', pid: mine.pid })
    const [out] = await Promise.all([mine.run(), other.run()])
    expect(count(coll, 0)).toBe(BigInt(N))
    // No ref_ctr_offset: the semaphore stays 0.
    expect(out).toMatch(/done \d+ 0\n$/)
    detachAndCheck(link)
    const after = await startTarget(N)
    await after.run()
    expect(count(coll, 0)).toBe(BigInt(N))
  })

  test('a uretprobe reads the return value: N returns summing to N(N+1)/2; retprobe from the section', async () => {
    using coll = await load('sum_return')
    const t = await startTarget(N)
    // A collection's program knows its section when it carries one; the option wins over it.
    const prog = { fd: coll.programs.sum_return.fd, section: 'uretprobe' }
    using link = attachUprobe(prog, { binary: target(), symbol: 'uprobe_target_add', pid: t.pid })
    await t.run()
    expect(count(coll, 1)).toBe(BigInt(N))
    expect(count(coll, 2)).toBe(BigInt(triangle(N)))
    detachAndCheck(link)
  })

  test('by file offset, for every process: only the test\'s own binary, so its own children', async () => {
    using coll = await load('count_entry')
    const offset = functionOffset(readBinary(target()), 'uprobe_target_other')
    using link = attachUprobe(coll.programs.count_entry, { binary: target(), offset })
    const a = await startTarget(2)
    const b = await startTarget(3)
    await Promise.all([a.run(), b.run()])
    expect(count(coll, 0)).toBe(5n)
    detachAndCheck(link)
  })

  test('a cookie reaches bpf_get_attach_cookie (perf_event links); without perf links a cookie is refused', async (ctx) => {
    const why = requireFeature(havePerfLink)
    if (why !== undefined) {
      using coll = await load('count_entry')
      const before = fdTable()
      expect(() => attachUprobe(coll.programs.count_entry, { binary: target(), symbol: 'uprobe_target_add', cookie: 7 })).toThrow(expect.objectContaining({ name: 'NotSupportedError', message: expect.stringMatching(/needs Linux 5\.15/) }))
      expect(opened(before, fdTable())).toEqual([])
      ctx.skip(why)
    }
    using coll = await load('cookie_entry')
    const t = await startTarget(N)
    using link = attachUprobe(coll.programs.cookie_entry, { binary: target(), symbol: 'uprobe_target_add', pid: t.pid, cookie: 1000n })
    await t.run()
    expect(count(coll, 3)).toBe(BigInt(N * 1000))
    detachAndCheck(link)
  })

  test('refCtrOffset: the kernel counts the USDT semaphore up in the traced process while attached', async (ctx) => {
    if (spawnSync('readelf', ['--version'], { stdio: 'ignore' }).status !== 0) ctx.skip('needs readelf to find the semaphore')
    // The semaphore is alone in its section: its file offset is the section's.
    const probes = /\.probes\s+PROGBITS\s+[0-9a-f]+\s+([0-9a-f]+)/.exec(execFileSync('readelf', ['-SW', target()], { encoding: 'utf8' }))
    expect(probes).not.toBeNull()
    using coll = await load('count_entry')
    const t = await startTarget(N)
    using link = attachUprobe(coll.programs.count_entry, { binary: target(), symbol: 'uprobe_target_add', pid: t.pid, refCtrOffset: Number.parseInt(probes![1], 16) })
    expect(await t.run()).toMatch(/done \d+ 1\n$/)
    expect(count(coll, 0)).toBe(BigInt(N))
    detachAndCheck(link)
  })

  test('a function of a shared library, by versioned name, the library found through the pid\'s maps', async () => {
    using coll = await load('count_entry')
    const t = await startTarget(N, 'lib')
    using link = attachUprobe(coll.programs.count_entry, { binary: 'libuprobetarget.so', symbol: 'libuprobe_target_mul@@UPROBE_1.0', pid: t.pid })
    await t.run()
    expect(count(coll, 0)).toBe(BigInt(N))
    detachAndCheck(link)
  })

  test('info and bpftool agree: a perf_event link with the program; gone after detach', async (ctx) => {
    using coll = await load('count_entry')
    const link = attachUprobe(coll.programs.count_entry, { binary: target(), symbol: 'uprobe_target_add' })
    const info = link.info()
    expect(info).toMatchObject({ type: 'perf_event', progId: coll.programs.count_entry.id })
    if (!supportsPerfLink()) {
      expect(info.id).toBe(0)
      link.close()
      return
    }
    expect(info.id).toBeGreaterThan(0)
    // Linux 6.6+ describe the probe: the file and the offset in it.
    if (info.perfEvent !== undefined && info.perfEvent.kind !== 'unspec') {
      expect(info.perfEvent).toMatchObject({ kind: 'uprobe', name: target(), offset: functionOffset(readBinary(target()), 'uprobe_target_add') })
    }
    expect(linkIds().has(info.id)).toBe(true)
    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, type: 'perf_event', prog_id: info.progId })
    // bpftool 7.3+ on 6.6+ kernels also shows the probe itself.
    if ('file' in shown) expect(shown).toMatchObject({ file: target(), offset: functionOffset(readBinary(target()), 'uprobe_target_add'), retprobe: false })
    detachAndCheck(link)
  })

  test('bad input leaves nothing attached or open: missing file, missing symbol, not an ELF, past the end, closed or wrong program, no such pid', async () => {
    using coll = await load('count_entry')
    const prog = coll.programs.count_entry
    using filter = await BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })
    const fds = fdTable()
    const ids = linkIds()
    expect(() => attachUprobe(prog, { binary: join(dir, 'missing'), symbol: 'x' })).toThrow(new RegExp(`cannot open binary ${dir}/missing: ENOENT`))
    expect(() => attachUprobe(prog, { binary: target(), symbol: 'no_such_function' })).toThrow(/target: function symbol 'no_such_function' not found/)
    expect(() => attachUprobe(prog, { binary: join(src, 'target.c'), symbol: 'main' })).toThrow(/target\.c: not an ELF file/)
    expect(() => attachUprobe(prog, { binary: dir, symbol: 'main' })).toThrow(/is not a regular file/)
    expect(() => attachUprobe(prog, { binary: target(), offset: 1 << 30 })).toThrow(RangeError)
    expect(() => attachUprobe(filter, { binary: target(), symbol: 'main' })).toThrow(/is a socket_filter program; this hook runs kprobe programs/)
    expect(() => attachUprobe(prog, { binary: target(), symbol: 'main', pid: 0x7ffffff0 })).toThrow(expect.objectContaining({ syscall: 'perf_event_open', code: 'ESRCH' }))
    expect(() => attachUprobe(prog, { binary: target() })).toThrow(/give a symbol or an offset/)
    expect(() => attachUprobe(prog, { binary: target(), symbol: 'main', pid: -1 })).toThrow(TypeError)
    expect(() => attachUprobe(prog, { binary: target(), symbol: 'main', nope: 1 } as never)).toThrow(/unknown option 'nope'/)
    expect(() => attachUprobe(prog, undefined as never)).toThrow(TypeError)
    expect(() => attachUprobe(null as never, { binary: target(), symbol: 'main' })).toThrow(TypeError)
    filter.close()
    expect(() => attachUprobe(filter, { binary: target(), symbol: 'main' })).toThrow(/closed/)
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((id) => !ids.has(id))).toEqual([])
  })
})

describe('attachUprobeMulti', () => {
  skipAllIf(requireFeature(haveUprobeMulti) ?? (haveCc ? undefined : 'needs a C compiler (cc) to build the target binary'))

  test('two symbols, one link, a cookie each, for one pid; info and bpftool; gone after detach', async (ctx) => {
    using coll = await load('count_multi')
    const mine = await startTarget(N)
    const other = await startTarget(N + 2)
    const link = attachUprobeMulti(coll.programs.count_multi, { binary: target(), symbols: ['uprobe_target_add', 'uprobe_target_other'], cookies: [1, 2], pid: mine.pid })
    await Promise.all([mine.run(), other.run()])
    expect([count(coll, 4), count(coll, 5), count(coll, 6)]).toEqual([0n, BigInt(N), BigInt(N)])
    const info = link.info()
    expect(info).toMatchObject({ type: 'uprobe_multi', progId: coll.programs.count_multi.id })
    // Linux 6.8+ describe the link: file and offsets (and the pid while that
    // process lives: it has exited by now, so the kernel says 0).
    if (info.uprobeMulti !== undefined && info.uprobeMulti.count > 0) {
      const image = readBinary(target())
      expect(info.uprobeMulti).toMatchObject({ path: target(), count: 2 })
      expect([...info.uprobeMulti.offsets].sort()).toEqual([functionOffset(image, 'uprobe_target_add'), functionOffset(image, 'uprobe_target_other')].map(BigInt).sort())
    }
    expect(linkIds().has(info.id)).toBe(true)
    const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
    expect(shown).toMatchObject({ id: info.id, prog_id: info.progId })
    detachAndCheck(link)
  })

  test('on return, by offsets: the return values of every call', async () => {
    using coll = await load('multi_return')
    const t = await startTarget(N)
    const offset = functionOffset(readBinary(target()), 'uprobe_target_add')
    using link = attachUprobeMulti(coll.programs.multi_return, { binary: target(), offsets: [offset], retprobe: true, pid: t.pid })
    await t.run()
    expect([count(coll, 1), count(coll, 2)]).toEqual([BigInt(N), BigInt(triangle(N))])
    detachAndCheck(link)
  })

  test('by glob pattern: every matching function once (add and other N times, the weak and static ones once)', async () => {
    using coll = await load('count_multi')
    const t = await startTarget(N)
    using link = attachUprobeMulti(coll.programs.count_multi, { binary: target(), pattern: 'uprobe_target_*', pid: t.pid })
    await t.run()
    // No cookies: every hit counts in slot 4.
    expect(count(coll, 4)).toBe(BigInt(2 * N + 2))
    detachAndCheck(link)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary: target(), pattern: 'nothing_like_this*' })).toThrow(/no function matches 'nothing_like_this\*'/)
  })

  test('bad input: a plain uprobe program, cookies not parallel, neither or both lists, a missing symbol; nothing left', async () => {
    using coll = await load('count_entry', 'count_multi')
    const fds = fdTable()
    const ids = linkIds()
    const binary = target()
    expect(() => attachUprobeMulti(coll.programs.count_entry, { binary, symbols: ['main'] })).toThrow(/load the program for uprobe\.multi/)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary, symbols: ['main'], cookies: [1, 2] })).toThrow(RangeError)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary })).toThrow(/exactly one of symbols, offsets and pattern/)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary, symbols: ['main'], offsets: [1] })).toThrow(/exactly one/)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary, symbols: [] })).toThrow(/non-empty array/)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary, symbols: ['main', 'nope_nope'] })).toThrow(/'nope_nope' not found/)
    expect(() => attachUprobeMulti(coll.programs.count_multi, { binary, symbols: ['main'], pid: 0x7ffffff0 })).toThrow(expect.objectContaining({ code: 'ESRCH' }))
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((id) => !ids.has(id))).toEqual([])
  })
})

describe('uprobeSectionTarget: libbpf\'s section names', () => {
  test('kinds, targets, offsets, patterns; bad targets are TypeErrors, other sections undefined', () => {
    expect(uprobeSectionTarget('uprobe')).toEqual({ multi: false, retprobe: false, sleepable: false })
    expect(uprobeSectionTarget('?uretprobe.s')).toEqual({ multi: false, retprobe: true, sleepable: true })
    expect(uprobeSectionTarget('uprobe//usr/bin/bash:readline')).toMatchObject({ binary: '/usr/bin/bash', symbol: 'readline' })
    expect(uprobeSectionTarget('uretprobe/libc.so.6:malloc+0x10')).toMatchObject({ retprobe: true, binary: 'libc.so.6', symbol: 'malloc', offset: 16 })
    expect(uprobeSectionTarget('uprobe/bin:func10')).toMatchObject({ symbol: 'func10' })
    expect(uprobeSectionTarget('uprobe/bin:0x1234')).toEqual({ multi: false, retprobe: false, sleepable: false, binary: 'bin', offset: 0x1234 })
    expect(uprobeSectionTarget('uprobe/bin:memcpy@@GLIBC_2.14')).toMatchObject({ symbol: 'memcpy@@GLIBC_2.14' })
    expect(uprobeSectionTarget('uretprobe.multi.s//lib/x.so:x_*')).toMatchObject({ multi: true, retprobe: true, sleepable: true, binary: '/lib/x.so', pattern: 'x_*' })
    expect(uprobeSectionTarget('kprobe/do_sys_open')).toBeUndefined()
    expect(uprobeSectionTarget('uprobes')).toBeUndefined()
    expect(() => uprobeSectionTarget('uprobe/no-colon')).toThrow(/BINARY:FUNCTION/)
    expect(() => uprobeSectionTarget('uprobe/bin:f+x')).toThrow(TypeError)
  })
})
