// `bpfkit demo` (and `npm run demo`): BPF delegation end to end. A manager
// (this process, root) delegates map_create + prog_load, hash + array maps
// and socket_filter programs to a tenant in a fresh user namespace. The
// tenant makes a token, creates a map, loads and test-runs a program, and
// meets one refusal from bpfkit and one from the kernel. Listing object IDs
// is refused to it, so it asks a tenant broker the manager runs: the broker
// lists the tenant's own objects and refuses a program the tenant's
// capability policy does not allow; where the guard runs, the kernel refuses
// that program too when the tenant loads it itself, and the manager shows the
// guard's event for it. The manager then finds the tenant's objects by ID.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBroker, type Broker } from '../broker/server.js'
import { delegate, openBpffsContext, serveDelegation } from '../delegation/index.js'
import { FdSocket } from '../ipc/index.js'
import { haveBpfLsm, haveGuardHooks, supportsBpfToken } from '../features/index.js'
import { builtScript } from '../delegation/scripts.js'
import { Guard, type GuardEvent } from '../guard/index.js'
import * as ids from '../sys/ids.js'
import { NotSupportedError } from '../sys/errors.js'
import type { Fd } from '../sys/fd.js'
import { Policy } from '../policy/index.js'
import { parseCommand } from './args.js'

/** What the tenant tells the manager. */
export type DemoEvent =
  | { type: 'say'; text: string; detail?: string }
  | { type: 'made'; mapIds: number[]; progIds: number[] }

/**
 * The embedded default policy. Attach type 0 is what a program without an
 * expected attach type asks for. Inside programs, socket filters may look
 * up hash and array maps and nothing else: the broker (and the guard, where
 * it runs) refuse a program that calls any other helper.
 */
export const demoPolicy = Policy.from({
  cmds: ['map_create', 'prog_load'],
  maps: ['hash', 'array'],
  progs: ['socket_filter'],
  attachs: ['cgroup_inet_ingress'],
  capabilities: { 'demo.count': { helpers: ['map_lookup_elem'], maps: ['hash', 'array'] } },
  contexts: [{ progs: ['socket_filter'], grant: ['demo.count'] }],
})

/** What the manager tells the tenant through $BPFKIT_DEMO_GUARD: 'on' when the guard runs, else why not. */
export const guardEnv = 'BPFKIT_DEMO_GUARD'

/** Why the guard cannot run here (the probe's reason), or undefined when it can. Other probe errors are thrown. */
export function guardUnavailable(): string | undefined {
  try {
    haveGuardHooks()
    haveBpfLsm()
    return undefined
  } catch (e) {
    if (e instanceof NotSupportedError) return e.message
    throw e
  }
}

/**
 * The broker the demo runs in-process, on a socket in a temporary directory.
 * What it pins (and the guard, where it runs) lives in a bpffs of its own
 * that is never mounted anywhere: a detached mount reached through
 * /proc/self/fd, which goes away with this process, whatever way it ends,
 * so the demo leaves nothing behind on the host.
 */
interface DemoBroker {
  broker: Broker
  socket: string
  cleanup(): Promise<void>
}

async function startDemoBroker(guard: boolean): Promise<DemoBroker> {
  const context = openBpffsContext()
  let mount: Fd
  try {
    mount = delegate(Policy.from({}), context, { mode: 0o700 })
  } finally {
    context.close()
  }
  const pins = `/proc/self/fd/${mount.fd}`
  const guardPin = guard ? join(pins, 'guard') : undefined
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-demo-'))
  const cleanup = async (broker?: Broker) => {
    await broker?.close()
    if (guardPin !== undefined) {
      try {
        ;(await Guard.open(guardPin)).stop()
      } catch { /* never started */ }
    }
    mount.close()
    rmSync(dir, { recursive: true, force: true })
  }
  const socket = join(dir, 'broker.sock')
  try {
    const broker = await startBroker({
      socket, stateDir: join(dir, 'state'), pinRoot: join(pins, 'broker'), tenantPinRoot: join(pins, 'tenants'),
      tenants: [], guard: guardPin === undefined ? false : { pinPath: guardPin },
    })
    return { broker, socket, cleanup: () => cleanup(broker) }
  } catch (e) {
    await cleanup()
    throw e
  }
}

export class DemoError extends Error {}

/**
 * Collects the guard's events from now on (the manager is its only reader);
 * `stop` waits until `atLeast` have come or `ms` pass, then ends the reading
 * and returns them. Stopping twice returns the same events.
 */
function watchGuard(guard: Guard): { stop(atLeast: number, ms: number): Promise<GuardEvent[]> } {
  const ac = new AbortController()
  const seen: GuardEvent[] = []
  let wake: (() => void) | undefined
  const reading = (async () => {
    for await (const e of guard.events({ signal: ac.signal })) {
      seen.push(e)
      wake?.()
    }
  })()
  // An error of the reading is the demo's only when someone stops it and asks.
  reading.catch(() => {})
  return {
    async stop(atLeast, ms) {
      if (!ac.signal.aborted && seen.length < atLeast) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms)
          wake = () => {
            if (seen.length < atLeast) return
            clearTimeout(timer)
            resolve()
          }
        })
      }
      ac.abort()
      await reading
      return seen
    },
  }
}

export const demoUsage = `usage: bpfkit demo
  delegate BPF to a tenant in a user namespace, end to end: a token, a map, a program run, a refusal,
  the broker (and the guard where it runs) (needs root, Linux 6.9+)`

export async function runDemo(args: readonly string[], out: (line: string) => void): Promise<number> {
  parseCommand({ name: 'demo', usage: demoUsage, options: {} }, args)
  const manager = (text: string, detail?: string) => print(out, 'manager', text, detail)
  const tenantSays = (text: string, detail?: string) => print(out, 'tenant', text, detail)

  if (process.getuid?.() !== 0) {
    throw new DemoError('the demo needs root: the manager sets delegate_* options, which takes CAP_SYS_ADMIN in the initial user namespace')
  }
  if (!supportsBpfToken()) throw new DemoError('this kernel has no BPF tokens (BPF_TOKEN_CREATE needs Linux 6.9+)')

  out('bpfkit demo: delegating BPF to a tenant in a fresh user namespace')
  out('')
  manager('the policy (embedded default):', [...demoPolicy.describe(), `  (attach type 0, cgroup_inet_ingress, is what a program loaded without an expected attach type asks for)`, `mount options: ${demoPolicy}`].join('\n'))

  const noGuard = guardUnavailable()
  const demo = await startDemoBroker(noGuard === undefined)
  manager(`started a tenant broker on ${demo.socket}`,
    noGuard === undefined
      ? 'with the guard (BPF LSM) running: the kernel enforces the tenant\'s policy too'
      : `without the guard, which cannot run here: ${noGuard}`)

  const [mine, theirs] = FdSocket.pair()
  const child = spawn('unshare', ['--user', '--map-root-user', '--mount', '--', process.execPath, builtScript('cli/demo-tenant.js')], {
    stdio: ['ignore', 'inherit', 'pipe', theirs.fd],
    env: { ...process.env, BPFKIT_BROKER: demo.socket, [guardEnv]: noGuard === undefined ? 'on' : noGuard },
  })
  theirs.close()
  // The broker's own guard handle: its events tell the kernel's refusals apart from bpfkit's.
  const guardEvents = demo.broker.state.guard ? watchGuard(demo.broker.state.guard) : undefined
  let stderr = ''
  child.stderr!.on('data', (d) => { stderr += d })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  child.on('error', (e) => {
    stderr += `cannot start the tenant with util-linux unshare: ${e.message}\n`
    mine.close()
  })
  try {
    manager(`started the tenant (pid ${child.pid}) with unshare --user --map-root-user --mount:`, 'root in its own user namespace, an unprivileged user outside it')
    const granted = await serveDelegation(mine, demoPolicy)
    manager('received the bpf filesystem context the tenant opened in its namespace;',
      `set ${granted.toMountOptions().join(' ')} on it, created the bpffs and sent the mount back`)
    // The tenant is in its user namespace by now (it opened the context
    // there): the broker recognises its connections by that namespace.
    const userns = statSync(`/proc/${child.pid}/ns/user`).ino
    demo.broker.setTenant({ name: 'demo', match: { userns }, policy: demoPolicy })
    manager(`registered tenant 'demo' with the broker: any process in user namespace ${userns}, the policy above`)
    await mine.send(Buffer.from('broker'))

    let made: Extract<DemoEvent, { type: 'made' }> | undefined
    while (!made) {
      const m = await mine.receive()
      if (!m) throw new DemoError('the tenant hung up early')
      const event = JSON.parse(m.data.toString('utf8')) as DemoEvent
      if (event.type === 'say') tenantSays(event.text, event.detail)
      else made = event
    }
    if (guardEvents) {
      const events = await guardEvents.stop(1, 2000)
      manager("the guard's events, read from its ring buffer:", events.map((e) => e.message).join('\n') || '(none came)')
    }

    const mapIds = new Set(made.mapIds)
    const progIds = new Set(made.progIds)
    const rows: string[] = []
    for (const m of ids.maps()) {
      if (mapIds.has(m.id)) rows.push(`map  ${m.id}  ${m.type}  "${m.name}"  key ${m.keySize}B  value ${m.valueSize}B  max_entries ${m.maxEntries}`)
    }
    for (const p of ids.programs()) {
      if (progIds.has(p.id)) rows.push(`prog ${p.id}  ${p.type}  "${p.name}"  tag ${p.tag}  uses maps ${p.mapIds.join(', ') || '-'}`)
    }
    manager("walked the kernel's global IDs; the tenant's objects:", rows.join('\n') || '(none found)')
    await mine.send(Buffer.from('done'))
  } catch (e) {
    await guardEvents?.stop(0, 0).catch(() => {})
    mine.close()
    child.kill('SIGKILL')
    await exited
    await demo.cleanup()
    throw new DemoError(`${(e as Error).message}${stderr ? `\n${stderr.trimEnd()}` : ''}`)
  }
  const code = await exited
  mine.close()
  await demo.cleanup()
  if (code !== 0) throw new DemoError(`the tenant failed (status ${code})${stderr ? `:\n${stderr.trimEnd()}` : ''}`)
  manager('released the tenant: it closed its token, map and program and exited (status 0)')
  out('')
  out('Try it with other tools: bpfkit.spawnDelegated(command, args, { policy }) runs any program this way,')
  out('with the delegated bpffs at /sys/fs/bpf and LIBBPF_BPF_TOKEN_PATH set, as systemd PrivateBPF= does.')
  out('Run the broker for real with `bpfkit broker --config FILE` (docs/broker.md); inside a tenant,')
  out('`bpfkit --broker /run/bpfkit/broker.sock list` lists its own objects.')
  return 0
}

function print(out: (line: string) => void, who: 'manager' | 'tenant', text: string, detail?: string): void {
  const label = who === 'manager' ? 'manager │ ' : 'tenant  │ '
  const pad = '        │   '
  out(label + text)
  if (detail) for (const line of detail.split('\n')) out(pad + line)
}
