// Native handles are type-tagged (issue 11 #11): a ring buffer handle where
// an fd-wait handle is expected, the other way round, or any other value, is
// a TypeError naming the argument, never a reinterpreted pointer. Runs in a
// child process: before, this read garbage or crashed (SIGSEGV).
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

const fixture = join(__dirname, '..', 'fixtures', 'native-async', 'handles.cjs')

test('a handle of the wrong kind is a TypeError, and the right ones still work', () => {
  const r = spawnSync(process.execPath, [fixture], { encoding: 'utf8', timeout: 60_000 })
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  const seen = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  const notRing = { error: 'TypeError: ring must be a ring buffer handle' }
  const notWait = { error: 'TypeError: handle must be a fd wait handle' }
  expect(seen).toEqual({
    consumeWait: notRing,
    pendingWait: notRing,
    waitOnWait: notRing,
    cancelWait: notRing,
    closeWait: notRing,
    fdWaitCancelRing: notWait,
    consumeObject: notRing,
    fdWaitCancelObject: notWait,
    fdWaitCancelNumber: notWait,
    pendingRing: { returned: 0 },
    fdWaitCancel: { returned: null },
  })
})
