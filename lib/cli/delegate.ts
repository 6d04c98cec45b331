// `bpfkit delegate --policy P.json [--mount-at DIR] [--mode OCTAL] -- CMD ARGS`:
// spawnDelegated from the shell, as systemd's PrivateBPF= would run a
// service: CMD runs as root of new user and mount namespaces with a bpffs
// delegated by the policy and LIBBPF_BPF_TOKEN_PATH pointing at it. bpfkit
// exits with CMD's status (128 + the signal's number when a signal ended it).
import { constants } from 'node:os'
import { spawnDelegated } from '../delegation/spawn.js'
import { haveBpfToken } from '../features/index.js'
import { Policy } from '../policy/policy.js'
import { parseCommand, UsageError, type Out } from './args.js'

export const delegateUsage = `usage: bpfkit delegate --policy P.json [--mount-at DIR] [--mode OCTAL] -- CMD [ARGS...]
  run CMD with BPF delegated to it by the policy: in new user and mount namespaces, as root there,
  with a BPF-token-capable bpffs at DIR (default /sys/fs/bpf) and LIBBPF_BPF_TOKEN_PATH set to it,
  so libbpf, bpftool, cilium/ebpf and bpfkit programs find their token; exits with CMD's status
  (125: the delegation failed, and why is on stderr). Needs root, Linux 6.9+ and util-linux unshare.
  --policy P.json  what the token delegates: cmds, maps, progs, attachs (and capability sets)
  --mount-at DIR   where CMD sees the delegated bpffs
  --mode OCTAL     permission bits of the bpffs root
  (put CMD after --, so that its own options are not taken for bpfkit's)`

export interface DelegateCommand {
  policy: string
  command: string
  args: string[]
  mountAt?: string
  mode?: number
}

const options = { policy: { type: 'string' }, 'mount-at': { type: 'string' }, mode: { type: 'string' } } as const

/** The command line after `delegate`. Errors: UsageError. */
export function parseDelegateArgs(args: readonly string[]): DelegateCommand {
  const { values, positionals } = parseCommand({ name: 'delegate', usage: delegateUsage, options, positionals: [1, Infinity], names: ['CMD'] }, args)
  if (values.policy === undefined) throw new UsageError('delegate: --policy P.json is required (what CMD may do with BPF)', delegateUsage)
  const [command, ...rest] = positionals
  const c: DelegateCommand = { policy: values.policy, command, args: rest }
  if (values['mount-at'] !== undefined) c.mountAt = values['mount-at']
  if (values.mode !== undefined) {
    if (!/^0?[0-7]{1,4}$/.test(values.mode)) throw new UsageError(`delegate: --mode must be octal permission bits such as 0700, got '${values.mode}'`, delegateUsage)
    c.mode = parseInt(values.mode, 8)
  }
  return c
}

// Signals bpfkit passes on to CMD, so that `kill <bpfkit>` ends CMD too (Ctrl-C reaches both already).
const forwarded = ['SIGTERM', 'SIGHUP', 'SIGINT'] as const

export async function runDelegate(args: readonly string[], _out: Out): Promise<number> {
  const c = parseDelegateArgs(args)
  // Read before anything starts: a bad file is its own error, with nothing spawned.
  const policy = Policy.fromFile(c.policy)
  haveBpfToken()
  const child = spawnDelegated(c.command, c.args, { policy, stdio: 'inherit', ...(c.mountAt ? { mountAt: c.mountAt } : {}), ...(c.mode !== undefined ? { mode: c.mode } : {}) })
  const forward = (signal: NodeJS.Signals) => child.kill(signal)
  for (const s of forwarded) process.on(s, forward)
  try {
    return await new Promise<number>((resolve, reject) => {
      // The helper could not start at all (no unshare on PATH): it never exits.
      child.once('error', (e) => reject(new Error(`delegate: cannot start ${(e as NodeJS.ErrnoException).path ?? 'unshare'}: ${e.message}`)))
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)))
    })
  } finally {
    for (const s of forwarded) process.off(s, forward)
  }
}
