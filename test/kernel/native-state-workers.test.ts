// The native layer's state is per Node environment (issue 11 #2): BpfMaps used
// from four worker_threads at once, and a worker that exits with a map open.
// Each case runs in a child process, so a crash is a failed test, not a
// crashed test runner.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

const fixtures = join(__dirname, '..', 'fixtures', 'native')

function runFixture(name: string, args: string[] = []) {
  const r = spawnSync(process.execPath, [join(fixtures, name), ...args], { encoding: 'utf8', timeout: 120_000 })
  return { status: r.status, signal: r.signal, stderr: r.stderr, out: r.stdout.trim() ? JSON.parse(r.stdout.trim().split('\n').pop() as string) : undefined }
}

test('four workers creating, using and closing maps at once: no crash, every result right, no fd left', () => {
  // Before per-environment state, the shared slot table and size cache
  // crashed this within a few hundred rounds (SIGSEGV).
  const r = runFixture('map-workers.cjs', ['1000'])
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  expect(r.out.results).toEqual([0, 1, 2, 3].map((id) => ({ id, ops: 16_000, wrong: 0 })))
  expect(r.out.left).toEqual([])
}, 150_000)

test('the addon works in a worker, and a terminated worker leaves no fd of its maps open', () => {
  const r = runFixture('worker-exit.cjs')
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  // While running: the map's Fd and its op slot's own dup. After termination
  // (no finalizers run): neither, closed with the worker's environment.
  expect(r.out).toEqual({ code: 1, value: 42, whileRunning: 2, afterExit: 0 })
})

test('workers terminated with map batches in flight: the process survives and the batches\' dups are closed', () => {
  const r = runFixture('batch-teardown.cjs')
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  expect(r.out).toEqual({ exits: 8, inFlightLeft: 0 })
})
