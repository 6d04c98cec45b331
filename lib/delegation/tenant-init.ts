// The first process inside the namespaces spawnDelegated makes (run by
// util-linux unshare as root of a new user and mount namespace): it asks the
// manager on fd 3 for a delegated bpffs, attaches it, and runs the program
// with LIBBPF_BPF_TOKEN_PATH set, forwarding signals and the exit status.
//
//   node tenant-init.js --mount-at <path> -- <command> [args...]
import { spawn, type ChildProcess } from 'node:child_process'
import { requestDelegation } from './tenant.js'
import { FdSocket } from '../ipc/socket.js'

const failed = 125

const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const

// Dies the way a signal would have killed it, so the manager sees the signal.
function dieBy(signal: NodeJS.Signals): void {
  for (const s of forwarded) process.removeAllListeners(s)
  process.kill(process.pid, signal)
}

async function main(argv: string[]): Promise<void> {
  const sep = argv.indexOf('--')
  const at = argv.indexOf('--mount-at')
  if (sep < 0 || at < 0 || at + 1 >= sep || sep + 1 >= argv.length) {
    throw new Error('usage: tenant-init --mount-at <path> -- <command> [args...]')
  }
  const mountAt = argv[at + 1]
  const [command, ...args] = argv.slice(sep + 1)
  // Signals are handled from the start: one that comes while the namespace
  // is being set up stops everything before the program starts.
  let child: ChildProcess | undefined
  let early: NodeJS.Signals | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    if (child) child.kill(signal)
    else early ??= signal
  }
  for (const s of forwarded) process.on(s, onSignal)
  const socket = FdSocket.from(3)
  try {
    const { mount } = await requestDelegation(socket, { mountAt })
    mount.close()
  } finally {
    socket.close()
  }
  if (early) return dieBy(early)
  child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, LIBBPF_BPF_TOKEN_PATH: mountAt } })
  child.on('error', (e) => {
    process.stderr.write(`bpfkit: cannot run ${command}: ${e.message}\n`)
    process.exit((e as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126)
  })
  child.on('exit', (code, signal) => {
    if (signal) dieBy(signal)
    else process.exit(code ?? failed)
  })
}

main(process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`bpfkit: delegation failed: ${e.message}\n`)
  process.exit(failed)
})
