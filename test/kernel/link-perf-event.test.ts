// perf_event programs on cpu-clock sampling, one link per CPU: the program
// counts samples per CPU (of whoever ran there) and those that caught the
// test's own process while it spins.
import { describe, expect, test } from 'vitest'
import { features, ids } from '../../lib/index.js'
import { attachPerfEvent } from '../../lib/link/perf-event.js'
import { onlineCpus } from '../../lib/sys/cpus.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec } from './helpers/collection.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Slot of `counts` in attach-trace.bpf.c.
const PERF_EVENT = 6

async function load(programs: string[]) {
  const spec = fixtureSpec('attach-trace')
  spec.variables.target_tgid.set(process.pid)
  return spec.load({ programs })
}

const linkIds = () => new Set([...ids.links()].map((l) => l.id))

/** Keeps this thread on a CPU for `ms`: cpu-clock samples land on it. */
function spin(ms: number): void {
  const end = Date.now() + ms
  let x = 0
  while (Date.now() < end) x = (x + 1) % 1e9
}

/** Samples per CPU so far. */
function cpuSamples(coll: { maps: Record<string, any> }, cpus: readonly number[]): Map<number, bigint> {
  return new Map(cpus.map((c) => [c, coll.maps.cpu_samples.get(c) as bigint]))
}

describe('attachPerfEvent', () => {
  skipAllIf(requireFeature(features.havePerfEventPrograms))

  test('cpu-clock on every CPU: samples on each, the test\'s own among them; closing removes all', async (ctx) => {
    using coll = await load(['on_sample'])
    const prog = coll.programs.on_sample
    const cpus = onlineCpus()
    const links = attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 1000 })
    try {
      expect(links.cpus).toEqual(cpus)
      expect(links.links).toHaveLength(cpus.length)
      spin(300)
      // Idle CPUs are sampled too (the clock is a timer): every CPU's event runs the program.
      const samples = cpuSamples(coll, cpus)
      for (const c of cpus) expect(samples.get(c), `samples on CPU ${c}`).toBeGreaterThan(0n)
      expect(coll.maps.counts.get(PERF_EVENT) as bigint).toBeGreaterThan(0n)
      if (links.links[0].kind === 'link') {
        const infos = links.links.map((l) => l.info())
        for (const info of infos) expect(info).toMatchObject({ type: 'perf_event', progId: prog.id })
        expect(new Set(infos.map((i) => i.id)).size).toBe(cpus.length)
        const known = linkIds()
        for (const info of infos) expect(known.has(info.id)).toBe(true)
        const tool = bpftool(ctx)
        for (const info of infos) {
          const shown = tool.json('link', 'show', 'id', String(info.id))
          expect(shown).toMatchObject({ id: info.id, prog_id: prog.id })
          if (typeof shown.type === 'string') expect(shown.type).toBe('perf_event')
        }
      } else {
        for (const l of links) expect(l.info()).toMatchObject({ id: 0, type: 'perf_event', progId: prog.id })
      }
    } finally {
      const linked = links.links.filter((l) => l.kind === 'link').map((l) => l.id)
      links.close()
      expect(links.closed).toBe(true)
      const known = linkIds()
      for (const id of linked) expect(known.has(id)).toBe(false)
    }
    const before = coll.maps.counts.get(PERF_EVENT) as bigint
    const beforeCpus = cpuSamples(coll, cpus)
    spin(100)
    expect(coll.maps.counts.get(PERF_EVENT)).toBe(before)
    expect(cpuSamples(coll, cpus)).toEqual(beforeCpus)
    links.close()
  })

  test('one CPU asked, one CPU sampled; samplePeriod in nanoseconds', async () => {
    using coll = await load(['on_sample'])
    const cpus = onlineCpus()
    const [first] = cpus
    {
      using links = attachPerfEvent(coll.programs.on_sample, { event: 'cpu-clock', samplePeriod: 1_000_000, cpus: [first] })
      expect(links.links).toHaveLength(1)
      spin(200)
    }
    const samples = cpuSamples(coll, cpus)
    expect(samples.get(first)).toBeGreaterThan(0n)
    for (const c of cpus.slice(1)) expect(samples.get(c), `samples on CPU ${c}`).toBe(0n)
  })

  test('bad input leaves nothing attached or open', async () => {
    using coll = await load(['on_sample', 'on_enter_getppid'])
    const prog = coll.programs.on_sample
    const fds = fdTable()
    const links = linkIds()
    const cpus = onlineCpus()
    expect(() => attachPerfEvent(prog, { event: 'cpu-cycles' as never, sampleFreq: 100 })).toThrow(/unknown event 'cpu-cycles'/)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100, samplePeriod: 100 })).toThrow(/exactly one of samplePeriod and sampleFreq/)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock' })).toThrow(/exactly one of samplePeriod and sampleFreq/)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 0 })).toThrow(TypeError)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100, cpus: [] })).toThrow(/cpus must be/)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100, cpus: [0, 0] })).toThrow(/twice/)
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100, pid: 0 } as never)).toThrow(/unknown option 'pid'/)
    expect(() => attachPerfEvent(coll.programs.on_enter_getppid, { event: 'cpu-clock', sampleFreq: 100 })).toThrow(/is a tracepoint program; this hook runs perf_event programs/)
    // The first CPU's link is made, then a CPU that does not exist fails: the first goes too.
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100, cpus: [cpus[0], 100_000] })).toThrow(expect.objectContaining({ syscall: 'perf_event_open' }))
    expect(opened(fds, fdTable())).toEqual([])
    expect([...linkIds()].filter((l) => !links.has(l))).toEqual([])
    prog.close()
    expect(() => attachPerfEvent(prog, { event: 'cpu-clock', sampleFreq: 100 })).toThrow(/already closed/)
    expect(opened(fds, fdTable())).toEqual([])
  })
})
