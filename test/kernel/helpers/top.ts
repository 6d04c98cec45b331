// What the `bpfkit top` tests share: a program of the test's own kept
// running (BPF_PROG_TEST_RUN in a loop: the kernel counts those runs like
// any other while statistics are on), the real binary run as a child, and
// who on the host holds statistics on (an fd on anon_inode:bpf-stats).
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { BpfProgram } from '../../../lib/prog/program.js'
import { repoRoot } from './raw.js'

export const cli = join(repoRoot, 'dist/cli/main.js')

/** How much slower this machine runs JavaScript than the host the time limits were set on (test:vm sets 20 under emulation). */
export const SLOW = Math.max(1, Number(process.env.BPFKIT_TEST_SLOWDOWN ?? '1'))

/** Runs `prog` (repeat runs per test run) until the returned stop() is awaited. */
export function keepRunning(prog: BpfProgram, repeat = 200): () => Promise<void> {
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      await prog.testRun({ data: new Uint8Array(64), repeat })
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  return async () => {
    stopped = true
    await loop
  }
}

/** The binary with `args`, run to its end without a terminal (stdin closed); the test's event loop keeps going meanwhile. */
export function runBinary(args: readonly string[], timeoutMs = 45_000 * SLOW): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })
}

/** The fds of process `pid` that hold BPF statistics on. */
export function statsFdsOf(pid: number | string): number[] {
  const fds: number[] = []
  let entries: string[]
  try {
    entries = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return fds // gone (or a kernel thread)
  }
  for (const fd of entries) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:bpf-stats') fds.push(Number(fd))
    } catch {
      // closed meanwhile
    }
  }
  return fds
}

/** Processes on the host that hold statistics on, and whether the sysctl turns them on for everyone. */
export function statsHolders(): { pids: number[]; sysctl: boolean } {
  const pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => statsFdsOf(pid).length > 0).map(Number)
  let sysctl = false
  try {
    sysctl = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() !== '0'
  } catch {
    // no such sysctl: nothing turns them on but fds
  }
  return { pids, sysctl }
}

/** The numbers of one program's row in a `bpfkit top` table, or undefined when it has none. */
export function rowOf(table: string, id: number): { type: string; name: string; runsPerSec: number; avg: string; cpu: number } | undefined {
  const line = table.split('\n').find((l) => l.trimStart().startsWith(`${id} `))
  if (!line) return undefined
  const [, type, name, runs, , avg, cpu] = line.trim().split(/\s+/)
  return { type, name, runsPerSec: Number(runs), avg, cpu: Number(cpu) }
}
