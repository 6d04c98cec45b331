// What the broker made or adopted for each tenant, kept across restarts.
// Pins are the truth: every object is pinned at <pinRoot>/<tenant>/<kind>/<id>
// before its record is written, and the broker keeps no fds between
// requests. registry.json is metadata (origin, name, the tenant's own pin
// names), written atomically; on open both are reconciled so that a kill -9
// at any point loses nothing that was acknowledged (plan §5).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, unlinkSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { BPF_FS_MAGIC, onFilesystem } from '../sys/fs-magic.js'
import { Pin } from '../sys/pin.js'
import { bpfObjectKind, btfInfoByFd, Fd, linkInfoByFd, mapInfoByFd, native, progInfoByFd } from '../sys/index.js'
import { writeFileAtomic } from './atomic-file.js'
import { brokerError } from './errors.js'
import type { Kind } from './protocol.js'

export interface RegistryRecord {
  tenant: string
  kind: Kind
  id: number
  origin: 'made' | 'adopted'
  name: string
  createdAt: string
  /** The tenant's own pin names of this object (under tenantPinRoot/<tenant>/). */
  pins: string[]
}

export interface RegistryOptions {
  /** One line per recovered or dropped record (the daemon prints them). */
  log?: (line: string) => void
}

const FILE = 'registry.json'
const VERSION = 1
const KINDS: readonly Kind[] = ['map', 'prog', 'link', 'btf']
// Tenant names as config.ts allows them: bpffs names cannot contain dots, and no '/' or '..'.
const TENANT = /^[A-Za-z0-9_-]{1,63}$/
const ID = /^[1-9][0-9]{0,9}$/
const CRASH_ENV = 'BPFKIT_BROKER_TEST_CRASH'

export class Registry {
  readonly pinRoot: string
  readonly #file: string
  readonly #log: (line: string) => void
  #records: RegistryRecord[] = []
  // kind:id → record: every by-id request looks here first.
  #byRef = new Map<string, RegistryRecord>()

  private constructor(stateDir: string, pinRoot: string, log: (line: string) => void) {
    this.#file = join(stateDir, FILE)
    this.pinRoot = pinRoot
    this.#log = log
  }

  /**
   * Opens (or starts) the registry in `stateDir` for the pins under
   * `pinRoot`, which must be in a bpffs. Both directories are made if missing
   * (mode 0700). Records and pins are reconciled (plan §5), then saved once.
   * Errors: TypeError when pinRoot is not in a bpffs; the file system's.
   */
  static open(stateDir: string, pinRoot: string, options: RegistryOptions = {}): Registry {
    if (typeof stateDir !== 'string' || stateDir === '') throw new TypeError('Registry.open: stateDir must be a directory path')
    if (typeof pinRoot !== 'string' || pinRoot === '') throw new TypeError('Registry.open: pinRoot must be a directory path in a bpffs')
    stateDir = resolve(stateDir)
    pinRoot = resolve(pinRoot)
    // Checked on the nearest directory that exists, so that nothing is made outside a bpffs.
    let existing = pinRoot
    while (!existsSync(existing)) existing = dirname(existing)
    if (!onFilesystem(existing, BPF_FS_MAGIC)) throw new TypeError(`Registry.open: pinRoot ${pinRoot} is not in a bpffs`)
    mkdirSync(pinRoot, { recursive: true, mode: 0o700 })
    mkdirSync(stateDir, { recursive: true, mode: 0o700 })
    const r = new Registry(stateDir, pinRoot, options.log ?? (() => {}))
    r.#reconcile(r.#readFile())
    r.save()
    return r
  }

  records(): readonly RegistryRecord[] {
    return this.#records
  }

  forTenant(name: string): RegistryRecord[] {
    return this.#records.filter((r) => r.tenant === name)
  }

  find(kind: Kind, id: number): RegistryRecord | undefined {
    return this.#byRef.get(`${kind}:${id}`)
  }

  pinPathOf(r: { tenant: string; kind: Kind; id: number }): string {
    return join(this.pinRoot, r.tenant, r.kind, String(r.id))
  }

  /**
   * Registers the object behind `fd` for `tenant`: pinned first, then
   * recorded and saved, so a crash in between is recovered on open. The
   * caller keeps `fd`. Errors: TypeError when fd is not a `kind`; EINVAL
   * for BTF (the kernel pins no BTF); EEXIST when the object is already registered; the kernel's (pin) or the file
   * system's (save; the pin is then removed again).
   */
  add(tenant: string, kind: Kind, fd: Fd | number, origin: 'made' | 'adopted', name: string): RegistryRecord {
    checkTenant('add', tenant)
    checkKind('add', kind)
    // kernel/bpf/inode.c: bpf_obj_pin_user takes programs, maps and links only (bpf_fd_probe_obj).
    if (kind === 'btf') throw brokerError('EINVAL', 'BTF objects cannot be pinned in a bpffs, so the broker cannot keep one across restarts; BTF lives on through the maps and programs that use it')
    const n = typeof fd === 'number' ? fd : fd.fd
    const actual = bpfObjectKind(n)
    if (actual !== kind) throw new TypeError(`registry.add: fd ${n} is ${actual === undefined ? 'not a BPF object' : `a ${actual}`}, not a ${kind}`)
    const { id } = infoOf(kind, n)
    const other = this.find(kind, id)
    if (other) throw brokerError('EEXIST', `${kind} ${id} is already registered (${other.origin} for tenant ${other.tenant})`)
    const record: RegistryRecord = { tenant, kind, id, origin, name, createdAt: new Date().toISOString(), pins: [] }
    const path = this.pinPathOf(record)
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
    new Pin().pin(n, path)
    crashPoint('after-pin')
    this.#records.push(record)
    this.#byRef.set(`${kind}:${id}`, record)
    try {
      this.save()
    } catch (e) {
      this.#records.pop()
      this.#byRef.delete(`${kind}:${id}`)
      try {
        unlinkQuiet(path)
      } catch {
        // The save's error is the one to report; open() drops or recovers the pin.
      }
      throw e
    }
    crashPoint('after-save')
    return record
  }

  /** Drops the broker's pin and the record (the object lives on while fds or other pins hold it); undefined when not registered. */
  remove(kind: Kind, id: number): RegistryRecord | undefined {
    const record = this.find(kind, id)
    if (!record) return undefined
    unlinkQuiet(this.pinPathOf(record))
    this.#records.splice(this.#records.indexOf(record), 1)
    this.#byRef.delete(`${kind}:${id}`)
    this.save()
    return record
  }

  /** Replaces the record's tenant pin names and saves. Errors: TypeError when the record is not this registry's. */
  setPins(r: RegistryRecord, pins: string[]): void {
    const mine = this.find(r.kind, r.id)
    if (!mine || mine.tenant !== r.tenant) throw new TypeError(`registry.setPins: ${r.kind} ${r.id} is not registered for tenant ${r.tenant}`)
    mine.pins = [...pins]
    this.save()
  }

  /**
   * An fd for the record's object, from its broker pin. Errors: ENOENT
   * (BrokerError) when the pin is gone or holds another object.
   */
  openObject(r: RegistryRecord): Fd {
    const path = this.pinPathOf(r)
    let fd: Fd
    try {
      fd = new Fd(native.objGet(path), r.kind)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw brokerError('ENOENT', `${r.kind} ${r.id}: its broker pin ${path} is gone`)
      throw e
    }
    // pinRoot is the broker's (0700), but a pin is only trusted for the object it names.
    try {
      if (bpfObjectKind(fd.fd) !== r.kind || infoOf(r.kind, fd.fd).id !== r.id) throw brokerError('ENOENT', `${r.kind} ${r.id}: its broker pin ${path} holds another object`)
    } catch (e) {
      fd.close()
      throw e
    }
    return fd
  }

  /** Writes registry.json atomically: a tmp file (0600), fsync, rename over, fsync of the directory. */
  save(): void {
    const doc = { version: VERSION, pinRoot: this.pinRoot, objects: this.#records }
    writeFileAtomic(this.#file, Buffer.from(JSON.stringify(doc, null, 1) + '\n'))
  }

  /** The records of registry.json that are well formed; an unreadable file is logged and counts as empty (the pins rebuild it). */
  #readFile(): RegistryRecord[] {
    rmSync(`${this.#file}.tmp`, { force: true }) // a save cut short; registry.json is still the previous one
    let text: string
    try {
      text = readFileSync(this.#file, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw e
    }
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (e) {
      this.#log(`registry: ${this.#file} is not JSON (${(e as Error).message}); rebuilding it from the pins`)
      return []
    }
    const d = doc as { version?: unknown; pinRoot?: unknown; objects?: unknown }
    if (doc === null || typeof doc !== 'object' || d.version !== VERSION || !Array.isArray(d.objects)) {
      this.#log(`registry: ${this.#file} is not a version ${VERSION} registry; rebuilding it from the pins`)
      return []
    }
    if (d.pinRoot !== this.pinRoot) this.#log(`registry: ${this.#file} was written for pins under ${String(d.pinRoot)}, now ${this.pinRoot}`)
    const out: RegistryRecord[] = []
    for (const o of d.objects) {
      const r = parseRecord(o)
      if (r) out.push(r)
      else this.#log(`registry: dropped a malformed record ${JSON.stringify(o)?.slice(0, 200)}`)
    }
    return out
  }

  // (a) pin and record with the same id: kept; (b) a pin without a record
  // (killed between pin and save): recreated; (c) a record without its pin,
  // or whose pin holds another object: dropped. Pins of tenants the config
  // no longer names are kept (the admin sees them until gc).
  #reconcile(recorded: RegistryRecord[]): void {
    const byKey = new Map<string, RegistryRecord>()
    for (const r of recorded) {
      const key = `${r.tenant}/${r.kind}/${r.id}`
      if (byKey.has(key)) this.#log(`registry: dropped a duplicate record of ${r.kind} ${r.id} (tenant ${r.tenant})`)
      else byKey.set(key, r)
    }
    const kept: RegistryRecord[] = []
    const seen = new Set<string>()
    for (const pin of this.#pins()) {
      const key = `${pin.tenant}/${pin.kind}/${pin.id}`
      const r = byKey.get(key)
      // One object, one owner: a second pin of an already listed object (by hand) is not adopted.
      if (seen.has(`${pin.kind}:${pin.id}`)) {
        this.#log(`registry: ${pin.path} pins ${pin.kind} ${pin.id} again; ignored`)
        continue
      }
      seen.add(`${pin.kind}:${pin.id}`)
      if (r) {
        kept.push(r)
        byKey.delete(key)
      } else {
        kept.push({ tenant: pin.tenant, kind: pin.kind, id: pin.id, origin: 'made', name: pin.name, createdAt: new Date().toISOString(), pins: [] })
        this.#log(`registry: recovered ${pin.kind} ${pin.id} of tenant ${pin.tenant} (pinned, not recorded)`)
      }
    }
    for (const r of byKey.values()) this.#log(`registry: dropped ${r.kind} ${r.id} of tenant ${r.tenant} (its pin ${this.pinPathOf(r)} is gone or holds another object)`)
    this.#records = kept
    this.#byRef = new Map(kept.map((r) => [`${r.kind}:${r.id}`, r]))
  }

  /** Every pin of the layout <pinRoot>/<tenant>/<kind>/<id> whose object is that kind and id, with its name; anything else is logged and left alone. */
  #pins(): { tenant: string; kind: Kind; id: number; name: string; path: string }[] {
    const out: { tenant: string; kind: Kind; id: number; name: string; path: string }[] = []
    for (const tenant of readdirSync(this.pinRoot).sort()) {
      const tenantDir = join(this.pinRoot, tenant)
      if (!TENANT.test(tenant) || !lstatSync(tenantDir).isDirectory()) {
        this.#log(`registry: ${tenantDir} is not a tenant directory; ignored`)
        continue
      }
      for (const kind of readdirSync(tenantDir).sort()) {
        const kindDir = join(tenantDir, kind)
        if (!(KINDS as readonly string[]).includes(kind) || !lstatSync(kindDir).isDirectory()) {
          this.#log(`registry: ${kindDir} is not a kind directory; ignored`)
          continue
        }
        for (const name of readdirSync(kindDir).sort((a, b) => Number(a) - Number(b))) {
          const path = join(kindDir, name)
          const pin = this.#readPin(path, kind as Kind, name)
          if (pin) out.push({ tenant, kind: kind as Kind, ...pin, path })
        }
      }
    }
    return out
  }

  #readPin(path: string, kind: Kind, name: string): { id: number; name: string } | undefined {
    if (!ID.test(name) || !lstatSync(path).isFile()) {
      this.#log(`registry: ${path} is not an object pin; ignored`)
      return undefined
    }
    let fd: Fd
    try {
      fd = new Fd(native.objGet(path), kind)
    } catch (e) {
      this.#log(`registry: ${path} cannot be opened (${(e as Error).message}); ignored`)
      return undefined
    }
    try {
      const actual = bpfObjectKind(fd.fd)
      if (actual !== kind) {
        this.#log(`registry: ${path} pins ${actual === undefined ? 'no BPF object' : `a ${actual}`}, not a ${kind}; ignored`)
        return undefined
      }
      const info = infoOf(kind, fd.fd)
      if (String(info.id) !== name) {
        this.#log(`registry: ${path} pins ${kind} ${info.id}, not ${name}; ignored`)
        return undefined
      }
      return info
    } finally {
      fd.close()
    }
  }
}

/** The id and display name of the object behind `fd` (links have no name: their type stands in). */
function infoOf(kind: Kind, fd: number): { id: number; name: string } {
  switch (kind) {
    case 'map': {
      const i = mapInfoByFd(fd)
      return { id: i.id, name: i.name }
    }
    case 'prog': {
      const i = progInfoByFd(fd)
      return { id: i.id, name: i.name }
    }
    case 'link': {
      const i = linkInfoByFd(fd)
      return { id: i.id, name: i.type }
    }
    case 'btf': {
      const i = btfInfoByFd(fd)
      return { id: i.id, name: i.name }
    }
  }
}

function parseRecord(o: unknown): RegistryRecord | undefined {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return undefined
  const r = o as Record<string, unknown>
  if (typeof r.tenant !== 'string' || !TENANT.test(r.tenant)) return undefined
  if (typeof r.kind !== 'string' || !(KINDS as readonly string[]).includes(r.kind)) return undefined
  if (typeof r.id !== 'number' || !Number.isInteger(r.id) || r.id <= 0 || r.id > 0xffffffff) return undefined
  if (r.origin !== 'made' && r.origin !== 'adopted') return undefined
  if (typeof r.name !== 'string' || typeof r.createdAt !== 'string') return undefined
  if (!Array.isArray(r.pins) || !r.pins.every((p) => typeof p === 'string')) return undefined
  // Copied field by field: nothing else of the file reaches the records.
  return { tenant: r.tenant, kind: r.kind as Kind, id: r.id, origin: r.origin, name: r.name, createdAt: r.createdAt, pins: [...(r.pins as string[])] }
}

function checkTenant(where: string, tenant: unknown): asserts tenant is string {
  if (typeof tenant !== 'string' || !TENANT.test(tenant)) throw new TypeError(`registry.${where}: a tenant name is 1-63 letters, digits, _ and -, got ${JSON.stringify(tenant)}`)
}

function checkKind(where: string, kind: unknown): asserts kind is Kind {
  if (!(KINDS as readonly unknown[]).includes(kind)) throw new TypeError(`registry.${where}: kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(kind)}`)
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}

// Tests of restart kill the broker between the steps of add(); never read outside tests.
function crashPoint(at: 'after-pin' | 'after-save'): void {
  if (process.env.NODE_ENV !== 'test' && !process.env.VITEST) return
  if (process.env[CRASH_ENV] === at) process.kill(process.pid, 'SIGKILL')
}
