// The attach layer every family stands on: LINK_UPDATE through BpfLink.update,
// PROG_QUERY, RAW_TRACEPOINT_OPEN with its info, perf events and the perf
// link step (linkPerfEvent), and their refusals of bad input.
import { closeSync, openSync, readlinkSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfProgram, Fd, ids } from '../../lib/index.js'
import { supportsPerfLink } from '../../lib/features/links.js'
import { linkPerfEvent } from '../../lib/link/perf-attach.js'
import { kernel, native } from '../../lib/sys/index.js'
import { childCgroup } from './helpers/scratch.js'
import { fdTable, opened } from './helpers/fds.js'

const ret = (n: number) => [asm.mov64Imm(asm.R0, n), asm.exit()]
const egress = (n: number, name: string) => BpfProgram.load({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', insns: ret(n), license: 'GPL', name })
// PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK (include/uapi/linux/perf_event.h)
const cpuClock = (cpu = 0) => new Fd(native.perfEventOpen({ type: 1, config: 0, samplePeriod: 1_000_000, cpu, disabled: true }), 'perf_event')

describe('BpfLink.update', () => {
  test('swaps the program of a cgroup link in place; with expected, only if that one is attached', async () => {
    using cg = childCgroup()
    using a = await egress(1, 'allow')
    using b = await egress(0, 'drop')
    using link = BpfLink.attachCgroup(cg.path, a, 'cgroup_inet_egress')
    const id = link.id
    link.update(b)
    expect(link.info()).toMatchObject({ id, progId: b.id })
    // a is no longer attached: the replace-if-still-there form refuses.
    expect(() => link.update(a, { expected: a })).toThrow(expect.objectContaining({ code: 'EPERM', command: 'link_update' }))
    link.update(a, { expected: b })
    expect(link.info().progId).toBe(a.id)
    using dir = new Fd(native.openDirectory(undefined, cg.path), 'cgroup')
    const q = native.progQuery({ targetFd: dir.fd, attachType: kernel.attachTypes.cgroup_inet_egress })
    expect(q.progIds).toEqual([a.id])
  })

  test('refuses other programs, non-link attachments and bad options, and changes nothing', async () => {
    using cg = childCgroup()
    using a = await egress(1, 'allow')
    using sf = await BpfProgram.load({ type: 'socket_filter', insns: ret(0), license: 'GPL' })
    using link = BpfLink.attachCgroup(cg.path, a, 'cgroup_inet_egress')
    expect(() => link.update(sf)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
    expect(() => link.update(a, { expcted: a } as never)).toThrow(TypeError)
    expect(() => link.update({} as never)).toThrow(TypeError)
    expect(link.info().progId).toBe(a.id)
    link.close()
    expect(() => link.update(a)).toThrow(/closed/)
  })
})

describe('raw tracepoint links', () => {
  test('RAW_TRACEPOINT_OPEN makes a raw_tracepoint link whose info names the tracepoint', async () => {
    using p = await BpfProgram.load({ type: 'raw_tracepoint', insns: ret(0), license: 'GPL', name: 'rtp' })
    using link = BpfLink.fromLinkFd(new Fd(native.rawTracepointOpen(p.fd, 'sys_enter'), 'link'))
    expect(link.info()).toMatchObject({ type: 'raw_tracepoint', progId: p.id, tracepoint: 'sys_enter' })
    expect([...ids.links()].map((l) => l.id)).toContain(link.id)
    const id = link.id
    link.close()
    expect([...ids.links()].map((l) => l.id)).not.toContain(id)
  })

  test('detach of a link type the kernel cannot detach says to close it', async () => {
    using p = await BpfProgram.load({ type: 'raw_tracepoint', insns: ret(0), license: 'GPL' })
    using link = BpfLink.fromLinkFd(new Fd(native.rawTracepointOpen(p.fd, 'sys_enter'), 'link'))
    // Kernels that gained LINK_DETACH for raw tracepoints would detach here instead.
    try {
      link.detach()
    } catch (e) {
      expect(e).toMatchObject({ code: 'EOPNOTSUPP', command: 'link_detach' })
      expect((e as Error).message).toMatch(/cannot detach a raw_tracepoint link while it is open; close it/)
    }
  })

  test('an unknown tracepoint is ENOENT; a bad name is a TypeError', async () => {
    using p = await BpfProgram.load({ type: 'raw_tracepoint', insns: ret(0), license: 'GPL' })
    expect(() => native.rawTracepointOpen(p.fd, 'no_such_tracepoint_bpfkit')).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => native.rawTracepointOpen(p.fd, 'a\0b')).toThrow(TypeError)
    expect(() => native.rawTracepointOpen(p.fd, 'x'.repeat(300))).toThrow(TypeError)
  })
})

describe('perf events and linkPerfEvent', () => {
  test('a perf_event program on a cpu-clock event: a perf link (5.15+) whose info says event; closing ends it', async () => {
    using p = await BpfProgram.load({ type: 'perf_event', insns: ret(0), license: 'GPL', name: 'sample' })
    const before = fdTable()
    using link = linkPerfEvent(p, cpuClock())
    if (supportsPerfLink()) {
      expect(link.kind).toBe('link')
      const info = link.info()
      expect(info).toMatchObject({ type: 'perf_event', progId: p.id })
      // Linux 6.6+ describe the event: config 0 is cpu-clock. (Its perf type
      // is 1, PERF_TYPE_SOFTWARE, until kernels that gave cpu-clock a PMU of
      // its own report that one's.)
      if (info.perfEvent !== undefined) expect(info.perfEvent).toMatchObject({ kind: 'event', config: 0n })
    } else {
      expect(link.kind).toBe('perf_event')
    }
    link.close()
    link.close()
    expect(opened(before, fdTable())).toEqual([])
  })

  test('a failed attach closes the perf event and runs onClose', async () => {
    using sf = await BpfProgram.load({ type: 'socket_filter', insns: ret(0), license: 'GPL' })
    const before = fdTable()
    let cleaned = 0
    expect(() => linkPerfEvent(sf, cpuClock(), { onClose: () => cleaned++ })).toThrow()
    expect(cleaned).toBe(1)
    expect(opened(before, fdTable())).toEqual([])
  })

  test('perfEventOpen refuses bad attributes before the kernel sees them', () => {
    expect(() => native.perfEventOpen({ type: 1, pid: -1, cpu: -1 })).toThrow(/needs a pid or a cpu/)
    expect(() => native.perfEventOpen({ type: 1, cpu: 0, samplePeriod: 1, sampleFreq: 1 })).toThrow(/exclusive/)
    expect(() => native.perfEventOpen({ type: 1, cpu: 1.5 })).toThrow(RangeError)
    expect(() => native.perfEventOpen({ type: 1, cpu: 0, probeName: 'a', config1: 1 })).toThrow(/exclusive/)
    expect(() => native.perfEventOpen({ type: 9999, cpu: 0 })).toThrow(expect.objectContaining({ syscall: 'perf_event_open' }))
  })

  test('the perf ioctls touch only perf event fds', async () => {
    using p = await BpfProgram.load({ type: 'perf_event', insns: ret(0), license: 'GPL' })
    expect(() => native.perfEventEnable(p.fd)).toThrow(/not a perf event/)
    expect(() => native.perfEventSetBpf(p.fd, p.fd)).toThrow(/not a perf event/)
    expect(() => native.perfEventDisable(0x7ffffff0)).toThrow(expect.objectContaining({ code: 'EBADF' }))
  })
})

describe('objGetInfoWithBuffers', () => {
  test('refuses pointers outside the info buffer and too many of them', async () => {
    using p = await BpfProgram.load({ type: 'raw_tracepoint', insns: ret(0), license: 'GPL' })
    using link = BpfLink.fromLinkFd(new Fd(native.rawTracepointOpen(p.fd, 'sys_enter'), 'link'))
    const out = new Uint8Array(64)
    expect(() => native.objGetInfoWithBuffers(link.fd, out, [[64, new Uint8Array(8), 24, 1]])).toThrow(RangeError)
    expect(() => native.objGetInfoWithBuffers(link.fd, out, [[16, new Uint8Array(8), 62, 1]])).toThrow(RangeError)
    expect(() => native.objGetInfoWithBuffers(link.fd, out, [[16, new Uint8Array(8), 24, 0]])).toThrow(RangeError)
    expect(() => native.objGetInfoWithBuffers(link.fd, out, Array(9).fill([16, new Uint8Array(8), 24, 1]))).toThrow(RangeError)
    expect(() => native.objGetInfoWithBuffers(link.fd, out, [[16, 'x', 24, 1]] as never)).toThrow(TypeError)
  })
})

describe('withNetns', () => {
  test('a closed fd number is refused before anything runs, even when the call would reuse that number', () => {
    const fd = openSync('/dev/null', 'r')
    closeSync(fd)
    let ran = false
    expect(() => native.withNetns(fd, () => { ran = true })).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'setns' }))
    expect(ran).toBe(false)
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(readlinkSync('/proc/self/ns/net'))
  })
})
