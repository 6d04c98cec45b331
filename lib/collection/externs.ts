// What an object's externs resolve to on the running kernel: the bytes of
// the .kconfig map (from the kernel config and version), and for each
// kernel symbol its BTF id (typed __ksym variables, kfuncs), in vmlinux or
// in a module's BTF, or its address (untyped __ksym, from /proc/kallsyms).
// A weak extern the kernel lacks resolves to nothing; any other is an error.
import { Btf } from '../btf/btf.js'
import type { BtfReader } from '../btf/reader.js'
import { btfs } from '../sys/ids.js'
import { readKallsyms } from '../sys/kallsyms.js'
import { supportsProgramHelper } from '../features/index.js'
import { kernelVersionCode, readKernelConfig, type KernelConfig } from './kconfig.js'
import type { KconfigExtern, KsymExtern, ParsedObject } from './object.js'
import type { CoreTargets } from '../btf/core.js'

/** A resolved kernel symbol. */
export type KsymTarget =
  | { kind: 'btf'; id: number; module: string | undefined }
  | { kind: 'address'; address: bigint }
  | { kind: 'missing' }

/** Raised for an extern the running kernel cannot satisfy. */
export class ExternError extends Error {
  readonly code = 'ENOENT'
  constructor(message: string) {
    super(message)
    this.name = 'ExternError'
  }
}

/** The .kconfig map's value: each extern at its offset, encoded by its BTF type. */
export function kconfigBytes(object: ParsedObject, config: KernelConfig | undefined = readKernelConfig()): Uint8Array {
  const bytes = new Uint8Array(object.kconfigSize)
  const v = new DataView(bytes.buffer)
  for (const k of object.kconfig) {
    const value = kconfigValue(k, config)
    if (value === undefined) {
      if (k.weak) continue
      throw new ExternError(`__kconfig extern '${k.name}': ${config ? 'not in the kernel config' : 'no kernel config found (/boot/config-$(uname -r) or /proc/config.gz)'}; declare it __weak to default to 0`)
    }
    encode(object.btf!, k, value, bytes, v)
  }
  return bytes
}

function kconfigValue(k: KconfigExtern, config: KernelConfig | undefined): string | undefined {
  if (k.name === 'LINUX_KERNEL_VERSION') return String(kernelVersionCode())
  // libbpf's two computed values, which bpf_tracing.h's BPF_KSYSCALL and bpf_get_attach_cookie users read.
  if (k.name === 'LINUX_HAS_SYSCALL_WRAPPER') return readKallsyms().some((y) => y.module === undefined && /^__(x64|ia32|arm64|s390x|riscv|powerpc)_sys_bpf$/.test(y.name)) ? 'y' : 'n'
  if (k.name === 'LINUX_HAS_BPF_COOKIE') return asked(() => supportsProgramHelper('kprobe', 'get_attach_cookie')) ? 'y' : 'n'
  if (k.name.startsWith('CONFIG_')) return config?.get(k.name)
  if (k.weak) return undefined
  throw new ExternError(`__kconfig extern '${k.name}' is none of CONFIG_*, LINUX_KERNEL_VERSION, LINUX_HAS_SYSCALL_WRAPPER, LINUX_HAS_BPF_COOKIE`)
}

// libbpf's rules: tristate enums take y=1 m=2 n=0, bools y/n, chars the
// letter, integers the number, char arrays the quoted string.
function encode(btf: BtfReader, k: KconfigExtern, value: string, bytes: Uint8Array, v: DataView): void {
  const t = btf.resolve(k.typeId)
  const bad = (why: string) => new ExternError(`__kconfig extern '${k.name}' = ${value}: ${why}`)
  if (t.kind === 'ENUM') {
    const n = { y: 1, m: 2, n: 0 }[value]
    if (t.sizeOrType !== 4) throw bad('an enum extern must be libbpf\'s 4-byte enum libbpf_tristate')
    if (n === undefined) throw bad('a tristate takes y, m or n')
    v.setUint32(k.offset, n, true)
  } else if (t.kind === 'ARRAY') {
    if (!/^".*"$/s.test(value)) throw bad('a char array takes a quoted string')
    const s = Buffer.from(value.slice(1, -1), 'utf8')
    const size = btf.sizeof(k.typeId)
    bytes.set(s.subarray(0, size - 1), k.offset)
  } else if (t.kind === 'INT') {
    const enc = btf.intEncoding(t)
    if (enc.bool) {
      if (value !== 'y' && value !== 'n') throw bad('a bool takes y or n')
      bytes[k.offset] = value === 'y' ? 1 : 0
    } else if (t.sizeOrType === 1 && /^[ymn]$/.test(value)) {
      bytes[k.offset] = value.charCodeAt(0)
    } else {
      const n = value === 'n' ? 0n : parseNumber(value)
      if (n === undefined) throw bad('not a number')
      const bits = BigInt(t.sizeOrType * 8)
      const lo = enc.signed ? -(1n << (bits - 1n)) : 0n
      const hi = enc.signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n
      if (n < lo || n > hi) throw bad(`out of range for ${t.sizeOrType * 8}-bit ${enc.signed ? 'signed' : 'unsigned'}`)
      const u = BigInt.asUintN(Number(bits), n)
      for (let i = 0; i < t.sizeOrType; i++) bytes[k.offset + i] = Number((u >> BigInt(8 * i)) & 0xffn)
    }
  } else {
    throw bad(`its type is a BTF ${t.kind}; bpfkit reads ints, bools, chars, tristate enums and char arrays`)
  }
}

// strtoull(s, 0) as libbpf reads values: 0x hex, leading-0 octal, else decimal.
function asked(probe: () => boolean): boolean {
  try {
    return probe()
  } catch {
    return false
  }
}

function parseNumber(s: string): bigint | undefined {
  const m = /^(-?)(0x[0-9a-f]+|0[0-7]*|[1-9]\d*)$/i.exec(s)
  if (!m) return undefined
  const digits = m[2]
  const n = /^0[0-7]+$/.test(digits) ? BigInt('0o' + digits.slice(1)) : BigInt(digits)
  return m[1] ? -n : n
}

/** Resolves kernel symbols against the running kernel (vmlinux and module BTF, kallsyms), once each. */
export class KernelSymbols {
  readonly #open: () => CoreTargets
  #opened: CoreTargets | undefined
  readonly #modules = new Map<string, Btf>()
  #kallsyms: Map<string, bigint> | undefined

  /** `targets` is called the first time a symbol is looked up: loads that need none never read vmlinux. */
  constructor(targets: () => CoreTargets) {
    this.#open = targets
  }

  get #targets(): CoreTargets {
    return (this.#opened ??= this.#open())
  }

  /** A named type in vmlinux, else in the first module that has one. */
  findType(name: string, kind: 'FUNC' | 'VAR' | 'TYPEDEF'): { id: number; module: string | undefined } | undefined {
    const id = this.#targets.vmlinux.find(name, kind)
    if (id !== undefined) return { id, module: undefined }
    for (const m of this.#targets.modules?.() ?? []) {
      const mid = m.btf.find(name, kind)
      if (mid !== undefined) return { id: mid, module: m.name }
    }
    return undefined
  }

  resolve(k: KsymExtern): KsymTarget {
    // 'bpf_foo___v2' names the kernel's bpf_foo, as with CO-RE flavors.
    const name = k.name.replace(/___.*$/, '')
    if (!k.func && k.typeId === 0) {
      const address = this.#kallsymsMap().get(name)
      if (address !== undefined) return { kind: 'address', address }
    } else {
      const found = this.findType(name, k.func ? 'FUNC' : 'VAR')
      if (found) return { kind: 'btf', ...found }
    }
    if (k.weak) return { kind: 'missing' }
    throw new ExternError(`${k.func ? 'kfunc' : '__ksym'} '${k.name}' is not in this kernel's ${k.typeId === 0 && !k.func ? '/proc/kallsyms' : 'BTF (vmlinux or modules)'}; declare it __weak and test bpf_ksym_exists() to run without it`)
  }

  /** The loaded BTF object of a module, opened once by ID (kfunc calls pass it in fd_array). */
  moduleBtf(name: string): Btf {
    let b = this.#modules.get(name)
    if (!b) {
      const info = [...btfs()].find((i) => i.kernelBtf && i.name === name)
      if (!info) throw new ExternError(`module '${name}' has BTF in /sys/kernel/btf but no loaded BTF object`)
      b = Btf.fromId(info.id)
      this.#modules.set(name, b)
    }
    return b
  }

  close(): void {
    for (const b of this.#modules.values()) b.close()
    this.#modules.clear()
  }

  #kallsymsMap(): Map<string, bigint> {
    if (!this.#kallsyms) {
      this.#kallsyms = new Map()
      for (const y of readKallsyms()) if (!this.#kallsyms.has(y.name)) this.#kallsyms.set(y.name, y.address)
    }
    return this.#kallsyms
  }
}
