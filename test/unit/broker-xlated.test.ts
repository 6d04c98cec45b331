// What prog_xlated passes on to a tenant: its program's translated
// instructions with kernel addresses and other tenants' map IDs zeroed.
import { expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { redactXlated } from '../../lib/broker/handlers/xlated.js'

const imms = (bytes: Uint8Array) => Array.from({ length: bytes.length / 8 }, (_, i) => new DataView(bytes.buffer, bytes.byteOffset).getInt32(i * 8 + 4, true))

test('calls keep only their own functions\' offsets; map IDs only when visible; kernel-half constants go', () => {
  // As the kernel dumps them: src_reg 1 and 2 on an ld_imm64 name a map by ID (and a value offset), on a call a local function and a kfunc.
  const prog = asm.assemble([
    asm.call(0x1234), // a helper: a kernel address offset
    { ...asm.call(5), src: 1 }, // a function of the program: relative, kept
    { ...asm.call(77), src: 2 }, // a kfunc
    { ...asm.ldImm64(1, 7), src: 1 }, // map 7: visible
    { ...asm.ldImm64(1, (16n << 32n) | 9n), src: 2 }, // map 9's value at offset 16: not visible
    asm.ldImm64(1, 0x10_00001000n), // a constant, kept
    asm.ldImm64(1, 0xffffffff81000000n), // a kernel address
    asm.exit(),
  ])
  const out = redactXlated(prog, (id) => id === 7)
  expect(imms(out)).toEqual([0, 5, 0, 7, 0, 0, 16, 0x1000, 0x10, 0, 0, 0])
  // The input is left as it was.
  expect(imms(prog)[0]).toBe(0x1234)
})

test('every upper-half constant goes (5-level paging, 52-bit arm64); a local call outside the program is not kept', () => {
  const prog = asm.assemble([
    asm.ldImm64(1, 0xff11000012345678n), // x86-64 with 5-level paging: the direct map starts at 0xff11...
    asm.ldImm64(1, 0xfff0000000001000n), // arm64 with 52-bit addresses
    { ...asm.call(0), src: 1, imm: -123456 }, // the interpreter's rewritten form: a kernel-text offset, not an instruction
    { ...asm.call(0), src: 1, imm: -4 }, // back to instruction 0: kept
    asm.exit(),
  ])
  expect(imms(redactXlated(prog, () => true))).toEqual([0, 0, 0, 0, 0, -4, 0])
})
