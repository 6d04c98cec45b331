// Another process of a running test tenant (helpers/broker.ts): a tenant
// fixture started in the tenant's cgroup (the shell moves itself there
// before anything runs) and its user namespace (util-linux nsenter, as
// `docker exec` joins a container), with a socket to the test on fd 3. So
// what it does is the tenant's in every way the kernel (and the guard) can
// tell: task cgroup, task user namespace, and the tokens made there.
import { spawn } from 'node:child_process'
import { FdSocket } from '../../../lib/ipc/index.js'
import type { Fd } from '../../../lib/sys/index.js'
import { tenantFixture } from './raw.js'

export interface TenantProcess {
  readonly pid: number
  /** Sends one message (JSON, fds alongside) and returns the fixture's JSON answer. */
  ask<A = unknown>(message: object, fds?: readonly (Fd | number)[]): Promise<A>
  /** Hangs up; resolves once the process is gone (killed after 5 s). */
  stop(): Promise<void>
}

/** Starts test/fixtures/tenant/<fixture>.ts in the cgroup and user namespace of the tenant whose process is `tenant.pid`. */
export async function joinTenant(tenant: { pid: number; cgroupDir: string }, fixture: string): Promise<TenantProcess> {
  const [mine, theirs] = FdSocket.pair()
  const script = 'echo $$ > "$1/cgroup.procs" && t=$2 && shift 2 && exec nsenter --user --target "$t" -- "$@"'
  const child = spawn('sh', ['-c', script, 'sh', tenant.cgroupDir, String(tenant.pid), process.execPath, tenantFixture(fixture)], {
    stdio: ['ignore', 'pipe', 'pipe', theirs.fd],
  })
  theirs.close()
  let output = ''
  child.stdout!.on('data', (d) => { output += d })
  child.stderr!.on('data', (d) => { output += d })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const gone = exited.then(() => { throw new Error(`tenant process ${child.pid} exited: ${output.trim()}`) })
  gone.catch(() => {})
  let queue: Promise<unknown> = Promise.resolve()
  const ask = <A>(message: object, fds: readonly (Fd | number)[] = []): Promise<A> => {
    const run = queue.then(async () => {
      await mine.send(Buffer.from(JSON.stringify(message)), fds)
      let m
      try {
        m = await Promise.race([mine.receive(), gone])
      } catch (e) {
        // The socket broke: most likely the process died; say what it printed.
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))])
        throw new Error(`tenant process ${child.pid}: ${(e as Error).message}; it printed: ${output.trim() || '(nothing)'}`)
      }
      if (!m) throw new Error(`tenant process ${child.pid} hung up: ${output.trim()}`)
      for (const f of m.fds) f.close()
      return JSON.parse(m.data.toString('utf8')) as A
    })
    queue = run.catch(() => {})
    return run
  }
  const stop = async () => {
    mine.close()
    const t = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(t)
  }
  return { pid: child.pid as number, ask, stop }
}
