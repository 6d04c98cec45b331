// Inputs that used to crash or corrupt the process through the native layer
// (issue 11 #4, #9, #10). Each runs in a child process: the test checks the
// exit status and signal, then what the child saw.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

const fixtures = join(__dirname, '..', 'fixtures', 'native')

function runFixture(name: string, nodeFlags: string[] = []) {
  const r = spawnSync(process.execPath, [...nodeFlags, join(fixtures, name)], { encoding: 'utf8', timeout: 60_000 })
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  return JSON.parse(r.stdout.trim().split('\n').pop() as string)
}

test('failing map operations near the JS stack limit throw, never abort', () => {
  // Before: the error factory's own "Maximum call stack size exceeded" left a
  // C++ exception in a C callback, and the process aborted (SIGABRT).
  const seen = runFixture('stack-limit.cjs')
  const expected = { update: 'E2BIG', lookup: 'EBADF', delete: 'EBADF', nextKey: 'EBADF', lookupByFd: 'EINVAL' }
  for (const [op, code] of Object.entries(expected)) {
    // No call claimed success; away from the limit each failed with its own
    // error; near it, with the stack overflow as a RangeError.
    expect(seen[op].returned, op).toBe(0)
    expect(seen[op][code], op).toBeGreaterThan(0)
    expect(Object.keys(seen[op]).sort(), op).toEqual([code, 'RangeError', 'returned'].sort())
  }
})

test('mapUnmap refuses buffers it did not map and leaves them as they were', () => {
  // Before: a page-aligned buffer (WebAssembly memory) had its pages
  // replaced by inaccessible ones, and reading it crashed (SIGSEGV).
  const out = runFixture('unmap-foreign.cjs')
  const refused = 'TypeError: mapUnmap: buffer must be an ArrayBuffer made by mapMmap; nothing was unmapped'
  expect(out).toEqual({
    wasm: { error: refused, intact: true, length: 65536 },
    plain: { error: refused, intact: true, length: 64 },
    large: { error: refused, intact: true, length: 1 << 22 },
    shared: { error: refused, intact: true, length: 1 << 16 },
  })
})

test('a map slot keeps its buffers alive after JavaScript drops them', () => {
  // Before: the buffers were freed with their ArrayBuffers, and an update
  // through the slot inserted whatever the allocator had written there.
  const out = runFixture('slot-buffers.cjs', ['--expose-gc'])
  expect(out).toEqual({ keys: [{ keyNonZero: 0, valueNonZero: 0 }] })
})
