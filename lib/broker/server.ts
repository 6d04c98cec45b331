// The broker daemon: a unix socket server (plan §0, decision 1: Node's
// net.Server with pauseOnConnect, each connection taken over by FdSocket
// before anything is read), peer identification at accept, connection
// limits, one Session per connection, and the state handlers share.
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, statSync, unlinkSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { Guard } from '../guard/index.js'
import { FdSocket, unixSocketListening } from '../ipc/index.js'
import { havePeerPidfd } from '../features/index.js'
import { brokerError, toErrorReply, type ErrorBody } from './errors.js'
import { encodeFrame, errorReply, defaultLimits } from './protocol.js'
import { checkTenants, loadConfig, resolveConfig, resolveTenant, type BrokerConfig, type ResolvedConfig, type ResolvedTenant, type TenantConfig } from './config.js'
import { identify, matchTenant, type Peer } from './peer.js'
import { DiscoveryCache, type Discovered } from './discovery.js'
import { Registry } from './registry.js'
import { resolveOwners, type Owners } from './scope.js'
import { BtfUse } from './btf-use.js'
import { syncGuard } from './guard-sync.js'
import type { BrokerState, BrokerStats } from './state.js'
import { Session, type HandlerTable, type SessionCounters } from './session.js'
import { objectHandlers } from './handlers/objects.js'
import { viewHandlers } from './handlers/view.js'
import { attachHandlers } from './handlers/attach.js'
import { pinHandlers } from './handlers/pins.js'
import { delegateHandlers } from './handlers/delegate.js'
import { adminHandlers } from './handlers/admin.js'
import { runStatsHandlers } from './handlers/run-stats.js'
import { xlatedHandlers } from './handlers/xlated.js'

export interface BrokerOptions {
  /** One line per notable event (refused peer, recovered record, guard sync). Default: none. */
  log?: (line: string) => void
}

export type { BrokerStats } from './state.js'

const handlers: HandlerTable = {
  ...viewHandlers, ...objectHandlers, ...attachHandlers, ...pinHandlers, ...delegateHandlers, ...adminHandlers, ...runStatsHandlers, ...xlatedHandlers,
}

// include/linux/proc_ns.h: the initial namespaces' inode numbers are fixed.
const initialNamespaces = { user: 0xeffffffd, pid: 0xeffffffc, cgroup: 0xeffffffb } as const

/**
 * The broker must see peers' pids, uids and cgroup paths as the host does
 * (SO_PEERCRED and /proc/PID/cgroup translate into the reader's namespaces):
 * it refuses to run anywhere but the initial pid, user and cgroup namespaces.
 */
export function checkInitialNamespaces(): void {
  for (const [ns, ino] of Object.entries(initialNamespaces)) {
    let actual: number
    try {
      actual = statSync(`/proc/self/ns/${ns}`).ino
    } catch (e) {
      throw brokerError('EPERM', `startBroker: cannot read /proc/self/ns/${ns} (${(e as Error).message})`)
    }
    if (actual !== ino) {
      throw brokerError('EPERM', `startBroker: the broker must run in the initial ${ns} namespace (it reads peers' pids, uids and cgroups as the host sees them); this process is in ${ns}:[${actual}]`)
    }
  }
}

function isResolved(c: BrokerConfig | ResolvedConfig): c is ResolvedConfig {
  const r = c as ResolvedConfig
  return typeof r.cgroupRoot === 'string' && typeof r.socketMode === 'number' && typeof r.stateDir === 'string'
    && r.limits !== undefined && Object.keys(defaultLimits).every((k) => typeof (r.limits as Record<string, unknown>)[k] === 'number')
    && Array.isArray(r.tenants) && r.tenants.every((t) => typeof t === 'object' && t !== null && 'source' in t)
}

/**
 * Starts the tenant broker: checks it runs in the initial namespaces and
 * that the kernel has SO_PEERPIDFD (6.5), opens the registry (reconciling
 * its pins), starts or reopens the guard when configured and registers the
 * tenants with it, then listens on config.socket (a path, made with
 * config.socketMode; a stale socket nobody listens on is replaced) or on an
 * inherited fd (systemd: LISTEN_FDS=1 and LISTEN_PID this process, fd 3).
 * `config`: a BrokerConfig, a ResolvedConfig, or the path of a JSON file.
 * Errors: BrokerError EPERM (namespaces), NotSupportedError('peerPidfd'),
 * EADDRINUSE when a broker already listens on the path, the registry's and
 * the guard's errors. Root (CAP_BPF, CAP_SYS_ADMIN, CAP_SYS_PTRACE).
 */
export async function startBroker(config: BrokerConfig | ResolvedConfig | string, options: BrokerOptions = {}): Promise<Broker> {
  checkInitialNamespaces()
  const resolved = typeof config === 'string' ? loadConfig(config) : isResolved(config) ? { ...config, tenants: [...config.tenants] } : resolveConfig(config)
  havePeerPidfd()
  const log = options.log ?? (() => {})
  // A broker already serving this socket keeps its registry and its guard:
  // refused before either is opened (listen checks again).
  if (typeof resolved.socket === 'string' && !activatedBySystemd()) await staleSocketAt(resolved.socket)
  const registry = Registry.open(resolved.stateDir, resolved.pinRoot, { log })
  let guard: Guard | undefined
  let startedGuard = false
  if (resolved.guard) ({ guard, started: startedGuard } = await openGuard(resolved.guard.pinPath))
  const broker = new Broker(resolved, registry, guard, log)
  try {
    broker.syncGuard()
    await broker.listen()
  } catch (e) {
    // A guard this call started goes again (detached, unpinned): a start that
    // fails leaves no LSM hooks attached. A reopened one stays, as it was found.
    if (startedGuard) guard?.stop()
    await broker.close()
    throw e
  }
  return broker
}

/** Whether systemd handed this process its listening socket (LISTEN_PID is this process, LISTEN_FDS=1, fd 3). */
function activatedBySystemd(): boolean {
  return process.env.LISTEN_PID === String(process.pid) && process.env.LISTEN_FDS === '1'
}

/**
 * True when a stale socket (no one listens) is at `socket`, to be replaced.
 * Errors: EEXIST when something else is there, EADDRINUSE when a server
 * (another broker) listens on it.
 */
async function staleSocketAt(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false
  if (!lstatSync(socket).isSocket()) throw brokerError('EEXIST', `startBroker: ${socket} exists and is not a socket; not removing it`)
  if (await unixSocketListening(socket)) {
    throw Object.assign(brokerError('EADDRINUSE', `startBroker: a server already listens on ${socket}`), { syscall: 'bind' })
  }
  return true
}

async function openGuard(pinPath: string): Promise<{ guard: Guard; started: boolean }> {
  // A guard pinned by an earlier run is reopened (its tenants are re-synced); else started.
  if (existsSync(pinPath) && readdirSync(pinPath).length > 0) return { guard: await Guard.open(pinPath), started: false }
  return { guard: await Guard.start({ pinPath }), started: true }
}


export class Broker {
  readonly socketPath: string
  readonly #state: BrokerState & { config: ResolvedConfig }
  readonly #server: Server
  readonly #sessions = new Set<Session>()
  // Each session's run, settled once its fds (socket, spare, pidfd) are closed.
  readonly #running = new Set<Promise<void>>()
  readonly #counters: SessionCounters = { requests: 0, errors: 0, protocolErrors: 0 }
  readonly #log: (line: string) => void
  #accepted = 0
  #refused = 0
  #guarded = new Set<string>()
  readonly #btfUse = new BtfUse()
  #closed = false
  // Set once we listen on a path of our own: only then is it ours to remove.
  #ownsPath = false

  /** @internal startBroker makes brokers. */
  constructor(config: ResolvedConfig, registry: Registry, guard: Guard | undefined, log: (line: string) => void) {
    this.#log = log
    this.socketPath = typeof config.socket === 'string' ? config.socket : `fd:${config.socket.fd}`
    const sessions = this.#sessions
    // Tenant pins (the pin request) of objects in no record are found again only by walking tenantPinRoot.
    const discovery = new DiscoveryCache(config.limits.discoveryTtlMs, { tenantPinRoot: config.tenantPinRoot, tenants: () => state.config.tenants })
    const state: BrokerState & { config: ResolvedConfig } = {
      config,
      registry,
      discovery,
      guard,
      tenant: (name) => state.config.tenants.find((t) => t.name === name),
      owners: (fresh) => this.#owners(fresh),
      connections: (tenant) => {
        let n = 0
        for (const s of sessions) if (s.tenant?.name === tenant) n++
        return n
      },
      stats: () => this.stats(),
      log,
    }
    this.#state = state
    // A reopened guard may hold tenants of an earlier run: the first sync removes those gone since.
    if (guard) this.#guarded = new Set(guard.tenants().map((t) => t.name))
    this.#server = createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket))
  }

  /** @internal */
  get state(): BrokerState {
    return this.#state
  }

  // Every tenant's discovery (cached), with a live peer of the tenant as the hint (its root and namespaces).
  #owners(fresh?: ResolvedTenant): Owners {
    const discovered = new Map<string, Discovered>()
    for (const t of this.#state.config.tenants) {
      const hint = this.#hintFor(t.name)
      discovered.set(t.name, this.#state.discovery.get(t, hint, { fresh: fresh !== undefined && fresh.name === t.name }))
    }
    const owners = resolveOwners(this.#state.registry.records(), discovered, { tenantPinRoot: this.#state.config.tenantPinRoot, btfOf: (ref) => this.#btfUse.of(ref) })
    // Asked per ref: owners.all() would copy the whole table on every request.
    this.#btfUse.keepOnly((ref) => owners.of(ref) !== undefined)
    return owners
  }

  #hintFor(tenant: string): { pid: number; pidfd: Peer['pidfd'] } | undefined {
    let last: Peer | undefined
    for (const s of this.#sessions) if (s.tenant?.name === tenant) last = s.peer
    return last ? { pid: last.pid, pidfd: last.pidfd } : undefined
  }

  /** @internal */
  async listen(): Promise<void> {
    const { socket, socketMode } = this.#state.config
    const systemd = activatedBySystemd()
    if (typeof socket !== 'string' || systemd) {
      const fd = typeof socket === 'string' ? 3 : socket.fd
      if (systemd) {
        // Ours alone: children must not think they were activated too.
        delete process.env.LISTEN_PID
        delete process.env.LISTEN_FDS
        delete process.env.LISTEN_FDNAMES
      }
      await this.#listenOn({ fd })
      return
    }
    if (await staleSocketAt(socket)) unlinkSync(socket)
    mkdirSync(dirname(socket), { recursive: true, mode: 0o755 })
    await this.#listenOn({ path: socket })
    this.#ownsPath = true
    chmodSync(socket, socketMode)
  }

  #listenOn(where: { path: string } | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e)
      this.#server.once('error', onError)
      this.#server.listen(where, () => {
        this.#server.off('error', onError)
        this.#server.on('error', (e) => this.#log(`broker: server error: ${e.message}`))
        resolve()
      })
    })
  }

  #accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy()
      return
    }
    let fs: FdSocket
    try {
      fs = FdSocket.from(socket)
    } catch (e) {
      socket.destroy()
      this.#log(`broker: cannot take a connection over: ${(e as Error).message}`)
      return
    }
    const { config } = this.#state
    if (this.#sessions.size >= config.limits.maxConnections) {
      this.#refuse(fs, { code: 'EBUSY', message: `the broker serves ${config.limits.maxConnections} connections already; try again later` })
      return
    }
    let peer: Peer
    try {
      peer = identify(fs, config.cgroupRoot)
    } catch (e) {
      this.#refuse(fs, toErrorReply(e))
      return
    }
    const m = matchTenant(peer, config)
    if ('refused' in m) {
      peer.pidfd.close()
      this.#refuse(fs, { code: 'EACCES', message: m.refused })
      return
    }
    const tenant = 'tenant' in m ? m.tenant : null
    if (tenant) {
      const limit = Math.min(tenant.quota.connections, config.limits.maxConnectionsPerTenant)
      if (this.#state.connections(tenant.name) >= limit) {
        peer.pidfd.close()
        this.#refuse(fs, { code: 'EBUSY', message: `tenant ${tenant.name} has ${limit} connection${limit === 1 ? '' : 's'} open already (the most it may)` })
        return
      }
    }
    let session: Session
    try {
      session = new Session({ state: this.#state, socket: fs, peer, tenant, handlers, counters: this.#counters })
    } catch (e) {
      // Told why, then closed (not left waiting for a hello answer): EMFILE, most likely.
      peer.pidfd.close()
      const reason = toErrorReply(e)
      this.#refuse(fs, { code: reason.code, message: `the broker cannot start a session: ${reason.message}` })
      return
    }
    this.#accepted++
    this.#sessions.add(session)
    const run = session.run().catch((e) => this.#log(`broker: session of pid ${peer.pid} ended: ${(e as Error).message}`)).finally(() => {
      this.#sessions.delete(session)
      this.#running.delete(run)
      peer.pidfd.close()
    })
    this.#running.add(run)
  }

  // One error frame, then the connection closes.
  #refuse(fs: FdSocket, error: ErrorBody): void {
    this.#refused++
    this.#log(`broker: refused a connection: ${error.code} ${error.message}`)
    const sent: Promise<void> = fs.send(encodeFrame(errorReply(0, error)), [], { signal: AbortSignal.timeout(1000) })
      .catch(() => {})
      .finally(() => {
        fs.close()
        this.#running.delete(sent)
      })
    this.#running.add(sent)
  }

  /** @internal Registers the tenants with the guard (when one runs), dropping those gone. */
  syncGuard(): void {
    if (!this.#state.guard) return
    this.#guarded = syncGuard(this.#state.guard, this.#state.config.tenants, this.#guarded)
  }

  #setTenants(tenants: ResolvedTenant[]): void {
    checkTenants(tenants, this.#state.config.guard !== false)
    const previous = this.#state.config
    this.#state.config = { ...previous, tenants }
    try {
      this.syncGuard()
    } catch (e) {
      this.#state.config = previous
      this.syncGuard()
      throw e
    }
    this.#state.discovery.invalidate()
  }

  /**
   * Adds a tenant, or replaces the one of the same name, at run time.
   * Connections already open keep the tenant they were accepted as (a
   * replaced tenant's sessions keep its old settings until they reconnect).
   * Errors: resolveTenant's and checkTenants' (TypeError/RangeError), the guard's.
   */
  setTenant(t: TenantConfig): void {
    const resolved = resolveTenant(t, this.#state.config.cgroupRoot)
    if (this.#state.config.guard === false) resolved.guard = false
    this.#setTenants([...this.#state.config.tenants.filter((x) => x.name !== resolved.name), resolved])
  }

  /** Removes a tenant at run time: new connections no longer match it; its records stay (admin: '<name> (removed)'). */
  removeTenant(name: string): void {
    this.#setTenants(this.#state.config.tenants.filter((t) => t.name !== name))
  }

  /**
   * Takes the tenants, admin uids and limits of a new configuration (a
   * BrokerConfig, a ResolvedConfig or a file path; SIGHUP in the CLI). The
   * socket, state directory, pin roots and guard stay as started.
   */
  reload(config: BrokerConfig | ResolvedConfig | string): void {
    const next = typeof config === 'string' ? loadConfig(config) : isResolved(config) ? config : resolveConfig(config)
    const tenants = next.tenants.map((t) => (this.#state.config.guard === false ? { ...t, guard: false } : t))
    this.#setTenants(tenants)
    this.#state.config = { ...this.#state.config, admin: next.admin, limits: next.limits }
  }

  stats(): BrokerStats {
    const byTenant: Record<string, number> = {}
    let statsEnabled = 0
    for (const s of this.#sessions) {
      if (s.holds.stats && !s.holds.stats.closed) statsEnabled++
      const name = s.tenant?.name ?? '(admin)'
      byTenant[name] = (byTenant[name] ?? 0) + 1
    }
    let fds = -1
    try {
      fds = readdirSync('/proc/self/fd').length
    } catch {
      // not Linux /proc: left at -1
    }
    return {
      connections: this.#sessions.size, byTenant, accepted: this.#accepted, refused: this.#refused, ...this.#counters,
      statsEnabled, fds, objects: this.#state.registry.records().length, tenants: this.#state.config.tenants.length,
    }
  }

  /** Stops listening, ends every session (their fds closed) and closes the guard's handle (its pins stay). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const closed = new Promise<void>((resolve) => {
      if (!this.#server.listening) return resolve()
      this.#server.close(() => resolve())
    })
    for (const s of this.#sessions) s.close()
    await Promise.all([closed, ...this.#running])
    // A socket path we made goes with us; an inherited fd is systemd's.
    const { socket } = this.#state.config
    if (this.#ownsPath && typeof socket === 'string' && existsSync(socket) && lstatSync(socket).isSocket()) {
      try {
        unlinkSync(socket)
      } catch {
        // already gone
      }
    }
    this.#state.guard?.close()
  }
}
