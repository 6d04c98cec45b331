// A reporter beside vitest's default one: at the end of a run, the skipped
// tests grouped by the reason they gave (ctx.skip(note)), so a plain
// `npm test` says why tests were skipped ("bpftool not installed", a
// feature's probe) without --reporter verbose. Tests skipped without a
// reason are counted apart: every skip here should say why.
import type { Reporter, TestModule } from 'vitest/node'

export default class SkipReasons implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byReason = new Map<string, number>()
    for (const mod of testModules) {
      for (const test of mod.children.allTests('skipped')) {
        const result = test.result()
        const note = (result.state === 'skipped' && result.note) || '(no reason given)'
        byReason.set(note, (byReason.get(note) ?? 0) + 1)
      }
    }
    if (byReason.size === 0) return
    const lines = [...byReason].sort((a, b) => b[1] - a[1]).map(([why, n]) => `  ${String(n).padStart(3)}  ${why}`)
    process.stdout.write(`\n skipped, by reason:\n${lines.join('\n')}\n`)
  }
}
