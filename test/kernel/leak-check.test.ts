// The fd-leak check fails a file that leaks, naming the fd and its kind.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'

test('a test file that leaks a bpf fd fails', () => {
  const root = join(__dirname, '..', '..')
  const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(root, 'test/fixtures/vitest.config.mts')], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, BPFKIT_TRACE_FDS: '1', NO_COLOR: '1' },
    timeout: 60_000,
  })
  expect(r.status).not.toBe(0)
  const out = r.stdout + r.stderr
  expect(out).toMatch(/test file leaked fds:\s+fd \d+ \(map\)/)
  expect(out).toMatch(/leaky\.fixture\.ts/) // the stack names where it was made
})
