// `bpfkit demo` (and `npm run demo`): BPF delegation end to end. A manager
// (this process, root) delegates map_create + prog_load, hash + array maps
// and socket_filter programs to a tenant in a fresh user namespace. The
// tenant makes a token, creates a map, loads and test-runs a program, and
// meets one refusal from bpfkit and one from the kernel; the manager then
// finds the tenant's objects by ID.
import { spawn } from 'node:child_process'
import { serveDelegation } from '../delegation/index.js'
import { FdSocket } from '../ipc/index.js'
import { supportsBpfToken } from '../features/index.js'
import { builtScript } from '../delegation/scripts.js'
import * as ids from '../sys/ids.js'
import { Policy } from '../policy/index.js'

/** What the tenant tells the manager. */
export type DemoEvent =
  | { type: 'say'; text: string; detail?: string }
  | { type: 'made'; mapIds: number[]; progIds: number[] }

/** The embedded default policy. Attach type 0 is what a program without an expected attach type asks for. */
export const demoPolicy = Policy.from({
  cmds: ['map_create', 'prog_load'],
  maps: ['hash', 'array'],
  progs: ['socket_filter'],
  attachs: ['cgroup_inet_ingress'],
})

export class DemoError extends Error {}

export async function runDemo(out: (line: string) => void): Promise<number> {
  const manager = (text: string, detail?: string) => print(out, 'manager', text, detail)
  const tenantSays = (text: string, detail?: string) => print(out, 'tenant', text, detail)

  if (process.getuid?.() !== 0) {
    throw new DemoError('the demo needs root: the manager sets delegate_* options, which takes CAP_SYS_ADMIN in the initial user namespace')
  }
  if (!supportsBpfToken()) throw new DemoError('this kernel has no BPF tokens (BPF_TOKEN_CREATE needs Linux 6.9+)')

  out('bpfkit demo: delegating BPF to a tenant in a fresh user namespace')
  out('')
  manager('the policy (embedded default):', [...demoPolicy.describe(), `  (attach type 0, cgroup_inet_ingress, is what a program loaded without an expected attach type asks for)`, `mount options: ${demoPolicy}`].join('\n'))

  const [mine, theirs] = FdSocket.pair()
  const child = spawn('unshare', ['--user', '--map-root-user', '--mount', '--', process.execPath, builtScript('cli/demo-tenant.js')], {
    stdio: ['ignore', 'inherit', 'pipe', theirs.fd],
  })
  theirs.close()
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

    let made: Extract<DemoEvent, { type: 'made' }> | undefined
    while (!made) {
      const m = await mine.receive()
      if (!m) throw new DemoError('the tenant hung up early')
      const event = JSON.parse(m.data.toString('utf8')) as DemoEvent
      if (event.type === 'say') tenantSays(event.text, event.detail)
      else made = event
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
    mine.close()
    child.kill('SIGKILL')
    await exited
    throw new DemoError(`${(e as Error).message}${stderr ? `\n${stderr.trimEnd()}` : ''}`)
  }
  const code = await exited
  mine.close()
  if (code !== 0) throw new DemoError(`the tenant failed (status ${code})${stderr ? `:\n${stderr.trimEnd()}` : ''}`)
  manager('released the tenant: it closed its token, map and program and exited (status 0)')
  out('')
  out('Try it with other tools: bpfkit.spawnDelegated(command, args, { policy }) runs any program this way,')
  out('with the delegated bpffs at /sys/fs/bpf and LIBBPF_BPF_TOKEN_PATH set, as systemd PrivateBPF= does.')
  return 0
}

function print(out: (line: string) => void, who: 'manager' | 'tenant', text: string, detail?: string): void {
  const label = who === 'manager' ? 'manager │ ' : 'tenant  │ '
  const pad = '        │   '
  out(label + text)
  if (detail) for (const line of detail.split('\n')) out(pad + line)
}
