// What prog_xlated passes on to a tenant: its program's translated
// instructions with kernel addresses and other tenants' map IDs zeroed.
import { expect, test } from 'vitest'
import { redactXlated } from '../../lib/broker/handlers/xlated.js'

/** One 8-byte instruction. */
function insn(code: number, dst: number, src: number, off: number, imm: number): number[] {
  const b = new DataView(new ArrayBuffer(8))
  b.setUint8(0, code)
  b.setUint8(1, (src << 4) | dst)
  b.setInt16(2, off, true)
  b.setInt32(4, imm, true)
  return [...new Uint8Array(b.buffer)]
}
const ld64 = (src: number, lo: number, hi: number) => [...insn(0x18, 1, src, 0, lo), ...insn(0, 0, 0, 0, hi)]
const imms = (bytes: Uint8Array) => Array.from({ length: bytes.length / 8 }, (_, i) => new DataView(bytes.buffer, bytes.byteOffset).getInt32(i * 8 + 4, true))

test('calls keep only their own functions\' offsets; map IDs only when visible; kernel-half constants go', () => {
  const prog = Uint8Array.from([
    ...insn(0x85, 0, 0, 0, 0x1234), // helper call: a kernel address offset
    ...insn(0x85, 0, 1, 0, 5), // bpf-to-bpf call: relative, kept
    ...insn(0x85, 0, 2, 0, 77), // kfunc call
    ...ld64(1, 7, 0), // map 7: visible
    ...ld64(2, 9, 16), // map 9's value at offset 16: not visible
    ...ld64(0, 0x1000, 0x10), // a constant, kept
    ...ld64(0, 0x81000000 | 0, 0xffffffff | 0), // a kernel address
    ...insn(0x95, 0, 0, 0, 0),
  ])
  const out = redactXlated(prog, (id) => id === 7)
  expect(imms(out)).toEqual([0, 5, 0, 7, 0, 0, 16, 0x1000, 0x10, 0, 0, 0])
  // The input is left as it was.
  expect(imms(prog)[0]).toBe(0x1234)
})
