#!/usr/bin/env node
// The bpfkit command line.
import { runList, UsageError } from './list.js'

const usage = `usage: bpfkit <command>

  list [progs|maps|links|btf] [--json]   show loaded BPF objects (needs root)
  help                                   this text
`

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv
  const out = (s: string) => process.stdout.write(s + '\n')
  try {
    switch (cmd) {
      case 'list':
        return runList(args, out)
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(usage)
        return cmd === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command '${cmd}'`)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bpfkit: ${e.message}\n${usage}`)
      return 2
    }
    process.stderr.write(`bpfkit: ${(e as Error).message}\n`)
    return 1
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code })
}
