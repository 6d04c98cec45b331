// ProgramSpec: everything BPF_PROG_LOAD needs, checked once. BpfProgram.load
// takes options or a spec; the ELF loader (lib/collection) makes the same
// specs. A spec is plain data: instructions with their labels resolved (map
// references stay references, read as fds only at load), copied and frozen.
import { enumValue, findEnumName, kernel, type AttachTypeName, type ProgTypeName, type TokenLike } from '../sys/index.js'
import { checkObjectName, checkOptions, describeValue } from '../sys/options.js'
import type { FlagsInput } from '../sys/flags.js'
import { Btf } from '../btf/btf.js'
import { resolve } from '../asm/assemble.js'
import type { Insn, Item } from '../asm/insn.js'
import { progFlagsValue, type ProgFlagName } from './flags.js'

export interface ProgramLoadOptions {
  type: ProgTypeName | number
  /** Instructions from `asm` (labels and map references resolved at load)... */
  insns?: readonly Item[]
  /** ...or the raw instruction bytes. */
  bytes?: Uint8Array
  /** 'GPL' (or a GPL-compatible license) unlocks GPL-only helpers. */
  license?: string
  /** Up to 15 letters, digits, '_' or '.'; shown by bpftool. */
  name?: string
  expectedAttachType?: AttachTypeName | number
  /** Verifier log level (1, 2, or 4 for stats). The log is kept in `log`. */
  logLevel?: number
  logSize?: number
  /** prog_flags as a number or by name ('sleepable', 'xdp_has_frags', 'strict_alignment', ...). */
  flags?: FlagsInput<ProgFlagName>
  kernVersion?: number
  attachBtfId?: number
  attachBtfObjFd?: number
  attachProgFd?: number
  /** Token for a delegated load; null for none even when a default is set. */
  token?: TokenLike | null
  /** The BTF that funcInfo and lineInfo refer to (prog_btf_fd). */
  btf?: Btf
  /** BTF FUNC type of each function, by instruction index: the verifier then names functions and checks their signatures. */
  funcInfo?: readonly FuncInfo[]
  /** Source lines by instruction index: the verifier's log then shows the C line of each instruction. */
  lineInfo?: readonly LineInfo[]
  /** fd_array: module BTF objects whose kfuncs the program calls (a kfunc call's off indexes it). */
  fdArray?: readonly Btf[]
  /** The ELF section the program came from ('xdp', 'kprobe/do_unlinkat'); informational. */
  section?: string
  /** What the section names to attach to (the function, tracepoint, ...); informational. */
  attachTo?: string
  /** False for an object's SEC("?...") programs: a CollectionSpec loads them only when named. */
  autoload?: boolean
  /**
   * Kernel symbols the instructions name but do not yet hold (a CollectionSpec's
   * kfunc calls and __ksym addresses, resolved by CollectionSpec.load against the
   * running kernel). A spec with any cannot be loaded on its own; informational
   * otherwise (policy checks read kfunc names from here).
   */
  externs?: readonly ProgramExtern[]
  /** struct_ops programs: the ops struct and member each of the object's struct_ops variables has this program fill ({ type: 'sched_ext_ops', member: 'dispatch' }); informational. */
  structOps?: readonly StructOpsMember[]
  /**
   * Checked before anything reaches the kernel: a `Policy` with capability sets
   * refuses a program that uses a helper, kfunc or map it does not grant
   * (PolicyError). Anything with `assertProgram(spec)` will do.
   */
  policy?: ProgramPolicy
}

/**
 * What the `policy` load option needs: something that throws when a program
 * may not be loaded. lib/policy's Policy is one; lib/prog cannot import it
 * (policies sit above programs), so it names only this.
 */
export interface ProgramPolicy {
  assertProgram(spec: ProgramSpec): void
}

/** A struct_ops member a program fills. */
export interface StructOpsMember {
  /** The kernel's ops struct ('sched_ext_ops', 'tcp_congestion_ops'). */
  type: string
  /** The callback member ('dispatch'). */
  member: string
}

/** An instruction that names a kernel symbol its loader must resolve. */
export interface ProgramExtern {
  /** Instruction index (in slots: an ld_imm64 takes two, as the verifier counts). */
  insn: number
  /** The symbol as the object names it ('bpf_task_acquire'). */
  name: string
  /** A kfunc call, rather than an ld_imm64 of a __ksym variable. */
  call: boolean
}

/** A bpf_func_info record: the function starting at instruction insnOff has BTF FUNC type typeId. */
export interface FuncInfo {
  insnOff: number
  typeId: number
}

/** A bpf_line_info record: offsets into the BTF's string table, and the text they name. */
export interface LineInfo {
  insnOff: number
  fileNameOff: number
  lineOff: number
  lineNum: number
  column: number
  fileName?: string
  line?: string
}

/** What ProgramSpec.from accepts: the options of BpfProgram.load. */
export type ProgramSpecOptions = ProgramLoadOptions

const loadKeys = [
  'type', 'insns', 'bytes', 'license', 'name', 'expectedAttachType', 'logLevel', 'logSize', 'flags',
  'kernVersion', 'attachBtfId', 'attachBtfObjFd', 'attachProgFd', 'token',
  'btf', 'funcInfo', 'lineInfo', 'fdArray', 'section', 'attachTo', 'autoload', 'externs', 'structOps', 'policy',
] as const

function optionalU32(what: string, v: unknown): number | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`BpfProgram.load: ${what} must be an integer in 0..2^32-1, got ${typeof v === 'number' ? v : typeof v}`)
  }
  return v
}

// func_info / line_info records: u32 fields, frozen copies. A spec's own
// records (a spec derived from a spec) are taken as they are. The field
// names are only put together for an error: a collection's programs carry
// hundreds of records, and building the text for each field cost more than
// the check.
const checkedRecords = new WeakSet<readonly object[]>()
const isU32 = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff
function infoRecords<T extends object>(what: string, v: readonly T[] | undefined, fields: readonly (keyof T & string)[]): readonly T[] | undefined {
  if (v === undefined) return undefined
  if (checkedRecords.has(v)) return v
  if (!Array.isArray(v)) throw new TypeError(`BpfProgram.load: ${what} must be an array, got ${describeValue(v)}`)
  const out = Object.freeze(v.map((r, i) => {
    if (r === null || typeof r !== 'object') throw new TypeError(`BpfProgram.load: ${what}[${i}] must be an object, got ${describeValue(r)}`)
    for (const f of fields) {
      const x = (r as Record<string, unknown>)[f]
      if (x === undefined) throw new TypeError(`BpfProgram.load: ${what}[${i}] has no ${f}`)
      if (!isU32(x)) optionalU32(`${what}[${i}].${f}`, x)
    }
    return Object.freeze({ ...r })
  }))
  checkedRecords.add(out)
  return out
}

function externList(v: readonly ProgramExtern[] | undefined): readonly ProgramExtern[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v)) throw new TypeError(`BpfProgram.load: externs must be an array, got ${describeValue(v)}`)
  return Object.freeze(v.map((e, i) => {
    if (e === null || typeof e !== 'object') throw new TypeError(`BpfProgram.load: externs[${i}] must be an object, got ${describeValue(e)}`)
    optionalU32(`externs[${i}].insn`, e.insn)
    if (e.insn === undefined) throw new TypeError(`BpfProgram.load: externs[${i}] has no insn`)
    if (typeof e.name !== 'string' || e.name === '') throw new TypeError(`BpfProgram.load: externs[${i}].name must be a symbol name, got ${describeValue(e.name)}`)
    if (typeof e.call !== 'boolean') throw new TypeError(`BpfProgram.load: externs[${i}].call must be a boolean, got ${describeValue(e.call)}`)
    return Object.freeze({ insn: e.insn, name: e.name, call: e.call })
  }))
}

/**
 * A checked description of a program. Field names are those of the load
 * options, so `ProgramSpec.from({ ...spec, name: 'other' })` derives a new
 * one. Frozen; `insns` holds frozen copies with labels resolved, `bytes` a copy.
 */
export class ProgramSpec {
  /** The program type by kernel name ('socket_filter'), or its number when this kernel's BTF has no name. */
  readonly type: ProgTypeName | number
  /** Instructions with labels resolved; undefined when the spec holds raw bytes. */
  readonly insns: readonly Insn[] | undefined
  readonly bytes: Uint8Array | undefined
  readonly license: string | undefined
  readonly name: string | undefined
  readonly expectedAttachType: AttachTypeName | number | undefined
  readonly logLevel: number | undefined
  readonly logSize: number | undefined
  /** prog_flags as a number. */
  readonly flags: number
  readonly kernVersion: number | undefined
  readonly attachBtfId: number | undefined
  readonly attachBtfObjFd: number | undefined
  readonly attachProgFd: number | undefined
  readonly token: TokenLike | null | undefined
  readonly btf: Btf | undefined
  readonly funcInfo: readonly FuncInfo[] | undefined
  readonly lineInfo: readonly LineInfo[] | undefined
  readonly fdArray: readonly Btf[] | undefined
  readonly section: string | undefined
  readonly attachTo: string | undefined
  readonly autoload: boolean
  readonly externs: readonly ProgramExtern[] | undefined
  readonly structOps: readonly StructOpsMember[] | undefined
  readonly policy: ProgramPolicy | undefined

  private constructor(o: ProgramLoadOptions) {
    checkOptions('BpfProgram.load', o, loadKeys)
    if ((o.insns === undefined) === (o.bytes === undefined)) throw new TypeError('BpfProgram.load: give either insns or bytes')
    checkObjectName('BpfProgram.load', o.name)
    // Kernel names when this kernel's BTF has them, else the numbers given.
    const typeId = enumValue(kernel.progTypes, 'program type', o.type)
    this.type = (findEnumName(kernel.progTypes, typeId) as ProgTypeName | undefined) ?? typeId
    const attachId = o.expectedAttachType === undefined ? undefined : enumValue(kernel.attachTypes, 'attach type', o.expectedAttachType)
    this.expectedAttachType = attachId === undefined ? undefined : (findEnumName(kernel.attachTypes, attachId) as AttachTypeName | undefined) ?? attachId
    if (o.bytes !== undefined) {
      if (!(o.bytes instanceof Uint8Array)) throw new TypeError('BpfProgram.load: bytes must be a Uint8Array')
      // A view of a detached ArrayBuffer reads as empty; copying it would fail inside JavaScript.
      if (o.bytes.length === 0) throw new RangeError('BpfProgram.load: bytes is empty (no instructions, or its ArrayBuffer was detached)')
      if (o.bytes.length % 8 !== 0) throw new RangeError(`BpfProgram.load: bytes must be whole instructions (a multiple of 8), got ${o.bytes.length}`)
      this.bytes = o.bytes.slice()
    } else {
      if (!Array.isArray(o.insns)) throw new TypeError(`BpfProgram.load: insns must be an array of instructions, got ${describeValue(o.insns)}`)
      this.insns = Object.freeze(resolve(o.insns).map((i) => Object.freeze({ ...i })))
    }
    if (o.license !== undefined && typeof o.license !== 'string') throw new TypeError(`BpfProgram.load: license must be a string, got ${typeof o.license}`)
    this.license = o.license
    this.name = o.name
    this.logLevel = optionalU32('logLevel', o.logLevel)
    this.logSize = optionalU32('logSize', o.logSize)
    this.flags = progFlagsValue(o.flags)
    this.kernVersion = optionalU32('kernVersion', o.kernVersion)
    this.attachBtfId = optionalU32('attachBtfId', o.attachBtfId)
    this.attachBtfObjFd = optionalU32('attachBtfObjFd', o.attachBtfObjFd)
    this.attachProgFd = optionalU32('attachProgFd', o.attachProgFd)
    this.token = o.token
    if (o.btf !== undefined && !(o.btf instanceof Btf)) throw new TypeError(`BpfProgram.load: btf must be a Btf, got ${describeValue(o.btf)}`)
    this.btf = o.btf
    this.funcInfo = infoRecords('funcInfo', o.funcInfo, ['insnOff', 'typeId'])
    this.lineInfo = infoRecords('lineInfo', o.lineInfo, ['insnOff', 'fileNameOff', 'lineOff', 'lineNum', 'column'])
    if (o.fdArray !== undefined && (!Array.isArray(o.fdArray) || !o.fdArray.every((b) => b instanceof Btf))) {
      throw new TypeError(`BpfProgram.load: fdArray must be an array of Btf objects, got ${describeValue(o.fdArray)}`)
    }
    this.fdArray = o.fdArray && Object.freeze([...o.fdArray])
    for (const k of ['section', 'attachTo'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'string') throw new TypeError(`BpfProgram.load: ${k} must be a string, got ${describeValue(o[k])}`)
    }
    this.section = o.section
    this.attachTo = o.attachTo
    if (o.autoload !== undefined && typeof o.autoload !== 'boolean') throw new TypeError(`BpfProgram.load: autoload must be a boolean, got ${describeValue(o.autoload)}`)
    this.autoload = o.autoload ?? true
    this.externs = externList(o.externs)
    const isSlot = (m: StructOpsMember) => m !== null && typeof m === 'object' && typeof m.type === 'string' && typeof m.member === 'string' && m.member !== ''
    if (o.structOps !== undefined && (!Array.isArray(o.structOps) || !o.structOps.every(isSlot))) {
      throw new TypeError(`BpfProgram.load: structOps must be an array of { type, member }, got ${describeValue(o.structOps)}`)
    }
    this.structOps = o.structOps && Object.freeze(o.structOps.map((m) => Object.freeze({ type: m.type, member: m.member })))
    if (o.policy !== undefined && (o.policy === null || typeof o.policy !== 'object' || typeof o.policy.assertProgram !== 'function')) {
      throw new TypeError(`BpfProgram.load: policy must be a Policy (an object with assertProgram(spec)), got ${describeValue(o.policy)}`)
    }
    this.policy = o.policy
    Object.freeze(this)
  }

  /**
   * Checks `options` once: a TypeError or RangeError names what is wrong
   * (unknown option, type, flag; an item that is not an instruction; a jump
   * to an unknown label). A ProgramSpec is returned as is.
   */
  static from(options: ProgramLoadOptions | ProgramSpec): ProgramSpec {
    if (options instanceof ProgramSpec) return options
    if (options === null || typeof options !== 'object') throw new TypeError('BpfProgram.load: options must be an object with at least type and insns or bytes')
    return new ProgramSpec(options)
  }

  /** The program type's number. */
  get typeId(): number {
    return enumValue(kernel.progTypes, 'program type', this.type)
  }

  /** The expected attach type's number, undefined when none is set. */
  get expectedAttachTypeId(): number | undefined {
    return this.expectedAttachType === undefined ? undefined : enumValue(kernel.attachTypes, 'attach type', this.expectedAttachType)
  }
}
