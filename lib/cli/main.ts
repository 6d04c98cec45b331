#!/usr/bin/env node
// The bpfkit command line.
import { HelpRequested, subcommand, UsageError } from './args.js'
import { runList } from './list.js'
import { runDemo } from './demo.js'
import { genTypesUsage, runGenTypes } from './gen-types.js'
import { runGuard } from './guard.js'
import { runFeature } from './feature.js'
import { runLoad } from './load.js'
import { runDelegate } from './delegate.js'
import { runPolicy } from './policy.js'
import { runTop } from './top.js'
import { runProg } from './prog.js'
import { runLink } from './link.js'
import { runMap } from './map.js'
import { runBtf } from './btf.js'
import { brokerSocketFor, brokerWordsFor, runBrokerCli, runBrokerDaemon, takeBrokerOption } from './broker.js'

const usage = `usage: bpfkit [--broker SOCK] <command>

  list [progs|maps|links|btf] [--json]   show loaded BPF objects (needs root)
  prog list|show PROG|dump PROG [--xlated|--jited-size]|pin PROG PATH|run PROG --data FILE [--repeat N]   programs (bpfkit prog --help)
  link list|show LINK|detach LINK        links (bpfkit link --help)
  map list|show MAP|dump MAP|lookup MAP KEY|update MAP KEY VALUE|delete MAP KEY|pin MAP PATH   maps, keys and values through BTF (bpfkit map --help)
  btf list|show BTF|dump BTF [--format raw|c]   BTF objects, their types raw or as C declarations (bpfkit btf --help)
  load OBJ.bpf.o [--pin DIR] [--attach] [--policy P] [--json]   load a clang-built object, pin it under DIR, attach by section (bpfkit load --help)
  delegate --policy P.json -- CMD [ARGS]  run CMD with BPF delegated to it (token, bpffs) by the policy; CMD's exit status (Linux 6.9+)
  feature probe [--json]                 what this kernel has: map and program types, helpers per type, attach families, token features
  gen types <obj.o> [--name N]           TypeScript types for a clang-built object's programs, maps and globals
  policy check <obj.o> --policy <p.json> [--json]   check an object's programs against a capability policy (exit 1 on violations)
  policy helpers|kfuncs [--prog-type T] [--json]    what this kernel offers (to type T), to write a policy
  guard start|stop [--pin DIR]           start the guard (BPF LSM: the kernel enforces tenants' policies), pinned at DIR; or stop it
  guard status|events [--pin DIR] [--json]   its tenants and counters, or its refusals as they happen (until Ctrl-C)
  guard tenant set NAME --policy <p.json> (--userns P|INODE | --cgroup P|ID | --token BPFFS)... [--max-maps N] [--max-bytes N] [--pin DIR] [--json]
  guard tenant remove NAME [--pin DIR]   register a tenant with the guard, or unregister it
                                         (DIR: /sys/fs/bpf/bpfkit-guard unless --pin; needs root, the bpf LSM, Linux 6.9+)
  top [--interval S] [--sort KEY] [--once | --count N] [--json]   live run counts, run time and CPU % of loaded programs (q quits)
  demo                                   delegate BPF to a tenant in a user namespace, end to end (needs root, Linux 6.9+)
  broker --config FILE [--socket PATH]   run the tenant broker in the foreground (SIGHUP reloads the config; docs/broker.md)
  broker gc --config FILE                with the broker stopped: drop what it keeps for tenants no longer in FILE
  list --by-tenant [progs|maps|links|btf] [--json]   every object with the tenant that owns it (the broker's admin, root)
  help                                   this text

 through the broker (--broker SOCK or $BPFKIT_BROKER): a tenant sees and touches only its own objects
  list [progs|maps|links|btf] [--json]   its maps, programs, links and BTF, with how each is its own (origin)
  show KIND ID [--json]                  one of them (KIND: prog, map, link, btf)
  load OBJ.o [--json]                    load a clang-built object's maps and programs (its capability policy is checked)
  attach PROG_ID ATTACH_TYPE (--cgroup REL | --xdp IF | --tcx IF | --netkit IF) [--json]
                                         attach to a cgroup below its own, or a device in its network namespace
  pin KIND ID NAME | unpin NAME          pin under its own bpffs prefix, or remove such a pin
  release KIND ID                        drop what the broker keeps for it (the object lives while fds hold it)
  dump map|prog ID [--json]              one of its maps entry by entry, or one of its programs' translated instructions
  top [...]                              top over its own programs (its policy must list the enable_stats command)
  prog|map|link|btf list, prog|map|link|btf show ID, prog|map dump ID: the same as list KIND, show KIND ID, dump KIND ID
`

/**
 * Runs one command line; resolves to the exit status: 0 done, 1 failed (the
 * error on stderr), 2 a usage error (the reason and the command's usage on
 * stderr). --help on any command prints its usage to stdout.
 */
export async function main(argv: string[]): Promise<number> {
  const out = (s: string) => process.stdout.write(s + '\n')
  try {
    const { broker, argv: [cmd, ...args] } = takeBrokerOption(argv)
    const [bcmd, bargs] = (broker ?? process.env.BPFKIT_BROKER) ? brokerWordsFor(cmd, args) ?? [cmd, args] : [cmd, args]
    const socket = brokerSocketFor(bcmd, bargs, broker, process.env)
    if (socket !== undefined) return await runBrokerCli(bcmd!, bargs, socket, out)
    switch (cmd) {
      case 'list':
        return runList(args, out)
      case 'gen':
        subcommand('gen', args[0], ['types'], genTypesUsage)
        return runGenTypes(args.slice(1), out)
      case 'policy':
        return runPolicy(args, out)
      case 'guard':
        return await runGuard(args, out)
      case 'broker':
        return await runBrokerDaemon(args, out)
      case 'prog':
        return await runProg(args, out)
      case 'link':
        return runLink(args, out)
      case 'map':
        return runMap(args, out)
      case 'btf':
        return runBtf(args, out)
      case 'top':
        return await runTop(args, out)
      case 'load':
        return await runLoad(args, out)
      case 'delegate':
        return await runDelegate(args, out)
      case 'feature':
        return runFeature(args, out)
      case 'demo':
        return await runDemo(args, out)
      case 'help':
        // `bpfkit help CMD [SUB]` is `bpfkit CMD [SUB] --help`.
        if (args.length > 0) return await main([...args, '--help'])
        process.stdout.write(usage)
        return 0
      case '--help':
      case '-h':
        process.stdout.write(usage)
        return 0
      case undefined:
        throw new UsageError('expected a command')
      default:
        throw new UsageError(cmd.startsWith('-') ? `unknown option '${cmd}' (before the command, only --broker SOCK)` : `unknown command '${cmd}'`)
    }
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(e.usage.endsWith('\n') ? e.usage : e.usage + '\n')
      return 0
    }
    if (e instanceof UsageError) {
      const text = e.usage ?? usage
      process.stderr.write(`bpfkit: ${e.message}\n${text.endsWith('\n') ? text : text + '\n'}`)
      return 2
    }
    process.stderr.write(`bpfkit: ${(e as Error).message}\n`)
    return 1
  }
}

if (require.main === module) {
  // `bpfkit ... | head`: a reader that went away ends the command quietly, as for any Unix tool.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e
    process.exit(process.exitCode ?? 0)
  })
  main(process.argv.slice(2)).then((code) => { process.exitCode = code })
}
