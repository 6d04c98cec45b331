// The command line run in-process through main(), its stdout and stderr captured.
import { main } from '../../../lib/cli/main.js'

export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const { write: stdout } = process.stdout
  const { write: stderr } = process.stderr
  process.stdout.write = ((s: string) => { out += String(s); return true }) as typeof process.stdout.write
  process.stderr.write = ((s: string) => { err += String(s); return true }) as typeof process.stderr.write
  try {
    return { code: await main(argv), out, err }
  } finally {
    process.stdout.write = stdout
    process.stderr.write = stderr
  }
}
