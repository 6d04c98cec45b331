// raw_tp, tp_btf, fentry/fexit/fmod_ret, lsm and freplace links on
// programs from test/fixtures/bpf/attach-tracing.bpf.c. Every program acts
// only for this process (its tgid is set before load): the test makes the
// hook fire itself (its own syscalls, BPF_PROG_TEST_RUN of its own tracing
// programs, which calls bpf_fentry_test1 and bpf_modify_return_test, its own
// setpriority) and reads the counters. Trampoline programs (fentry, fexit,
// fmod_ret, lsm, freplace) skip with the probe's reason where the kernel
// refuses them, and run in the VMs.
import { getPriority, setPriority } from 'node:os'
import { statSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import * as features from '../../lib/features/index.js'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { Btf } from '../../lib/btf/btf.js'
import { kernelBtf } from '../../lib/features/prog-types.js'
import { attachFreplace, attachRawTracepoint, attachTracing } from '../../lib/link/tracing.js'
import { BpfProgram, type BpfLink, type Collection } from '../../lib/index.js'
import { links } from '../../lib/sys/ids.js'
import { NotSupportedError } from '../../lib/sys/index.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec, packet } from './helpers/collection.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const SLOT = { rawTp: 0, tpBtf: 1, fentry: 2, fexit: 3, fmodRet: 4, lsm: 5, cookieFentry: 6, cookieRawTp: 7, rawTpV2: 8 } as const

async function load(programs: string[]): Promise<Collection> {
  const spec = fixtureSpec('attach-tracing')
  spec.variables.target_tgid.set(process.pid)
  return spec.load({ programs })
}

const hit = (coll: Collection, slot: number): bigint => (coll.maps.hits.get(slot) as bigint | undefined) ?? 0n

// Syscalls of this process: sys_enter fires for each.
function makeSyscalls(): void {
  for (let i = 0; i < 20; i++) statSync('/')
}

const linkIds = () => new Set([...links()].map((l) => l.id))
const linksOf = (progId: number) => [...links()].filter((l) => l.progId === progId)

// The link is released by its last close: gone from the kernel's link IDs.
function closeAndGone(link: BpfLink): void {
  const id = link.id
  expect(linkIds().has(id)).toBe(true)
  link.close()
  expect(linkIds().has(id)).toBe(false)
}

describe('raw_tp', () => {
  test('attaches by the section\'s tracepoint, counts this process\'s syscalls, reports its tracepoint, and goes with close', async (ctx) => {
    using coll = await load(['on_sys_enter'])
    const prog = coll.programs.on_sys_enter
    const link = attachRawTracepoint(coll.programs.on_sys_enter)
    try {
      makeSyscalls()
      expect(hit(coll, SLOT.rawTp)).toBeGreaterThanOrEqual(20n)
      const info = link.info()
      expect(info).toMatchObject({ type: 'raw_tracepoint', progId: prog.id, tracepoint: 'sys_enter' })
      expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'raw_tracepoint', prog_id: prog.id, tp_name: 'sys_enter' })
    } finally {
      closeAndGone(link)
    }
    const before = hit(coll, SLOT.rawTp)
    makeSyscalls()
    expect(hit(coll, SLOT.rawTp)).toBe(before)
  })

  test('by name; a raw_tp link cannot be updated, and the first program stays', async () => {
    using coll = await load(['on_sys_enter', 'raw_tp_v2'])
    using link = attachRawTracepoint(coll.programs.on_sys_enter, 'sys_enter')
    expect(() => link.update(coll.programs.raw_tp_v2)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(EINVAL|EOPNOTSUPP)$/) }))
    makeSyscalls()
    expect(hit(coll, SLOT.rawTp)).toBeGreaterThan(0n)
    expect(hit(coll, SLOT.rawTpV2)).toBe(0n)
  })

  test('a cookie (6.10+) reaches bpf_get_attach_cookie', async (ctx) => {
    const why = requireFeature(features.haveRawTracepointCookie)
    if (why) ctx.skip(why)
    using coll = await load(['cookie_sys_enter'])
    using link = attachRawTracepoint(coll.programs.cookie_sys_enter, undefined, { cookie: 0x1234_5678_9abcn })
    makeSyscalls()
    expect(hit(coll, SLOT.cookieRawTp)).toBe(0x1234_5678_9abcn)
    expect(link.info().cookie ?? 0x1234_5678_9abcn).toBe(0x1234_5678_9abcn)
  })

  test('bad input: errors name the problem and leave nothing attached or open', async () => {
    using coll = await load(['on_sys_enter', 'on_btf_sys_enter'])
    const raw = coll.programs.on_sys_enter
    const fds = fdTable()
    expect(() => attachRawTracepoint(raw, 'no_such_tracepoint_here')).toThrow(expect.objectContaining({ code: 'ENOENT', message: expect.stringMatching(/no raw tracepoint named 'no_such_tracepoint_here'/) }))
    using anonymous = BpfProgram.fromId(raw.id)
    expect(() => attachRawTracepoint(anonymous)).toThrow(/no tracepoint name given/)
    expect(() => attachRawTracepoint(raw, '')).toThrow(TypeError)
    expect(() => attachRawTracepoint(raw, 'x'.repeat(200))).toThrow(TypeError)
    expect(() => attachRawTracepoint(raw, 'sys_enter', { cookie: -1 })).toThrow(/cookie must be a u64/)
    expect(() => attachRawTracepoint(raw, 'sys_enter', { cokie: 1 } as never)).toThrow(/unknown option 'cokie'/)
    expect(() => attachRawTracepoint({} as never, 'sys_enter')).toThrow(TypeError)
    expect(() => attachRawTracepoint(coll.programs.on_btf_sys_enter, 'sys_enter')).toThrow(/tracing program, not raw_tracepoint: .*attachTracing/)
    expect(() => attachTracing(raw)).toThrow(/use attachRawTracepoint/)
    expect(() => attachFreplace(raw)).toThrow(/not ext/)
    expect(() => attachFreplace(raw, raw)).toThrow(/both the target program and the function name/)
    expect(linksOf(raw.id)).toEqual([])
    expect(linksOf(coll.programs.on_btf_sys_enter.id)).toEqual([])
    expect(opened(fds, fdTable()).filter((e) => !/anon_inode:bpf-prog/.test(e))).toEqual([])
  })
})

describe('tp_btf', () => {
  test('attaches to the load-time tracepoint, counts, reports it, and goes with close', async (ctx) => {
    using coll = await load(['on_btf_sys_enter'])
    const prog = coll.programs.on_btf_sys_enter
    const link = attachTracing(coll.programs.on_btf_sys_enter)
    try {
      makeSyscalls()
      expect(hit(coll, SLOT.tpBtf)).toBeGreaterThanOrEqual(20n)
      const info = link.info()
      expect(info).toMatchObject({ type: 'raw_tracepoint', progId: prog.id, tracepoint: 'sys_enter' })
      expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'raw_tracepoint', prog_id: prog.id, tp_name: 'sys_enter' })
    } finally {
      closeAndGone(link)
    }
  })

  test('a program that knows nothing of its section (opened by id) attaches too', async () => {
    using coll = await load(['on_btf_sys_enter'])
    using same = BpfProgram.fromId(coll.programs.on_btf_sys_enter.id)
    using link = attachTracing(same)
    makeSyscalls()
    expect(hit(coll, SLOT.tpBtf)).toBeGreaterThan(0n)
    expect(link.info().tracepoint).toBe('sys_enter')
  })

  test('the tracing link probe agrees with what LINK_CREATE does', async () => {
    using coll = await load(['on_btf_sys_enter'])
    const prog = coll.programs.on_btf_sys_enter
    using link = attachTracing(prog, { attachType: 'trace_raw_tp' })
    expect(link.info().type).toBe('raw_tracepoint')
    expect(typeof features.supportsTracingLinks()).toBe('boolean')
  })
})

// Trampolines: fentry, fexit, fmod_ret, lsm, freplace.
describe('trampoline programs', () => {
  skipAllIf(requireFeature(features.haveTrampolines))

  test('fentry and fexit see this process\'s calls of bpf_fentry_test1 (made by test-running the program)', async (ctx) => {
    using coll = await load(['on_fentry', 'on_fexit'])
    const fentry = attachTracing(coll.programs.on_fentry)
    const fexit = attachTracing(coll.programs.on_fexit)
    try {
      await coll.programs.on_fentry.testRun()
      expect(hit(coll, SLOT.fentry)).toBe(1n)
      expect(hit(coll, SLOT.fexit)).toBe(2n)
      const info = fentry.info()
      expect(info).toMatchObject({ type: 'tracing', progId: coll.programs.on_fentry.id, attachType: 'trace_fentry' })
      expect(fexit.info()).toMatchObject({ type: 'tracing', attachType: 'trace_fexit' })
      const funcId = kernelBtf()!.find('bpf_fentry_test1', 'FUNC')
      // Tracing link info names its target since 5.13; the tracing-link kernels (5.19+) all do.
      if (features.supportsTracingLinks() || info.targetBtfId) expect(info.targetBtfId).toBe(funcId)
      expect(fexit.info().targetBtfId ?? funcId).toBe(info.targetBtfId ?? funcId)
      expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'tracing', prog_id: coll.programs.on_fentry.id, attach_type: 'trace_fentry' })
      expect(() => fentry.update(coll.programs.on_fexit)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(EINVAL|EOPNOTSUPP)$/) }))
    } finally {
      closeAndGone(fentry)
      closeAndGone(fexit)
    }
    await coll.programs.on_fentry.testRun()
    expect(hit(coll, SLOT.fentry)).toBe(1n)
  })

  test('a cookie on fentry (5.19+) reaches bpf_get_attach_cookie', async (ctx) => {
    const why = requireFeature(features.haveTracingCookie)
    if (why) ctx.skip(why)
    using coll = await load(['cookie_fentry'])
    using link = attachTracing(coll.programs.cookie_fentry, { cookie: 77n })
    await coll.programs.cookie_fentry.testRun()
    expect(hit(coll, SLOT.cookieFentry)).toBe(77n)
    expect(link.info().type).toBe('tracing')
  })

  test('fmod_ret replaces bpf_modify_return_test\'s result for this process\'s calls only', async (ctx) => {
    const why = requireFeature(features.haveModifyReturn)
    if (why) ctx.skip(why)
    using coll = await load(['on_fmod_ret'])
    const prog = coll.programs.on_fmod_ret
    // retval: the count of side effects seen (<< 16) | the functions' results.
    const before = (await prog.testRun()).retval
    const link = attachTracing(coll.programs.on_fmod_ret)
    try {
      const during = (await prog.testRun()).retval
      expect(hit(coll, SLOT.fmodRet)).toBe(1n)
      // The replaced call did not run (one side effect fewer) and returned 42.
      expect(during >>> 16).toBe((before >>> 16) - 1)
      expect(during & 0xffff).not.toBe(before & 0xffff)
      expect(link.info()).toMatchObject({ type: 'tracing', attachType: 'modify_return' })
    } finally {
      closeAndGone(link)
    }
    expect((await prog.testRun()).retval).toBe(before)
  })

  describe('lsm', () => {
    skipAllIf(requireFeature(features.haveBpfLsm))

    test('task_setnice denies this process\'s setpriority() only while attached', async (ctx) => {
      using coll = await load(['deny_setnice'])
      const nice = getPriority(0)
      setPriority(0, nice)
      const link = attachTracing(coll.programs.deny_setnice)
      try {
        expect(() => setPriority(0, nice)).toThrow(/EPERM|not permitted/i)
        expect(hit(coll, SLOT.lsm)).toBe(1n)
        const info = link.info()
        expect(info).toMatchObject({ type: 'tracing', progId: coll.programs.deny_setnice.id, attachType: 'lsm_mac' })
        expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'tracing', attach_type: 'lsm_mac' })
      } finally {
        closeAndGone(link)
      }
      setPriority(0, nice)
      expect(hit(coll, SLOT.lsm)).toBe(1n)
    })
  })

  // CollectionSpec.load cannot load an ext program against a target yet: the
  // ext program's instructions come from the fixture's spec, its BTF (the
  // prototype of `decide`) is built here.
  async function loadReplacement(coll: Collection): Promise<{ ext: BpfProgram; btf: Btf }> {
    const target = coll.programs.freplace_target
    const b = new BtfBuilder()
    const int = b.int('int', 4, { signed: true })
    const proto = b.funcProto(int, [{ name: 'ctx', type: b.ptr(b.struct('xdp_md', [])) }])
    const funcId = b.func('new_decide', proto, 'global')
    const btf = await Btf.load(b.bytes())
    const { programFunctionBtfId } = await import('../../lib/link/tracing.js')
    const spec = fixtureSpec('attach-tracing').programs.new_decide
    const ext = await BpfProgram.load({
      type: 'ext', insns: spec.insns, license: 'GPL', name: 'new_decide', btf, funcInfo: [{ insnOff: 0, typeId: funcId }],
      attachProgFd: target.fd, attachBtfId: programFunctionBtfId(target, 'decide'),
    })
    return { ext, btf }
  }

  test('freplace swaps a function of a program the test loaded, until closed', async (ctx) => {
    using coll = await load(['freplace_target'])
    const target = coll.programs.freplace_target
    const { ext, btf } = await loadReplacement(coll)
    using _e = ext
    using _b = btf
    const run = async () => (await target.testRun({ data: packet })).retval
    expect(await run()).toBe(2) // XDP_PASS from decide()
    // First where it was loaded for, without naming it (the kernel allows that once per load).
    const first = attachFreplace(ext)
    expect(await run()).toBe(1) // XDP_DROP from new_decide()
    closeAndGone(first)
    expect(await run()).toBe(2)
    // Then by target program and function name (Linux 5.10+).
    const link = attachFreplace(ext, target, 'decide')
    try {
      expect(await run()).toBe(1)
      const info = link.info()
      expect(info).toMatchObject({ type: 'tracing', progId: ext.id })
      if (info.targetObjId) expect(info.targetObjId).toBe(target.id)
      expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'tracing', prog_id: ext.id })
    } finally {
      closeAndGone(link)
    }
    expect(await run()).toBe(2)
    expect(() => attachFreplace(ext, target, 'no_such_function')).toThrow(expect.objectContaining({ code: 'ESRCH' }))
    expect(linksOf(ext.id)).toEqual([])
  })
})

describe('features', () => {
  test('the probes answer, or say why not; a refusal is not a missing release', () => {
    for (const probe of [features.haveTrampolines, features.haveBpfLsm, features.haveModifyReturn]) {
      try {
        probe()
      } catch (e) {
        expect(e).toBeInstanceOf(NotSupportedError)
        if (e instanceof features.FeatureRefusedError) expect((e as Error).message).toMatch(/refuses trampoline programs \(EPERM\)/)
      }
    }
    expect(typeof features.supportsRawTracepointLinks()).toBe('boolean')
    expect(features.supportsRawTracepointLinks()).toBe(true) // every kernel this suite runs on (5.10+)
  })
})
