// ProgramSpec: load options checked once into plain, frozen data. Map
// references stay references until load. No syscall is made here.
import { expect, test } from 'vitest'
import { ProgramSpec, asm, kernel } from '../../lib/index.js'
import { encode } from '../../lib/asm/assemble.js'

const exit0 = [asm.mov64Imm(asm.R0, 0), asm.exit()]

test('a spec resolves labels, copies and freezes the instructions', () => {
  const items = [asm.jeqImm(asm.R1, 0, 'out'), asm.mov64Imm(asm.R0, 1), asm.label('out'), ...exit0]
  const spec = ProgramSpec.from({ type: 'socket_filter', insns: items, license: 'GPL', name: 'spec_p', flags: ['sleepable'], expectedAttachType: 'cgroup_inet_ingress' })
  expect(spec).toMatchObject({ type: 'socket_filter', license: 'GPL', name: 'spec_p', flags: kernel.progLoadFlags.BPF_F_SLEEPABLE, expectedAttachType: 'cgroup_inet_ingress' })
  expect(spec.typeId).toBe(kernel.progTypes.socket_filter)
  expect(spec.expectedAttachTypeId).toBe(kernel.attachTypes.cgroup_inet_ingress)
  expect(spec.insns).toHaveLength(4)
  expect(spec.insns![0]).toMatchObject({ off: 1, target: undefined })
  expect(Object.isFrozen(spec)).toBe(true)
  expect(Object.isFrozen(spec.insns)).toBe(true)
  expect(Object.isFrozen(spec.insns![0])).toBe(true)
  ;(items[1] as { imm: number }).imm = 7
  expect(spec.insns![1].imm).toBe(1)
  expect(ProgramSpec.from(spec)).toBe(spec)
  expect(ProgramSpec.from({ ...spec, name: 'other' })).toMatchObject({ name: 'other', insns: spec.insns })
})

test('map references are read at load, not when the spec is made', () => {
  let reads = 0
  const map = { get fd() { reads++; return 42 } }
  const spec = ProgramSpec.from({ type: 'socket_filter', insns: [asm.ldMapFd(asm.R1, map), ...exit0] })
  expect(reads).toBe(0)
  expect(spec.insns![0].map).toBe(map)
  const bytes = encode(spec.insns!)
  expect(reads).toBe(1)
  expect(new DataView(bytes.buffer).getInt32(4, true)).toBe(42)
})

test('raw bytes are copied and must be whole instructions', () => {
  const bytes = asm.assemble(exit0)
  const spec = ProgramSpec.from({ type: 'xdp', bytes })
  bytes[0] = 0
  expect(spec.bytes![0]).not.toBe(0)
  expect(spec.insns).toBeUndefined()
  expect(() => ProgramSpec.from({ type: 'xdp', bytes: new Uint8Array(12) })).toThrow(/a multiple of 8/)
})

test('bad options and bad instructions are named', () => {
  expect(() => ProgramSpec.from(null as never)).toThrow(/options must be an object/)
  expect(() => ProgramSpec.from({ type: 'xdp' })).toThrow(/give either insns or bytes/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: exit0, bogus: 1 } as never)).toThrow(/unknown option 'bogus'/)
  expect(() => ProgramSpec.from({ type: 'nope' as never, insns: exit0 })).toThrow(/unknown program type 'nope'/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: [null] as never })).toThrow(/instruction 0: not an instruction or label: null/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: [exit0[0], { code: 0x95 }] as never })).toThrow(/instruction 1: dst must be an integer in 0..15, got undefined/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: [{ ...exit0[0], imm: 2 ** 33 }, exit0[1]] })).toThrow(/instruction 0: imm must be an integer/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: [asm.ja('nowhere'), ...exit0] })).toThrow(/jump to unknown label 'nowhere'/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: exit0, logSize: -1 })).toThrow(/logSize must be an integer/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: exit0, license: 1 as never })).toThrow(/license must be a string/)
  expect(() => ProgramSpec.from({ type: 'xdp', insns: exit0, flags: ['sleepy' as never] })).toThrow(/unknown program flag 'sleepy'/)
})
