// `bpfkit map`: loaded maps, as `bpftool map` lists, dumps and edits them.
// Keys and values go through the map's BTF when it has one (map-text.ts);
// --json has bpftool's shape: show's keys (bytes_key, bytes_value, ...), and
// dump's entries with hex "key"/"value" (per-CPU: "values" [{cpu, value}])
// and, for maps with BTF, the decoded "formatted" {key, value}.
import { readFileSync } from 'node:fs'
import { Btf } from '../btf/btf.js'
import type { BtfReader } from '../btf/reader.js'
import { BpfMap } from '../map/map.js'
import { isFdValued, isKeyless, isMapOfMaps, isPerCpu } from '../map/kinds.js'
import { mapInfoByFd, native, type MapInfo } from '../sys/index.js'
import { memlockOf, walkOpen } from '../sys/open-object.js'
import { parseCommand, runSubcommand, toJson, UsageError, type Out } from './args.js'
import { formatMap } from './list.js'
import { hexJson, jsonText, SideText } from './map-text.js'
import { openNamed, withNamed } from './names.js'
import { Progress, withProgress } from './progress.js'

export const mapUsage = `usage: bpfkit map <command>

  map list [--json]                        every loaded map
  map show MAP [--json]                    one map
  map dump MAP [--hex] [--json]            every entry (progress on a terminal's stderr for big maps)
  map lookup MAP KEY [--hex] [--json]      one entry (exit 1 when the key is not there)
  map update MAP KEY VALUE [--any | --noexist | --exist] [--hex]
                                           create or replace an entry (--noexist: only create,
                                           --exist: only replace)
  map delete MAP KEY [--hex]               remove an entry (exit 1 when the key is not there)
  map pin MAP PATH                         pin it on a bpffs at PATH

  MAP is an ID, a pinned path (anything with a '/') or the map's name.
  KEY and VALUE: with BTF, JSON of the map's types ('{"a": 1, "b": "text"}', 7, RED);
  without (or with --hex), hex bytes: '01 00 00 00', '0x01 0x00 0x00 0x00', 01000000.
  Per-CPU maps show a value per CPU; an update sets every CPU's. prog_array and
  map-in-map values are the program or map named (ID, pin or name); they read as IDs.
  --json has bpftool's shape (bpftool -j map show / dump). Needs root.
`

const sub = (line: string) => `usage: bpfkit map ${line}\n\n  MAP: an ID, a pinned path or a name. See bpfkit map --help.\n`
const json = { json: { type: 'boolean' } } as const
const hex = { hex: { type: 'boolean' } } as const

export function runMap(args: string[], out: Out): number {
  return runSubcommand('map', args, { list: mapList, show: mapShow, dump: mapDump, lookup: mapLookup, update: mapUpdate, delete: mapDelete, pin: mapPin }, mapUsage, out)
}

/** What bpftool -j map show prints for a map, from its info and open fd. */
export function mapJson(m: MapInfo, fd: number): Record<string, unknown> {
  const j: Record<string, unknown> = {
    id: m.id, type: m.type, name: m.name, flags: m.flags,
    bytes_key: m.keySize, bytes_value: m.valueSize, max_entries: m.maxEntries,
  }
  const memlock = memlockOf(fd)
  if (memlock !== undefined) j.bytes_memlock = memlock
  const frozen = /^frozen:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
  if (frozen) j.frozen = Number(frozen[1])
  if (m.btfId) j.btf_id = m.btfId
  return j
}

function showText(m: MapInfo, j: Record<string, unknown>): string {
  let s = formatMap(m)
  if (j.bytes_memlock !== undefined) s += `  memlock ${j.bytes_memlock}B`
  if (j.frozen) s += '  frozen'
  return s
}

function mapList(args: string[], out: Out): number {
  const { values } = parseCommand({ name: 'map list', usage: sub('list [--json]'), options: json }, args)
  const rows = [...withProgress('walking maps', walkOpen('map', (fd) => {
    const info = mapInfoByFd(fd)
    return { info, json: mapJson(info, fd) }
  }))]
  if (values.json) out(toJson(rows.map((r) => r.json)))
  else for (const r of rows) out(showText(r.info, r.json))
  return 0
}

function mapShow(args: string[], out: Out): number {
  const { values, positionals: [name] } = parseCommand({ name: 'map show', usage: sub('show MAP [--json]'), options: json, positionals: [1, 1] }, args)
  return withNamed('map', name, (fd) => {
    const info = mapInfoByFd(fd)
    const j = mapJson(info, fd)
    out(values.json ? toJson(j) : showText(info, j))
    return 0
  })
}

/** An open map with its keys' and values' text forms (also what `bpfkit --broker SOCK dump map` prints through). */
export class OpenMap {
  readonly map: BpfMap
  readonly info: MapInfo
  readonly key: SideText
  readonly value: SideText
  readonly perCpu: boolean
  /** Bytes between per-CPU values (the value size rounded up to 8). */
  readonly stride: number
  readonly cpus: number

  /** `btf`: the map's BTF, if it has one; `hex`: keys and values as bytes even then. */
  constructor(source: { map: BpfMap; btf?: BtfReader }, hex: boolean) {
    this.map = source.map
    this.info = this.map.info()
    const btf = hex ? undefined : source.btf
    this.key = new SideText('key', this.info.keySize, btf, this.info.btfKeyTypeId)
    this.value = new SideText('value', this.info.valueSize, btf, this.info.btfValueTypeId)
    this.perCpu = isPerCpu(this.info.typeId)
    this.stride = this.perCpu ? Math.ceil(this.info.valueSize / 8) * 8 : this.info.valueSize
    this.cpus = this.perCpu ? this.map.valueBytes / this.stride : 1
  }

  get what(): string {
    return `map ${this.info.id}${this.info.name ? ` (${this.info.name})` : ''}`
  }

  /** Refuses maps whose entries have no key (queue, stack, ring buffer, bloom filter). */
  requireKeys(op: string): void {
    if (isKeyless(this.info.typeId)) throw new Error(`${this.what}: ${this.info.type} maps have no keys to ${op}`)
  }

  /** One entry as bpftool -j map dump prints it. */
  entryJson(key: Uint8Array, value: Uint8Array): Record<string, unknown> {
    const e: Record<string, unknown> = { key: hexJson(key) }
    const formatted: Record<string, unknown> = {}
    if (this.key.codec) formatted.key = this.key.decode(key)
    if (this.perCpu) {
      e.values = this.#cpus().map((cpu) => ({ cpu, value: hexJson(value.subarray(cpu * this.stride, cpu * this.stride + this.info.valueSize)) }))
      if (this.value.codec) formatted.values = this.#cpus().map((cpu) => ({ cpu, value: this.value.decode(value, cpu * this.stride) }))
    } else {
      e.value = hexJson(value)
      if (this.value.codec) formatted.value = this.value.decode(value)
    }
    if (this.key.codec || this.value.codec) e.formatted = formatted
    return e
  }

  /** One entry as text: `key: ...  value: ...`, a line per CPU for per-CPU maps. */
  entryText(key: Uint8Array, value: Uint8Array): string {
    if (!this.perCpu) return `key: ${this.key.text(key)}  value: ${this.value.text(value)}`
    return [`key: ${this.key.text(key)}`, ...this.#cpus().map((cpu) => `value (CPU ${String(cpu).padStart(2, '0')}): ${this.value.text(value, cpu * this.stride)}`)].join('\n')
  }

  #cpus(): number[] {
    return Array.from({ length: this.cpus }, (_, i) => i)
  }

  /** VALUE from the command line as the bytes an update writes (per-CPU: the same value on every CPU). */
  parseValue(text: string): { bytes: Uint8Array; close(): void } {
    if (isFdValued(this.info.typeId)) {
      if (!isMapOfMaps(this.info.typeId) && this.info.type !== 'prog_array') {
        throw new Error(`${this.what}: ${this.info.type} values are set by the programs that use them, not from the command line`)
      }
      // The kernel takes an fd to the program or map; lookups answer its ID.
      const { fd } = openNamed(isMapOfMaps(this.info.typeId) ? 'map' : 'prog', text)
      const bytes = new Uint8Array(4)
      new DataView(bytes.buffer).setUint32(0, fd.fd, true)
      return { bytes, close: () => fd.close() }
    }
    const one = this.value.parse(text)
    if (!this.perCpu) return { bytes: one, close() {} }
    const bytes = new Uint8Array(this.map.valueBytes)
    for (let cpu = 0; cpu < this.cpus; cpu++) bytes.set(one, cpu * this.stride)
    return { bytes, close() {} }
  }

  close(): void {
    this.map.close()
  }
}

// The map's BTF, read from the kernel; a map whose BTF cannot be read is shown in hex.
function mapBtf(btfId: number): BtfReader | undefined {
  try {
    using btf = Btf.fromId(btfId)
    return btf.reader()
  } catch {
    return undefined
  }
}

function withMap<T>(name: string, hex: boolean | undefined, usage: string, use: (m: OpenMap) => T): T {
  const { fd } = openNamed('map', name)
  const map = BpfMap.fromFd(fd)
  let m: OpenMap
  try {
    const { btfId } = map.info()
    m = new OpenMap({ map, btf: btfId && !hex ? mapBtf(btfId) : undefined }, hex === true)
  } catch (e) {
    map.close()
    throw e
  }
  try {
    return use(m)
  } catch (e) {
    // A key or value that does not parse is a usage error of this command: show its usage.
    if (e instanceof UsageError && e.usage === undefined) throw new UsageError(e.message, usage)
    throw e
  } finally {
    m.close()
  }
}

function mapDump(args: string[], out: Out): number {
  const usage = sub('dump MAP [--hex] [--json]')
  const { values, positionals: [name] } = parseCommand({ name: 'map dump', usage, options: { ...json, ...hex }, positionals: [1, 1] }, args)
  return withMap(name, values.hex, usage, (m) => {
    printMapDump(m, values.json === true, out)
    return 0
  })
}

/**
 * Every entry of `m`, as --json (bpftool's shape) or text. Error: `m` has no
 * keys (queue, stack, ring buffer, bloom filter).
 */
export function printMapDump(m: OpenMap, json: boolean, out: Out): void {
  m.requireKeys('dump')
  // BPF_MAP_LOOKUP_BATCH where the kernel has it; the count shown on a terminal as batches arrive.
  const progress = new Progress(`dumping ${m.what}`, m.info.maxEntries)
  let batch
  try {
    batch = m.map.lookupBatchBytes({ onBatch: (n) => progress.tick(n - progress.count) })
  } finally {
    progress.done()
  }
  const { keys, values: vals, count } = batch
  const ks = m.info.keySize
  const vs = m.map.valueBytes
  const entry = (i: number) => [keys.subarray(i * ks, (i + 1) * ks), vals.subarray(i * vs, (i + 1) * vs)] as const
  if (json) {
    // One entry per line as it is made: a big map never becomes one huge string.
    out('[')
    for (let i = 0; i < count; i++) out(jsonText(m.entryJson(...entry(i))) + (i < count - 1 ? ',' : ''))
    out(']')
    return
  }
  for (let i = 0; i < count; i++) out(m.entryText(...entry(i)))
  out(`Found ${count} element${count === 1 ? '' : 's'}`)
}

function mapLookup(args: string[], out: Out): number {
  const usage = sub('lookup MAP KEY [--hex] [--json]')
  const { values, positionals: [name, keyText] } = parseCommand({ name: 'map lookup', usage, options: { ...json, ...hex }, positionals: [2, 2] }, args)
  return withMap(name, values.hex, usage, (m) => {
    m.requireKeys('look up')
    const key = m.key.parse(keyText)
    // The raw bytes (per-CPU: every CPU's), decoded here as dump decodes them.
    const value = new Uint8Array(m.map.valueBytes)
    if (!m.map.lookupInto(key, value)) throw new Error(`${m.what}: no entry for key ${m.key.text(key)}`)
    out(values.json ? jsonText(m.entryJson(key, value), 2) : m.entryText(key, value))
    return 0
  })
}

function mapUpdate(args: string[], out: Out): number {
  const usage = sub('update MAP KEY VALUE [--any | --noexist | --exist] [--hex]')
  const { values, positionals: [name, keyText, valueText] } = parseCommand({
    name: 'map update', usage, options: { ...hex, any: { type: 'boolean' }, noexist: { type: 'boolean' }, exist: { type: 'boolean' } }, positionals: [3, 3],
  }, args)
  const flags = (['any', 'noexist', 'exist'] as const).filter((f) => values[f])
  if (flags.length > 1) throw new UsageError(`map update: --${flags.join(' and --')} contradict each other; give one`, usage)
  return withMap(name, values.hex, usage, (m) => {
    m.requireKeys('update')
    // Both parsed before the map is touched: a bad value leaves it unchanged.
    const key = m.key.parse(keyText)
    const value = m.parseValue(valueText)
    try {
      m.map.update(key, value.bytes, flags[0] ?? 'any')
    } finally {
      value.close()
    }
    out(`updated ${m.what}: key ${m.key.text(key)}`)
    return 0
  })
}

function mapDelete(args: string[], out: Out): number {
  const usage = sub('delete MAP KEY [--hex]')
  const { values, positionals: [name, keyText] } = parseCommand({ name: 'map delete', usage, options: hex, positionals: [2, 2] }, args)
  return withMap(name, values.hex, usage, (m) => {
    m.requireKeys('delete')
    const key = m.key.parse(keyText)
    if (!m.map.delete(key)) throw new Error(`${m.what}: no entry for key ${m.key.text(key)}`)
    out(`deleted from ${m.what}: key ${m.key.text(key)}`)
    return 0
  })
}

function mapPin(args: string[], out: Out): number {
  const { positionals: [name, path] } = parseCommand({ name: 'map pin', usage: sub('pin MAP PATH'), options: {}, positionals: [2, 2] }, args)
  return withNamed('map', name, (fd, id) => {
    native.objPin(fd, path)
    out(`pinned map ${id} at ${path}`)
    return 0
  })
}
