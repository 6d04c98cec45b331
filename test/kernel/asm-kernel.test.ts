// The assembler against the kernel itself: a program using every
// instruction form the verifier accepts in a socket filter is loaded with a
// level-2 log, which prints each instruction with the kernel's own
// disassembler (kernel/bpf/disasm.c) before any rewriting. asm.format of the
// same instruction must print the same text, and the opcode must agree.
// Instruction set additions a kernel lacks (as its probes say) are left out.
import { expect, test } from 'vitest'
import { asm, BpfProgram, type Item } from '../../lib/index.js'
import * as features from '../../lib/features/index.js'

const { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 } = asm

function everyForm(): Item[] {
  const v4 = features.supportsIsaV4()
  const atomics = features.supportsAtomics()
  const only = (yes: boolean, items: Item[]): Item[] => (yes ? items : [])
  const aluOps = ['add', 'sub', 'mul', 'div', 'mod', 'or', 'and', 'lsh', 'rsh', 'arsh', 'xor', 'mov'] as const
  const jmpOps = ['jeq', 'jgt', 'jge', 'jset', 'jne', 'jsgt', 'jsge', 'jlt', 'jle', 'jslt', 'jsle'] as const
  const sizes = ['B', 'H', 'W', 'DW'] as const
  const atomicOps = atomics ? (['add', 'or', 'and', 'xor'] as const) : (['add'] as const)
  const a = asm as unknown as Record<string, (...args: unknown[]) => Item>
  return [
    asm.mov64Reg(R6, R1),
    ...[R0, R1, R2, R3, R4, R5, R7, R8, R9].map((r) => asm.mov64Imm(r, r + 1)),
    ...aluOps.flatMap((op) => [a[`${op}64Imm`](R1, 3), a[`${op}32Imm`](R1, 3), a[`${op}64Reg`](R1, R2), a[`${op}32Reg`](R1, R2)]),
    ...only(v4, [
      asm.sdiv64Imm(R1, 3), asm.sdiv64Reg(R1, R2), asm.sdiv32Imm(R1, 3), asm.sdiv32Reg(R1, R2),
      asm.smod64Imm(R1, 3), asm.smod64Reg(R1, R2), asm.smod32Imm(R1, 3), asm.smod32Reg(R1, R2),
    ]),
    asm.neg64(R1), asm.neg32(R2),
    ...only(v4, [
      asm.movsx64Reg(R3, R1, 8), asm.movsx64Reg(R3, R1, 16), asm.movsx64Reg(R3, R1, 32),
      asm.movsx32Reg(R3, R1, 8), asm.movsx32Reg(R3, R1, 16),
    ]),
    asm.be(R4, 16), asm.be(R4, 32), asm.be(R4, 64), asm.le(R4, 16), asm.le(R4, 32), asm.le(R4, 64),
    ...only(v4, [asm.bswap(R4, 16), asm.bswap(R4, 32), asm.bswap(R4, 64)]),
    ...jmpOps.flatMap((op) => [a[`${op}Imm`](R1, 5, 0), a[`${op}32Imm`](R1, -5, 0), a[`${op}Reg`](R1, R2, 0), a[`${op}32Reg`](R1, R2, 0)]),
    asm.ja(0), ...only(v4, [asm.ja32(0)]),
    ...only(features.supportsMayGoto(), [asm.mayGoto(1), asm.mov64Imm(R0, 0)]),
    // the stack: stores of every size, then loads (plain and sign-extending)
    ...sizes.flatMap((sz, i) => [a[`stx${sz}`](R10, R1, -8 * (i + 1)), a[`st${sz}`](R10, -8 * (i + 5), -7)]),
    ...sizes.map((sz, i) => a[`ldx${sz}`](R3, R10, -8 * (i + 1))),
    ...only(v4, (['B', 'H', 'W'] as const).map((sz, i) => a[`ldxs${sz}`](R3, R10, -8 * (i + 1)))),
    ...atomicOps.flatMap((op) => [
      asm.atomic(op, 64, R10, R1, -32), asm.atomic(op, 32, R10, R1, -64),
      ...only(atomics, [asm.atomic(op, 64, R10, R1, -32, { fetch: true }), asm.atomic(op, 32, R10, R1, -64, { fetch: true })]),
    ]),
    ...only(atomics, [
      asm.xchg(64, R10, R1, -32), asm.xchg(32, R10, R1, -64),
      asm.cmpxchg(64, R10, R1, -32), asm.cmpxchg(32, R10, R1, -64),
    ]),
    ...only(features.supportsLoadAcquire(), (['b', 'h', 'w', 'dw'] as const).flatMap((sz, i) => [asm.loadAcquire(sz, R3, R10, -8 * (i + 1)), asm.storeRelease(sz, R10, R3, -8 * (i + 1))])),
    asm.ldImm64(R7, 0x123456789abcdefn),
    asm.ldImm64(R7, -2),
    asm.callLocal('sub'),
    asm.call('ktime_get_ns'),
    // legacy packet loads take the skb from r6 and clobber r1-r5
    asm.ldAbs('b', 0), asm.ldAbs('h', 0), asm.ldAbs('w', 0),
    asm.mov64Imm(R8, 1),
    asm.ldInd('b', R8, 0), asm.ldInd('h', R8, 0), asm.ldInd('w', R8, 0),
    asm.mov64Imm(R0, 0),
    asm.exit(),
    asm.label('sub'),
    asm.mov64Imm(R0, 1),
    asm.exit(),
  ]
}

test('asm.format of every instruction form equals the verifier log\'s disassembly', async () => {
  const items = everyForm()
  using p = await BpfProgram.load({ type: 'socket_filter', insns: items, license: 'GPL', logLevel: 2 })
  const kernel = new Map<number, string>()
  for (const line of p.log.split('\n')) {
    const m = /^(\d+): (\([0-9a-f]{2}\) .*?)(?:\s+;.*)?$/.exec(line)
    if (m) kernel.set(Number(m[1]), m[2])
  }
  const ours = new Map<number, string>()
  let slot = 0
  for (const i of asm.decode(asm.assemble(items))) {
    ours.set(slot, `(${i.code.toString(16).padStart(2, '0')}) ${asm.format(i)}`)
    slot += i.imm64 === undefined ? 1 : 2
  }
  expect(ours.size).toBeGreaterThan(100)
  // The verifier walks every one of these instructions.
  expect([...kernel.keys()].sort((x, y) => x - y)).toEqual([...ours.keys()])
  const line = (m: Map<number, string>) => [...m].sort(([x], [y]) => x - y).map(([at, text]) => `${at}: ${text}`)
  expect(line(ours)).toEqual(line(kernel))
  expect(p.testRunSync({ data: new Uint8Array(64) }).retval).toBe(0)
})
