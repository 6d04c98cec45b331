// spawnDelegated: run a program with BPF delegated to it, the way systemd's
// PrivateBPF= does: new user and mount namespaces, a delegated bpffs at
// /sys/fs/bpf and LIBBPF_BPF_TOKEN_PATH pointing at it, so that programs
// built on libbpf (1.5+) and bpfkit's BpfToken.fromEnv() find their token.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { Policy, type PolicyLike } from '../policy/index.js'
import { serveDelegation } from './manager.js'
import { builtScript } from './scripts.js'
import { FdSocket } from '../ipc/socket.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { stringArg } from './args.js'

export interface SpawnDelegatedOptions {
  policy: PolicyLike
  /** Where the tenant sees its delegated bpffs. Default /sys/fs/bpf. */
  mountAt?: string
  /** stdin, stdout, stderr of the program (Node's forms). Default 'inherit'. */
  stdio?: 'inherit' | 'pipe' | 'ignore' | readonly ('inherit' | 'pipe' | 'ignore' | number)[]
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Permission bits of the bpffs root. */
  mode?: number
  /** The util-linux unshare binary. Default 'unshare' on PATH. */
  unshare?: string
}

export interface DelegatedProcess extends ChildProcess {
  /** Settles when the delegation was granted (with the policy) or failed. */
  readonly delegated: Promise<Policy>
}

/** Exit status of the helper when delegation fails before the program starts. */
export const delegationFailedStatus = 125

/**
 * Runs `command` in new user and mount namespaces, as root there, with a
 * bpffs delegated by `policy` attached at /sys/fs/bpf (or `mountAt`) and
 * LIBBPF_BPF_TOKEN_PATH set to it. Returns the child process (a small
 * bpfkit helper that sets the namespace up and then runs `command`,
 * forwarding signals and its exit status); `delegated` tells when the
 * delegation was granted.
 *
 * Privileges: CAP_SYS_ADMIN in the initial user namespace (root). Linux 6.9+,
 * util-linux unshare. If delegation fails, the child exits with status 125
 * and says why on its stderr, and `delegated` rejects with the cause; if
 * the helper cannot start at all (no unshare), `delegated` rejects with the
 * spawn error (ENOENT) and the child emits no unhandled 'error'.
 */
export function spawnDelegated(command: string, args: readonly string[], options: SpawnDelegatedOptions): DelegatedProcess {
  checkOptions('spawnDelegated', options, ['policy', 'mountAt', 'stdio', 'env', 'cwd', 'mode', 'unshare'], {
    required: true,
    types: { mountAt: 'string', stdio: ['string', 'object'], env: 'object', cwd: 'string', mode: 'number', unshare: 'string' },
  })
  stringArg('spawnDelegated', 'command', command)
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new TypeError(`spawnDelegated: args must be an array of strings, got ${Array.isArray(args) ? 'an array with other values' : describeValue(args)}`)
  }
  const policy = Policy.from(options.policy)
  const mountAt = options.mountAt ?? '/sys/fs/bpf'
  const stdio = options.stdio ?? 'inherit'
  const std: StdioOptions = typeof stdio === 'string' ? [stdio, stdio, stdio] : [...stdio].slice(0, 3)
  const [mine, theirs] = FdSocket.pair()
  let child: ChildProcess
  try {
    child = spawn(
      options.unshare ?? 'unshare',
      ['--user', '--map-root-user', '--mount', '--propagation', 'private', '--',
        process.execPath, builtScript('delegation/tenant-init.js'), '--mount-at', mountAt, '--', command, ...args],
      { stdio: [...(std as unknown[]), theirs.fd] as StdioOptions, env: options.env ?? process.env, cwd: options.cwd },
    )
  } catch (e) {
    mine.close()
    throw e
  } finally {
    theirs.close()
  }
  // A helper that cannot start (no unshare binary) emits 'error' and never
  // exits: without a listener that would crash the process, and the
  // delegation would wait forever. It ends the delegation with that error.
  // (The helper's end of the socket is closed here already, so the
  // delegation sees the peer gone first: the spawn's outcome decides.)
  const spawned = new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined))
    // 'on', not 'once': a later error (a failed kill) must not crash the process either.
    child.on('error', (e) => {
      mine.close()
      resolve(e)
    })
  })
  const delegated = serveDelegation(mine, policy, { mountAt, mode: options.mode })
    .catch(async (e) => { throw (await spawned) ?? e })
    .finally(() => mine.close())
  // Awaiting it is optional: keep an unobserved failure from crashing the process.
  delegated.catch(() => {})
  child.once('exit', () => mine.close())
  return Object.assign(child, { delegated })
}
