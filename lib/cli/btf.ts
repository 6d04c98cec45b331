// `bpfkit btf`: loaded BTF objects, as `bpftool btf` lists and dumps them:
// show (with the programs and maps that use each), and dump as raw types
// (bpftool's default, one line per type) or as C declarations (--format c,
// as `bpftool btf dump ... format c`, from lib/btf/c-dump.ts). A file can be
// dumped too: `btf dump file PATH` (raw BTF, or an object's .BTF section).
import { readFileSync } from 'node:fs'
import { Btf } from '../btf/btf.js'
import { btfToC } from '../btf/c-dump.js'
import { BtfReader } from '../btf/reader.js'
import { CollectionSpec } from '../collection/spec.js'
import { btfInfoByFd, mapInfoByFd, progInfoByFd, type BtfInfo } from '../sys/index.js'
import { walkInfo, walkOpen } from '../sys/open-object.js'
import { parseCommand, runSubcommand, toJson, UsageError, type Out } from './args.js'
import { formatBtf } from './list.js'
import { jsonText } from './map-text.js'
import { openNamed, withNamed } from './names.js'
import { withProgress } from './progress.js'
import { rawTypeJson, rawTypeText } from './btf-raw.js'

export const btfUsage = `usage: bpfkit btf <command>

  btf list [--json]                        every loaded BTF object, with the programs and maps using it
  btf show BTF [--json]                    one of them
  btf dump BTF [--format raw|c] [--json]   its types: one per line (raw, the default; --json: bpftool's
                                           keys), or C declarations (c: a header that compiles, as
                                           bpftool btf dump ... format c)
  btf dump file PATH [--format raw|c] [--json]
                                           the same for a file: raw BTF or a clang-built object's .BTF

  BTF is an ID or a name ('vmlinux', a module's name). A module's BTF is dumped
  on vmlinux's (its own types only). Needs root to open BTF by ID.
`

const sub = (line: string) => `usage: bpfkit btf ${line}\n\n  BTF: an ID or a name. See bpfkit btf --help.\n`
const json = { json: { type: 'boolean' } } as const

export function runBtf(args: string[], out: Out): number {
  return runSubcommand('btf', args, { list: btfList, show: btfShow, dump: btfDump }, btfUsage, out)
}

/** Which programs and maps use each BTF object, by its ID. */
function users(): { progs: Map<number, number[]>; maps: Map<number, number[]> } {
  const progs = new Map<number, number[]>()
  const maps = new Map<number, number[]>()
  const add = (m: Map<number, number[]>, btfId: number, id: number) => { if (btfId) m.set(btfId, [...(m.get(btfId) ?? []), id]) }
  for (const p of withProgress('walking programs', walkOpen('prog', progInfoByFd))) add(progs, p.btfId, p.id)
  for (const m of withProgress('walking maps', walkOpen('map', mapInfoByFd))) add(maps, m.btfId, m.id)
  return { progs, maps }
}

/** What bpftool -j btf show prints for a BTF object. */
function btfJson(b: BtfInfo, u: ReturnType<typeof users>): Record<string, unknown> {
  const j: Record<string, unknown> = { id: b.id, size: b.size, prog_ids: u.progs.get(b.id) ?? [], map_ids: u.maps.get(b.id) ?? [] }
  if (b.kernelBtf) j.kernel = true
  if (b.name) j.name = b.name
  return j
}

function showText(b: BtfInfo, j: Record<string, unknown>): string {
  const progs = j.prog_ids as number[]
  const maps = j.map_ids as number[]
  let s = formatBtf(b)
  if (progs.length > 0 || maps.length > 0) s += `\n\t${progs.length ? `prog_ids ${progs.join(',')}` : ''}${progs.length && maps.length ? '  ' : ''}${maps.length ? `map_ids ${maps.join(',')}` : ''}`
  return s
}

function btfList(args: string[], out: Out): number {
  const { values } = parseCommand({ name: 'btf list', usage: sub('list [--json]'), options: json }, args)
  const all = [...withProgress('walking BTF objects', walkInfo('btf'))]
  const u = users()
  if (values.json) out(toJson(all.map((b) => btfJson(b, u))))
  else for (const b of all) out(showText(b, btfJson(b, u)))
  return 0
}

function btfShow(args: string[], out: Out): number {
  const { values, positionals: [name] } = parseCommand({ name: 'btf show', usage: sub('show BTF [--json]'), options: json, positionals: [1, 1] }, args)
  const info = withNamed('btf', name, btfInfoByFd)
  const j = btfJson(info, users())
  out(values.json ? toJson(j) : showText(info, j))
  return 0
}

function btfDump(args: string[], out: Out): number {
  const usage = sub('dump BTF [--format raw|c] [--json]\n       bpfkit btf dump file PATH [--format raw|c] [--json]')
  const { values, positionals } = parseCommand({ name: 'btf dump', usage, options: { ...json, format: { type: 'string' } }, positionals: [1, 2] }, args)
  const format = values.format ?? 'raw'
  if (format !== 'raw' && format !== 'c') throw new UsageError(`btf dump: --format is raw or c, got '${format}'`, usage)
  if (format === 'c' && values.json) throw new UsageError('btf dump: --format c prints C, not JSON; drop --json', usage)
  if (positionals.length === 2 && positionals[0] !== 'file') throw new UsageError(`btf dump: expected BTF or 'file PATH', got '${positionals.join(' ')}'`, usage)
  const btf = positionals.length === 2 ? readBtfFile(positionals[1]) : loadedBtf(positionals[0])
  if (format === 'c') {
    out(btfToC(btf, { header: true }).replace(/\n$/, ''))
    return 0
  }
  const types = function* () {
    for (let id = btf.firstId; id <= btf.count; id++) yield rawTypeJson(btf, btf.type(id))
  }
  if (values.json) out(jsonText({ types: [...types()] }))
  else for (const t of types()) out(rawTypeText(btf, t))
  return 0
}

function loadedBtf(name: string): BtfReader {
  const { fd } = openNamed('btf', name)
  using btf = Btf.fromFd(fd)
  return btf.reader()
}

// Raw BTF (as /sys/kernel/btf/* holds it) or an ELF object's .BTF section.
function readBtfFile(path: string): BtfReader {
  const bytes = readFileSync(path)
  if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0x7f454c46) {
    const btf = CollectionSpec.fromFile(path).btf
    if (!btf) throw new Error(`btf dump: ${path} has no .BTF section (compile it with clang -g)`)
    return btf
  }
  // A module's BTF in /sys/kernel/btf is split BTF on vmlinux's.
  const split = /^\/sys\/kernel\/btf\/(?!vmlinux$)[^/]+$/.test(path)
  return new BtfReader(bytes, split ? BtfReader.fromFile() : undefined)
}
