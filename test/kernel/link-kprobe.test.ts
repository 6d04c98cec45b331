// kprobes, kretprobes, kprobe.multi and ksyscall on kernel functions the
// test calls itself (opening a file, getppid), each program counting only
// the test's own process. This host's kernel has no kprobes (CONFIG_KPROBES
// off): those tests skip with the probe's reason and run in the VMs. Names
// (syscall functions, patterns) are resolved here too.
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { features, NotSupportedError } from '../../lib/index.js'
import { attachKprobe, attachKprobeMulti, attachKsyscall, matchKernelFunctions, syscallFunction } from '../../lib/link/kprobe.js'
import { findTracefs } from '../../lib/link/tracefs.js'
import { readKallsyms } from '../../lib/sys/kallsyms.js'
import { bpftool } from './helpers/bpftool.js'
import { expectPerfLinkLifecycle, linkIds, loadTraceFixture, traceCount } from './helpers/perf-link.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf, skipUnless } from './helpers/requires.js'

// Slots of `counts` in attach-trace.bpf.c.
const KPROBE = 0
const KRETPROBE = 1
const KPROBE_MULTI = 2
const KRETPROBE_MULTI = 3
const KSYSCALL = 4
const KPROBE_COOKIE = 7

const kernelNames = new Set(readKallsyms().filter((s) => s.module === undefined).map((s) => s.name))
// What opening a file runs on every kernel of the matrix (do_sys_openat2 since 5.6).
const target = ['do_sys_openat2', 'do_sys_open', 'do_filp_open'].find((n) => kernelNames.has(n)) ?? 'do_sys_openat2'

const load = loadTraceFixture
const count = traceCount

function openTimes(n: number): void {
  for (let i = 0; i < n; i++) closeSync(openSync(__filename, 'r'))
}

function getppidTimes(n: number): void {
  for (let i = 0; i < n; i++) void process.ppid
}

/** This process's lines in tracefs kprobe_events. */
function ourProbeEvents(): string[] {
  const tracefs = findTracefs()
  if (tracefs === undefined || !existsSync(join(tracefs, 'kprobe_events'))) return []
  return readFileSync(join(tracefs, 'kprobe_events'), 'utf8').split('\n').filter((l) => l.includes(`bpfkit/bpfkit_${process.pid}_`))
}

describe('kernel function names', () => {
  test('a syscall\'s entry function is the arch-prefixed wrapper where the kernel has one', () => {
    const fn = syscallFunction('getppid')
    expect(kernelNames.has(fn)).toBe(true)
    expect(fn).toMatch(/^(__[a-z0-9]+_)?sys_getppid$/)
    expect(() => syscallFunction('no_such_call')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no syscall 'no_such_call'/) }))
    expect(() => syscallFunction('Get PPID')).toThrow(TypeError)
  })

  test('a pattern matches traceable functions, sorted, once each', () => {
    const matches = matchKernelFunctions(`${target.slice(0, -1)}*`)
    expect(matches).toContain(target)
    expect(matches).toEqual([...new Set(matches)].sort())
    expect(matchKernelFunctions('bpfkit_no_such_function_*')).toEqual([])
    expect(() => matchKernelFunctions('a b')).toThrow(TypeError)
    expect(() => matchKernelFunctions('')).toThrow(TypeError)
  })

  test('without kprobes, the probe names the build option, and attach says it', async (ctx) => {
    const why = requireFeature(features.haveKprobes)
    if (why === undefined) ctx.skip('this kernel has kprobes')
    expect(why).toMatch(/CONFIG_KPROBES/)
    using coll = await load(['on_open'])
    expect(() => attachKprobe(coll.programs.on_open, target)).toThrow(NotSupportedError)
  })
})

describe('attachKprobe', () => {
  skipAllIf(requireFeature(features.haveKprobes))

  test('a kprobe counts the test\'s own opens until closed; info, bpftool and ids agree', async (ctx) => {
    using coll = await load(['on_open'])
    const prog = coll.programs.on_open
    expectPerfLinkLifecycle(ctx, {
      link: attachKprobe(prog, target), prog, fire: openTimes, count: () => count(coll, KPROBE), times: 10, event: { kind: 'kprobe', name: target },
    })
  })

  test('a kretprobe, asked for or named by the program\'s section', async () => {
    using coll = await load(['on_open_return'])
    const prog = coll.programs.on_open_return
    {
      using link = attachKprobe(prog, target, { retprobe: true })
      openTimes(5)
      expect(count(coll, KRETPROBE)).toBeGreaterThanOrEqual(5n)
      expect(link.closed).toBe(false)
    }
    // A program that says where it came from: the section decides.
    const fromSection = { fd: prog.fd, type: 'kprobe', section: 'kretprobe/do_sys_openat2' }
    const before = count(coll, KRETPROBE)
    using link = attachKprobe(fromSection, target, { legacy: true })
    expect(ourProbeEvents()).toEqual([expect.stringMatching(new RegExp(`^r\\d*:bpfkit/bpfkit_${process.pid}_\\d+ ${target}`))])
    openTimes(5)
    expect(count(coll, KRETPROBE) - before).toBeGreaterThanOrEqual(5n)
    link.close()
    expect(ourProbeEvents()).toEqual([])
  })

  test('the legacy path: an event in tracefs kprobe_events while attached, removed on close', async () => {
    using coll = await load(['on_open'])
    const link = attachKprobe(coll.programs.on_open, target, { legacy: true })
    try {
      expect(ourProbeEvents()).toEqual([expect.stringMatching(new RegExp(`^p:bpfkit/bpfkit_${process.pid}_\\d+ ${target}`))])
      openTimes(10)
      expect(count(coll, KPROBE)).toBeGreaterThanOrEqual(10n)
      if (link.kind === 'link') expect(link.info()).toMatchObject({ type: 'perf_event', progId: coll.programs.on_open.id })
    } finally {
      link.close()
    }
    expect(ourProbeEvents()).toEqual([])
  })

  test('the cookie reaches bpf_get_attach_cookie (NotSupportedError before 5.15)', async (ctx) => {
    if (!features.supportsBpfCookie()) {
      using coll = await load(['on_open'])
      const fds = fdTable()
      expect(() => attachKprobe(coll.programs.on_open, target, { cookie: 1 })).toThrow(NotSupportedError)
      expect(opened(fds, fdTable())).toEqual([])
    }
    skipUnless(ctx, features.haveBpfCookie)
    using coll = await load(['on_open_cookie'])
    const cookie = 0xfeed_f00d_0000_0001n
    using link = attachKprobe(coll.programs.on_open_cookie, target, { cookie })
    openTimes(1)
    expect(count(coll, KPROBE_COOKIE)).toBe(cookie)
    expect(link.kind).toBe('link')
  })

  test('ksyscall: the syscall\'s entry function under this architecture\'s name', async () => {
    using coll = await load(['on_getppid'])
    {
      using link = attachKsyscall(coll.programs.on_getppid, 'getppid')
      getppidTimes(10)
      expect(count(coll, KSYSCALL)).toBeGreaterThanOrEqual(10n)
      expect(link.closed).toBe(false)
    }
    const before = count(coll, KSYSCALL)
    getppidTimes(10)
    expect(count(coll, KSYSCALL)).toBe(before)
  })

  test('bad input leaves nothing attached or open', async () => {
    using coll = await load(['on_open', 'on_enter_getppid'])
    const prog = coll.programs.on_open
    const fds = fdTable()
    const links = linkIds()
    for (const legacy of [false, true]) {
      expect(() => attachKprobe(prog, 'bpfkit_no_such_function', { legacy })).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/cannot probe kernel function 'bpfkit_no_such_function'/) }))
    }
    expect(() => attachKsyscall(prog, 'no_such_call')).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => attachKprobe(coll.programs.on_enter_getppid, target)).toThrow(/is a tracepoint program; this hook runs kprobe programs/)
    expect(() => attachKprobe(prog, `${target} x`)).toThrow(TypeError)
    expect(() => attachKprobe(prog, target, { retprobe: true, offset: 4 })).toThrow(/takes no offset/)
    expect(() => attachKprobe(prog, target, { offset: -1 })).toThrow(TypeError)
    expect(() => attachKprobe(prog, target, { pid: 1 } as never)).toThrow(/unknown option 'pid'/)
    expect(() => attachKsyscall(prog, 'getppid', { offset: 1 } as never)).toThrow(/unknown option 'offset'/)
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((l) => !links.has(l))).toEqual([])
    expect(ourProbeEvents()).toEqual([])
    prog.close()
    expect(() => attachKprobe(prog, target)).toThrow(/already closed/)
    expect(opened(fds, fdTable())).toEqual([])
  })
})

describe('attachKprobeMulti', () => {
  skipAllIf(requireFeature(features.haveKprobeMulti))

  test('by a list: counts the test\'s own opens; info, bpftool and ids agree; gone once closed', async (ctx) => {
    using coll = await load(['on_open_multi'])
    const prog = coll.programs.on_open_multi
    const link = attachKprobeMulti(prog, { symbols: [target] })
    let id = 0
    try {
      openTimes(10)
      expect(count(coll, KPROBE_MULTI)).toBeGreaterThanOrEqual(10n)
      const info = link.info()
      id = info.id
      expect(info).toMatchObject({ type: 'kprobe_multi', progId: prog.id })
      expect(linkIds().has(id)).toBe(true)
      const shown = bpftool(ctx).json('link', 'show', 'id', String(id))
      expect(shown).toMatchObject({ id, prog_id: prog.id })
      if (typeof shown.type === 'string') expect(shown.type).toBe('kprobe_multi')
    } finally {
      link.close()
    }
    expect(linkIds().has(id)).toBe(false)
    const before = count(coll, KPROBE_MULTI)
    openTimes(10)
    expect(count(coll, KPROBE_MULTI)).toBe(before)
  })

  test('by a pattern, and on return', async () => {
    using coll = await load(['on_open_multi', 'on_open_multi_return'])
    {
      using link = attachKprobeMulti(coll.programs.on_open_multi, { pattern: `${target.slice(0, -1)}*` })
      openTimes(10)
      expect(count(coll, KPROBE_MULTI)).toBeGreaterThanOrEqual(10n)
      expect(link.info().type).toBe('kprobe_multi')
    }
    using ret = attachKprobeMulti(coll.programs.on_open_multi_return, { symbols: [target], retprobe: true })
    openTimes(10)
    expect(count(coll, KRETPROBE_MULTI)).toBeGreaterThanOrEqual(10n)
    expect(ret.closed).toBe(false)
  })

  test('bad input leaves nothing attached or open', async () => {
    using coll = await load(['on_open_multi', 'on_open'])
    const prog = coll.programs.on_open_multi
    const fds = fdTable()
    const links = linkIds()
    expect(() => attachKprobeMulti(prog, { symbols: [target, 'bpfkit_no_such_function'] })).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no kernel function 'bpfkit_no_such_function'/) }))
    expect(() => attachKprobeMulti(prog, { pattern: 'bpfkit_no_such_*' })).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no kernel function matches/) }))
    // A kprobe program not loaded for kprobe.multi.
    expect(() => attachKprobeMulti(coll.programs.on_open, { symbols: [target] })).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/kprobe\.multi/) }))
    expect(() => attachKprobeMulti(prog, { symbols: [target], cookies: [1, 2] })).toThrow(RangeError)
    expect(() => attachKprobeMulti(prog, { symbols: [target], pattern: target })).toThrow(/exactly one of symbols, pattern and addresses/)
    expect(() => attachKprobeMulti(prog, {})).toThrow(/exactly one of/)
    expect(() => attachKprobeMulti(prog, { symbols: [] })).toThrow(TypeError)
    expect(() => attachKprobeMulti(prog, { addresses: [-1] })).toThrow(TypeError)
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((l) => !links.has(l))).toEqual([])
    prog.close()
    expect(() => attachKprobeMulti(prog, { symbols: [target] })).toThrow(/already closed/)
  })
})
