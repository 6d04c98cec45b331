#!/usr/bin/env node
// The bpfkit command line.
import { runList, UsageError } from './list.js'
import { runDemo } from './demo.js'
import { runGenTypes } from './gen-types.js'
import { runGuard } from './guard.js'
import { runPolicy } from './policy.js'

const usage = `usage: bpfkit <command>

  list [progs|maps|links|btf] [--json]   show loaded BPF objects (needs root)
  gen types <obj.o> [--name N]           TypeScript types for a clang-built object's programs, maps and globals
  policy check <obj.o> --policy <p.json> [--json]   check an object's programs against a capability policy (exit 1 on violations)
  policy helpers|kfuncs [--prog-type T] [--json]    what this kernel offers (to type T), to write a policy
  guard start|stop [--pin DIR]           start the guard (BPF LSM: the kernel enforces tenants' policies), pinned at DIR; or stop it
  guard status|events [--pin DIR] [--json]   its tenants and counters, or its refusals as they happen (until Ctrl-C)
  guard tenant set NAME --policy <p.json> (--userns P|INODE | --cgroup P|ID | --token BPFFS)... [--max-maps N] [--max-bytes N] [--pin DIR] [--json]
  guard tenant remove NAME [--pin DIR]   register a tenant with the guard, or unregister it
                                         (DIR: /sys/fs/bpf/bpfkit-guard unless --pin; needs root, the bpf LSM, Linux 6.9+)
  demo                                   delegate BPF to a tenant in a user namespace, end to end (needs root, Linux 6.9+)
  help                                   this text
`

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...args] = argv
  const out = (s: string) => process.stdout.write(s + '\n')
  try {
    switch (cmd) {
      case 'list':
        return runList(args, out)
      case 'gen':
        if (args[0] !== 'types') throw new UsageError(`gen: expected 'gen types <obj.o>', got ${args.length ? `'gen ${args[0]}'` : "'gen' alone"}`)
        return runGenTypes(args.slice(1), out)
      case 'policy':
        return runPolicy(args, out)
      case 'guard':
        return await runGuard(args, out)
      case 'demo':
        if (args.length > 0) throw new UsageError(`demo takes no arguments, got ${args.join(' ')}`)
        return await runDemo(out)
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
