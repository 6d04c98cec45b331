// `bpfkit top`'s arithmetic and layout, kept pure (no kernel, no terminal) so
// test/unit can check them: two samples of every program's run counters
// become rates per second, sorted and laid out as a table that fits the
// terminal.

/** One program's counters at one moment (from ProgramInfo, or a broker view). */
export interface ProgCounters {
  id: number
  type: string
  name: string
  /** Distinguishes a program from a later one that got its ID back (IDs are reused). */
  loadTime: bigint
  runTimeNs: bigint
  runCount: bigint
}

export interface Sample {
  /** Monotonic nanoseconds (process.hrtime.bigint()) when the walk started. */
  at: bigint
  progs: readonly ProgCounters[]
}

/** One program's activity between two samples. */
export interface Row {
  id: number
  type: string
  name: string
  runsPerSec: number
  /** Nanoseconds of run time per second of wall time. */
  runTimeNsPerSec: number
  /** Average run time in ns over the interval; null when it did not run. */
  avgNs: number | null
  /** Run time / wall time × 100: 100 is one CPU's worth (can exceed 100 on several CPUs). */
  cpuPercent: number
  /** The counters as read at the later sample. */
  runCount: bigint
  runTimeNs: bigint
}

/**
 * The rows for `cur` against `prev`. A program absent from `prev` (loaded
 * in between) counts from zero: the kernel counts only while stats are on,
 * and they were on since before `prev`. One whose ID came back with another
 * load time, or whose counters went backwards, is a new program too.
 * Programs gone by `cur` have no row.
 */
export function rates(prev: Sample, cur: Sample): Row[] {
  const before = new Map(prev.progs.map((p) => [p.id, p]))
  const wallNs = Number(cur.at - prev.at)
  const perSec = wallNs > 0 ? 1e9 / wallNs : 0
  return cur.progs.map((p) => {
    let old = before.get(p.id)
    if (old && (old.loadTime !== p.loadTime || old.runCount > p.runCount || old.runTimeNs > p.runTimeNs)) old = undefined
    const runs = Number(p.runCount - (old?.runCount ?? 0n))
    const time = Number(p.runTimeNs - (old?.runTimeNs ?? 0n))
    return {
      id: p.id, type: p.type, name: p.name,
      runsPerSec: runs * perSec,
      runTimeNsPerSec: time * perSec,
      avgNs: runs > 0 ? time / runs : null,
      cpuPercent: wallNs > 0 ? (time / wallNs) * 100 : 0,
      runCount: p.runCount,
      runTimeNs: p.runTimeNs,
    }
  })
}

export const sortKeys = ['cpu', 'runs', 'time', 'avg', 'id', 'name', 'type'] as const
export type SortKey = (typeof sortKeys)[number]

/** The key that picks each sort in the live table. */
export const sortByKey: Readonly<Record<string, SortKey>> = { c: 'cpu', r: 'runs', t: 'time', a: 'avg', i: 'id', n: 'name', y: 'type' }

const compare: Record<SortKey, (a: Row, b: Row) => number> = {
  // Busiest first for the measures, ascending for the labels.
  cpu: (a, b) => b.cpuPercent - a.cpuPercent,
  runs: (a, b) => b.runsPerSec - a.runsPerSec,
  time: (a, b) => b.runTimeNsPerSec - a.runTimeNsPerSec,
  avg: (a, b) => (b.avgNs ?? -1) - (a.avgNs ?? -1),
  id: (a, b) => a.id - b.id,
  name: (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  type: (a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0),
}

/** A sorted copy; ties go by ID, so the order is stable from one refresh to the next. */
export function sortRows(rows: readonly Row[], key: SortKey): Row[] {
  return [...rows].sort((a, b) => compare[key](a, b) || a.id - b.id)
}

/** A duration in ns as the table shows it: 812ns, 3.41us, 12.0ms, 1.20s. */
export function formatNs(ns: number): string {
  if (ns < 1e3) return `${Math.round(ns)}ns`
  const [v, unit] = ns < 1e6 ? [ns / 1e3, 'us'] : ns < 1e9 ? [ns / 1e6, 'ms'] : [ns / 1e9, 's']
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)}${unit}`
}

/** A rate: one decimal below 100, whole above (the table's runs/s). */
export function formatRate(x: number): string {
  return x < 100 ? x.toFixed(1) : String(Math.round(x))
}

interface Column {
  key: SortKey
  title: string
  width: number
  right: boolean
  cell(r: Row): string
}

// IDs are never cut: their column is as wide as the longest (at least 7).
const columnsFor = (rows: readonly Row[]): Column[] => [
  { key: 'id', title: 'ID', width: Math.max(7, ...rows.map((r) => String(r.id).length)), right: true, cell: (r) => String(r.id) },
  { key: 'type', title: 'TYPE', width: 16, right: false, cell: (r) => r.type },
  { key: 'name', title: 'NAME', width: 16, right: false, cell: (r) => r.name || '-' },
  { key: 'runs', title: 'RUNS/S', width: 10, right: true, cell: (r) => formatRate(r.runsPerSec) },
  { key: 'time', title: 'TIME/S', width: 9, right: true, cell: (r) => formatNs(r.runTimeNsPerSec) },
  { key: 'avg', title: 'AVG NS', width: 9, right: true, cell: (r) => (r.avgNs === null ? '-' : String(Math.round(r.avgNs))) },
  { key: 'cpu', title: 'CPU%', width: 7, right: true, cell: (r) => r.cpuPercent.toFixed(2) },
]

function fit(s: string, width: number, right: boolean): string {
  if (s.length > width) return width > 1 ? s.slice(0, width - 1) + '~' : s.slice(0, width)
  return right ? s.padStart(width) : s.padEnd(width)
}

export interface TableOptions {
  sort: SortKey
  /** Wall time between the two samples, for the title line. */
  intervalMs: number
  /** Terminal size; rows beyond the height are left out (and counted). Default: no limits. */
  columns?: number
  rows?: number
  /** A hint line under the title (the live table's keys). */
  hint?: string
  /** Whose programs: 'tenant a' through the broker. */
  scope?: string
}

/**
 * The table as lines: a title (programs, total CPU, the interval, the sort),
 * the hint, the column header (the sorted column marked with `*`), then one
 * line per program, cut to the terminal's width and height.
 */
export function formatTable(rows: readonly Row[], o: TableOptions): string[] {
  const sorted = sortRows(rows, o.sort)
  const width = o.columns ?? Infinity
  const totalCpu = rows.reduce((s, r) => s + r.cpuPercent, 0)
  const totalRuns = rows.reduce((s, r) => s + r.runsPerSec, 0)
  const columns = columnsFor(rows)
  const lines = [
    `bpfkit top${o.scope ? ` (${o.scope})` : ''}: ${rows.length} prog${rows.length === 1 ? '' : 's'}  ${formatRate(totalRuns)} runs/s  CPU ${totalCpu.toFixed(2)}%  every ${(o.intervalMs / 1000).toFixed(2)}s  sort ${o.sort}`,
  ]
  if (o.hint) lines.push(o.hint)
  lines.push(columns.map((c) => fit((c.key === o.sort ? '*' : '') + c.title, c.width, c.right)).join(' '))
  const room = o.rows === undefined ? sorted.length : Math.max(0, o.rows - lines.length - 1)
  for (const r of sorted.slice(0, room)) lines.push(columns.map((c) => fit(c.cell(r), c.width, c.right)).join(' '))
  if (sorted.length > room) lines.push(`... ${sorted.length - room} more`)
  return lines.map((l) => (l.length > width ? l.slice(0, width) : l))
}

/** One sample as `--json` streams it: a line of JSON, counters as decimal strings. */
export function sampleJson(rows: readonly Row[], o: { sort: SortKey; intervalMs: number; time: Date }): Record<string, unknown> {
  return {
    time: o.time.toISOString(),
    intervalMs: Math.round(o.intervalMs * 1000) / 1000,
    programs: sortRows(rows, o.sort).map((r) => ({
      id: r.id, type: r.type, name: r.name,
      runsPerSec: r.runsPerSec, runTimeNsPerSec: r.runTimeNsPerSec, avgNs: r.avgNs, cpuPercent: r.cpuPercent,
      runCount: r.runCount.toString(), runTimeNs: r.runTimeNs.toString(),
    })),
  }
}
