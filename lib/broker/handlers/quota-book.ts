// The quota book of a running broker: a tenant's usage (its records, what
// the broker made for it and let go of that still lives, what its requests
// in flight reserved, its connections) and the one step that checks and
// reserves. quotas.ts has the rules and says why each part counts.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { linkInfoByFd, mapInfoByFd, progInfoByFd, type Fd } from '../../sys/index.js'
import { writeFileAtomic } from '../atomic-file.js'
import type { ResolvedTenant } from '../config.js'
import type { Kind } from '../protocol.js'
import type { RegistryRecord } from '../registry.js'
import { addInto, Lingering, mapBytes, Reservations, usageOf, type LingeringObject, type MapShape, type Usage } from '../quotas.js'
import type { BrokerState } from '../state.js'
import { openById } from './view-object.js'

// Map sizes for the `bytes` quota, by ref: a map's shape never changes, so
// reading it once per broker run is enough.
const bytesByRef = new Map<string, number>()

// Per broker: what it made and let go of that still lives, and what requests
// in flight reserved (quotas.ts says why both count).
const books = new WeakMap<BrokerState, { lingering: Lingering; reservations: Reservations }>()

function bookOf(state: BrokerState): { lingering: Lingering; reservations: Reservations } {
  let book = books.get(state)
  if (!book) books.set(state, (book = { lingering: loadLingering(state), reservations: new Reservations() }))
  return book
}

// What the broker let go of and still counts outlives a restart: a tenant
// must not get its quota back because the daemon was restarted.
const releasedFile = (state: BrokerState) => join(state.config.stateDir, 'released.json')

function loadLingering(state: BrokerState): Lingering {
  let text: string
  try {
    text = readFileSync(releasedFile(state), 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') state.log(`quota book: ${releasedFile(state)} unreadable (${(e as Error).message}); released objects count from now on only`)
    return new Lingering()
  }
  try {
    return Lingering.from(JSON.parse(text), (bad) => state.log(`quota book: dropped a malformed entry ${JSON.stringify(bad)?.slice(0, 200)}`))
  } catch (e) {
    state.log(`quota book: ${releasedFile(state)} is not JSON (${(e as Error).message}); released objects count from now on only`)
    return new Lingering()
  }
}

function saveLingering(state: BrokerState, lingering: Lingering): void {
  writeFileAtomic(releasedFile(state), Buffer.from(JSON.stringify(lingering.entries()) + '\n'))
}

/** Whether kind:id is something the broker made for `tenant`, let go of, and still counts (adopting it back adds nothing). */
export function lingers(state: BrokerState, tenant: string, kind: Kind, id: number): boolean {
  return bookOf(state).lingering.has(tenant, kind, id)
}

/** A tenant's usage without reservations: its records, what the broker made for it and let go of that still lives, its connections. */
function heldUsage(state: BrokerState, tenant: string): Usage {
  const u = usageOf(tenant, state.registry.records(), (r) => recordBytes(state, r), state.connections(tenant))
  const { lingering } = bookOf(state)
  const before = lingering.size
  const gone = lingering.usage(tenant, fingerprintById, (kind, id) => state.registry.find(kind as Kind, id) !== undefined)
  if (lingering.size !== before) saveLingering(state, lingering)
  addInto(u, gone)
  return u
}

/** A tenant's usage as quotas see it: heldUsage plus what its requests in flight reserved. */
export function usageFor(state: BrokerState, tenant: string): Usage {
  const u = heldUsage(state, tenant)
  addInto(u, bookOf(state).reservations.of(tenant))
  return u
}

/**
 * Checks `add` against the tenant's quotas and reserves it, in one step
 * (EDQUOT naming the quota otherwise); dispose the handle once what it was
 * for is recorded, or failed. Every request that makes something goes
 * through here, so two connections of one tenant cannot both pass a check
 * while the first waits for the kernel.
 */
export function reserveQuota(state: BrokerState, tenant: ResolvedTenant, add: Partial<Usage>): Disposable & { release(): void } {
  return bookOf(state).reservations.reserve(tenant, heldUsage(state, tenant.name), add)
}

/** What an object is, in short: an id that comes back naming another object (ids are reused) does not match. */
function fingerprint(kind: LingeringObject['kind'], fd: number): string {
  if (kind === 'map') {
    const i = mapInfoByFd(fd)
    return `map ${i.typeId} ${i.keySize} ${i.valueSize} ${i.maxEntries} ${i.flags} ${i.name}`
  }
  if (kind === 'prog') {
    const i = progInfoByFd(fd)
    return `prog ${i.typeId} ${i.tag} ${i.name}`
  }
  // A link's program can be replaced (LINK_UPDATE) by whoever holds it: its type is what stays.
  return `link ${linkInfoByFd(fd).type}`
}

function fingerprintById(kind: LingeringObject['kind'], id: number): string | undefined {
  let fd: Fd
  try {
    fd = openById(kind, id)
  } catch {
    return undefined
  }
  try {
    return fingerprint(kind, fd.fd)
  } catch {
    return undefined
  } finally {
    fd.close()
  }
}

/**
 * Drops a record the broker made (release, detach): its broker pin and the
 * record go, and the object, while it lives (an fd, a pin, a program or a
 * link holds it), keeps counting against the tenant's quota. Adopted
 * records just go. Returns the removed record.
 */
export function letGo(state: BrokerState, record: RegistryRecord): RegistryRecord | undefined {
  let lingering: LingeringObject | undefined
  if (record.origin === 'made' && record.kind !== 'btf') {
    try {
      using fd = state.registry.openObject(record)
      const kind = record.kind
      const share: Partial<Usage> = kind === 'map' ? { maps: 1, bytes: mapBytes(mapShape(fd.fd)) } : kind === 'prog' ? { progs: 1 } : { links: 1 }
      lingering = { tenant: record.tenant, kind, id: record.id, share, fingerprint: fingerprint(kind, fd.fd) }
    } catch {
      // Its broker pin is gone or holds another object: nothing of it to count.
    }
  }
  const removed = state.registry.remove(record.kind, record.id)
  bytesByRef.delete(`${record.kind}:${record.id}`)
  if (removed && lingering) {
    const book = bookOf(state).lingering
    book.add(lingering)
    saveLingering(state, book)
  }
  return removed
}

export function mapShape(fd: number): MapShape {
  const i = mapInfoByFd(fd)
  return { type: i.typeId, keySize: i.keySize, valueSize: i.valueSize, maxEntries: i.maxEntries }
}

function recordBytes(state: BrokerState, r: RegistryRecord): { bytes: number } | undefined {
  if (r.kind !== 'map') return { bytes: 0 }
  const ref = `map:${r.id}`
  let bytes = bytesByRef.get(ref)
  if (bytes === undefined) {
    try {
      using fd = state.registry.openObject(r)
      bytes = mapBytes(mapShape(fd.fd))
      bytesByRef.set(ref, bytes)
    } catch {
      return undefined
    }
  }
  return { bytes }
}
