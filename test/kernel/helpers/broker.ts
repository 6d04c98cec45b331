// A tenant broker for kernel tests, with tenants that are real peers: each
// tenant is a child process in its own user namespace (util-linux unshare)
// and its own scratch cgroup, so the broker recognises it exactly as it
// would a container. The broker itself runs in the test process, on a
// socket in a temp dir, with its registry there and its pins in a private
// bpffs; nothing of the host's is touched.
//
//   await using b = await startTestBroker({ tenants: ['a', 'b'] })
//   const a = b.tenant('a')
//   using client = await a.client()            // a BrokerClient that is tenant a
//   const map = await client.createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })
//   const raw = await a.connect()               // or a raw FdSocket connected by a's process
//
// How a connection gets the tenant's identity: the broker reads the peer's
// credentials at accept, i.e. those of the process that called connect().
// So the tenant's child connects to the broker and hands the connected
// socket to the test over its fd 3 (SCM_RIGHTS); the test then talks on it
// as the tenant (plan §4.1: a socket handed on carries its creator's
// identity). `client()` wraps that in a real BrokerClient through a small
// frame relay on a per-tenant path (`a.socketPath`): BrokerClient.connect
// only takes a path. The child can also hold fds (`hold`), so that objects
// are "held" by a tenant task for discovery.
//
// The child is a few lines of plain Node run with `node -e` (the CHILD
// string below): it needs only FdSocket from the compiled package (dist/,
// built by the suite's global setup) and does whatever the test asks, so it
// is infrastructure, not a tenant program under test.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FdSocket } from '../../../lib/ipc/index.js'
import { kernel, native, type Fd } from '../../../lib/sys/index.js'
import { asm } from '../../../lib/asm/index.js'
import type { PolicyLike } from '../../../lib/policy/index.js'
import { serveDelegation } from '../../../lib/delegation/index.js'
import { startBroker, type Broker, type BrokerOptions } from '../../../lib/broker/server.js'
import { BrokerClient } from '../../../lib/broker/client.js'
import type { BrokerConfig, TenantConfig } from '../../../lib/broker/config.js'
import { encodeFrame, protocol } from '../../../lib/broker/protocol.js'
import { decodeReply } from '../../../lib/broker/validate.js'
import type { Reply } from '../../../lib/broker/protocol.js'
import { cgroup2Root, privateBpffs } from './scratch.js'
import { repoRoot } from './raw.js'

/** A policy that lets a test tenant do the usual: hash/array maps, socket filters and cgroup skb programs, cgroup links, pins. */
export const testPolicy: PolicyLike = {
  cmds: ['map_create', 'prog_load', 'btf_load', 'link_create', 'link_detach', 'obj_pin', 'obj_get', 'map_lookup_elem', 'map_update_elem'],
  maps: ['hash', 'array', 'percpu_array', 'ringbuf', 'array_of_maps', 'hash_of_maps'],
  progs: ['socket_filter', 'cgroup_skb'],
  attachs: ['cgroup_inet_ingress', 'cgroup_inet_egress'],
}

/** What a test may set per tenant; `name` is required, the rest default as described. */
/** A cgroup_skb ingress program that passes every packet, named `name`. */
export const passIngress = (name: string) => ({
  type: 'cgroup_skb' as const, expectedAttachType: 'cgroup_inet_ingress' as const, name, license: 'GPL',
  insns: [asm.mov64Imm(asm.R0, 1), asm.exit()],
})

/** Program ids attached to a cgroup directory for cgroup_inet_ingress (PROG_QUERY: its own, not inherited ones). */
export function attachedTo(dir: string): number[] {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    return native.progQuery({ targetFd: fd, attachType: kernel.attachTypes.cgroup_inet_ingress }).progIds
  } finally {
    closeSync(fd)
  }
}

export interface TestTenantOptions extends Partial<Omit<TenantConfig, 'name' | 'match'>> {
  name: string
  /** Match on the user namespace too (default true); the cgroup is always matched. */
  matchUserns?: boolean
}

export interface StartTestBrokerOptions {
  /** Tenant names, or options (default ['a', 'b']). Each gets a scratch cgroup and a child in its own user namespace. */
  tenants?: (string | TestTenantOptions)[]
  /** Limits for the broker (e.g. a short idleTimeoutMs). */
  limits?: BrokerConfig['limits']
  /** Extra processes in no tenant (an "unknown peer"): how many to spawn (default 0), in a scratch cgroup no tenant matches. */
  strangers?: number
  log?: BrokerOptions['log']
}

export interface TestTenant {
  readonly name: string
  /** The child process: in the tenant's cgroup and user namespace. */
  readonly pid: number
  /** The tenant's cgroup directory (absolute) and its path below the cgroup2 root. */
  readonly cgroupDir: string
  readonly cgroupPath: string
  readonly usernsIno: number
  /** A per-tenant socket path: connections to it reach the broker as this tenant (through the relay). */
  readonly socketPath: string
  /** A raw socket connected to the broker by the tenant's process (its identity); close it when done. */
  connect(): Promise<FdSocket>
  /** A BrokerClient that is this tenant (hello done); close it when done. */
  client(): Promise<BrokerClient>
  /** The child keeps these fds (duplicates) open until drop(): objects its task holds. */
  hold(fds: readonly (Fd | number)[]): Promise<void>
  /** The child closes what it holds. */
  drop(): Promise<void>
  /**
   * A BPF token the tenant made in its own user namespace, from a bpffs
   * delegation the test grants with `policy` (default testPolicy): what a
   * `loadAs: 'token'` tenant sends with its requests. Close it when done.
   */
  token(policy?: PolicyLike): Promise<Fd>
}

export interface TestBroker {
  broker: Broker
  /** The broker's real socket (a peer connecting here from the test process is the admin: root, initial namespaces). */
  socketPath: string
  dir: string
  /** The private bpffs: pinRoot is `${bpffs}/broker`, tenantPinRoot `${bpffs}/tenants`. */
  bpffs: string
  pinRoot: string
  tenantPinRoot: string
  stateDir: string
  tenants: TestTenant[]
  tenant(name: string): TestTenant
  strangers: { pid: number; cgroupDir: string; connect(): Promise<FdSocket> }[]
  /** Stops the broker, the relays and the children; removes cgroups, bpffs and temp dir. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

// The tenant's process. Messages from the test (JSON, fds alongside):
// {op:'connect', path} → replies with a socket it connected (its identity);
// {op:'hold'} + fds → keeps them; {op:'drop'} → closes them; {op:'token'} →
// asks for a delegation on the same socket (BpfToken.request), replies with the token.
const CHILD = String.raw`
'use strict'
const net = require('node:net')
const { FdSocket } = require(process.env.BPFKIT_TEST_IPC)
const manager = FdSocket.from(3)
const held = []
const answer = (v, fds) => manager.send(Buffer.from(JSON.stringify(v)), fds || [])
function connect(path) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path)
    s.once('error', reject)
    // Taken over in the connect handler, before Node reads anything.
    s.once('connect', () => { try { resolve(FdSocket.from(s)) } catch (e) { reject(e) } })
  })
}
;(async () => {
  await answer({ ready: true })
  for (;;) {
    const m = await manager.receive({ maxFds: 64 })
    if (m === undefined) break
    const cmd = JSON.parse(m.data.toString('utf8'))
    try {
      if (cmd.op === 'connect') {
        const s = await connect(cmd.path)
        await answer({ ok: true }, [s.fd])
        s.close()
      } else if (cmd.op === 'hold') {
        held.push(...m.fds.splice(0))
        await answer({ ok: true, held: held.length })
      } else if (cmd.op === 'token') {
        // The delegation protocol on this same socket: the test serves it (serveDelegation) until the mount comes.
        const { BpfToken } = require(process.env.BPFKIT_TEST_DELEGATION)
        const token = await BpfToken.request(manager)
        await answer({ ok: true }, [token.fd])
        token.close()
      } else if (cmd.op === 'drop') {
        for (const f of held.splice(0)) f.close()
        await answer({ ok: true })
      } else throw new Error('unknown op ' + cmd.op)
    } catch (e) {
      await answer({ ok: false, code: e.code, message: e.message })
    } finally {
      for (const f of m.fds) f.close()
    }
  }
  process.exit(0)
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Child {
  process: ChildProcess
  pid: number
  exited: Promise<void>
  /** One command, one answer (serialised); `during` runs on the socket between the two (a protocol the command starts). */
  ask(cmd: object, fds?: readonly (Fd | number)[], during?: (socket: FdSocket) => Promise<unknown>): Promise<{ answer: Record<string, unknown>; fds: Fd[] }>
  stop(): Promise<void>
}

async function spawnChild(cgroupDir: string): Promise<Child> {
  const [mine, theirs] = FdSocket.pair()
  // Its own mount namespace too: a tenant making a token opens a bpffs context (fsopen) there.
  const child = spawn('unshare', ['--user', '--map-root-user', '--mount', process.execPath, '-e', CHILD], {
    stdio: ['ignore', 'inherit', 'pipe', theirs.fd],
    env: {
      ...process.env,
      BPFKIT_TEST_IPC: join(repoRoot, 'dist', 'ipc', 'index.js'),
      BPFKIT_TEST_DELEGATION: join(repoRoot, 'dist', 'delegation', 'index.js'),
    },
  })
  theirs.close()
  let stderr = ''
  child.stderr!.on('data', (d) => { stderr += d })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const pid = child.pid as number
  // unshare execs node in place: the pid is the tenant's process from here on.
  writeFileSync(join(cgroupDir, 'cgroup.procs'), String(pid))
  let queue: Promise<unknown> = Promise.resolve()
  const receive = async () => {
    const m = await Promise.race([
      mine.receive({ maxFds: 64 }),
      exited.then(() => { throw new Error(`tenant child ${pid} exited: ${stderr.trim()}`) }),
    ])
    if (!m) throw new Error(`tenant child ${pid} hung up: ${stderr.trim()}`)
    return { answer: JSON.parse(m.data.toString('utf8')) as Record<string, unknown>, fds: m.fds }
  }
  const ready = await receive()
  if (!ready.answer.ready) throw new Error(`tenant child ${pid} did not start: ${stderr.trim()}`)
  const ask = (cmd: object, fds: readonly (Fd | number)[] = [], during?: (socket: FdSocket) => Promise<unknown>) => {
    const run = queue.then(async () => {
      await mine.send(Buffer.from(JSON.stringify(cmd)), fds)
      if (during) await during(mine)
      const r = await receive()
      if (r.answer.ok === false) {
        for (const f of r.fds) f.close()
        throw Object.assign(new Error(String(r.answer.message)), { code: r.answer.code })
      }
      return r
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
  return { process: child, pid, exited, ask, stop }
}

function scratchCgroup(label: string): string {
  const dir = join(cgroup2Root(), `bpfkit-test-${process.pid}-${Date.now()}-${label}`)
  mkdirSync(dir)
  return dir
}

// Frames both ways between a client of the relay path and the tenant's own broker connection.
async function pump(from: FdSocket, to: FdSocket): Promise<void> {
  try {
    for (;;) {
      const m = await from.receive({ maxFds: 253, maxBytes: 64 << 20 })
      if (!m) break
      try {
        await to.send(m.data, m.fds)
      } finally {
        for (const f of m.fds) f.close()
      }
    }
  } catch {
    // either side went away
  } finally {
    from.close()
    to.close()
  }
}

function relay(path: string, upstream: () => Promise<FdSocket>): { server: Server; sockets: Set<FdSocket>; ready: Promise<void> } {
  const sockets = new Set<FdSocket>()
  const server = createServer({ pauseOnConnect: true }, (s) => {
    const downstream = FdSocket.from(s)
    sockets.add(downstream)
    upstream().then((up) => {
      sockets.add(up)
      const done = () => {
        sockets.delete(up)
        sockets.delete(downstream)
      }
      void Promise.all([pump(downstream, up), pump(up, downstream)]).finally(done)
    }, () => {
      sockets.delete(downstream)
      downstream.close()
    })
  })
  const ready = new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => resolve())
  })
  return { server, sockets, ready }
}

/**
 * Starts a broker in this process with tenants that are real peers (see the
 * top of this file). Needs root, cgroup2, unprivileged-style user
 * namespaces through util-linux (userNamespacesMissing() says why not) and
 * SO_PEERPIDFD (6.5). Close it (await using) to remove everything.
 */
export async function startTestBroker(options: StartTestBrokerOptions = {}): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-broker-'))
  const fs = privateBpffs()
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true }), () => fs[Symbol.dispose]()]
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c()
      } catch {
        // keep cleaning
      }
    }
  }
  try {
    const socketPath = join(dir, 'broker.sock')
    const pinRoot = join(fs.path, 'broker')
    const tenantPinRoot = join(fs.path, 'tenants')
    const stateDir = join(dir, 'state')
    const root = cgroup2Root()
    const specs = (options.tenants ?? ['a', 'b']).map((t) => (typeof t === 'string' ? { name: t } : t))
    const made: { spec: TestTenantOptions; cgroupDir: string; child: Child }[] = []
    for (const spec of specs) {
      const cgroupDir = scratchCgroup(spec.name)
      cleanups.push(() => rmdirSync(cgroupDir))
      const child = await spawnChild(cgroupDir)
      cleanups.push(() => child.stop())
      made.push({ spec, cgroupDir, child })
    }
    const strangers: TestBroker['strangers'] = []
    for (let i = 0; i < (options.strangers ?? 0); i++) {
      const cgroupDir = scratchCgroup(`stranger${i}`)
      cleanups.push(() => rmdirSync(cgroupDir))
      const child = await spawnChild(cgroupDir)
      cleanups.push(() => child.stop())
      strangers.push({ pid: child.pid, cgroupDir, connect: () => connectAs(child, socketPath) })
    }
    const tenantConfigs: TenantConfig[] = made.map(({ spec, cgroupDir, child }) => {
      const { name, matchUserns, ...rest } = spec
      const userns = statSync(`/proc/${child.pid}/ns/user`).ino
      return {
        policy: testPolicy,
        ...rest,
        name,
        match: { cgroup: cgroupDir.slice(root.length) || '/', ...(matchUserns === false ? {} : { userns }) },
      }
    })
    const broker = await startBroker({
      socket: socketPath, socketMode: 0o666, stateDir, pinRoot, tenantPinRoot, cgroupRoot: root,
      tenants: tenantConfigs, guard: false, ...(options.limits ? { limits: options.limits } : {}),
    }, { log: options.log })
    cleanups.push(() => broker.close())
    const tenants: TestTenant[] = []
    for (const { spec, cgroupDir, child } of made) {
      const relayPath = join(dir, `${spec.name}.sock`)
      const r = relay(relayPath, () => connectAs(child, socketPath))
      await r.ready
      cleanups.push(() => new Promise<void>((resolve) => {
        for (const s of r.sockets) s.close()
        r.server.close(() => resolve())
      }))
      tenants.push({
        name: spec.name,
        pid: child.pid,
        cgroupDir,
        cgroupPath: cgroupDir.slice(root.length),
        usernsIno: statSync(`/proc/${child.pid}/ns/user`).ino,
        socketPath: relayPath,
        connect: () => connectAs(child, socketPath),
        client: () => BrokerClient.connect(relayPath, { timeoutMs: 20_000 }),
        hold: async (fds) => {
          await child.ask({ op: 'hold' }, fds)
        },
        drop: async () => {
          await child.ask({ op: 'drop' })
        },
        token: async (policy = testPolicy) => {
          const { fds } = await child.ask({ op: 'token' }, [], (socket) => serveDelegation(socket, policy))
          if (fds.length !== 1) {
            for (const f of fds) f.close()
            throw new Error(`tenant child ${child.pid} sent ${fds.length} fds for one token`)
          }
          return fds[0]
        },
      })
    }
    const tb: TestBroker = {
      broker, socketPath, dir, bpffs: fs.path, pinRoot, tenantPinRoot, stateDir, tenants, strangers,
      tenant(name) {
        const t = tenants.find((x) => x.name === name)
        if (!t) throw new Error(`no test tenant ${name}`)
        return t
      },
      close: cleanup,
      [Symbol.asyncDispose]: cleanup,
    }
    return tb
  } catch (e) {
    await cleanup()
    throw e
  }
}

async function connectAs(child: Child, path: string): Promise<FdSocket> {
  const { fds } = await child.ask({ op: 'connect', path })
  if (fds.length !== 1) {
    for (const f of fds) f.close()
    throw new Error(`tenant child ${child.pid} sent ${fds.length} fds for one connection`)
  }
  return FdSocket.from(fds[0])
}

let seq = 0
/**
 * One raw request on a socket (no client-side checks): sends the frame with
 * `fds`, returns the decoded reply and the fds that came with it (close them).
 */
export async function rawRequest(socket: FdSocket, type: string, body: object = {}, fds: readonly (Fd | number)[] = []): Promise<{ reply: Reply; fds: Fd[] }> {
  seq = (seq + 1) >>> 0
  await socket.send(encodeFrame({ ...body, protocol, type, seq }), fds)
  const m = await socket.receive({ maxFds: 253, maxBytes: 64 << 20 })
  if (!m) throw new Error(`the broker closed the connection instead of answering ${type}`)
  return { reply: decodeReply(m.data), fds: m.fds }
}
