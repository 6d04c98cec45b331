// `bpfkit top`: loaded programs' run counts and run time per second, live,
// as bpftop shows them. The kernel counts only while someone holds a
// BPF_ENABLE_STATS fd, so top holds one for exactly its own lifetime (on the
// host: enableStats(); through the broker: the enable_stats request, which
// the broker releases when the connection closes) and lets go on every way
// out: q, Ctrl-C, SIGINT, SIGTERM, SIGHUP, a closed pipe, an error.
//   top [--interval S] [--sort KEY] [--once | --count N] [--json]
// In a terminal it redraws every interval and reads keys; otherwise (or with
// --once/--count) it prints tables one after another; --json streams one
// JSON sample per line.
import { setTimeout as sleep } from 'node:timers/promises'
import type { BrokerClient } from '../broker/client.js'
import type { ObjectView } from '../broker/protocol.js'
import { enableStats } from '../prog/program.js'
import * as ids from '../sys/ids.js'
import type { Fd } from '../sys/index.js'
import { integerArg, parseCommand, toJson, UsageError, type Out } from './args.js'
import { formatTable, rates, sampleJson, sortByKey, sortKeys, type ProgCounters, type Row, type Sample, type SortKey } from './top-table.js'

export const topUsage = `usage: bpfkit [--broker SOCK] top [--interval SECONDS] [--sort KEY] [--once | --count N] [--json]

  A live table of loaded programs: run count and run time per second,
  average ns per run, CPU % (run time / wall time; 100 is one CPU), sorted
  by CPU. Kernel statistics (BPF_ENABLE_STATS) are on while top runs, and
  off again when it exits (unless something else holds them on).

  --interval SECONDS   time between samples (default 1; 0.1 to 3600)
  --sort KEY           cpu (default), runs, time, avg, id, name or type
  --once               one table (two samples an interval apart), then exit
  --count N            N tables (or JSON samples), then exit
  --json               one JSON object per line per interval: { time, intervalMs, programs: [...] }

  In a terminal: c cpu, r runs, t time, a avg, i id, n name, y type sort; q or Ctrl-C quits.
  Without a terminal (or with --once/--count) tables are printed one after another.
  Through the broker (--broker SOCK): only the tenant's own programs; the broker
  turns statistics on for the connection (the tenant's policy must list the
  'enable_stats' command).
`

const topOptions = {
  interval: { type: 'string' },
  sort: { type: 'string' },
  once: { type: 'boolean' },
  count: { type: 'string' },
  json: { type: 'boolean' },
} as const

export interface TopCommand {
  intervalMs: number
  sort: SortKey
  /** Samples to print before exiting; undefined: until stopped. */
  count: number | undefined
  json: boolean
}

/** top's command line. Errors: UsageError (exit 2), HelpRequested. */
export function parseTopArgs(args: readonly string[]): TopCommand {
  const { values } = parseCommand({ name: 'top', usage: topUsage, options: topOptions }, args)
  let intervalMs = 1000
  if (values.interval !== undefined) {
    const s = Number(values.interval)
    if (!/^\d+(\.\d+)?$/.test(values.interval) || s < 0.1 || s > 3600) {
      throw new UsageError(`top: --interval must be a number of seconds from 0.1 to 3600, got '${values.interval}'`, topUsage)
    }
    intervalMs = s * 1000
  }
  const sort = values.sort ?? 'cpu'
  if (!(sortKeys as readonly string[]).includes(sort)) throw new UsageError(`top: --sort must be one of ${sortKeys.join(', ')}, got '${sort}'`, topUsage)
  if (values.once && values.count !== undefined) throw new UsageError('top: --once and --count exclude each other (--once is --count 1)', topUsage)
  let count: number | undefined = values.once ? 1 : undefined
  if (values.count !== undefined) {
    try {
      count = integerArg('top', '--count', values.count, 1)
    } catch (e) {
      throw new UsageError((e as Error).message, topUsage)
    }
  }
  return { intervalMs, sort: sort as SortKey, count, json: values.json ?? false }
}

/** Where the counters come from, and what keeps the kernel counting. */
export interface TopSource {
  /** 'tenant a': whose programs these are, for the title. */
  scope?: string
  sample(): Promise<ProgCounters[]>
  /** Lets go of the statistics (closing twice is a no-op). */
  close(): void
}

const countersOf = (p: { id: number; type: string; name: string; loadTime: bigint; runTimeNs: bigint; runCount: bigint }): ProgCounters => ({
  id: p.id, type: p.type, name: p.name, loadTime: p.loadTime, runTimeNs: p.runTimeNs, runCount: p.runCount,
})

/** Every program on the host (ID walk) with statistics on through our own fd. Root (CAP_SYS_ADMIN). */
export function hostSource(): TopSource {
  let stats: Fd
  try {
    stats = enableStats()
  } catch (e) {
    const code = (e as { code?: string }).code
    throw new Error(`top: cannot turn BPF run-time statistics on (BPF_ENABLE_STATS): ${(e as Error).message}${code === 'EPERM' ? ' (needs CAP_SYS_ADMIN; in a container, use --broker)' : ''}`)
  }
  return {
    sample: async () => [...ids.programs()].map(countersOf),
    close: () => stats.close(),
  }
}

// A broker view's wire info back to counters (bigints travel as decimal strings).
function countersOfView(v: ObjectView): ProgCounters {
  const big = (x: unknown): bigint => (typeof x === 'string' && /^\d+$/.test(x) ? BigInt(x) : typeof x === 'number' ? BigInt(x) : 0n)
  const i = v.info
  return { id: v.id, type: typeof i.type === 'string' ? i.type : 'unknown', name: v.name, loadTime: big(i.loadTime), runTimeNs: big(i.runTimeNs), runCount: big(i.runCount) }
}

/**
 * The tenant's own programs through the broker (the admin's: every one),
 * statistics on for as long as this connection lives: close() closes it.
 */
export async function brokerSource(client: BrokerClient): Promise<TopSource> {
  await client.enableStats()
  return {
    scope: client.admin ? 'admin, every program' : `tenant ${client.tenant}`,
    sample: async () => {
      const views = client.admin ? await client.listAll({ kinds: ['prog'] }) : await client.list({ kinds: ['prog'] })
      return views.filter((v) => v.kind === 'prog').map(countersOfView)
    },
    close: () => client.close(),
  }
}

async function take(source: TopSource): Promise<Sample> {
  const at = process.hrtime.bigint()
  return { at, progs: await source.sample() }
}

const hint = 'keys: c cpu  r runs  t time  a avg  i id  n name  y type  q quit'

/**
 * Runs top over `source` until `count` samples were shown or it is stopped;
 * takes the source over (closes it). Resolves to the exit status.
 */
export async function runTopOn(source: TopSource, c: TopCommand, out: Out): Promise<number> {
  const stop = new AbortController()
  const onSignal = () => stop.abort()
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const s of signals) process.on(s, onSignal)
  // A reader that goes away (`| head`) ends top, not the process with an EPIPE.
  const onOutError = () => stop.abort()
  process.stdout.on('error', onOutError)
  const live = !c.json && c.count === undefined && process.stdout.isTTY === true && process.stdin.isTTY === true
  const screen = live ? new Screen(stop, c.sort) : undefined
  try {
    screen?.open()
    let prev = await take(source)
    for (let shown = 0; c.count === undefined || shown < c.count; shown++) {
      try {
        await sleep(c.intervalMs, undefined, { signal: stop.signal })
      } catch {
        break // stopped
      }
      const cur = await take(source)
      const rows = rates(prev, cur)
      const intervalMs = Number(cur.at - prev.at) / 1e6
      prev = cur
      if (stop.signal.aborted) break
      if (c.json) out(toJson(sampleJson(rows, { sort: c.sort, intervalMs, time: new Date() }), 0))
      else if (screen) screen.show(rows, intervalMs, source.scope)
      else {
        if (shown > 0) out('')
        for (const line of formatTable(rows, { sort: c.sort, intervalMs, scope: source.scope })) out(line)
      }
    }
    return 0
  } finally {
    screen?.close()
    source.close()
    for (const s of signals) process.off(s, onSignal)
    process.stdout.off('error', onOutError)
  }
}

/**
 * The live table on a terminal: the alternate screen, keys read raw (so
 * Ctrl-C arrives as a key), redrawn every sample, on a sort key and on a
 * resize. close() gives the terminal back as it was.
 */
class Screen {
  #sort: SortKey
  #last: { rows: Row[]; intervalMs: number; scope?: string } | undefined
  readonly #stop: AbortController
  #opened = false
  readonly #onKey = (data: Buffer) => this.#key(data.toString('latin1'))
  readonly #onResize = () => this.#draw()

  constructor(stop: AbortController, sort: SortKey) {
    this.#stop = stop
    this.#sort = sort
  }

  open(): void {
    this.#opened = true
    process.stdin.setRawMode(true)
    process.stdin.on('data', this.#onKey)
    process.stdin.resume()
    process.stdout.on('resize', this.#onResize)
    // Alternate screen, cursor hidden.
    process.stdout.write('\x1b[?1049h\x1b[?25l')
    this.#paint(['bpfkit top: sampling...', hint])
  }

  show(rows: Row[], intervalMs: number, scope?: string): void {
    this.#last = { rows, intervalMs, scope }
    this.#draw()
  }

  #key(keys: string): void {
    for (const k of keys) {
      if (k === 'q' || k === 'Q' || k === '\x03' || k === '\x04') {
        this.#stop.abort()
        return
      }
      const sort = sortByKey[k.toLowerCase()]
      if (sort !== undefined && sort !== this.#sort) {
        this.#sort = sort
        this.#draw()
      }
    }
  }

  #draw(): void {
    if (!this.#last || this.#stop.signal.aborted) return
    const { rows, intervalMs, scope } = this.#last
    this.#paint(formatTable(rows, { sort: this.#sort, intervalMs, scope, hint, columns: process.stdout.columns, rows: process.stdout.rows }))
  }

  #paint(lines: string[]): void {
    // Home, each line cleared to its end, the rest of the screen cleared.
    process.stdout.write('\x1b[H' + lines.map((l) => l + '\x1b[K').join('\n') + '\n\x1b[J')
  }

  close(): void {
    if (!this.#opened) return
    this.#opened = false
    process.stdin.off('data', this.#onKey)
    process.stdout.off('resize', this.#onResize)
    try {
      process.stdin.setRawMode(false)
    } catch {
      // the terminal is gone (SIGHUP)
    }
    process.stdin.pause()
    process.stdout.write('\x1b[?25h\x1b[?1049l')
  }
}

/** `bpfkit top ...` on the host (through the broker: lib/cli/broker.ts). */
export async function runTop(args: readonly string[], out: Out): Promise<number> {
  // Arguments first: --help or a usage error must not turn statistics on.
  const command = parseTopArgs(args)
  return runTopOn(hostSource(), command, out)
}
