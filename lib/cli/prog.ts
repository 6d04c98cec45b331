// `bpfkit prog`: loaded programs, as `bpftool prog` shows, dumps, pins and
// runs them. --json mirrors bpftool's key names (id, type, name, tag,
// gpl_compatible, loaded_at, uid, bytes_xlated, jited, bytes_jited,
// bytes_memlock, map_ids, btf_id, run_time_ns, run_cnt, ...), so a script
// written against `bpftool -j prog show` reads it; where bpftool leaves a key
// out when zero, bpfkit prints it anyway (map_ids [], run_cnt 0), except
// btf_id, whose 0 means "none".
import { readFileSync, writeFileSync } from 'node:fs'
import { asm, type Insn } from '../asm/index.js'
import { programFullName, type BtfCache } from '../prog/full-name.js'
import { BpfProgram } from '../prog/program.js'
import { progInfoByFd, type ProgramInfo } from '../sys/index.js'
import { readKallsyms } from '../sys/kallsyms.js'
import { memlockOf, walkOpen } from '../sys/open-object.js'
import { progJitedFunctions } from '../sys/prog-jited.js'
import { integerArg, parseCommand, runSubcommand, toJson, u64Json, UsageError, type Out } from './args.js'
import { formatProg } from './list.js'
import { openNamed, withNamed } from './names.js'
import { withProgress } from './progress.js'

export const progUsage = `usage: bpfkit prog <command>

  prog list [--json]                       every loaded program
  prog show PROG [--json]                  one program
  prog dump PROG [--xlated | --jited-size] [--json]
                                           its instructions as the verifier left them (default),
                                           or the size of its JIT-compiled code per function
  prog pin PROG PATH                       pin it on a bpffs at PATH
  prog run PROG --data FILE [--ctx FILE] [--data-out FILE] [--repeat N] [--json]
                                           run it in the kernel on FILE's bytes (BPF_PROG_TEST_RUN;
                                           FILE '-' is stdin): return value, mean duration, data out

  PROG is an ID, a pinned path (anything with a '/') or the program's name.
  --json keys are bpftool's (bpftool -j prog show / dump xlated).
  Needs root (CAP_SYS_ADMIN) to see programs by ID.
`

const sub = (line: string) => `usage: bpfkit prog ${line}\n\n  PROG: an ID, a pinned path or a name. See bpfkit prog --help.\n`

export async function runProg(args: string[], out: Out): Promise<number> {
  return await runSubcommand<number | Promise<number>>('prog', args, { list: progList, show: progShow, dump: progDump, pin: progPin, run: progRun }, progUsage, out)
}

/** What bpftool -j prog show prints for a program, from its info and its open fd. */
export function progJson(p: ProgramInfo, fd: number, btfs?: BtfCache): Record<string, unknown> {
  const j: Record<string, unknown> = {
    id: p.id, type: p.type, name: programFullName(fd, p, btfs), tag: p.tag, gpl_compatible: p.gplCompatible,
    run_time_ns: u64Json(p.runTimeNs), run_cnt: u64Json(p.runCount),
  }
  if (p.recursionMisses > 0n) j.recursion_misses = u64Json(p.recursionMisses)
  if (p.loadTime > 0n) {
    j.loaded_at = wallClockSeconds(p.loadTime)
    j.uid = p.createdByUid
  }
  j.bytes_xlated = p.xlatedSize
  j.jited = p.jitedSize > 0
  if (p.jitedSize > 0) j.bytes_jited = p.jitedSize
  const memlock = memlockOf(fd)
  if (memlock !== undefined) j.bytes_memlock = memlock
  j.map_ids = p.mapIds
  if (p.btfId) j.btf_id = p.btfId
  if (p.verifiedInsns) j.verified_insns = p.verifiedInsns
  return j
}

/**
 * A load time (nanoseconds since boot, CLOCK_BOOTTIME) as seconds since the
 * epoch, as bpftool prints loaded_at. The boot's wall-clock time is
 * /proc/stat's btime, in whole seconds: the same on every call (now minus
 * /proc/uptime moves by its 10 ms steps, and one program would print two
 * times), at most a second from bpftool's.
 */
function wallClockSeconds(sinceBootNs: bigint): number {
  const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))
  if (!btime) throw new Error('/proc/stat has no btime line')
  return Number(btime[1]) + Number(sinceBootNs / 1_000_000_000n)
}

function showText(p: ProgramInfo, json: Record<string, unknown>): string {
  let s = formatProg({ ...p, name: json.name as string })
  if (json.loaded_at !== undefined) s += `\n\tloaded_at ${new Date(Number(json.loaded_at) * 1000).toISOString()}  uid ${p.createdByUid}`
  if (json.bytes_memlock !== undefined) s += `  memlock ${json.bytes_memlock}B`
  if (p.verifiedInsns) s += `  verified_insns ${p.verifiedInsns}`
  return s
}

function progList(args: string[], out: Out): number {
  const { values } = parseCommand({ name: 'prog list', usage: sub('list [--json]'), options: { json: { type: 'boolean' } } }, args)
  const btfs: BtfCache = new Map()
  const rows = walkOpen('prog', (fd) => {
    const info = progInfoByFd(fd)
    return { info, json: progJson(info, fd, btfs) }
  })
  // A host with thousands of programs takes a while: progress on a terminal's stderr.
  const all = [...withProgress('walking programs', rows)]
  if (values.json) out(toJson(all.map((r) => r.json)))
  else for (const r of all) out(showText(r.info, r.json))
  return 0
}

function progShow(args: string[], out: Out): number {
  const { values, positionals: [name] } = parseCommand({ name: 'prog show', usage: sub('show PROG [--json]'), options: { json: { type: 'boolean' } }, positionals: [1, 1] }, args)
  const text = withNamed('prog', name, (fd) => {
    const info = progInfoByFd(fd)
    const json = progJson(info, fd)
    return values.json ? toJson(json) : showText(info, json)
  })
  out(text)
  return 0
}

/** One translated instruction as bpftool's text and JSON show it: "(b7) r0 = 0". */
function disasmLine(i: Insn): string {
  return `(${i.code.toString(16).padStart(2, '0')}) ${asm.format(i, { maps: 'id' })}`
}

function progDump(args: string[], out: Out): number {
  const usage = sub('dump PROG [--xlated | --jited-size] [--json]')
  const { values, positionals: [name] } = parseCommand({
    name: 'prog dump', usage, options: { xlated: { type: 'boolean' }, 'jited-size': { type: 'boolean' }, json: { type: 'boolean' } }, positionals: [1, 1],
  }, args)
  if (values.xlated && values['jited-size']) throw new UsageError('prog dump: --xlated and --jited-size are two dumps; ask for one', usage)
  const { fd, id } = openNamed('prog', name)
  const prog = BpfProgram.fromFd(fd)
  try {
    return values['jited-size'] ? dumpJitedSize(prog, id, values.json === true, out) : dumpXlated(prog, id, values.json === true, out)
  } finally {
    prog.close()
  }
}

function dumpXlated(prog: BpfProgram, id: number, json: boolean, out: Out): number {
  return printXlated(prog.xlated(), id, json, out)
}

/** Translated instructions as `prog dump --xlated` prints them (also `--broker SOCK dump prog`, broker-dump.ts). */
export function printXlated(insns: Insn[], id: number, json: boolean, out: Out): number {
  if (insns.length === 0) throw new Error(`prog ${id}: the kernel gave no instructions (it withholds them without CAP_SYS_ADMIN or CAP_PERFMON)`)
  let pc = 0
  const rows = insns.map((i) => {
    const row = { pc, code: i.code, dst: i.dst, src: i.src, off: i.off, imm: i.imm, ...(i.imm64 !== undefined ? { imm64: i.imm64 } : {}), disasm: disasmLine(i) }
    pc += i.imm64 !== undefined ? 2 : 1
    return row
  })
  if (json) out(toJson(rows))
  else for (const r of rows) out(`${String(r.pc).padStart(4)}: ${r.disasm}`)
  return 0
}

function dumpJitedSize(prog: BpfProgram, id: number, json: boolean, out: Out): number {
  const info = prog.info()
  const funcs = progJitedFunctions(prog.fd)
  // The kernel's symbol for each function (bpf_prog_<tag>_<name>), when addresses are visible.
  const symbols = funcs.some((f) => f.address !== 0n) ? bpfSymbols() : new Map<bigint, string>()
  const functions = funcs.map((f) => ({ name: symbols.get(f.address) ?? '', address: `0x${f.address.toString(16)}`, bytes: f.size }))
  if (json) {
    out(toJson({ id, jited: info.jitedSize > 0, bytes_jited: info.jitedSize, functions }))
    return 0
  }
  if (info.jitedSize === 0) {
    out(`${id}: not JIT-compiled (the interpreter runs it)`)
    return 0
  }
  out(`${id}: jited ${info.jitedSize}B in ${functions.length} function${functions.length === 1 ? '' : 's'}`)
  for (const [i, f] of functions.entries()) {
    out(`\t${i}: ${f.bytes}B${f.address !== '0x0' ? `  at ${f.address}` : ''}${f.name ? `  ${f.name}` : ''}`)
  }
  return 0
}

function bpfSymbols(): Map<bigint, string> {
  try {
    return new Map(readKallsyms().filter((s) => s.module === 'bpf').map((s) => [s.address, s.name]))
  } catch {
    return new Map()
  }
}

function progPin(args: string[], out: Out): number {
  const { positionals: [name, path] } = parseCommand({ name: 'prog pin', usage: sub('pin PROG PATH'), options: {}, positionals: [2, 2] }, args)
  const { fd, id } = openNamed('prog', name)
  const prog = BpfProgram.fromFd(fd)
  try {
    prog.pin(path)
    out(`pinned program ${id} at ${path}`)
    return 0
  } finally {
    prog.close()
  }
}

function readInput(what: string, file: string): Uint8Array {
  try {
    return readFileSync(file === '-' ? 0 : file)
  } catch (e) {
    throw new Error(`prog run: cannot read ${what} ${file}: ${(e as Error).message}`)
  }
}

/** `parse()`, its UsageError given the command's own usage. */
function withUsage<T>(usage: string, parse: () => T): T {
  try {
    return parse()
  } catch (e) {
    if (e instanceof UsageError && e.usage === undefined) throw new UsageError(e.message, usage)
    throw e
  }
}

// Room for what a program may add to a packet (xdp's adjust_tail grows into the page's tail room).
const DATA_OUT_ROOM = 4096

async function progRun(args: string[], out: Out): Promise<number> {
  const usage = sub('run PROG --data FILE [--ctx FILE] [--data-out FILE] [--repeat N] [--json]')
  const { values, positionals: [name] } = parseCommand({
    name: 'prog run', usage, positionals: [1, 1],
    options: { data: { type: 'string' }, ctx: { type: 'string' }, 'data-out': { type: 'string' }, repeat: { type: 'string' }, json: { type: 'boolean' } },
  }, args)
  if (values.data === undefined) throw new UsageError('prog run: --data FILE is required (an empty file runs on no data)', usage)
  const repeat = values.repeat === undefined ? undefined : withUsage(usage, () => integerArg('prog run', '--repeat', values.repeat!, 1))
  if (repeat !== undefined && repeat > 0xffffffff) throw new UsageError(`prog run: --repeat must be at most ${0xffffffff}`, usage)
  const data = readInput('--data', values.data)
  const ctx = values.ctx === undefined ? undefined : readInput('--ctx', values.ctx)
  const { fd, id } = openNamed('prog', name)
  const prog = BpfProgram.fromFd(fd)
  try {
    const r = await prog.testRun({
      data, repeat, ...(data.length > 0 ? { dataOutSize: data.length + DATA_OUT_ROOM } : {}),
      ...(ctx ? { ctx, ctxOutSize: ctx.length } : {}),
    })
    const dataOut = r.dataOut ?? Buffer.alloc(0)
    if (values['data-out'] !== undefined) writeFileSync(values['data-out'], dataOut)
    if (values.json) {
      out(toJson({ id, retval: r.retval, duration: r.duration, data_out: dataOut.toString('hex'), ...(r.ctxOut ? { ctx_out: r.ctxOut.toString('hex') } : {}) }))
      return 0
    }
    out(`retval ${r.retval}  duration ${r.duration}ns${repeat && repeat > 1 ? ` (mean of ${repeat})` : ''}`)
    if (values['data-out'] === undefined && dataOut.length > 0) {
      out(`data out (${dataOut.length}B):`)
      for (const line of hexLines(dataOut)) out(line)
    }
    if (r.ctxOut && r.ctxOut.length > 0) {
      out(`ctx out (${r.ctxOut.length}B):`)
      for (const line of hexLines(r.ctxOut)) out(line)
    }
    return 0
  } finally {
    prog.close()
  }
}

/** 16 bytes a line, offset first, as xxd without the text column. */
function hexLines(b: Uint8Array): string[] {
  const lines: string[] = []
  for (let at = 0; at < b.length; at += 16) {
    const bytes = [...b.subarray(at, at + 16)].map((x) => x.toString(16).padStart(2, '0'))
    lines.push(`  ${at.toString(16).padStart(4, '0')}: ${bytes.join(' ')}`)
  }
  return lines
}
