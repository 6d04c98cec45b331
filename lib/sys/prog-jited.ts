// Where a program's JIT-compiled functions are and how long each is
// (bpf_prog_info jited_ksyms and jited_func_lens, Linux 4.18+): a program with
// bpf-to-bpf calls is JITed as one image per function.
import { native } from './addon.js'
import { progInfo } from './generated/kernel-layouts.js'

export interface JitedFunction {
  /** The function's start in kernel memory (its /proc/kallsyms symbol); 0 without the privilege to see kernel addresses. */
  address: bigint
  /** Its length in bytes of machine code. */
  size: number
}

/**
 * The JITed functions of open program `fd`, main program first. Empty when
 * the program is not JITed (the interpreter runs it) or the kernel withholds
 * them (no CAP_SYS_ADMIN / CAP_PERFMON).
 */
export function progJitedFunctions(fd: number): JitedFunction[] {
  const f = progInfo.fields
  const first = new Uint8Array(progInfo.size)
  native.objGetInfoByFd(fd, first)
  const v = new DataView(first.buffer)
  const nKsyms = v.getUint32(f.nr_jited_ksyms.offset, true)
  const nLens = v.getUint32(f.nr_jited_func_lens.offset, true)
  if (nLens === 0) return []
  const addresses = new BigUint64Array(nKsyms)
  const lens = new Uint32Array(nLens)
  const pointers: Array<[number, Uint8Array, number, number]> = [[f.jited_func_lens.offset, new Uint8Array(lens.buffer), f.nr_jited_func_lens.offset, 4]]
  if (nKsyms > 0) pointers.push([f.jited_ksyms.offset, new Uint8Array(addresses.buffer), f.nr_jited_ksyms.offset, 8])
  native.objGetInfoWithBuffers(fd, new Uint8Array(progInfo.size), pointers)
  return [...lens].map((size, i) => ({ address: addresses[i] ?? 0n, size }))
}
