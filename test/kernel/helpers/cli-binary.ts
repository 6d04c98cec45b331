// The real bpfkit binary (dist/cli/main.js, built by the test setup) run as
// a child process, as a person runs it: its exit code, stdout and stderr.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect } from 'vitest'
import { repoRoot } from './raw.js'

export const cliPath = join(repoRoot, 'dist/cli/main.js')

/** `bpfkit ARGS` (stdout up to 1 GiB: a dump of the kernel's BTF is tens of megabytes). */
export function bpfkit(...args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 })
}

/** `bpfkit ARGS`'s stdout; it must exit 0 with nothing on stderr. */
export function bpfkitOut(...args: string[]): string {
  const r = bpfkit(...args)
  if (r.status !== 0) throw new Error(`bpfkit ${args.join(' ')}: exit ${r.status}: ${r.stderr}`)
  expect(r.stderr).toBe('')
  return r.stdout
}

/** `bpfkit ARGS --json`, parsed; it must exit 0 with nothing on stderr (no progress noise into a pipe). */
export function bpfkitJson(...args: string[]): any {
  return JSON.parse(bpfkitOut(...args, '--json'))
}
