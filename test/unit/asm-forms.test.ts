// Instruction forms added after the first assembler: gotol, may_goto, kfunc
// calls, acquire/release, 32-bit signed division by an immediate, and the
// kernel's spelling of their disassembly (checked against the kernel itself
// in test/kernel/asm-kernel.test.ts).
import { expect, test } from 'vitest'
import { asm } from '../../lib/index.js'

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const slot = (code: number, regs: number, off: number, imm: number) => {
  const b = Buffer.alloc(8)
  b.writeUInt8(code, 0)
  b.writeUInt8(regs, 1)
  b.writeInt16LE(off, 2)
  b.writeInt32LE(imm, 4)
  return b.toString('hex')
}
const { R0, R1, R2, R3, R10 } = asm

test('encodings', () => {
  const one = (i: ReturnType<typeof asm.exit>) => hex(asm.assemble([i]))
  expect(one(asm.ja32(70000))).toBe(slot(0x06, 0, 0, 70000)) // BPF_JMP32 | BPF_JA, offset in imm
  expect(one(asm.mayGoto(3))).toBe(slot(0xe5, 0, 3, 0)) // BPF_JMP | BPF_JCOND, src BPF_MAY_GOTO
  expect(one(asm.callKfunc(1234))).toBe(slot(0x85, 0x20, 0, 1234)) // src BPF_PSEUDO_KFUNC_CALL
  expect(one(asm.callKfunc(77, 2))).toBe(slot(0x85, 0x20, 2, 77))
  expect(one(asm.loadAcquire('dw', R0, R1, 8))).toBe(slot(0xdb, 0x10, 8, 0x100))
  expect(one(asm.storeRelease('b', R1, R2, 0))).toBe(slot(0xd3, 0x21, 0, 0x110))
  expect(one(asm.sdiv32Imm(R1, 3))).toBe(slot(0x34, 0x01, 1, 3))
  expect(one(asm.smod32Imm(R1, -3))).toBe(slot(0x94, 0x01, 1, -3))
  expect(() => asm.loadAcquire('q' as never, R0, R1, 0)).toThrow(/size must be/)
})

test('labels: gotol takes its offset in imm, may_goto in off', () => {
  const filler = Array.from({ length: 40000 }, () => asm.mov64Imm(R0, 0))
  const far = asm.decode(asm.assemble([asm.ja32('far'), ...filler, asm.label('far'), asm.exit()]))
  expect(far[0]).toMatchObject({ code: 0x06, off: 0, imm: 40000 })
  expect(() => asm.assemble([asm.ja('far'), ...filler, asm.label('far'), asm.exit()])).toThrow(/too far/)
  const loop = asm.decode(asm.assemble([asm.label('top'), asm.mayGoto('out'), asm.ja('top'), asm.label('out'), asm.exit()]))
  expect(loop[0]).toMatchObject({ off: 1, imm: 0 })
  expect(loop[1]).toMatchObject({ off: -2 })
})

test('disassembly in the kernel\'s words', () => {
  expect(asm.format(asm.ja32(-2))).toBe('gotol pc-2')
  expect(asm.format(asm.mayGoto(1))).toBe('may_goto pc+1')
  expect(asm.format(asm.callKfunc(1234))).toBe('call kernel-function#1234')
  expect(asm.format(asm.call(99999))).toBe('call unknown#99999')
  expect(asm.format(asm.jsltImm(R1, -1, 3))).toBe('if r1 s< 0xffffffff goto pc+3')
  expect(asm.format(asm.jeq32Imm(R1, -5, 0))).toBe('if w1 == 0xfffffffb goto pc+0')
  expect(asm.format(asm.ldImm64(R1, -1))).toBe('r1 = 0xffffffffffffffff')
  expect(asm.format(asm.atomic('add', 32, R10, R1, -4))).toBe('lock *(u32 *)(r10 -4) += r1')
  expect(asm.format(asm.atomic('and', 32, R10, R1, -4, { fetch: true }))).toBe('r1 = atomic_fetch_and((u32 *)(r10 -4), r1)')
  expect(asm.format(asm.cmpxchg(32, R10, R3, -4))).toBe('r0 = atomic_cmpxchg((u32 *)(r10 -4), r0, r3)')
  expect(asm.format(asm.loadAcquire('w', R0, R1, 4))).toBe('r0 = load_acquire((u32 *)(r1 +4))')
  expect(asm.format(asm.storeRelease('h', R1, R2, -2))).toBe('store_release((u16 *)(r1 -2), r2)')
  expect(asm.format(asm.sdiv32Imm(R1, 3))).toBe('w1 s/= 3')
})

test('a label with no instruction after it, and a cut ld_imm64, are errors', () => {
  expect(() => asm.assemble([asm.ja('end'), asm.exit(), asm.label('end')])).toThrow(/'end' is not followed by an instruction/)
  expect(() => asm.decode(new Uint8Array([0x18, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/no second slot/)
  expect(() => asm.decode(new Uint8Array(12))).toThrow(RangeError)
})
