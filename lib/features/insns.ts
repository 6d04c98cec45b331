// Instruction set features, each declared once (name, release, probe): a
// tiny socket filter that uses the instructions must load. An instruction the
// kernel does not know is refused with EINVAL ("unknown opcode", "reserved
// fields"); so is nothing else in these programs.
import { asm } from '../asm/index.js'
import { native, tokenFdFor } from '../sys/index.js'
import { progTypes } from '../sys/generated/kernel-enums.js'
import { declareFeature } from './declare.js'
import { bpfCode } from './probe-cache.js'

function loadSocketFilter(items: Parameters<typeof asm.assemble>[0]): void {
  const tokenFd = tokenFdFor(undefined, { cmd: 'prog_load', progType: progTypes.socket_filter })
  native.closeFd(native.progLoadSync({ progType: progTypes.socket_filter, insns: asm.assemble(items), license: 'GPL', tokenFd }).fd)
}

// A feature whose probe is "this program loads"; `refusals` are the codes that mean "missing".
function insnFeature(name: string, title: string, since: string, program: () => Parameters<typeof asm.assemble>[0], refusals = ['EINVAL']) {
  return declareFeature(name, {
    title,
    since,
    probe(missing) {
      try {
        loadSocketFilter(program())
      } catch (e) {
        if (refusals.includes(bpfCode(e) ?? '')) throw missing()
        throw e
      }
    },
  })
}

/** Loops the verifier can prove to end (Linux 5.3); earlier kernels refuse any back-edge. */
export const { have: haveBoundedLoops, supports: supportsBoundedLoops } = insnFeature('boundedLoops', 'bounded loops', '5.3', () => [
  asm.mov64Imm(asm.R0, 10), asm.label('loop'), asm.sub64Imm(asm.R0, 1), asm.jneImm(asm.R0, 0, 'loop'), asm.exit(),
])

/** Programs of more than 4096 instructions for privileged loaders (Linux 5.2). */
export const { have: haveLargePrograms, supports: supportsLargePrograms } = insnFeature('largePrograms', 'programs over 4096 instructions', '5.2',
  () => [...Array.from({ length: 4096 }, () => asm.mov64Imm(asm.R0, 1)), asm.exit()], ['E2BIG', 'EINVAL'])

/** BPF_ATOMIC beyond plain add: fetch forms, and/or/xor, xchg, cmpxchg (Linux 5.12). */
export const { have: haveAtomics, supports: supportsAtomics } = insnFeature('atomics', 'atomic instructions (fetch, xchg, cmpxchg)', '5.12', () => [
  asm.stDW(asm.R10, -8, 0), asm.mov64Imm(asm.R1, 1), asm.mov64Imm(asm.R0, 0),
  asm.atomic('or', 64, asm.R10, asm.R1, -8, { fetch: true }), asm.cmpxchg(64, asm.R10, asm.R1, -8),
  asm.mov64Imm(asm.R0, 0), asm.exit(),
])

/**
 * The instructions of LLVM's -mcpu=v4 (Linux 6.6): signed division and
 * modulo, sign-extending moves and loads, unconditional byte swaps, and
 * gotol (a 32-bit jump offset).
 */
export const { have: haveIsaV4, supports: supportsIsaV4 } = insnFeature('isaV4', 'cpu v4 instructions (sdiv, smod, movsx, ldsx, bswap, gotol)', '6.6', () => [
  asm.mov64Imm(asm.R0, -9), asm.sdiv64Imm(asm.R0, 3), asm.movsx64Reg(asm.R0, asm.R0, 8), asm.bswap(asm.R0, 16),
  asm.stDW(asm.R10, -8, 0), asm.ldxsB(asm.R1, asm.R10, -8), asm.ja32(0), asm.mov64Imm(asm.R0, 0), asm.exit(),
])

/** may_goto, the bounded "maybe jump" that ends loops the verifier cannot bound (Linux 6.9). */
export const { have: haveMayGoto, supports: supportsMayGoto } = insnFeature('mayGoto', 'may_goto', '6.9', () => [
  asm.mayGoto(1), asm.mov64Imm(asm.R0, 1), asm.mov64Imm(asm.R0, 0), asm.exit(),
])

/** Load-acquire and store-release (Linux 6.15). */
export const { have: haveLoadAcquire, supports: supportsLoadAcquire } = insnFeature('loadAcquire', 'load-acquire and store-release instructions', '6.15', () => [
  asm.stDW(asm.R10, -8, 0), asm.loadAcquire('dw', asm.R1, asm.R10, -8), asm.storeRelease('dw', asm.R10, asm.R1, -8),
  asm.mov64Imm(asm.R0, 0), asm.exit(),
])
