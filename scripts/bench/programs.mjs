// The programs the benchmark loads, as instruction bytes: the same bytes go to
// the C baseline (through a file) and to bpfkit.
import { asm } from '../../dist/index.mjs'

/** A small socket filter: a few instructions, verified in microseconds. */
export function smallProgram() {
  return asm.assemble([
    asm.mov64Imm(asm.R0, 0),
    asm.mov64Imm(asm.R2, 1),
    asm.add64Imm(asm.R2, 2),
    asm.jgtImm(asm.R2, 10, 'out'),
    asm.mov64Imm(asm.R0, 1),
    asm.label('out'),
    asm.exit(),
  ])
}

/**
 * A large socket filter: a bounded loop around `body` ALU instructions, run
 * `loops` times. The loop counter is precise, so the verifier walks every
 * iteration: body × loops instructions processed (kept under the kernel's
 * one million), which takes it most of a second.
 */
export function largeProgram(body = 31000, loops = 31) {
  const items = [
    asm.mov64Imm(asm.R1, 0), asm.mov64Imm(asm.R2, 0), asm.mov64Imm(asm.R3, 0), asm.mov64Imm(asm.R4, 0),
    asm.mov64Imm(asm.R6, 0),
    asm.label('loop'),
  ]
  for (let i = 0; i < body; i++) {
    const r = 1 + (i % 4)
    items.push(i % 2 ? asm.add64Imm(r, i & 0xff) : asm.xor64Reg(r, 1 + ((i + 1) % 4)))
  }
  items.push(asm.add64Imm(asm.R6, 1), asm.jltImm(asm.R6, loops, 'loop'), asm.mov64Imm(asm.R0, 0), asm.exit())
  return asm.assemble(items)
}

/** A socket filter that writes `size` bytes of its stack to `ring` (bpf_ringbuf_output) on every run. */
export function ringProducer(ring, size = 64) {
  const items = []
  for (let off = 8; off <= size; off += 8) items.push(asm.stDW(asm.R10, -off, off))
  items.push(
    asm.ldMapFd(asm.R1, ring),
    asm.mov64Reg(asm.R2, asm.R10), asm.add64Imm(asm.R2, -size),
    asm.mov64Imm(asm.R3, size), asm.mov64Imm(asm.R4, 0),
    asm.call('ringbuf_output'),
    asm.mov64Imm(asm.R0, 0), asm.exit(),
  )
  return asm.assemble(items)
}
