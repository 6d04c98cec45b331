// Async calls hold dups of the fds they name (issue 11 #8, programs part):
// closing a program, or a map its instructions reference, while the call
// waits for the threadpool, and letting a new object take the number, must
// not redirect the call. Runs in a child process with one threadpool thread,
// kept busy so the call surely runs after the swap.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

const fixture = join(__dirname, '..', 'fixtures', 'native-async', 'async-fds.cjs')

test('progTestRun and progLoad reach the objects their fds named when they were called', () => {
  const r = spawnSync(process.execPath, [fixture], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
  })
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  // The swap happened (the new object got the old number)...
  expect(out.testRun.reused).toBe(true)
  expect(out.loadWithMap.reused).toBe(true)
  // ...and the calls still used the originals. Before: retval 2 (the other
  // program ran) and the program used the second map.
  expect(out.testRun.retval).toBe(1)
  expect(out.loadWithMap).toMatchObject({ usedFirst: true, usedSecond: false })
  // A map fd that is not open when the call is made: EBADF at once, naming the instruction.
  expect(out.closedBeforeCall).toMatchObject({ name: 'BpfError', code: 'EBADF', syscall: 'bpf' })
  expect(out.closedBeforeCall.message).toMatch(/^prog_load: EBADF \(insns\[0\] map fd \d+ is not open\)/)
})
