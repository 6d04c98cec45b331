// The first process inside the namespaces spawnDelegated makes (run by
// util-linux unshare as root of a new user and mount namespace): it asks the
// manager on fd 3 for a delegated bpffs, attaches it, and runs the program
// with LIBBPF_BPF_TOKEN_PATH set, forwarding signals and the exit status.
//
//   node tenant-init.js --mount-at <path> -- <command> [args...]
import { spawn } from 'node:child_process'
import { requestDelegation } from './tenant.js'
import { FdSocket } from './socket.js'

const failed = 125

async function main(argv: string[]): Promise<void> {
  const sep = argv.indexOf('--')
  const at = argv.indexOf('--mount-at')
  if (sep < 0 || at < 0 || at + 1 >= sep || sep + 1 >= argv.length) {
    throw new Error('usage: tenant-init --mount-at <path> -- <command> [args...]')
  }
  const mountAt = argv[at + 1]
  const [command, ...args] = argv.slice(sep + 1)
  const socket = FdSocket.from(3)
  try {
    const { mount } = await requestDelegation(socket, { mountAt })
    mount.close()
  } finally {
    socket.close()
  }
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, LIBBPF_BPF_TOKEN_PATH: mountAt } })
  const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const
  const forward = (signal: NodeJS.Signals) => child.kill(signal)
  for (const s of forwarded) process.on(s, forward)
  child.on('error', (e) => {
    process.stderr.write(`bpfkit: cannot run ${command}: ${e.message}\n`)
    process.exit(e && (e as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : 126)
  })
  child.on('exit', (code, signal) => {
    for (const s of forwarded) process.off(s, forward)
    if (signal) process.kill(process.pid, signal)
    else process.exit(code ?? failed)
  })
}

main(process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`bpfkit: delegation failed: ${e.message}\n`)
  process.exit(failed)
})
