// normaliseXlated (test/kernel/helpers/bpftool-loadall.ts) on hand-made
// xlated instructions: two loads of one program differ only in map ids and
// kernel addresses, and the normaliser must hide exactly those differences.
import { describe, expect, it } from 'vitest'
import { normaliseXlated } from '../kernel/helpers/bpftool-loadall.js'

/** One 8-byte instruction, little-endian, as the kernel dumps it. */
function insn(code: number, dst: number, src: number, off: number, imm: number): number[] {
  const b = new DataView(new ArrayBuffer(8))
  b.setUint8(0, code)
  b.setUint8(1, (src << 4) | dst)
  b.setInt16(2, off, true)
  b.setInt32(4, imm, true)
  return [...new Uint8Array(b.buffer)]
}
/** ld_imm64 dst, (src, imm, imm2): two instruction slots. */
const ldImm64 = (dst: number, src: number, imm: number, imm2: number) => [...insn(0x18, dst, src, 0, imm), ...insn(0, 0, 0, 0, imm2)]
const call = (imm: number) => insn(0x85, 0, 0, 0, imm)
const exit = () => insn(0x95, 0, 0, 0, 0)
const bytes = (...parts: number[][]) => new Uint8Array(parts.flat())

/** A program using map A by fd, then map B's value at +8, then A again, then a kernel address, as loaded with the given ids/address. */
function program(idA: number, idB: number, kaddr: bigint, helper = 1234) {
  return bytes(
    ldImm64(1, 1, idA, 0),
    call(helper),
    ldImm64(2, 2, idB, 8),
    ldImm64(3, 1, idA, 0),
    ldImm64(4, 0, Number(kaddr & 0xffffffffn) | 0, Number(kaddr >> 32n) | 0),
    exit(),
  )
}

describe('normaliseXlated', () => {
  it('two loads with other map ids and kernel addresses normalise the same', () => {
    const first = normaliseXlated(program(10, 11, 0xffffffff81000000n))
    const second = normaliseXlated(program(907, 42, 0xffffffffa0123450n))
    expect(first).toEqual(second)
    expect(first).toEqual([
      '0: op=0x18 dst=r1 src=1 off=0 ld_imm64 map map#0',
      '2: op=0x85 dst=r0 src=0 off=0 imm=1234 (helper)',
      '3: op=0x18 dst=r2 src=2 off=0 ld_imm64 map_value map#1+8',
      '5: op=0x18 dst=r3 src=1 off=0 ld_imm64 map map#0',
      '7: op=0x18 dst=r4 src=0 off=0 ld_imm64 <kaddr>',
      '9: op=0x95 dst=r0 src=0 off=0 imm=0',
    ])
  })

  it('maps are told apart: swapping which map an instruction uses is a difference', () => {
    const swapped = bytes(ldImm64(1, 1, 11, 0), call(1234), ldImm64(2, 2, 10, 8), ldImm64(3, 1, 10, 0), ldImm64(4, 0, 0, -1), exit())
    expect(normaliseXlated(swapped)).not.toEqual(normaliseXlated(program(10, 11, 0xffffffff00000000n)))
  })

  it('names maps by id when given names, falling back to order for ids it lacks', () => {
    const lines = normaliseXlated(program(10, 11, 0xffffffff81000000n), { mapNames: new Map([[11, 'globals.data']]) })
    expect(lines[0]).toContain('ld_imm64 map map#0')
    expect(lines[2]).toContain('ld_imm64 map_value globals.data+8')
  })

  it('keeps what must match: value offsets, helper ids, plain 64-bit constants, callbacks', () => {
    expect(normaliseXlated(program(1, 2, 0xffffffff81000000n))).not.toEqual(normaliseXlated(bytes(
      ldImm64(1, 1, 1, 0), call(1234), ldImm64(2, 2, 2, 16), ldImm64(3, 1, 1, 0), ldImm64(4, 0, 0, -1), exit(),
    )))
    expect(normaliseXlated(program(1, 2, 0xffffffff81000000n, 1234))).not.toEqual(normaliseXlated(program(1, 2, 0xffffffff81000000n, 1235)))
    expect(normaliseXlated(bytes(ldImm64(0, 0, 0x5678, 0x1234))).join()).toContain('ld_imm64 0x123400005678')
    // A user-space-half constant is the program's own and stays; a callback (src 4, BPF_PSEUDO_FUNC) is dumped as jump and subprogram.
    expect(normaliseXlated(bytes(ldImm64(0, 0, 0, 0x7fff0000))).join()).toContain('0x7fff000000000000')
    expect(normaliseXlated(bytes(ldImm64(2, 4, 29, 1))).join()).toContain('ld_imm64 func +29 (subprogram 1)')
  })

  it('refuses bytes that are not whole instructions', () => {
    expect(() => normaliseXlated(new Uint8Array(12))).toThrow(RangeError)
    expect(() => normaliseXlated(new Uint8Array(insn(0x18, 1, 1, 0, 3)))).toThrow(/ld_imm64 at instruction 0 has no second half/)
  })
})
