// A tenant: a child process that is root of fresh user and mount namespaces
// (util-linux unshare; Node itself cannot unshare a user namespace, being
// multi-threaded), running a typed fixture file (test/fixtures/tenant/)
// against the compiled package, with a socket to the test (the manager) on
// its fd 3.
import { spawn, spawnSync } from 'node:child_process'
import { FdSocket } from '../../../lib/ipc/index.js'
import { tenantFixture } from './raw.js'

export { tenantFixture }

export interface Tenant {
  /** The manager's end of the tenant's socket. */
  socket: FdSocket
  pid: number
  /** The last JSON line the fixture printed (its report), once it exited with status 0. */
  result: Promise<any>
}

/**
 * Starts the tenant fixture test/fixtures/tenant/<name>.ts (see kit.ts there)
 * in a tenant. `R` is the type of what it reports.
 */
export function startTenantFixture<R = any>(name: string, unshareArgs: string[] = ['--mount']): Tenant & { result: Promise<R> } {
  const [mine, theirs] = FdSocket.pair()
  const child = spawn('unshare', ['--user', '--map-root-user', ...unshareArgs, process.execPath, tenantFixture(name)], {
    stdio: ['ignore', 'pipe', 'pipe', theirs.fd],
  })
  theirs.close()
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => { stdout += d })
  child.stderr!.on('data', (d) => { stderr += d })
  const timer = setTimeout(() => child.kill('SIGKILL'), 25_000)
  const result = new Promise((resolve, reject) => {
    child.on('exit', (status, signal) => {
      clearTimeout(timer)
      mine.close()
      if (status !== 0) return reject(new Error(`tenant failed (${status ?? signal}): ${stderr}`))
      const last = stdout.trim().split('\n').pop()
      resolve(last ? JSON.parse(last) : undefined)
    })
  })
  // Awaiting is up to the test; an unobserved failure must not crash the run.
  result.catch(() => {})
  return { socket: mine, pid: child.pid as number, result: result as Promise<R> }
}

/** Why util-linux cannot make a tenant's namespaces here, or undefined when it can (a probe, so tests say why they skip). */
export function userNamespacesMissing(): string | undefined {
  if (namespaces === undefined) {
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', 'true'], { encoding: 'utf8' })
    namespaces = r.status === 0 ? null
      : `unshare --user --map-root-user --mount fails here: ${r.error?.message ?? r.stderr.trim()}`
  }
  return namespaces ?? undefined
}
let namespaces: string | null | undefined

/** Whether util-linux can make the namespaces here. */
export function userNamespacesWork(): boolean {
  return userNamespacesMissing() === undefined
}
