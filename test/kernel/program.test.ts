// BpfProgram: load, verifier errors, testRun, pin/fromPin/fromId, info, tail calls.
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, enableStats, ids, VerifierError } from '../../lib/index.js'
import { privateBpffs } from './helpers/scratch.js'
import { bpftool } from './helpers/bpftool.js'

const returns = (n: number) => [asm.mov64Imm(asm.R0, n), asm.exit()]

test('load and testRun a socket filter; info and bpftool agree', async (ctx) => {
  using p = await BpfProgram.load({ type: 'socket_filter', insns: returns(7), license: 'GPL', name: 'seven' })
  expect(p.type).toBe('socket_filter')
  const r = await p.testRun({ data: new Uint8Array(64), repeat: 100 })
  expect(r.retval).toBe(7)
  expect(r.duration).toBeGreaterThanOrEqual(0)
  const info = p.info()
  expect(info).toMatchObject({ name: 'seven', type: 'socket_filter', xlatedSize: 16, gplCompatible: true })
  expect(info.tag).toMatch(/^[0-9a-f]{16}$/)
  expect([...ids.programs()].some((i) => i.id === info.id && i.name === 'seven')).toBe(true)
  const shown = bpftool(ctx).json('prog', 'show', 'id', String(info.id))
  expect(shown).toMatchObject({ id: info.id, name: 'seven', type: 'socket_filter', tag: info.tag })
})

test('loadSync, raw bytes, and the verifier log on request', () => {
  using p = BpfProgram.loadSync({ type: 'socket_filter', bytes: asm.assemble(returns(1)), license: 'MIT', logLevel: 2 })
  expect(p.log).toMatch(/processed 2 insns/)
  expect(p.info().gplCompatible).toBe(false)
})

test('a verifier rejection is a VerifierError with the log', async () => {
  const bad = [asm.ldxW(asm.R0, asm.R2, 0), asm.exit()] // r2 is not initialised
  const err = await BpfProgram.load({ type: 'socket_filter', insns: bad, license: 'GPL' }).catch((e) => e)
  expect(err).toBeInstanceOf(VerifierError)
  expect(err.code).toBe('EACCES')
  expect(err.log.join('\n')).toMatch(/R2 !read_ok/)
  expect(err.message).toMatch(/verifier rejected the program[\s\S]*R2 !read_ok/)
})

test('bad options fail before any syscall', async () => {
  await expect(BpfProgram.load({ type: 'socket_filter', license: 'GPL' })).rejects.toThrow(/either insns or bytes/)
  await expect(BpfProgram.load({ type: 'sockit' as never, insns: returns(0) })).rejects.toThrow(/unknown program type 'sockit'/)
  await expect(BpfProgram.load({ type: 'socket_filter', insns: returns(0), colour: 1 } as never)).rejects.toThrow(/unknown option 'colour'/)
  await expect(BpfProgram.load({ type: 'socket_filter', bytes: new Uint8Array(7) })).rejects.toThrow(RangeError)
  using p = await BpfProgram.load({ type: 'socket_filter', insns: returns(0), license: 'GPL' })
  await expect(p.testRun({ data: new Uint8Array(64), repeat: -1 })).rejects.toThrow(RangeError)
  await expect(p.testRun({ date: 1 } as never)).rejects.toThrow(/unknown option 'date'/)
})

test('pin, fromPin, fromId, close', async () => {
  using fs = privateBpffs()
  const path = join(fs.path, 'prog')
  const p = await BpfProgram.load({ type: 'socket_filter', insns: returns(3), license: 'GPL', name: 'pinned' })
  p.pin(path)
  const id = p.id
  p.close()
  p.close()
  expect(() => p.fd).toThrow(/already closed/)
  using again = BpfProgram.fromPin(path)
  expect(again.info().name).toBe('pinned')
  expect((await again.testRun({ data: new Uint8Array(64) })).retval).toBe(3)
  using byId = BpfProgram.fromId(id)
  expect(byId.type).toBe('socket_filter')
  again.unpin()
  using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
  m.pin(path)
  expect(() => BpfProgram.fromPin(path)).toThrow(/is not a BPF program/)
  m.unpin()
})

test('tail calls through a prog_array', async () => {
  using callee = await BpfProgram.load({ type: 'socket_filter', insns: returns(42), license: 'GPL' })
  using jumps = BpfMap.create({ type: 'prog_array', key: 'u32', maxEntries: 4 })
  using caller = await BpfProgram.load({
    type: 'socket_filter', license: 'GPL',
    insns: [
      // tail_call(ctx, jumps, 0); falls through when the slot is empty
      asm.ldMapFd(asm.R2, jumps), asm.mov64Imm(asm.R3, 0), asm.call('tail_call'),
      asm.mov64Imm(asm.R0, 1), asm.exit(),
    ],
  })
  expect((await caller.testRun({ data: new Uint8Array(64) })).retval).toBe(1)
  jumps.set(0, callee)
  expect(jumps.get(0)).toBe(callee.id)
  expect((await caller.testRun({ data: new Uint8Array(64) })).retval).toBe(42)
  expect(caller.info().mapIds).toEqual([jumps.id])
})

test('data out and context', async () => {
  // xdp: write 0xab at the first packet byte, return XDP_PASS (2)
  using p = await BpfProgram.load({
    type: 'xdp', license: 'GPL',
    insns: [
      asm.ldxW(asm.R2, asm.R1, 0), asm.ldxW(asm.R3, asm.R1, 4),
      asm.mov64Reg(asm.R4, asm.R2), asm.add64Imm(asm.R4, 1),
      asm.jgtReg(asm.R4, asm.R3, 'out'),
      asm.stB(asm.R2, 0, 0xab),
      asm.label('out'),
      asm.mov64Imm(asm.R0, 2), asm.exit(),
    ],
  })
  const r = await p.testRun({ data: new Uint8Array(64), dataOutSize: 64 })
  expect(r.retval).toBe(2)
  expect(r.dataOut![0]).toBe(0xab)
  await expect(p.testRun({ data: new Uint8Array(64), dataOutSize: 8 })).rejects.toMatchObject({ code: 'ENOSPC' })
})

test('run time and count move while statistics are enabled', async () => {
  using p = await BpfProgram.load({ type: 'socket_filter', insns: returns(1), license: 'GPL' })
  {
    using _stats = enableStats()
    await p.testRun({ data: new Uint8Array(64), repeat: 5 })
  }
  expect(p.info().runCount).toBe(5n)
  expect(p.info().runTimeNs).toBeGreaterThan(0n)
  await p.testRun({ data: new Uint8Array(64), repeat: 5 }) // stats are off again: not counted
  expect(p.info().runCount).toBe(5n)
})
