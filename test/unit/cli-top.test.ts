// `bpfkit top`'s arithmetic, layout and arguments, without a kernel
// (test/kernel/cli-top.test.ts runs the binary against programs it loads).
import { describe, expect, test } from 'vitest'
import { HelpRequested, UsageError } from '../../lib/cli/args.js'
import { parseTopArgs } from '../../lib/cli/top.js'
import { formatNs, formatTable, rates, sampleJson, sortRows, type ProgCounters, type Sample } from '../../lib/cli/top-table.js'

const prog = (id: number, name: string, runCount: bigint, runTimeNs: bigint, loadTime = 1n): ProgCounters => ({ id, type: 'socket_filter', name, loadTime, runTimeNs, runCount })
const at = (ms: number, progs: ProgCounters[]): Sample => ({ at: BigInt(ms) * 1_000_000n, progs })

describe('rates', () => {
  test('deltas over the wall time between samples: runs/s, run time/s, average, CPU %', () => {
    // 2 s apart: 1000 runs taking 50 ms in all.
    const [r] = rates(at(1000, [prog(7, 'busy', 500n, 10_000_000n)]), at(3000, [prog(7, 'busy', 1500n, 60_000_000n)]))
    expect(r).toMatchObject({ id: 7, name: 'busy', runsPerSec: 500, runTimeNsPerSec: 25_000_000, avgNs: 50_000, runCount: 1500n, runTimeNs: 60_000_000n })
    expect(r.cpuPercent).toBeCloseTo(2.5)
  })

  test('a program that did not run has no average; one loaded between samples counts from zero; one gone has no row', () => {
    const rows = rates(at(0, [prog(1, 'idle', 5n, 100n), prog(2, 'gone', 1n, 1n)]), at(1000, [prog(1, 'idle', 5n, 100n), prog(3, 'new', 10n, 2000n)]))
    expect(rows.map((r) => r.id)).toEqual([1, 3])
    expect(rows[0]).toMatchObject({ runsPerSec: 0, avgNs: null, cpuPercent: 0 })
    expect(rows[1]).toMatchObject({ runsPerSec: 10, avgNs: 200 })
  })

  test('an ID reused by another load, or counters that went back, start from zero', () => {
    const [reused] = rates(at(0, [prog(4, 'x', 100n, 100n, 1n)]), at(1000, [prog(4, 'y', 3n, 30n, 2n)]))
    expect(reused).toMatchObject({ runsPerSec: 3, avgNs: 10 })
    const [back] = rates(at(0, [prog(4, 'x', 100n, 100n)]), at(1000, [prog(4, 'x', 3n, 300n)]))
    expect(back).toMatchObject({ runsPerSec: 3, avgNs: 100 })
  })
})

describe('table', () => {
  const rows = rates(at(0, [prog(1, 'b', 0n, 0n), prog(2, 'a', 0n, 0n), prog(3, 'c', 0n, 0n)]),
    at(1000, [prog(1, 'b', 10n, 5000n), prog(2, 'a', 1000n, 1000n), prog(3, 'c', 0n, 0n)]))

  test('sorts: the busiest first for measures, ascending for labels, ties by ID', () => {
    expect(sortRows(rows, 'cpu').map((r) => r.id)).toEqual([1, 2, 3])
    expect(sortRows(rows, 'runs').map((r) => r.id)).toEqual([2, 1, 3])
    expect(sortRows(rows, 'avg').map((r) => r.id)).toEqual([1, 2, 3])
    expect(sortRows(rows, 'name').map((r) => r.id)).toEqual([2, 1, 3])
    expect(sortRows(rows, 'id').map((r) => r.id)).toEqual([1, 2, 3])
  })

  test('title, header with the sorted column marked, rows; cut to the terminal', () => {
    const lines = formatTable(rows, { sort: 'runs', intervalMs: 1000, scope: 'tenant a' })
    expect(lines[0]).toBe('bpfkit top (tenant a): 3 progs  1010 runs/s  CPU 0.00%  every 1.00s  sort runs')
    expect(lines[1]).toMatch(/^ +ID TYPE +NAME +\*RUNS\/S +TIME\/S +AVG NS +CPU%$/)
    expect(lines[2]).toMatch(/^ +2 socket_filter +a +1000 +1\.00us +1 +0\.00$/)
    expect(lines[3]).toMatch(/^ +1 socket_filter +b +10\.0 +5\.00us +500 +0\.00$/)
    expect(lines[4]).toMatch(/^ +3 socket_filter +c +0\.0 +0ns +- +0\.00$/)
    const small = formatTable(rows, { sort: 'cpu', intervalMs: 1000, columns: 30, rows: 5, hint: 'keys' })
    expect(small).toHaveLength(5)
    expect(small.every((l) => l.length <= 30)).toBe(true)
    expect(small[4]).toBe('... 2 more')
    // A long ID widens its column rather than being cut.
    const wide = formatTable(rates(at(0, []), at(1000, [prog(4294967295, 'x', 1n, 1n)])), { sort: 'id', intervalMs: 1000 })
    expect(wide[2]).toMatch(/^4294967295 socket_filter/)
    expect(wide[1]).toMatch(/^ +\*ID TYPE/)
  })

  test('durations and the JSON sample', () => {
    expect([812, 3412, 12_000_000, 1.2e9, 250e9].map(formatNs)).toEqual(['812ns', '3.41us', '12.0ms', '1.20s', '250s'])
    const j = sampleJson(rows, { sort: 'id', intervalMs: 1000.1234, time: new Date(0) })
    expect(j).toMatchObject({ time: '1970-01-01T00:00:00.000Z', intervalMs: 1000.123 })
    expect((j.programs as { id: number; runCount: string }[]).map((p) => [p.id, p.runCount])).toEqual([[1, '10'], [2, '1000'], [3, '0']])
  })
})

describe('arguments', () => {
  test('defaults and options', () => {
    expect(parseTopArgs([])).toEqual({ intervalMs: 1000, sort: 'cpu', count: undefined, json: false })
    expect(parseTopArgs(['--interval', '0.5', '--sort', 'name', '--once', '--json'])).toEqual({ intervalMs: 500, sort: 'name', count: 1, json: true })
    expect(parseTopArgs(['--count=3'])).toMatchObject({ count: 3 })
  })

  test.each([
    [['--interval', '0'], /--interval must be a number of seconds from 0.1 to 3600, got '0'/],
    [['--interval', 'x'], /--interval must be/],
    [['--sort', 'size'], /--sort must be one of cpu, runs, time, avg, id, name, type, got 'size'/],
    [['--once', '--count', '2'], /--once and --count exclude each other/],
    [['--count', '0'], /--count must be an integer >= 1/],
    [['extra'], /top/],
    [['--frobnicate'], /top/],
  ])('%j is a usage error', (args, message) => {
    expect(() => parseTopArgs(args)).toThrow(UsageError)
    expect(() => parseTopArgs(args)).toThrow(message)
  })

  test('--help', () => {
    expect(() => parseTopArgs(['--help'])).toThrow(HelpRequested)
  })
})
