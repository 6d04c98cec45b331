// worker_threads terminated while native async work is in flight (issue 11
// #3): program loads, BTF loads, test runs and pending fd / ring buffer
// waits. Each case runs in a child process (test/fixtures/native-async/
// worker-teardown.cjs); the test checks it exited cleanly.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

const fixture = join(__dirname, '..', 'fixtures', 'native-async', 'worker-teardown.cjs')
// Under emulation (test:vm sets the slowdown) each round costs a worker start
// at 20x: fewer rounds still terminate workers mid-call, and the time limit grows.
const slowdown = Number(process.env.BPFKIT_TEST_SLOWDOWN ?? '1')
const rounds = slowdown > 1 ? 8 : 30
const limit = 120_000 * Math.max(1, slowdown / 4)

function terminateDuring(kind: string, rounds: number) {
  const r = spawnSync(process.execPath, [fixture, kind, String(rounds)], { encoding: 'utf8', timeout: limit })
  // Before: the completion threw during teardown (SIGABRT, "terminate called
  // after throwing an instance of 'Napi::Error'"), and a pending poll made
  // uv_loop_close abort ("uv loop ... has open handles").
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  return JSON.parse(r.stdout.trim().split('\n').pop() as string)
}

test.each([
  ['prog', 'program loads (accepted and refused)'],
  ['btf', 'BTF loads (accepted and refused)'],
  ['testRun', 'test runs'],
  ['waits', 'fd, FdSocket and ring buffer waits'],
  ['sync', 'sync loads, terminated mid-call'],
])('terminating workers during %s (%s) leaves the process running', (kind) => {
  expect(terminateDuring(kind, rounds)).toEqual({ kind, ended: rounds })
}, limit + 10_000)
