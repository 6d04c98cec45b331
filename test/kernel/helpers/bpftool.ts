// bpftool cross-checks: what bpfkit reports, compared with what bpftool (the
// kernel's own tool) reads for the same object. bpftool is optional for
// `npm test` (CI installs it: .ci/run), so a test asks for it through
// `bpftool(ctx)` at the point its cross-check starts: everything before runs
// on any machine, and without bpftool the rest is skipped with the reason
// "bpftool not installed", which the reporter shows. Any other failure of
// bpftool (a bad argument, a crash, output that is not JSON) fails the test.
import { execFileSync, spawnSync } from 'node:child_process'

export const bpftoolMissingReason = 'bpftool not installed'

/** Why the bpftool cross-checks cannot run here (`bpftoolMissingReason`), or undefined when bpftool is on the PATH. */
export function bpftoolMissing(): string | undefined {
  if (installed === undefined) {
    const r = spawnSync('bpftool', ['version'], { stdio: 'ignore' })
    installed = (r.error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT'
  }
  return installed ? undefined : bpftoolMissingReason
}
let installed: boolean | undefined

export interface Bpftool {
  /** bpftool's output for `args`, as text. */
  text(...args: string[]): string
  /** bpftool's `--json` output for `args`, parsed. */
  json(...args: string[]): any
}

const tool: Bpftool = {
  text: (...args) => execFileSync('bpftool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  json: (...args) => JSON.parse(tool.text(...args, '--json')),
}

/** bpftool, or (when it is not installed) skips the running test from here on with "bpftool not installed". */
export function bpftool(ctx: { skip(note?: string): never }): Bpftool {
  const why = bpftoolMissing()
  if (why !== undefined) ctx.skip(why)
  return tool
}
