// Tracepoint programs on tracepoints the test fires itself (getppid, fork),
// counting only the test's own process. Where tracefs is not mounted (this
// host) the tracepoint's id comes from a child that mounts tracefs in its own
// private mount namespace; the host's mounts are never touched.
import { execFileSync, spawnSync } from 'node:child_process'
import { describe, expect, test } from 'vitest'
import { features, NotSupportedError } from '../../lib/index.js'
import { attachTracepoint } from '../../lib/link/tracepoint.js'
import { findTracefs, tracepointId } from '../../lib/link/tracefs.js'
import { expectPerfLinkLifecycle, linkIds, loadTraceFixture, traceCount } from './helpers/perf-link.js'
import { fdTable, opened } from './helpers/fds.js'
import { skipAllIf, requireFeature, skipUnless } from './helpers/requires.js'

// Slots of `counts` in attach-trace.bpf.c.
const TRACEPOINT = 5
const TRACEPOINT_COOKIE = 8

const tracefs = findTracefs()

/** { id } read in a private mount namespace when tracefs is not mounted here; {} when the library can read it. */
function idOption(category: string, name: string): { id?: number } {
  if (tracefs !== undefined) return {}
  const out = execFileSync('unshare', ['-m', 'sh', '-c', 'mount -t tracefs nodev /sys/kernel/tracing && cat "/sys/kernel/tracing/events/$0/$1/id"', category, name], { encoding: 'utf8' })
  return { id: Number(out.trim()) }
}

const load = loadTraceFixture
const count = traceCount

function getppidTimes(n: number): void {
  for (let i = 0; i < n; i++) void process.ppid
}

describe('attachTracepoint', () => {
  skipAllIf(requireFeature(features.haveTracepoints))

  test('counts the test\'s own getppid calls until closed; info, bpftool and ids agree', async (ctx) => {
    using coll = await load(['on_enter_getppid'])
    const prog = coll.programs.on_enter_getppid
    expectPerfLinkLifecycle(ctx, {
      link: attachTracepoint(prog, 'syscalls', 'sys_enter_getppid', idOption('syscalls', 'sys_enter_getppid')), prog,
      fire: getppidTimes, count: () => count(coll, TRACEPOINT), times: 20, event: { kind: 'tracepoint', name: 'sys_enter_getppid' },
    })
  })

  test('a sched tracepoint: the test\'s own forks', async () => {
    using coll = await load(['on_enter_getppid'])
    // The program only counts; any tracepoint runs it.
    using link = attachTracepoint(coll.programs.on_enter_getppid, 'sched', 'sched_process_fork', idOption('sched', 'sched_process_fork'))
    for (let i = 0; i < 3; i++) expect(spawnSync('true').status).toBe(0)
    expect(count(coll, TRACEPOINT)).toBeGreaterThanOrEqual(3n)
    expect(link.closed).toBe(false)
  })

  test('the cookie reaches bpf_get_attach_cookie (NotSupportedError before 5.15)', async (ctx) => {
    if (!features.supportsBpfCookie()) {
      using coll = await load(['on_enter_getppid'])
      const fds = fdTable()
      expect(() => attachTracepoint(coll.programs.on_enter_getppid, 'syscalls', 'sys_enter_getppid', { ...idOption('syscalls', 'sys_enter_getppid'), cookie: 1 })).toThrow(NotSupportedError)
      expect(opened(fds, fdTable())).toEqual([])
    }
    skipUnless(ctx, features.haveBpfCookie)
    using coll = await load(['on_enter_getppid_cookie'])
    const cookie = 0x1234_5678_9abc_def0n
    using link = attachTracepoint(coll.programs.on_enter_getppid_cookie, 'syscalls', 'sys_enter_getppid', { ...idOption('syscalls', 'sys_enter_getppid'), cookie })
    getppidTimes(1)
    expect(count(coll, TRACEPOINT_COOKIE)).toBe(cookie)
    expect(link.kind).toBe('link')
  })

  test('tracepointId reads tracefs, and says so when it is not mounted', () => {
    if (tracefs === undefined) {
      expect(() => tracepointId('syscalls', 'sys_enter_getppid')).toThrow(/tracefs is not mounted/)
    } else {
      expect(tracepointId('syscalls', 'sys_enter_getppid')).toBeGreaterThan(0)
      expect(() => tracepointId('syscalls', 'sys_enter_no_such_call')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/unknown tracepoint syscalls:sys_enter_no_such_call/) }))
    }
    expect(() => tracepointId('syscalls', '../../x')).toThrow(TypeError)
  })

  test('bad input leaves nothing attached or open', async () => {
    using coll = await load(['on_enter_getppid', 'on_sample'])
    const prog = coll.programs.on_enter_getppid
    const id = idOption('syscalls', 'sys_enter_getppid')
    const fds = fdTable()
    const links = linkIds()
    // An id no tracepoint has.
    expect(() => attachTracepoint(prog, 'syscalls', 'sys_enter_getppid', { id: 0x7ffffff0 })).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no tracepoint has id/) }))
    // An unknown tracepoint by name: tracefs says so (or is not mounted here).
    expect(() => attachTracepoint(prog, 'syscalls', 'sys_enter_no_such_call')).toThrow(tracefs === undefined ? /tracefs is not mounted/ : /unknown tracepoint syscalls:sys_enter_no_such_call/)
    // A program of another type.
    expect(() => attachTracepoint(coll.programs.on_sample, 'syscalls', 'sys_enter_getppid', id)).toThrow(/is a perf_event program; this hook runs tracepoint programs/)
    // Names that cannot be tracepoints, options that do not exist.
    expect(() => attachTracepoint(prog, 'sys calls', 'x', id)).toThrow(TypeError)
    expect(() => attachTracepoint(prog, 'syscalls', 'sys_enter_getppid', { ...id, pid: 1 } as never)).toThrow(/unknown option 'pid'/)
    expect(() => attachTracepoint(prog, 'syscalls', 'sys_enter_getppid', { id: -1 })).toThrow(TypeError)
    expect(() => attachTracepoint({} as never, 'syscalls', 'sys_enter_getppid', id)).toThrow(TypeError)
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((l) => !links.has(l))).toEqual([])
    // A closed program.
    prog.close()
    expect(() => attachTracepoint(prog, 'syscalls', 'sys_enter_getppid', id)).toThrow(/already closed/)
    expect(opened(fds, fdTable())).toEqual([])
  })
})
