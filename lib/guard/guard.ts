// The guard: loads bpf/guard/guard.bpf.o (BPF LSM programs), attaches its
// hooks, pins it so that a restarted manager can take it over, and keeps
// each registered tenant's compiled policy in its maps. The kernel then
// refuses, for those tenants only, what their policies do not allow, even
// when they call bpf() without bpfkit.
import { existsSync, mkdirSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { CollectionSpec, type Collection } from '../collection/index.js'
import { openKernelBtf } from '../collection/kernel-btf.js'
import { haveBpfLsm, haveGuardHooks } from '../features/index.js'
import { BpfLink } from '../link/link.js'
import { attachTracing } from '../link/tracing.js'
import type { BpfMap } from '../map/map.js'
import { codecFromBtf } from '../map/btf-codec.js'
import { Policy, type PolicyJSON, type PolicyLike } from '../policy/index.js'
import { BPF_FS_MAGIC, onFilesystem } from '../sys/fs-magic.js'
import { btfs } from '../sys/ids.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { limits, statSlots } from './abi.js'
import { compileTenant, type CompiledTenant, type GuardKernel, type Quota } from './compile.js'
import { describeEvent, type GuardEvent, type RawGuardEvent } from './events.js'
import { matchKeys, type MatchKeys, type TenantMatch } from './match.js'
import { checkNoOverlap, parseKeys, readRecord, record, storedKeys, type RecordValue, type TenantRecord } from './records.js'

/** The guard's object as the package ships it (npm run build:guard rebuilds it). */
export const guardObjectPath = join(__dirname, '..', '..', 'bpf', 'guard', 'guard.bpf.o')

// Hooks that forget come before those that record: nothing recorded can be
// freed unseen. The fd hooks come last, once ownership is being recorded.
const HOOKS = ['guard_prog_free', 'guard_map_free', 'guard_token_free', 'guard_token_create', 'guard_prog_load', 'guard_map_create', 'guard_map', 'guard_prog'] as const
/** The name a hook's link is pinned under (bpffs names take no dots). */
const linkName = (hook: string) => `${hook}_link`
/** by_userns, by_cgroup and by_bpffs: the map each kind of match key goes in. */
const KEY_MAPS = { userns: 'by_userns', cgroup: 'by_cgroup', bpffs: 'by_bpffs' } as const
/** records key 0: the guard's own state (the next tenant number). */
const META = 0
const NAME = /^[A-Za-z0-9_.:@-]{1,63}$/

export interface GuardStartOptions {
  /** A directory in a bpffs (made if missing) where the guard's maps and links are pinned: the guard outlives the process. */
  pinPath?: string
}

export interface TenantOptions {
  match: TenantMatch
  /** What the tenant may do: token masks (program, attach and map types) and, when it has them, capabilities and contexts. */
  policy: PolicyLike
  quota?: Quota
}

export interface GuardTenant {
  name: string
  /** The number events and owners carry. */
  id: number
  match: TenantMatch
  policy: PolicyJSON
  quota: Quota
  /** Maps the tenant holds now, and their bytes as the quota counts them. */
  usage: { maps: number; bytes: bigint }
}

export interface GuardStats {
  refused: bigint
  /** Refusals whose event did not fit in the ring. */
  lost: bigint
  /** Tenants' loads and map creations allowed. */
  allowed: bigint
}

type AnyMap = BpfMap<any, any>

export class Guard {
  /** Where the guard is pinned; undefined when it lives only as long as this object. */
  readonly pinPath: string | undefined
  readonly #spec: CollectionSpec
  readonly #coll: Collection
  readonly #links: BpfLink[]
  #kernel: GuardKernel | undefined
  #closed = false

  private constructor(spec: CollectionSpec, coll: Collection, links: BpfLink[], pinPath: string | undefined) {
    this.#spec = spec
    this.#coll = coll
    this.#links = links
    this.pinPath = pinPath
  }

  /**
   * Loads and attaches the guard. It then decides for registered tenants
   * only (none yet). Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN), the
   * bpf LSM active (boot with lsm=...,bpf) and Linux 6.9. Errors:
   * NotSupportedError (no bpf LSM, hooks missing, trampolines refused);
   * Error EEXIST when pinPath already holds a guard (Guard.open it);
   * TypeError for a pinPath outside a bpffs; BpfError from loading.
   */
  static async start(options: GuardStartOptions = {}): Promise<Guard> {
    checkOptions('Guard.start', options, ['pinPath'], { types: { pinPath: 'string' } })
    haveGuardHooks()
    haveBpfLsm()
    const pinPath = options.pinPath
    if (pinPath !== undefined) {
      preparePinDir(pinPath)
      if (existsSync(join(pinPath, 'records'))) throw Object.assign(new Error(`Guard.start: a guard is already pinned at ${pinPath}: take it over with Guard.open, or stop it first`), { code: 'EEXIST' })
    }
    const spec = CollectionSpec.fromFile(guardObjectPath)
    const links: BpfLink[] = []
    let coll: Collection | undefined
    try {
      coll = await spec.load(pinPath === undefined ? {} : { pinPath })
      for (const hook of HOOKS) {
        const link = attachTracing(coll.programs[hook])
        links.push(link)
        if (pinPath !== undefined) link.pin(join(pinPath, linkName(hook)))
      }
      ;(coll.maps.records as AnyMap).set(META, record('', { next: 1 }))
    } catch (e) {
      // What start made goes: links, maps, pins, and the pin directory when it
      // is left empty. A failed load has removed its own map pins already.
      for (const l of links) l.close()
      coll?.close()
      if (pinPath !== undefined) removePins(pinPath, coll ? Object.keys(spec.maps) : [])
      throw e
    }
    // The links hold the programs: the collection's program fds are not needed.
    for (const p of Object.values(coll.programs)) p.close()
    return new Guard(spec, coll, links, pinPath)
  }

  /**
   * Takes over a guard pinned at `pinPath` by Guard.start (in this process
   * or another, before a restart). Errors: Error ENOENT when no guard is
   * pinned there; BpfError when the pins are not the guard's maps.
   */
  static async open(pinPath: string): Promise<Guard> {
    if (typeof pinPath !== 'string') throw new TypeError(`Guard.open: pinPath must be a string, got ${describeValue(pinPath)}`)
    const missing = ['records', ...HOOKS.map(linkName)].filter((f) => !existsSync(join(pinPath, f)))
    if (missing.length > 0) throw Object.assign(new Error(`Guard.open: no guard is pinned at ${pinPath} (missing ${missing.join(', ')})`), { code: 'ENOENT' })
    const spec = CollectionSpec.fromFile(guardObjectPath)
    const links: BpfLink[] = []
    let coll: Collection | undefined
    try {
      for (const hook of HOOKS) links.push(BpfLink.fromPin(join(pinPath, linkName(hook))))
      coll = await spec.load({ pinPath, programs: [] })
    } catch (e) {
      for (const l of links) l.close()
      throw e
    }
    return new Guard(spec, coll, links, pinPath)
  }

  #map(name: string): AnyMap {
    if (this.#closed) throw Object.assign(new Error('guard: already closed'), { code: 'EBADF' })
    return this.#coll.maps[name] as AnyMap
  }

  /**
   * Registers `name`, or replaces its match, policy and quota. Requests the
   * match recognises are then checked against the policy by the kernel.
   * A replacement takes effect at once for new requests (the old rules are
   * dropped after). Errors: TypeError for a bad name, match, policy or
   * quota, or a match another tenant holds; RangeError when the policy is
   * too big for the guard's tables (contexts, targets, record size) or 64
   * tenants are registered.
   */
  setTenant(name: string, options: TenantOptions): GuardTenant {
    checkName('setTenant', name)
    if (options === null || typeof options !== 'object') throw new TypeError(`guard.setTenant: options must be an object like { match, policy, quota }, got ${describeValue(options)}`)
    checkOptions('guard.setTenant', options, ['match', 'policy', 'quota'])
    const policy = Policy.from(options.policy)
    const quota = checkQuota(options.quota ?? {})
    const keys = matchKeys(options.match)
    const all = this.#records()
    const old = all.find((r) => r.name === name)
    for (const other of all) if (other !== old) checkNoOverlap(other.name, other.record.keys, keys)
    if (!old && all.length >= limits.tenants) throw new RangeError(`guard.setTenant: ${limits.tenants} tenants are registered, the most the guard holds`)
    const compiled = compileTenant(policy, quota, this.#kernelBtf())
    const id = old?.record.id ?? this.#nextId()
    const version = old ? (old.record.version % 0xffff) + 1 : 1
    const rec: TenantRecord = { id, version, match: options.match, keys: storedKeys(keys), policy: policy.toJSON(), quota }
    const bytes = record(name, rec)
    const tenants = this.#map('tenants')
    const oldRules = old ? tenants.get(old.record.id) : undefined
    try {
      this.#writeRules(id, version, compiled)
      tenants.set(id, { version, pad: 0, ...compiled.rules })
      this.#map('records').set(id, bytes)
      this.#setKeys(id, keys, old?.record.keys)
    } catch (e) {
      if (old) {
        tenants.set(id, oldRules)
        this.#map('records').set(id, record(name, old.record))
        this.#setKeys(id, parseKeys(old.record.keys), storedKeys(keys))
      } else {
        this.#dropKeys(storedKeys(keys), id)
        tenants.delete(id)
        this.#map('records').delete(id)
      }
      this.#dropRules(id, version)
      throw e
    }
    if (old) this.#dropRules(id, old.record.version)
    return this.#describe(name, rec)
  }

  /** Unregisters `name`: its requests are no longer checked. Its objects stay theirs (other tenants still cannot open them). False when no such tenant. */
  removeTenant(name: string): boolean {
    checkName('removeTenant', name)
    const old = this.#records().find((r) => r.name === name)
    if (!old) return false
    const { id, version, keys } = old.record
    // Unmatched first: from then on its requests are nobody's.
    this.#dropKeys(keys, id)
    this.#map('tenants').delete(id)
    this.#map('usage').delete(id)
    this.#map('records').delete(id)
    this.#dropRules(id, version)
    return true
  }

  /** The registered tenants, with what they hold now. */
  tenants(): GuardTenant[] {
    return this.#records().map(({ name, record: r }) => this.#describe(name, r))
  }

  /** Counters summed over CPUs. */
  stats(): GuardStats {
    const stats = this.#map('stats')
    const sum = (slot: number) => (stats.get(slot) as bigint[]).reduce((a, b) => a + b, 0n)
    return { refused: sum(statSlots.refused), lost: sum(statSlots.lost), allowed: sum(statSlots.allowed) }
  }

  /**
   * The guard's refusals as they happen, each with a message like a
   * PolicyError's ("guard refused prog 'probe' of tenant 'web': helper
   * probe_write_user at insn 12 is not granted in context kprobe"). One
   * reader at a time: readers share the ring. Ends when `signal` aborts or
   * the guard is closed.
   */
  async *events(options: { signal?: AbortSignal } = {}): AsyncGenerator<GuardEvent, void, undefined> {
    checkOptions('guard.events', options, ['signal'])
    const btf = this.#spec.btf!
    const decode = codecFromBtf(btf, btf.find('guard_event', 'STRUCT')!)
    const ring = this.#map('events').ringBuffer()
    const names = new Map<number, string>()
    const nameOf = (id: number) => {
      if (!names.has(id)) for (const r of this.#records()) names.set(r.record.id, r.name)
      return names.get(id)
    }
    try {
      for await (const bytes of ring.records(options)) {
        yield describeEvent(decode.decode(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0) as RawGuardEvent, nameOf, this.#kernelBtf().vmlinux.btf)
      }
    } finally {
      ring.close()
    }
  }

  /** Detaches the guard and removes its pins: every tenant's requests are the kernel's alone again. */
  stop(): void {
    if (this.#closed) return
    this.close()
    if (this.pinPath !== undefined) removePins(this.pinPath, Object.keys(this.#spec.maps))
  }

  /** Closes this handle. A pinned guard keeps running (Guard.open takes it over); an unpinned one stops. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const l of this.#links) l.close()
    this.#coll.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  #kernelBtf(): GuardKernel {
    if (this.#kernel) return this.#kernel
    const kernel = openKernelBtf()
    const ids = new Map<string, number>()
    for (const info of btfs()) if (info.kernelBtf) ids.set(info.name, info.id)
    const vmlinuxId = ids.get('vmlinux')
    if (vmlinuxId === undefined) throw new Error("guard: the kernel's BTF objects are not listed (no vmlinux among BTF ids)")
    let modules: GuardKernel['modules'] extends () => infer R ? R : never
    return (this.#kernel = {
      vmlinux: { name: 'vmlinux', objectId: vmlinuxId, btf: kernel.vmlinux },
      modules: () => (modules ??= [...(kernel.modules?.() ?? [])].flatMap((m) => (ids.has(m.name) ? [{ name: m.name, objectId: ids.get(m.name)!, btf: m.btf }] : []))),
    })
  }

  #records(): { name: string; record: TenantRecord }[] {
    const out: { name: string; record: TenantRecord }[] = []
    const records = this.#map('records')
    for (const [id, value] of records.entries() as Iterable<[number, RecordValue]>) {
      if (id === META) continue
      const { name, doc } = readRecord(value)
      out.push({ name, record: doc as TenantRecord })
    }
    return out.sort((a, b) => a.record.id - b.record.id)
  }

  #nextId(): number {
    const records = this.#map('records')
    const meta = readRecord(records.get(META) as RecordValue).doc as { next: number }
    records.set(META, record('', { next: meta.next + 1 }))
    return meta.next
  }

  #writeRules(id: number, version: number, c: CompiledTenant): void {
    const contexts = this.#map('contexts')
    c.contexts.forEach((rule, index) => contexts.set({ tenant: id, version, index }, { pad: 0, ...rule }))
    const targets = this.#map('targets')
    for (const t of c.targets) targets.set({ tenant: id, version, index: t.index, btf_obj: t.btfObj, btf_id: t.btfId }, 1)
    const kfuncs = this.#map('kfuncs')
    for (const [btfId, mask] of c.kfuncs) kfuncs.set({ tenant: id, version, btf_id: btfId }, mask)
  }

  #dropRules(id: number, version: number): void {
    for (const name of ['contexts', 'targets', 'kfuncs']) {
      const map = this.#map(name)
      const mine = [...(map.keys() as Iterable<{ tenant: number; version: number }>)].filter((k) => k.tenant === id && k.version === version)
      for (const k of mine) map.delete(k)
    }
  }

  // The keys of `keys` name the tenant; those of `old` it no longer has go.
  #setKeys(id: number, keys: MatchKeys, old: TenantRecord['keys'] | undefined): void {
    const stale = old === undefined ? {} : parseKeys(old)
    for (const [kind, map] of Object.entries(KEY_MAPS) as [keyof MatchKeys, string][]) {
      if (keys[kind] !== undefined) this.#map(map).set(keys[kind], id)
      if (stale[kind] !== undefined && stale[kind] !== keys[kind]) this.#map(map).delete(stale[kind])
    }
  }

  // Deletes only keys that still name this tenant.
  #dropKeys(stored: TenantRecord['keys'], id: number): void {
    const keys = parseKeys(stored)
    for (const [kind, map] of Object.entries(KEY_MAPS) as [keyof MatchKeys, string][]) {
      if (keys[kind] !== undefined && this.#map(map).get(keys[kind]) === id) this.#map(map).delete(keys[kind])
    }
    // Tokens made from the tenant's bpffs, and the user namespaces the guard learned from them.
    for (const name of ['tokens', 'by_userns']) {
      const map = this.#map(name)
      for (const [key, owner] of [...(map.entries() as Iterable<[unknown, number]>)]) if (owner === id) map.delete(key)
    }
  }

  #describe(name: string, r: TenantRecord): GuardTenant {
    const u = this.#map('usage').get(r.id) as { maps: bigint; bytes: bigint } | undefined
    return { name, id: r.id, match: r.match, policy: r.policy, quota: r.quota, usage: { maps: Number(u?.maps ?? 0n), bytes: u?.bytes ?? 0n } }
  }
}

function checkName(where: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name)) throw new TypeError(`guard.${where}: a tenant name is 1-63 letters, digits and _ . : @ -, got ${describeValue(name)}`)
}

function checkQuota(quota: Quota): Quota {
  if (quota === null || typeof quota !== 'object') throw new TypeError(`guard.setTenant: quota must be an object like { maps, bytes }, got ${describeValue(quota)}`)
  checkOptions('guard.setTenant: quota', quota, ['maps', 'bytes'], { noun: 'key' })
  const out: Quota = {}
  for (const k of ['maps', 'bytes'] as const) {
    const v = quota[k]
    if (v === undefined) continue
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TypeError(`guard.setTenant: quota.${k} must be a non-negative integer, got ${describeValue(v)}`)
    out[k] = v
  }
  return out
}

// Checked on the nearest directory that exists, so that nothing is made outside a bpffs.
function preparePinDir(path: string): void {
  let existing = resolve(path)
  while (!existsSync(existing)) existing = dirname(existing)
  if (!onFilesystem(existing, BPF_FS_MAGIC)) throw new TypeError(`Guard.start: pinPath ${path} is not in a bpffs`)
  mkdirSync(path, { recursive: true })
}

// The guard's own pins only: the maps (by name) and the links it made.
function removePins(path: string, maps: readonly string[]): void {
  for (const f of readdirSync(path)) {
    if (HOOKS.some((h) => f === linkName(h)) || maps.includes(f)) unlinkSync(join(path, f))
  }
  try {
    rmdirSync(path)
  } catch {
    // Not empty: something else is pinned there too; it stays.
  }
}

