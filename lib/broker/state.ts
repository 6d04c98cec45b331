// What every request handler shares: the daemon's state (config, registry,
// discovery cache, guard) and one request's context (its tenant, peer and the
// fds that came with it, already classified). Handlers are plain functions of
// (context, request) so that each file under handlers/ stays one idea.
import type { Guard } from '../guard/index.js'
import type { Fd } from '../sys/index.js'
import { brokerError } from './errors.js'
import type { Kind } from './protocol.js'
import type { ResolvedConfig, ResolvedTenant } from './config.js'
import type { Peer } from './peer.js'
import type { DiscoveryCache } from './discovery.js'
import type { Registry } from './registry.js'
import type { Owners } from './scope.js'

/** The daemon's counters (Broker.stats(), the admin's `stats` request). */
export interface BrokerStats {
  /** Open connections (sessions), and per tenant ('(admin)' for admin peers). */
  connections: number
  byTenant: Record<string, number>
  /** Since start. */
  accepted: number
  refused: number
  requests: number
  errors: number
  protocolErrors: number
  /** Connections holding run-time statistics on (enable_stats). */
  statsEnabled: number
  /** Entries of /proc/self/fd: the daemon's fd table, for leak checks. */
  fds: number
  /** Registry records. */
  objects: number
  tenants: number
}

export interface BrokerState {
  config: ResolvedConfig
  registry: Registry
  discovery: DiscoveryCache
  guard: Guard | undefined
  tenant(name: string): ResolvedTenant | undefined
  /**
   * Who owns what: the registry plus every tenant's (cached) discovery.
   * `fresh` re-discovers that tenant without its cache (get_fd/show of an id
   * known only by discovery: ids are reused cyclically).
   */
  owners(fresh?: ResolvedTenant): Owners
  /** Open connections of a tenant (quota `connections`). */
  connections(tenant: string): number
  /** The daemon's counters, as Broker.stats() gives them. */
  stats(): BrokerStats
  log(line: string): void
}

/** An fd that came with the request, classified before any handler sees it. */
export interface ReceivedFd {
  fd: Fd
  /** undefined: not a BPF object (a pipe, a socket, a file). */
  kind: Kind | 'token' | undefined
  /** The object's id (tokens have none). */
  id?: number
}

export interface HandlerContext {
  state: BrokerState
  /** null: an admin peer (root in the initial user namespace, matching no tenant). */
  tenant: ResolvedTenant | null
  peer: Peer
  /** Closed by the session after the reply, whatever happened: handlers dup what they keep. */
  fds: ReceivedFd[]
  signal: AbortSignal
  /** What the connection holds until it closes. */
  holds: ConnectionHolds
}

/** What one connection keeps between its requests, closed (released) with the connection. */
export interface ConnectionHolds {
  /** The BPF_ENABLE_STATS fd an enable_stats request opened. */
  stats?: Fd
}

export interface HandlerResult {
  reply: Record<string, unknown>
  /** Sent with the reply, then closed by the session when they are Fd objects. */
  fds?: (Fd | number)[]
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler<R = any> = (ctx: HandlerContext, req: R) => Promise<HandlerResult> | HandlerResult

/** The request's tenant; an admin-only peer asking a tenant's question gets EACCES. */
export function requireTenant(ctx: HandlerContext): ResolvedTenant {
  if (ctx.tenant === null) throw brokerError('EACCES', 'this request is for tenants; the admin peer matches no tenant (use list_all, tenants, stats)')
  return ctx.tenant
}
