// `bpfkit top` through the real binary, against programs this test loads and
// keeps running: in a real terminal (a tmux server of the test's own, on its
// own socket, a pane of fixed size: the screen read back with capture-pane,
// keys sent with send-keys), and without one (--once, --json).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { BpfProgram } from '../../lib/prog/program.js'
import { bpftool } from './helpers/bpftool.js'
import { cli, keepRunning, rowOf, runBinary, SLOW, statsFdsOf, statsHolders } from './helpers/top.js'

const load = (name: string) => BpfProgram.load({ type: 'socket_filter', name, insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })

const tmuxMissing = spawnSync('tmux', ['-V'], { stdio: 'ignore' }).error ? 'tmux not installed' : undefined

/** Polls `f` until it returns something other than undefined, or fails naming `what` (and the last screen). */
async function until<T>(what: string, f: () => T | undefined, last: () => string, ms = 30_000 * SLOW): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = f()
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the screen:\n${last()}`)
    await sleep(100)
  }
}

describe('bpfkit top in a terminal (tmux)', () => {
  let dir: string
  let sock: string
  const tmux = (...args: string[]) => execFileSync('tmux', ['-S', sock, ...args], { encoding: 'utf8' })
  const screen = (t: string) => tmux('capture-pane', '-p', '-t', t)
  const lineIndex = (s: string, id: number) => s.split('\n').findIndex((l) => l.trimStart().startsWith(`${id} `))

  beforeAll(() => {
    if (tmuxMissing) return
    dir = mkdtempSync(join(tmpdir(), 'bpfkit-top-'))
    sock = join(dir, 'tmux.sock')
  })

  afterAll(() => {
    if (tmuxMissing) return
    // Our own server only (its own socket): every session of this test goes with it.
    spawnSync('tmux', ['-S', sock, 'kill-server'], { stdio: 'ignore' })
    rmSync(dir, { recursive: true, force: true })
  })

  /**
   * A detached 100x30 session running `bpfkit top ARGS` under a shell that
   * writes its exit status to a file when it ends (tmux's own pane_dead_status
   * differs between versions). Returns top's pid (the shell's child).
   */
  async function startTop(session: string, ...args: string[]): Promise<number> {
    const quote = (a: string) => `'${a}'`
    const command = `${[process.execPath, cli, 'top', ...args].map(quote).join(' ')}; echo $? > ${quote(join(dir, `${session}.status`))}`
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', session, '-x', '100', '-y', '30', command)
    // The pane stays after the shell ends, to read the screen top left behind.
    tmux('set-option', '-t', session, 'remain-on-exit', 'on')
    const shell = tmux('display', '-p', '-t', session, '#{pane_pid}').trim()
    return until('top to start', () => {
      try {
        const children = readFileSync(`/proc/${shell}/task/${shell}/children`, 'utf8').trim()
        return children === '' ? undefined : Number(children.split(' ')[0])
      } catch {
        return undefined
      }
    }, () => screen(session), 10_000 * SLOW)
  }
  /** undefined while top runs; then its exit status. */
  const exited = (session: string) => {
    try {
      const s = readFileSync(join(dir, `${session}.status`), 'utf8')
      return s.endsWith('\n') ? Number(s) : undefined
    } catch {
      return undefined
    }
  }

  test('its program\'s row moves, keys change the sort, q quits and gives the terminal back; stats were held only meanwhile', async (ctx) => {
    if (tmuxMissing) ctx.skip(tmuxMissing)
    using busy = await load('top_zbusy')
    using idle = await load('top_aidle')
    const stop = keepRunning(busy)
    let pid: number
    try {
      pid = await startTop('keys', '--interval', '0.5')
      const show = () => screen('keys')
      // The first table comes after one interval; the busy program's row shows runs.
      const first = await until('the busy program running', () => {
        const s = show()
        return (rowOf(s, busy.id)?.runsPerSec ?? 0) > 0 ? s : undefined
      }, show)
      expect(first).toMatch(/^bpfkit top: \d+ progs? .* sort cpu$/m)
      expect(first).toMatch(/^ +ID TYPE +NAME +RUNS\/S +TIME\/S +AVG NS +\*CPU%$/m)
      expect(first).toContain('keys: c cpu  r runs  t time  a avg  i id  n name  y type  q quit')
      expect(rowOf(first, busy.id)).toMatchObject({ type: 'socket_filter', name: 'top_zbusy' })
      expect(Number(rowOf(first, busy.id)!.avg)).toBeGreaterThan(0)
      expect(rowOf(first, idle.id)).toMatchObject({ name: 'top_aidle', runsPerSec: 0, avg: '-', cpu: 0 })
      // By CPU the busy one is above the idle one.
      expect(lineIndex(first, busy.id)).toBeLessThan(lineIndex(first, idle.id))
      // While it runs, top holds one statistics fd of its own.
      expect(statsFdsOf(pid)).toHaveLength(1)

      // n: by name, at once (not at the next sample): top_aidle above top_zbusy, NAME marked.
      tmux('send-keys', '-t', 'keys', 'n')
      const byName = await until('the sort by name', () => {
        const s = show()
        return /\*NAME/.test(s) ? s : undefined
      }, show, 10_000 * SLOW)
      expect(byName).toMatch(/ sort name$/m)
      expect(byName).not.toContain('*CPU%')
      expect(lineIndex(byName, idle.id)).toBeLessThan(lineIndex(byName, busy.id))
      // r: by runs per second, the busy one first again.
      tmux('send-keys', '-t', 'keys', 'r')
      const byRuns = await until('the sort by runs', () => {
        const s = show()
        return /\*RUNS\/S/.test(s) ? s : undefined
      }, show, 10_000 * SLOW)
      expect(lineIndex(byRuns, busy.id)).toBeLessThan(lineIndex(byRuns, idle.id))

      tmux('send-keys', '-t', 'keys', 'q')
      expect(await until('top to exit', () => exited('keys'), show, 10_000 * SLOW)).toBe(0)
    } finally {
      await stop()
    }
    // Gone, and the alternate screen left: the table is no longer on the pane.
    expect(existsSync(`/proc/${pid}`)).toBe(false)
    expect(screen('keys')).not.toContain('RUNS/S')

    // Statistics are off again unless something else on the host holds them on:
    // then a program that runs now is not counted.
    const before = statsHolders()
    const runsBefore = idle.info().runCount
    await idle.testRun({ data: new Uint8Array(64), repeat: 10 })
    const after = statsHolders()
    if (before.pids.length === 0 && after.pids.length === 0 && !before.sysctl && !after.sysctl) {
      expect(idle.info().runCount).toBe(runsBefore)
    }
  }, 90_000 * SLOW)

  test('Ctrl-C quits with status 0 too', async (ctx) => {
    if (tmuxMissing) ctx.skip(tmuxMissing)
    const pid = await startTop('ctrlc', '--interval', '0.2')
    const show = () => screen('ctrlc')
    await until('the first table', () => (/\*CPU%/.test(show()) ? true : undefined), show)
    expect(statsFdsOf(pid)).toHaveLength(1)
    tmux('send-keys', '-t', 'ctrlc', 'C-c')
    expect(await until('top to exit', () => exited('ctrlc'), show, 10_000 * SLOW)).toBe(0)
    expect(existsSync(`/proc/${pid}`)).toBe(false)
  }, 60_000 * SLOW)
})

describe('bpfkit top without a terminal', () => {
  let busy: BpfProgram
  let idle: BpfProgram
  let stop: () => Promise<void>

  beforeAll(async () => {
    busy = await load('top_nt_busy')
    idle = await load('top_nt_idle')
    stop = keepRunning(busy)
  })

  afterAll(async () => {
    await stop?.()
    busy?.close()
    idle?.close()
  })

  test('--once: one table, two samples an interval apart, sorted as asked', async () => {
    const r = await runBinary(['top', '--once', '--interval', '0.5', '--sort', 'id'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const lines = r.out.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^bpfkit top: \d+ progs? +\d+(\.\d)? runs\/s +CPU \d+\.\d\d% +every 0\.5\ds +sort id$/)
    expect(lines[1]).toMatch(/^ +\*ID TYPE +NAME/)
    expect(rowOf(r.out, busy.id)).toMatchObject({ type: 'socket_filter', name: 'top_nt_busy' })
    expect(rowOf(r.out, busy.id)!.runsPerSec).toBeGreaterThan(0)
    expect(rowOf(r.out, idle.id)).toMatchObject({ runsPerSec: 0, avg: '-' })
    const ids = lines.slice(2).map((l) => Number(l.trim().split(/\s+/)[0]))
    expect(ids).toEqual([...ids].sort((a, b) => a - b))
  }, 60_000 * SLOW)

  test('--json --count 2: a sample per line, counters as the kernel has them (bpftool agrees)', async (ctx) => {
    const r = await runBinary(['top', '--json', '--count', '2', '--interval', '0.4'])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const samples = r.out.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(samples).toHaveLength(2)
    type P = { id: number; name: string; runsPerSec: number; runTimeNsPerSec: number; avgNs: number | null; cpuPercent: number; runCount: string; runTimeNs: string }
    const mine = samples.map((s) => {
      expect(Object.keys(s)).toEqual(['time', 'intervalMs', 'programs'])
      expect(s.intervalMs).toBeGreaterThanOrEqual(390)
      return { busy: (s.programs as P[]).find((p) => p.id === busy.id)!, idle: (s.programs as P[]).find((p) => p.id === idle.id)! }
    })
    for (const m of mine) {
      expect(m.busy).toMatchObject({ name: 'top_nt_busy', type: 'socket_filter' })
      expect(m.busy.runsPerSec).toBeGreaterThan(0)
      expect(m.busy.avgNs).toBeGreaterThan(0)
      expect(m.busy.cpuPercent).toBeGreaterThan(0)
      // The average is run time over runs in the same interval.
      expect(m.busy.avgNs!).toBeCloseTo(m.busy.runTimeNsPerSec / m.busy.runsPerSec, 3)
      expect(m.idle).toMatchObject({ runsPerSec: 0, avgNs: null, cpuPercent: 0, runCount: '0' })
    }
    expect(BigInt(mine[1].busy.runCount)).toBeGreaterThan(BigInt(mine[0].busy.runCount))
    // Sorted by CPU, the default.
    const cpus = (samples[1].programs as P[]).map((p) => p.cpuPercent)
    expect(cpus).toEqual([...cpus].sort((a, b) => b - a))
    // The kernel's counters (bpftool reads them after top let go: they only grew meanwhile).
    const shown = bpftool(ctx).json('prog', 'show', 'id', String(busy.id))
    expect(BigInt(shown.run_cnt)).toBeGreaterThanOrEqual(BigInt(mine[1].busy.runCount))
    expect(BigInt(shown.run_time_ns)).toBeGreaterThanOrEqual(BigInt(mine[1].busy.runTimeNs))
  }, 60_000 * SLOW)

  test('without CAP_SYS_ADMIN (as nobody): exit 1, saying what it needs and where to go instead', (ctx) => {
    if (spawnSync('setpriv', ['--help'], { stdio: 'ignore' }).error) ctx.skip('setpriv (util-linux) not installed')
    const r = spawnSync('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, cli, 'top', '--once'], { encoding: 'utf8', timeout: 45_000 * SLOW })
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^bpfkit: top: cannot turn BPF run-time statistics on \(BPF_ENABLE_STATS\): .*EPERM.* \(needs CAP_SYS_ADMIN; in a container, use --broker\)\n$/)
    expect(r.status).toBe(1)
  }, 60_000 * SLOW)

  test('bad arguments exit 2 with top\'s usage; --help exits 0', async () => {
    for (const args of [['--interval', '0'], ['--sort', 'size'], ['--once', '--count', '2'], ['now']]) {
      const r = await runBinary(['top', ...args])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err).toContain('usage: bpfkit [--broker SOCK] top')
      expect(r.out).toBe('')
    }
    const help = await runBinary(['top', '--help'])
    expect(help.code).toBe(0)
    expect(help.out).toContain('--interval SECONDS')
  }, 60_000 * SLOW)
})
