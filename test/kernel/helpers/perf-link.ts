// The life of a program on a perf event (kprobe, tracepoint), the same for
// every such family: it fires for the test's own action, says what it is
// (a perf_event link with its event on 5.15+, the ioctl attachment before),
// bpftool and the ID walk agree, and once closed it is gone and fires no more.
import type { TestContext } from 'vitest'
import { expect } from 'vitest'
import { ids, type BpfLink, type BpfProgram } from '../../../lib/index.js'
import { bpftool } from './bpftool.js'
import { fixtureSpec } from './collection.js'

export const linkIds = () => new Set([...ids.links()].map((l) => l.id))

/** The attach-trace fixture's `programs`, counting only for this process. */
export async function loadTraceFixture(programs: string[]) {
  const spec = fixtureSpec('attach-trace')
  spec.variables.target_tgid.set(process.pid)
  return spec.load({ programs })
}

/** Slot `slot` of the fixture's counts map. */
export const traceCount = (coll: { maps: Record<string, any> }, slot: number): bigint => coll.maps.counts.get(slot) as bigint

export interface PerfLinkCase {
  link: BpfLink
  prog: BpfProgram
  /** Makes the hook fire `times` times. */
  fire(times: number): void
  /** The counter the program moves. */
  count(): bigint
  times: number
  /** What the kernel's link info says of the event (Linux 6.6+). */
  event: { kind: string; name: string }
}

export function expectPerfLinkLifecycle(ctx: TestContext, c: PerfLinkCase): void {
  const { link, prog } = c
  try {
    c.fire(c.times)
    expect(c.count()).toBeGreaterThanOrEqual(BigInt(c.times))
    if (link.kind === 'link') {
      const info = link.info()
      expect(info).toMatchObject({ type: 'perf_event', progId: prog.id })
      if (info.perfEvent !== undefined && info.perfEvent.kind !== 'unspec') expect(info.perfEvent).toMatchObject(c.event)
      expect(linkIds().has(info.id)).toBe(true)
      const shown = bpftool(ctx).json('link', 'show', 'id', String(info.id))
      expect(shown).toMatchObject({ id: info.id, prog_id: prog.id })
      if (typeof shown.type === 'string') expect(shown.type).toBe('perf_event')
    } else {
      // Before perf links (5.15): the program is set on the perf event by ioctl.
      expect(link.kind).toBe('perf_event')
      expect(link.info()).toMatchObject({ id: 0, type: 'perf_event', progId: prog.id })
    }
  } finally {
    const id = link.kind === 'link' ? link.id : 0
    link.close()
    if (id !== 0) expect(linkIds().has(id)).toBe(false)
  }
  const before = c.count()
  c.fire(c.times)
  expect(c.count()).toBe(before)
}
