// The real fuzz targets still fit the API and the addon: a short fixed-seed
// run of each executes every case (none lost to a broken child), skips few
// at setup (a setup that fails means the generator drifted from the API),
// and knows every native function. Findings are npm run fuzz's business;
// this only keeps the campaign meaningful.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, it } from 'vitest'
import { havePeerPidfd } from '../../lib/features/index.js'
import { requireFeature } from './helpers/requires.js'

const root = join(__dirname, '..', '..')
const out = mkdtempSync(join(tmpdir(), 'fuzz-targets-test-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

// The broker needs pidfds of socket peers (6.5); older kernels skip its target, saying so.
const brokerWhy = requireFeature(havePeerPidfd)

function runsWell(target: string): void {
  const r = spawnSync(process.execPath, [join(root, 'scripts/fuzz/main.cjs'), '--target', target, '--seed', '3', '--cases', '80', '--out', out, '--json'], { encoding: 'utf8', timeout: 120_000 })
  expect(r.stderr).toBe('')
  const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { cases: number; skipped: number; skipReasons: Record<string, number> }
  expect(summary.cases).toBe(80)
  expect(summary.skipped, JSON.stringify(summary.skipReasons)).toBeLessThanOrEqual(8)
  expect(r.stdout).not.toContain('not fuzzed')
}

it.each(['addon', 'api', 'collection'])('%s: 80 cases run, few skipped, every native function known', (target) => runsWell(target), 130_000)

it('broker: 80 cases run, few skipped', (ctx) => {
  if (brokerWhy !== undefined) ctx.skip(brokerWhy)
  runsWell('broker')
}, 130_000)
