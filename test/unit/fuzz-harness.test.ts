// The fuzz harness itself (scripts/fuzz): run against a target with defects
// planted at known cases (test/fixtures/fuzz/faulty-target.cjs), it must
// catch each kind, pin it to the right case (bisecting a crash that needs an
// earlier case), and write reproducers that reproduce with plain `node`.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = join(__dirname, '..', '..')
const main = join(root, 'scripts/fuzz/main.cjs')
const fixture = join(root, 'test/fixtures/fuzz/faulty-target.cjs')
const out = mkdtempSync(join(tmpdir(), 'fuzz-harness-test-'))

interface Finding { kind: string; index: number; cases: number[]; reproducer?: string; how?: string; fds?: string[]; message?: string }
interface Summary { cases: number; crashes: number; hangs: number; leaks: number; 'internal-messages': number; findings: Finding[] }

function fuzz(...args: string[]): { status: number | null; stdout: string; summary: Summary } {
  const r = spawnSync(process.execPath, [main, '--target', fixture, '--seed', '5', '--timeout', '1000', '--jobs', '1', '--out', out, '--json', ...args], { encoding: 'utf8', timeout: 60_000 })
  const last = r.stdout.trim().split('\n').pop() ?? ''
  return { status: r.status, stdout: r.stdout, summary: JSON.parse(last) as Summary }
}

// TMPDIR inside `out`: a reproducer that crashes (as it should here) cannot remove its harness's directory.
const node = (file: string) => spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TMPDIR: out } })

afterAll(() => rmSync(out, { recursive: true, force: true }))

describe('npm run fuzz harness', () => {
  const run = fuzz('--cases', '16', '--batch', '16')
  const { summary } = run
  const one = (kind: string, index: number) => {
    const found = summary.findings.filter((f) => f.kind === kind && f.index === index)
    expect(found, `${kind} at case ${index} in ${run.stdout}`).toHaveLength(1)
    return found[0]
  }

  it('counts every kind of failure and exits non-zero', () => {
    expect(run.status).toBe(1)
    expect(summary).toMatchObject({ cases: 16, crashes: 2, hangs: 1, leaks: 1, 'internal-messages': 1 })
    expect(run.stdout).toContain('cases 16, crashes 2, hangs 1, leaks 1, internal-messages 1')
  })

  it('pins a crash to its case in a batch of 16, and the reproducer crashes the same way', () => {
    const crash = one('crash', 7)
    expect(crash.how).toBe('signal SIGSEGV')
    expect(crash.cases).toEqual([7])
    const r = node(crash.reproducer!)
    expect(r.signal).toBe('SIGSEGV')
  })

  it('bisects a crash that needs an earlier case to just the cases it needs', () => {
    const crash = one('crash', 13)
    // Case 10 arms it, 11 and 12 are not needed.
    expect(crash.cases).toEqual([10, 13])
    expect(node(crash.reproducer!).signal).toBe('SIGSEGV')
  })

  it('reports a leaked fd with what it refers to, and the reproducer shows it', () => {
    const leak = one('leak', 3)
    expect(leak.fds).toEqual([expect.stringMatching(/^\d+ -> \/dev\/null$/)])
    const r = node(leak.reproducer!)
    expect(r.status).toBe(1)
    expect(r.stdout).toMatch(/case 3: leaked fds: \d+ -> \/dev\/null/)
  })

  it('reports a JavaScript-internal message and a hang at their cases', () => {
    expect(one('internal-message', 5).message).toMatch(/Cannot read properties of null/)
    one('hang', 9)
    expect(existsSync(one('hang', 9).reproducer!)).toBe(true)
    expect(readFileSync(one('hang', 9).reproducer!, 'utf8')).toContain('await new Promise(() => {})')
  })

  it('passes cases without planted defects: exit 0, all counts 0', () => {
    const clean = fuzz('--cases', '3')
    expect(clean.status).toBe(0)
    expect(clean.summary).toMatchObject({ cases: 3, crashes: 0, hangs: 0, leaks: 0, 'internal-messages': 0 })
  })

  it('generates cases that compile, for every real target', () => {
    const { loadTarget, caseSource, compile } = require('../../scripts/fuzz/case.cjs') as {
      loadTarget(t: string): unknown; caseSource(t: unknown, root: string, seed: number, i: number): string; compile(src: string): unknown
    }
    for (const name of ['addon', 'api']) {
      const target = loadTarget(name)
      const broken: string[] = []
      for (let i = 0; i < 1500; i++) {
        const src = caseSource(target, root, 7, i)
        try {
          compile(src)
        } catch (e) {
          broken.push(`${name} case ${i}: ${(e as Error).message}`)
        }
      }
      expect(broken).toEqual([])
    }
  })

  it('is deterministic by seed: the same seed gives the same case source', () => {
    const { loadTarget, caseSource } = require('../../scripts/fuzz/case.cjs') as {
      loadTarget(t: string): unknown; caseSource(t: unknown, root: string, seed: number, i: number): string
    }
    const api = loadTarget('api')
    const a = [0, 1, 2].map((i) => caseSource(api, root, 42, i))
    expect([0, 1, 2].map((i) => caseSource(api, root, 42, i))).toEqual(a)
    expect(caseSource(api, root, 43, 0)).not.toEqual(a[0])
  })
})
