// Program type probes: load `r0 = 0; exit` as the type, with what the type
// needs to be accepted at all (an expected attach type, a kernel function to
// attach to). EINVAL without a verifier log (unknown type) or E2BIG (unknown
// attributes) mean the type is missing; once the verifier has run, the kernel
// knew the type.
import { existsSync } from 'node:fs'
import { asm } from '../asm/index.js'
import { BtfBuilder } from '../btf/builder.js'
import { BtfReader } from '../btf/reader.js'
import { Fd, VerifierError, native, tokenFdFor, type ProgLoadAttrs, type ProgTypeName } from '../sys/index.js'
import { attachTypes, progLoadFlags, progTypes } from '../sys/generated/kernel-enums.js'
import { bpfCode, cachedProbe, familyMember, notSupported } from './probe-cache.js'
import { progTypeVersions } from './versions.js'

/** `r0 = 0; exit`: the smallest program any type accepts. */
export const returnZero = () => asm.assemble([asm.mov64Imm(asm.R0, 0), asm.exit()])

let vmlinux: BtfReader | null | undefined
/** The running kernel's BTF, or null when it has none (no CONFIG_DEBUG_INFO_BTF). */
export function kernelBtf(): BtfReader | null {
  if (vmlinux === undefined) {
    const path = '/sys/kernel/btf/vmlinux'
    vmlinux = existsSync(path) ? BtfReader.fromFile(path) : null
  }
  return vmlinux
}

/** What a load of a program of some type needs besides its instructions. */
export interface ProgSpec {
  attrs: Omit<ProgLoadAttrs, 'insns' | 'progType' | 'tokenFd'>
  cleanup?: () => void
}

const NOT_LOADABLE = Symbol('not loadable')

// The kernel function a tracing or LSM probe attaches to; absent from the
// kernel's BTF means the kernel cannot load such programs.
function vmlinuxFunc(name: string): number | typeof NOT_LOADABLE {
  return kernelBtf()?.find(name, 'FUNC') ?? NOT_LOADABLE
}

/**
 * The attributes a program of type `name` needs to load. `ext` loads a tiny
 * XDP program with BTF to replace, and says how to close it afterwards.
 */
export function specFor(name: string, tokenFd: number | undefined): ProgSpec | typeof NOT_LOADABLE {
  switch (name) {
    case 'cgroup_sock_addr':
      return { attrs: { expectedAttachType: attachTypes.cgroup_inet4_connect } }
    case 'cgroup_sockopt':
      return { attrs: { expectedAttachType: attachTypes.cgroup_getsockopt } }
    case 'sk_lookup':
      return { attrs: { expectedAttachType: attachTypes.sk_lookup } }
    case 'netfilter':
      return { attrs: { expectedAttachType: attachTypes.netfilter } }
    case 'tracing': {
      // A BTF-typed raw tracepoint (tp_btf, same release as the type) on
      // sched_switch, which every kernel with tracepoints has. fentry would
      // need a trampoline, which some hosts refuse with EPERM even to root.
      const id = kernelBtf()?.find('btf_trace_sched_switch', 'TYPEDEF') ?? NOT_LOADABLE
      return id === NOT_LOADABLE ? id : { attrs: { expectedAttachType: attachTypes.trace_raw_tp, attachBtfId: id } }
    }
    case 'lsm': {
      const id = vmlinuxFunc('bpf_lsm_file_mprotect')
      return id === NOT_LOADABLE ? id : { attrs: { expectedAttachType: attachTypes.lsm_mac, attachBtfId: id } }
    }
    case 'syscall':
      // "Syscall programs can only be sleepable."
      return { attrs: { progFlags: progLoadFlags.BPF_F_SLEEPABLE } }
    case 'ext':
      return extSpec(tokenFd)
    default:
      return { attrs: {} }
  }
}

// An extension program replaces a BTF-described function of a loaded
// program; both sides need BTF for `int f(struct xdp_md *ctx)`.
export function extBtf(): { bytes: Uint8Array; funcId: number } {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const ctx = b.ptr(b.fwd('xdp_md'))
  const proto = b.funcProto(int, [{ name: 'ctx', type: ctx }])
  const funcId = b.func('probe', proto, 'global')
  return { bytes: b.bytes(), funcId }
}

function funcInfo(typeId: number): Uint8Array {
  // struct bpf_func_info { __u32 insn_off; __u32 type_id; } for instruction 0.
  const b = new Uint8Array(8)
  new DataView(b.buffer).setUint32(4, typeId, true)
  return b
}

function extSpec(tokenFd: number | undefined): ProgSpec {
  const { bytes, funcId } = extBtf()
  const btf = new Fd(native.btfLoadSync({ btf: bytes, tokenFd }).fd, 'btf')
  try {
    const target = new Fd(native.progLoadSync({
      progType: progTypes.xdp, insns: returnZero(), license: 'GPL', tokenFd,
      progBtfFd: btf.fd, funcInfo: funcInfo(funcId), funcInfoRecSize: 8,
    }).fd, 'prog')
    return {
      attrs: { progBtfFd: btf.fd, funcInfo: funcInfo(funcId), funcInfoRecSize: 8, attachProgFd: target.fd, attachBtfId: funcId },
      cleanup: () => {
        target.close()
        btf.close()
      },
    }
  } catch (e) {
    btf.close()
    throw e
  }
}

/** Loads `insns` as `type` with the spec; returns normally or throws the load's error. Closes everything it made. */
export function loadProbe(progType: number, name: string, insns: Uint8Array, logLevel = 0): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType })
  const spec = specFor(name, tokenFd)
  if (spec === NOT_LOADABLE) throw notSupported(`program type ${name}`, progTypeVersions[name as ProgTypeName], 'the kernel has no BTF to attach it with')
  try {
    const r = native.progLoadSync({ progType, insns, license: 'GPL', logLevel, ...spec.attrs, tokenFd })
    native.closeFd(r.fd)
  } finally {
    spec.cleanup?.()
  }
}

// Types whose probe program loaded without complaint: only for those can a
// helper probe blame a refusal on the helper call.
const cleanLoads = new Set<number>()

/** Whether `r0 = 0; exit` loaded as program type `n` (after haveProgramType(n) returned). */
export function loadsCleanly(n: number): boolean {
  return cleanLoads.has(n)
}

/**
 * Checks that the kernel can load programs of type `type` ('xdp', or its
 * number). Returns when it can; throws a NotSupportedError naming the release
 * (and build options) that added it when it cannot, a BpfError when the probe
 * is refused (EPERM), a TypeError for an unknown name. Tracing and LSM probes
 * need the kernel's BTF. Uses the process-wide default token. Cached.
 */
export function haveProgramType(type: ProgTypeName | number): void {
  const { n, name } = familyMember(progTypes, 'program type', type)
  cachedProbe(`prog:${n}`, () => {
    try {
      loadProbe(n, name, returnZero())
      cleanLoads.add(n)
    } catch (e) {
      // struct_ops programs need a struct_ops map to attach to; a kernel
      // that knows the type says ENOTSUPP for a program without one.
      if (bpfCode(e) === 'ENOTSUPP' && name === 'struct_ops') return
      if (e instanceof VerifierError) return
      const code = bpfCode(e)
      if (code === 'EINVAL' || code === 'E2BIG') throw notSupported(`program type ${name}`, progTypeVersions[name as ProgTypeName])
      throw e
    }
  })
}
