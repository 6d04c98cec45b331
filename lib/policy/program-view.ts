// What a program uses, read from its instructions: every helper call, kfunc
// call and map reference, with its instruction index, in every function of
// the program (subprograms and callbacks are linked into the same
// instructions), reachable or not. The checker (check.ts) compares this with
// what a policy grants. Reading is conservative: what cannot be named is
// reported under a name no policy grants ('#12345', 'fd 7'), never skipped.
import { decode, resolve } from '../asm/assemble.js'
import type { Insn, Item } from '../asm/insn.js'
import { cls, jmpOps, mode, pseudo, size } from '../asm/opcodes.js'
import type { BtfReader } from '../btf/reader.js'
import { openKernelBtf } from '../collection/kernel-btf.js'
import { MapReference } from '../collection/spec.js'
import { BpfProgram } from '../prog/program.js'
import { ProgramSpec, type LineInfo, type StructOpsMember } from '../prog/spec.js'
import { Fd, bpfObjectKind, findEnumName, kernel, mapInfoByFd, native } from '../sys/index.js'
import { describeValue } from '../sys/options.js'
import { helperOfKernelSymbol, kernelSymbolAt } from './kernel-calls.js'

/** A program the checker reads: a spec, a loaded program, raw instruction bytes or instructions (labels allowed, as asm takes them). */
export type CheckedProgram = ProgramSpec | BpfProgram | Uint8Array | readonly Item[]

export type UseKind = 'helper' | 'kfunc' | 'map'

/** One instruction's use of a helper, kfunc or map. */
export interface ProgramUse {
  /** Instruction index, in slots as the verifier counts (ld_imm64 takes two); -1 when known only from the program's map IDs. */
  insn: number
  kind: UseKind
  /** Helper name without 'bpf_', kfunc name, or map name. */
  name: string
  /** Maps: the map's type ('hash'), or 'unknown' when it cannot be read. */
  mapType?: string
}

/** What a program says of itself, for matching contexts. */
export interface ProgramFacts {
  name: string | undefined
  type: string | number | undefined
  expectedAttachType: string | number | undefined
  attachTo: string | undefined
  /** struct_ops: the ops struct and member each slot the program fills (from its object). */
  structOps: readonly StructOpsMember[] | undefined
}

export interface ProgramView extends ProgramFacts {
  uses: ProgramUse[]
  /** 'file.bpf.c:12: the C line' of instruction `insn`, when the program has line info. */
  sourceOf(insn: number): string | undefined
}

const CALL = cls.jmp | jmpOps.call
const LD_IMM64 = cls.ld | mode.imm | size.dw
const isWide = (i: Insn) => i.code === LD_IMM64
// BPF_LD | BPF_ABS / BPF_IND: legacy packet loads, which the kernel runs as
// skb_load_bytes (bpf_skb_load_helper_*); a policy grants them as that helper.
const isPacketLoad = (i: Insn) => (i.code & 0x07) === cls.ld && ((i.code & 0xe0) === mode.abs || (i.code & 0xe0) === mode.ind)
const packetLoad = (at: number): ProgramUse => ({ insn: at, kind: 'helper', name: 'skb_load_bytes' })

/** Reads `program`. Errors: TypeError for something that is not a program; Error when a loaded program's instructions are withheld. */
export function programView(program: CheckedProgram): ProgramView {
  if (program instanceof ProgramSpec) return specView(program)
  if (program instanceof BpfProgram) return loadedView(program)
  if (program instanceof Uint8Array) return rawView(decode(program))
  // Labels resolved (asm's instruction lists may hold them), every item checked as an instruction.
  if (Array.isArray(program)) return rawView(resolve(program as readonly Item[]))
  throw new TypeError(`policy check: program must be a ProgramSpec, a BpfProgram, instruction bytes or instructions, got ${describeValue(program)}`)
}

/** Each instruction with its slot index. */
function* slotted(insns: readonly Insn[]): Generator<[number, Insn]> {
  let at = 0
  for (const i of insns) {
    yield [at, i]
    at += isWide(i) ? 2 : 1
  }
}

function specView(spec: ProgramSpec): ProgramView {
  const insns = spec.insns ?? decode(spec.bytes!)
  const externs = new Map((spec.externs ?? []).map((e) => [e.insn, e]))
  const uses: ProgramUse[] = []
  for (const [at, i] of slotted(insns)) {
    if (isPacketLoad(i)) uses.push(packetLoad(at))
    if (i.code === CALL) {
      const ext = externs.get(at)
      // An object's kfunc call before load: clang's bpf-to-bpf call form, named by the extern.
      if (ext?.call) uses.push({ insn: at, kind: 'kfunc', name: ext.name.replace(/___.*$/, '') })
      else callUse(uses, at, i, spec.fdArray?.map((b) => () => b.info().name))
    } else if (isWide(i)) {
      mapUse(uses, at, i)
    }
  }
  return {
    name: spec.name,
    type: spec.type,
    expectedAttachType: spec.expectedAttachType,
    // What the kernel binds (attach_btf_id), not the informational label, when the spec has it.
    attachTo: boundTarget(spec) ?? (spec.attachTo || undefined),
    structOps: spec.structOps,
    uses,
    sourceOf: sourceLines(spec.lineInfo),
  }
}

function rawView(insns: readonly Insn[]): ProgramView {
  const uses: ProgramUse[] = []
  for (const [at, i] of slotted(insns)) {
    if (isPacketLoad(i)) uses.push(packetLoad(at))
    if (i.code === CALL) callUse(uses, at, i, undefined)
    else if (isWide(i)) mapUse(uses, at, i)
  }
  return { name: undefined, type: undefined, expectedAttachType: undefined, attachTo: undefined, structOps: undefined, uses, sourceOf: () => undefined }
}

// Helper calls (src 0: imm is the helper id) and kfunc calls (src 2: imm is
// a BTF id, off an index into fd_array, 0 for vmlinux). Bpf-to-bpf calls
// (src 1) go to code of the same program, which is read in its turn.
function callUse(uses: ProgramUse[], at: number, i: Insn, modules: (() => string)[] | undefined): void {
  if (i.src === 0) {
    uses.push({ insn: at, kind: 'helper', name: findEnumName(kernel.helpers, i.imm >>> 0) ?? `#${i.imm >>> 0}` })
  } else if (i.src === pseudo.kfuncCall) {
    uses.push({ insn: at, kind: 'kfunc', name: kfuncName(i.imm >>> 0, i.off, modules) })
  }
}

// ld_imm64 of a map (src 1: its fd; 2: an address in its value; 5 and 6:
// the same by fd_array index).
function mapUse(uses: ProgramUse[], at: number, i: Insn): void {
  if (i.src !== pseudo.mapFd && i.src !== pseudo.mapValue && i.src !== pseudo.mapIdx && i.src !== pseudo.mapIdxValue) return
  if (i.map instanceof MapReference) {
    const type = i.map.type === undefined ? 'unknown' : typeof i.map.type === 'number' ? findEnumName(kernel.mapTypes, i.map.type) ?? String(i.map.type) : i.map.type
    uses.push({ insn: at, kind: 'map', name: i.map.name, mapType: type })
    return
  }
  if (i.src === pseudo.mapIdx || i.src === pseudo.mapIdxValue) {
    uses.push({ insn: at, kind: 'map', name: `fd_array[${i.imm}]`, mapType: 'unknown' })
    return
  }
  // A BpfMap or Fd given to asm, else the fd number the bytes hold.
  let fd: number | undefined
  try {
    fd = i.map ? i.map.fd : i.imm
  } catch {
    fd = undefined
  }
  const info = fd === undefined ? undefined : mapInfo(fd)
  uses.push({ insn: at, kind: 'map', name: info?.name || (fd === undefined ? 'a closed map' : `fd ${fd}`), mapType: info?.type ?? 'unknown' })
}

// Only a map's fd: the info of another kind of object would read as a map of some type.
function mapInfo(fd: number): { name: string; type: string } | undefined {
  try {
    return bpfObjectKind(fd) === 'map' ? mapInfoByFd(fd) : undefined
  } catch {
    return undefined
  }
}

function kfuncName(id: number, off: number, modules: (() => string)[] | undefined): string {
  let btf: BtfReader | undefined
  try {
    const targets = openKernelBtf()
    if (off === 0) btf = targets.vmlinux
    else {
      const module = modules?.[off - 1]?.()
      // fd_array may hold vmlinux itself too; module BTFs are split on it.
      btf = module === 'vmlinux' ? targets.vmlinux : module === undefined ? undefined : [...(targets.modules?.() ?? [])].find((m) => m.name === module)?.btf
    }
  } catch {
    btf = undefined
  }
  try {
    const t = btf?.type(id)
    if (t?.kind === 'FUNC' && t.name) return t.name
  } catch {
    // An id past the BTF: unnamed below.
  }
  return off === 0 ? `#${id}` : `#${id} (fd_array[${off}])`
}

function sourceLines(lineInfo: readonly LineInfo[] | undefined): (insn: number) => string | undefined {
  if (!lineInfo?.length) return () => undefined
  const sorted = [...lineInfo].sort((a, b) => a.insnOff - b.insnOff)
  return (insn) => {
    let found: LineInfo | undefined
    for (const l of sorted) {
      if (l.insnOff > insn) break
      found = l
    }
    if (!found || found.fileName === undefined) return undefined
    return `${found.fileName.replace(/^\.\//, '')}:${found.lineNum}: ${(found.line ?? '').trim()}`
  }
}

// A loaded program: the kernel keeps only its translated instructions, in
// which the verifier has rewritten calls. Helper calls hold the helper's
// address (relative to __bpf_call_base), named back through /proc/kallsyms;
// some helpers are inlined (no call left: bpf_get_smp_processor_id, array
// lookups, bpf_loop...) and are not seen; map helpers call the map's own
// operation (htab_map_lookup_elem), named back to the helper. kfunc calls
// hold an address too (or, on architectures with far kfunc calls, the BTF
// id). Maps hold the map's ID; the program's map IDs (which also list maps
// bound without an instruction) are reported too, at insn -1. Without
// CAP_SYS_ADMIN or CAP_PERFMON the kernel withholds the instructions, and
// without kallsyms addresses it zeroes call targets: what is unnamed is
// reported as '#<imm>', which no policy grants. Checking the spec before
// load is exact; this is for programs found already loaded.
function loadedView(program: BpfProgram): ProgramView {
  const info = program.info()
  const insns = program.xlated()
  if (insns.length === 0) throw new Error(`policy check: the kernel withholds the instructions of program ${info.id} (${info.name || 'unnamed'}): needs CAP_SYS_ADMIN or CAP_PERFMON`)
  const maps = new Map<number, { name: string; type: string }>()
  for (const id of info.mapIds) maps.set(id, mapById(id))
  const uses: ProgramUse[] = []
  const seen = new Set<number>()
  for (const [at, i] of slotted(insns)) {
    if (i.code === CALL && i.src === 0) {
      // A tail call is dumped as helper tail_call by number; every other helper by address.
      const name = i.imm === kernel.helpers.tail_call ? 'tail_call' : helperOfKernelSymbol(kernelSymbolAt(i.imm), info.type)
      uses.push({ insn: at, kind: 'helper', name: name ?? `#${i.imm}` })
    } else if (i.code === CALL && i.src === pseudo.kfuncCall) {
      // Elsewhere imm is an address offset: read as a BTF id it could name the wrong function.
      const byId = farKfuncCalls.has(process.arch) ? kfuncName(i.imm >>> 0, i.off, undefined) : `#${i.imm}`
      uses.push({ insn: at, kind: 'kfunc', name: kernelSymbolAt(i.imm)?.[0] ?? byId })
    } else if (isWide(i) && (i.src === pseudo.mapFd || i.src === pseudo.mapValue)) {
      const id = i.imm >>> 0
      const m = maps.get(id) ?? mapById(id)
      seen.add(id)
      uses.push({ insn: at, kind: 'map', name: m.name, mapType: m.type })
    }
  }
  for (const [id, m] of maps) if (!seen.has(id)) uses.push({ insn: -1, kind: 'map', name: m.name, mapType: m.type })
  return { name: info.name || undefined, type: info.type, expectedAttachType: undefined, attachTo: undefined, structOps: undefined, uses, sourceOf: () => undefined }
}

// The hook a tracing or LSM spec is loaded for, from its attach_btf_id in
// this kernel's BTF, with the prefix the kernel gives each kind of hook
// removed; undefined without an id, or for an id in a module's BTF.
function boundTarget(spec: ProgramSpec): string | undefined {
  if (spec.attachBtfId === undefined || spec.attachBtfObjFd !== undefined) return undefined
  if (spec.type !== 'tracing' && spec.type !== 'lsm') return undefined
  try {
    const name = openKernelBtf().vmlinux.type(spec.attachBtfId).name
    return name.replace(/^(bpf_lsm_|btf_trace_|bpf_iter_)/, '')
  } catch {
    // An id this kernel's BTF does not have: the kernel will refuse the load; no context can match it.
    return `#${spec.attachBtfId}`
  }
}

// Architectures whose JIT calls kfuncs far (bpf_jit_supports_far_kfunc_call):
// the verifier leaves the BTF id in imm there.
const farKfuncCalls = new Set(['s390x', 'ppc64'])

function mapById(id: number): { name: string; type: string } {
  let fd: Fd | undefined
  try {
    fd = new Fd(native.mapGetFdById(id), 'map')
    const m = mapInfoByFd(fd.fd)
    return { name: m.name || `map ${id}`, type: m.type }
  } catch {
    return { name: `map ${id}`, type: 'unknown' }
  } finally {
    fd?.close()
  }
}
