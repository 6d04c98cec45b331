// BpfProgram: a loaded BPF program owned by this process.
import {
  Fd, bpfObjectKind, defaultToken, enumName, kernel, native, progInfoByFd, tokenFdFor,
  type ProgLoadAttrs, type ProgramInfo, type TestRunAttrs, type TestRunResult,
} from '../sys/index.js'
import { decode, encode } from '../asm/assemble.js'
import type { Insn } from '../asm/insn.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfObject } from '../sys/object.js'
import { ProgramSpec, type ProgramLoadOptions } from './spec.js'

export type { ProgramLoadOptions } from './spec.js'

/**
 * data / ctx in, dataOutSize / ctxOutSize to receive, repeat (mean duration
 * in ns), flags, cpu (sets BPF_F_TEST_RUN_ON_CPU), batchSize.
 */
export type TestRunOptions = TestRunAttrs

const TEST_RUN_ON_CPU = kernel.testRunFlags.BPF_F_TEST_RUN_ON_CPU

function testRunAttrs(where: string, o: TestRunOptions): TestRunAttrs {
  checkOptions(where, o, testRunKeys)
  // A cpu is only honoured with the flag; without it the kernel refuses any cpu but 0.
  if (o.cpu === undefined) return o
  return { ...o, flags: ((o.flags ?? 0) | TEST_RUN_ON_CPU) >>> 0 }
}

const testRunKeys = ['data', 'ctx', 'dataOutSize', 'ctxOutSize', 'repeat', 'flags', 'cpu', 'batchSize'] as const

export class BpfProgram extends BpfObject {
  /** The verifier's log when a log level was asked for. */
  readonly log: string
  readonly type: string
  /**
   * What the program was loaded as, for the attach families: its expected
   * attach type, and the ELF section it came from and the target that names
   * ('kretprobe/do_unlinkat': 'do_unlinkat'). Unknown (undefined) for a
   * program opened by pin, id or fd.
   */
  readonly expectedAttachType: string | undefined
  readonly section: string | undefined
  readonly attachTo: string | undefined

  private constructor(fd: Fd, typeId: number, log = '', spec?: ProgramSpec) {
    super(fd)
    this.log = log
    this.type = enumName(kernel.progTypes, typeId)
    const attach = spec?.expectedAttachTypeId
    this.expectedAttachType = attach === undefined ? undefined : enumName(kernel.attachTypes, attach)
    this.section = spec?.section
    this.attachTo = spec?.attachTo
  }

  /**
   * Loads a program (BPF_PROG_LOAD) on a worker thread. Errors: VerifierError
   * with the log when the verifier rejects it; BpfError EPERM without
   * CAP_BPF (and CAP_PERFMON/CAP_NET_ADMIN for some types) or a token;
   * PolicyError when a token does not delegate the type or attach type, or
   * when the `policy` option refuses a helper, kfunc or map the program uses
   * (then nothing reached the kernel).
   */
  static async load(options: ProgramLoadOptions | ProgramSpec): Promise<BpfProgram> {
    const spec = ProgramSpec.from(options)
    const attrs = loadAttrs(spec)
    const r = await native.progLoad(attrs)
    return new BpfProgram(new Fd(r.fd, 'prog'), attrs.progType, r.log, spec)
  }

  /**
   * Loads several programs, in order, on one worker thread: one thread-pool
   * round trip for all of them instead of one each (a round trip costs about
   * as much as verifying a small program). Every spec is checked (options,
   * policy, token) before any load. The first refusal closes the programs
   * already loaded and is thrown as `load` throws it, with `index`: the
   * position of the spec it refused.
   */
  static async loadAll(options: readonly (ProgramLoadOptions | ProgramSpec)[]): Promise<BpfProgram[]> {
    if (!Array.isArray(options)) throw new TypeError(`BpfProgram.loadAll: expected an array of load options or specs, got ${describeValue(options)}`)
    const specs = options.map((o) => ProgramSpec.from(o))
    const attrs = specs.map(loadAttrs)
    const results = attrs.length ? await native.progLoadAll(attrs) : []
    const programs: BpfProgram[] = []
    try {
      for (let i = 0; i < results.length; i++) {
        const r = results[i]
        if (r instanceof Error) throw Object.assign(r, { index: i })
        programs.push(new BpfProgram(new Fd(r.fd, 'prog'), attrs[i].progType, r.log, specs[i]))
      }
      return programs
    } catch (e) {
      // The programs made so far, and the fds not yet owned by one (an Fd
      // that refused its number leaves it, and those after it, to us).
      for (const p of programs) p.close()
      for (const r of results.slice(programs.length)) if (!(r instanceof Error)) native.closeFd(r.fd)
      throw e
    }
  }

  /** Synchronous form of `load`: blocks the event loop while the verifier runs. */
  static loadSync(options: ProgramLoadOptions | ProgramSpec): BpfProgram {
    const spec = ProgramSpec.from(options)
    const attrs = loadAttrs(spec)
    const r = native.progLoadSync(attrs)
    return new BpfProgram(new Fd(r.fd, 'prog'), attrs.progType, r.log, spec)
  }

  /** Opens a program pinned in bpffs. Errors: ENOENT, EPERM; a TypeError when the pin is not a program. */
  static fromPin(path: string): BpfProgram {
    const p = BpfProgram.adopt(new Fd(native.objGet(path), 'prog'), `was pinned at ${path}`)
    p.openedFromPin(path)
    return p
  }

  /** Opens a program by ID (CAP_SYS_ADMIN). Errors: ENOENT when no program has that ID. */
  static fromId(id: number): BpfProgram {
    return BpfProgram.adopt(new Fd(native.progGetFdById(id), 'prog'), `has ID ${id}`)
  }

  /** Takes ownership of an fd that refers to a program. */
  static fromFd(fd: Fd): BpfProgram {
    if (!(fd instanceof Fd)) throw new TypeError(`BpfProgram.fromFd: fd must be an owned Fd (new Fd(number, 'prog')), got ${describeValue(fd)}`)
    return BpfProgram.adopt(fd, `is fd ${fd.fd}`)
  }

  private static adopt(fd: Fd, what: string): BpfProgram {
    try {
      if (bpfObjectKind(fd.fd) !== 'prog') throw new TypeError(`the object that ${what} is not a BPF program`)
      return new BpfProgram(fd, progInfoByFd(fd.fd).typeId)
    } catch (e) {
      fd.close()
      throw e
    }
  }

  /**
   * Runs the program in the kernel on `data` / `ctx` (BPF_PROG_TEST_RUN) on a
   * worker thread. Supported for socket filters, tc, xdp, tracing raw
   * tracepoints, syscall programs and more; EINVAL/ENOTSUPP for other types.
   */
  async testRun(options: TestRunOptions = {}): Promise<TestRunResult> {
    return native.progTestRun(this.fd, testRunAttrs('testRun', options))
  }

  testRunSync(options: TestRunOptions = {}): TestRunResult {
    return native.progTestRunSync(this.fd, testRunAttrs('testRunSync', options))
  }

  /** Name, type, tag, sizes, map IDs, and run time and count when kernel.bpf_stats_enabled is on. */
  info(): ProgramInfo {
    return progInfoByFd(this.fd)
  }

  get id(): number {
    return this.info().id
  }

  /**
   * The instructions as the verifier left them (OBJ_GET_INFO_BY_FD
   * xlated_prog_insns, Linux 4.13+): helper calls resolved, map fds turned
   * into map ids. Print with `asm.toString(p.xlated(), { maps: 'id' })` for
   * the text of `bpftool prog dump xlated`. Empty without CAP_SYS_ADMIN or
   * CAP_PERFMON (the kernel withholds them).
   */
  xlated(): Insn[] {
    return decode(native.progGetXlatedInsns(this.fd))
  }

  toString(): string {
    return this.closed ? `BpfProgram(${this.type}, closed)` : `BpfProgram(${this.type}, fd ${this.fd})`
  }
}

// bpf_func_info / bpf_line_info arrays as the kernel reads them: u32
// fields, in this machine's byte order (the kernel's). A spec's records are
// frozen, so their bytes are made once per records array.
const packed = new WeakMap<readonly object[], Uint8Array>()
function packInfo<T extends object>(records: readonly T[], fields: number, put: (u: Uint32Array, at: number, r: T) => void): Uint8Array {
  let bytes = packed.get(records)
  if (bytes) return bytes
  const u = new Uint32Array(records.length * fields)
  for (let i = 0; i < records.length; i++) put(u, i * fields, records[i])
  bytes = new Uint8Array(u.buffer)
  packed.set(records, bytes)
  return bytes
}

/**
 * Makes the kernel count run time and runs of every program while the
 * returned Fd is open (BPF_ENABLE_STATS, Linux 5.8+; CAP_SYS_ADMIN), so that
 * `info().runTimeNs` and `runCount` move. Close it to stop.
 */
export function enableStats(): Fd {
  return new Fd(native.enableStats(kernel.statsTypes.run_time), 'stats')
}

// The spec's references become fd numbers here, right before the call: map
// fds in the instructions, the token.
function loadAttrs(spec: ProgramSpec): ProgLoadAttrs & { progType: number } {
  // The policy reads the program as given, before any fd or token is touched.
  spec.policy?.assertProgram(spec)
  // A delegated token may carry its grant's capability policy: the tenant hears of a violation before the kernel is asked.
  const token = spec.token === null ? undefined : (spec.token ?? defaultToken())
  ;(token?.assertProgram as ((p: ProgramSpec) => void) | undefined)?.call(token, spec)
  if (spec.externs?.length) {
    // Their instructions still hold placeholders the kernel would misread (a kfunc call as a call to pc-1, a __ksym address as 0).
    const names = [...new Set(spec.externs.map((e) => e.name))]
    throw new TypeError(`BpfProgram.load: program${spec.name ? ` '${spec.name}'` : ''} names kernel symbols not resolved yet (${names.join(', ')}): load it through its CollectionSpec's load()`)
  }
  const progType = spec.typeId
  // A spec read from an object carries its func and line info before any BTF is loaded.
  if ((spec.funcInfo?.length || spec.lineInfo?.length) && !spec.btf) throw new TypeError('BpfProgram.load: funcInfo and lineInfo need the btf they refer to')
  const expectedAttachType = spec.expectedAttachTypeId
  // A program with no expected attach type asks the token for attach type 0.
  const tokenFd = tokenFdFor(spec.token, { cmd: 'prog_load', progType, attachType: expectedAttachType ?? 0 })
  const attrs: ProgLoadAttrs & { progType: number } = { progType, insns: spec.bytes ?? encode(spec.insns!), progFlags: spec.flags }
  // Only the attributes that are set: native reads the keys present (one
  // lookup by name costs more than the whole list of what is there).
  const set = <K extends keyof ProgLoadAttrs>(k: K, v: ProgLoadAttrs[K] | undefined) => { if (v !== undefined) attrs[k] = v }
  set('license', spec.license)
  set('name', spec.name)
  set('logLevel', spec.logLevel)
  set('logSize', spec.logSize)
  set('kernVersion', spec.kernVersion)
  set('expectedAttachType', expectedAttachType)
  set('attachBtfId', spec.attachBtfId)
  set('attachBtfObjFd', spec.attachBtfObjFd)
  set('attachProgFd', spec.attachProgFd)
  set('tokenFd', tokenFd)
  // Index 0 is vmlinux (a kfunc call's off 0); module BTFs follow.
  if (spec.fdArray) attrs.fdArray = Int32Array.from([0, ...spec.fdArray.map((b) => b.fd.fd)])
  if (!spec.btf) return attrs
  attrs.progBtfFd = spec.btf.fd.fd
  if (spec.funcInfo) {
    attrs.funcInfo = packInfo(spec.funcInfo, 2, (u, at, r) => { u[at] = r.insnOff; u[at + 1] = r.typeId })
    attrs.funcInfoRecSize = 8
  }
  if (spec.lineInfo) {
    attrs.lineInfo = packInfo(spec.lineInfo, 4, (u, at, r) => {
      u[at] = r.insnOff
      u[at + 1] = r.fileNameOff
      u[at + 2] = r.lineOff
      u[at + 3] = (r.lineNum << 10) | (r.column & 0x3ff)
    })
    attrs.lineInfoRecSize = 16
  }
  return attrs
}
