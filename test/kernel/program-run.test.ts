// Programs written with asm, run by the kernel with BPF_PROG_TEST_RUN: maps
// shared with user space, tail calls, bpf-to-bpf calls, callbacks, legacy
// packet loads, and the test-run inputs and outputs.
import { describe, expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram } from '../../lib/index.js'
import * as features from '../../lib/features/index.js'
import { skipUnless } from './helpers/requires.js'

const { R0, R1, R2, R3, R6, R7, R10 } = asm
const packet = new Uint8Array(64).map((_, i) => i + 1)
const GPL = 'GPL'

describe('maps shared with user space (seed 003)', () => {
  test('user space fills a map, the program reads and updates it, user space reads the result', async (ctx) => {
    // The program returns the old value with an atomic fetch-add.
    skipUnless(ctx, features.haveAtomics)
    using counts = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 8, name: 'counts' })
    counts.set(7, 41n)
    const insns = [
      // key = 7 on the stack
      asm.stW(R10, -4, 7),
      asm.mov64Reg(R2, R10),
      asm.add64Imm(R2, -4),
      asm.ldMapFd(R1, counts),
      asm.call('map_lookup_elem'),
      asm.jeqImm(R0, 0, 'missing'),
      // *value += 1, atomically; return the old value
      asm.mov64Imm(R1, 1),
      asm.atomic('add', 64, R0, R1, 0, { fetch: true }),
      asm.mov64Reg(R0, R1),
      asm.exit(),
      asm.label('missing'),
      asm.mov64Imm(R0, 0xffff),
      asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL, name: 'seed003' })
    expect((await p.testRun({ data: packet })).retval).toBe(41)
    expect(counts.get(7)).toBe(42n)
    await p.testRun({ data: packet, repeat: 8 })
    expect(counts.get(7)).toBe(50n)
    counts.delete(7)
    expect((await p.testRun({ data: packet })).retval).toBe(0xffff)
    expect(p.info().mapIds).toEqual([counts.id])
  })

  test('ldMapValue points straight into an array value (global data)', async () => {
    using data = BpfMap.create({ type: 'array', key: 'u32', value: { array: 'u32', length: 4 }, maxEntries: 1 })
    data.set(0, [10, 20, 30, 40])
    const insns = [
      asm.ldMapValue(R1, data, 8), // &value[2]
      asm.ldxW(R0, R1, 0),
      asm.stW(R1, 4, 99), // value[3] = 99
      asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL })
    expect(p.testRunSync({ data: packet }).retval).toBe(30)
    expect(data.get(0)).toEqual([10, 20, 30, 99])
  })

  test('a program keeps its maps alive after user space closes them', async () => {
    const m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 1 })
    m.set(0, 123)
    const insns = [asm.ldMapValue(R1, m), asm.ldxW(R0, R1, 0), asm.exit()]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL })
    m.close()
    expect(p.testRunSync({ data: packet }).retval).toBe(123)
    // The instructions read the map's fd at load, so a closed map cannot be used again.
    await expect(BpfProgram.load({ type: 'socket_filter', insns, license: GPL })).rejects.toThrow(/instruction 0: the map's fd cannot be read: .*already closed/)
  })
})

describe('calls', () => {
  test('bpf-to-bpf calls to a labelled subprogram', async () => {
    const insns = [
      asm.mov64Imm(R1, 20),
      asm.callLocal('double'),
      asm.add64Imm(R0, 2),
      asm.exit(),
      asm.label('double'),
      asm.mov64Reg(R0, R1),
      asm.lsh64Imm(R0, 1),
      asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL })
    expect(p.testRunSync({ data: packet }).retval).toBe(42)
  })
})

describe('packet access and test-run inputs', () => {
  // A test run hands skb programs the packet with its 14-byte Ethernet
  // header already pulled, as the stack would: offsets count from byte 14.
  test('legacy ld_abs / ld_ind read the packet in network byte order', async () => {
    const insns = [
      asm.mov64Reg(R6, R1), // ld_abs and ld_ind take the skb from r6
      asm.ldAbs('h', 2), // packet[16], packet[17] = 17, 18 -> 0x1112
      asm.mov64Reg(R7, R0),
      asm.mov64Imm(R2, 4),
      asm.ldInd('b', R2, 1), // packet[14 + 5] = 20 -> 0x14
      asm.lsh64Imm(R7, 8),
      asm.or64Reg(R0, R7),
      asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL })
    expect(p.testRunSync({ data: packet }).retval).toBe(0x111214)
  })

  test('ctx in, ctx and data out', async () => {
    // struct __sk_buff: len at 0; cb[0..4] at 48, which socket filters may write.
    const insns = [
      asm.ldxW(R0, R1, 0), // skb->len, without the Ethernet header
      // Through a register: kernels before 6.3 refuse BPF_ST (immediate) stores into ctx.
      asm.mov64Imm(R2, 0x1234),
      asm.stxW(R1, R2, 48), // skb->cb[0]
      asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: GPL })
    const ctx = new Uint8Array(192) // sizeof(struct __sk_buff)
    const r = await p.testRun({ data: packet, ctx, dataOutSize: 128, ctxOutSize: 192, repeat: 3 })
    expect(r.retval).toBe(64 - 14)
    expect(r.duration).toBeGreaterThanOrEqual(0)
    // The packet comes back whole; the kernel rebuilds the Ethernet header it pulled.
    expect(r.dataOut?.length).toBe(64)
    expect(r.dataOut!.subarray(14)).toEqual(Buffer.from(packet.subarray(14)))
    // The kernel returns its own sizeof(struct __sk_buff): 192 now, 184 before
    // the hardware timestamp fields (5.10), never more than was passed.
    expect(r.ctxOut!.length).toBeGreaterThanOrEqual(184)
    expect(r.ctxOut!.length).toBeLessThanOrEqual(192)
    expect(Buffer.from(r.ctxOut!).readUInt32LE(48)).toBe(0x1234)
  })

  test('testRun errors: small output, bad options, closed program', async () => {
    using p = await BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(R0, 0), asm.exit()], license: GPL })
    await expect(p.testRun({ data: packet, dataOutSize: 8 })).rejects.toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/needs 64 data bytes/) })
    await expect(p.testRun({ data: packet, repet: 2 } as never)).rejects.toThrow(/unknown option 'repet'/)
    await expect(p.testRun({ data: [1, 2] as never })).rejects.toThrow(TypeError)
    expect(() => p.testRunSync({ data: packet, repeat: -1 })).toThrow(RangeError)
    // socket filters need data
    await expect(p.testRun({})).rejects.toMatchObject({ code: 'EINVAL' })
  })

  test('cpu sets BPF_F_TEST_RUN_ON_CPU, which skb programs refuse', async () => {
    using p = await BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(R0, 0), asm.exit()], license: GPL })
    await expect(p.testRun({ data: packet, cpu: 0 })).rejects.toMatchObject({ code: 'EINVAL' })
  })

  test('xdp: the program writes the packet, dataOut returns it', async () => {
    using p = await BpfProgram.load({
      type: 'xdp', license: GPL,
      insns: [
        asm.ldxW(R2, R1, 0), asm.ldxW(R3, R1, 4), // data, data_end
        asm.mov64Reg(R6, R2), asm.add64Imm(R6, 1),
        asm.jgtReg(R6, R3, 'out'),
        asm.stB(R2, 0, 0xab),
        asm.label('out'),
        asm.mov64Imm(R0, 2), // XDP_PASS
        asm.exit(),
      ],
    })
    const r = await p.testRun({ data: new Uint8Array(64), dataOutSize: 64 })
    expect(r.retval).toBe(2)
    expect(r.dataOut![0]).toBe(0xab)
    expect(r.dataOut!.subarray(1)).toEqual(Buffer.alloc(63))
  })
})
