// The kernel's symbol table, /proc/kallsyms, parsed once per call: what
// untyped __ksym externs, libbpf's LINUX_HAS_SYSCALL_WRAPPER and the policy
// checker (naming a loaded program's calls back) read. Addresses read as 0
// without the privilege to see them.
import { readFileSync } from 'node:fs'

export interface KernelSymbol {
  address: bigint
  /** nm's type letter: T/t text, D/d data, ... */
  type: string
  name: string
  /** The module the symbol belongs to ("[nf_conntrack]" without brackets), or undefined for vmlinux. */
  module: string | undefined
}

/** Every line of /proc/kallsyms, in its order. Errors: those of reading the file. */
export function readKallsyms(): KernelSymbol[] {
  const out: KernelSymbol[] = []
  for (const line of readFileSync('/proc/kallsyms', 'utf8').split('\n')) {
    const [addr, type, name, module] = line.split(/\s+/)
    if (!name) continue
    out.push({ address: BigInt(`0x${addr}`), type, name, module: module ? module.replace(/^\[|\]$/g, '') : undefined })
  }
  return out
}

/** Whether vmlinux (not a module) has the symbol: code a kernel was built without has none. False when /proc/kallsyms cannot be read. */
export function kernelHasSymbol(name: string): boolean {
  try {
    return readKallsyms().some((s) => s.module === undefined && s.name === name)
  } catch {
    return false
  }
}
