// BpfProgram beyond the basics of program.test.ts: load options and their
// errors, the kernel's reasons for refusing, translated instructions read
// back and compared with bpftool, tokens, and pins.
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { asm, BpfError, BpfMap, BpfProgram, PolicyError, VerifierError, kernel, setDefaultToken } from '../../lib/index.js'
import { Fd, native } from '../../lib/sys/index.js'
import { privateBpffs } from './helpers/scratch.js'
import { skipUnless } from './helpers/requires.js'
import { bpftool } from './helpers/bpftool.js'
import * as features from '../../lib/features/index.js'

const { R0, R1, R2, R6, R7, R10 } = asm
const packet = new Uint8Array(64)
const ret = (v: number) => [asm.mov64Imm(R0, v), asm.exit()]

describe('load options', () => {
  test('numeric types, flags by name or number, the type and its name', async () => {
    using p = await BpfProgram.load({ type: kernel.progTypes.socket_filter, insns: ret(3), license: 'GPL', flags: ['strict_alignment'] })
    expect(p.type).toBe('socket_filter')
    expect(p.testRunSync({ data: packet }).retval).toBe(3)
    expect(String(p)).toMatch(/^BpfProgram\(socket_filter, fd \d+\)$/)
    // An unknown flag bit reaches the kernel, which refuses it.
    await expect(BpfProgram.load({ type: 'socket_filter', insns: ret(0), license: 'GPL', flags: 1 << 30 })).rejects.toMatchObject({ code: 'EINVAL' })
  })

  test('bad options are errors before any syscall', async () => {
    const base = { type: 'socket_filter' as const, insns: ret(0), license: 'GPL' }
    await expect(BpfProgram.load({ ...base, name: 'has space' })).rejects.toThrow(/name must be at most 15/)
    await expect(BpfProgram.load({ ...base, name: 'x'.repeat(16) })).rejects.toThrow(RangeError)
    await expect(BpfProgram.load({ ...base, flags: ['sleepy' as never] })).rejects.toThrow(/unknown program flag 'sleepy'/)
    await expect(BpfProgram.load({ ...base, expectedAttachType: 'nope' as never })).rejects.toThrow(/unknown attach type/)
    await expect(BpfProgram.load({ ...base, insns: [asm.ja('nowhere'), ...ret(0)] })).rejects.toThrow(/unknown label 'nowhere'/)
    await expect(BpfProgram.load({ ...base, bytes: new Uint8Array(8) })).rejects.toThrow(/either insns or bytes/)
  })

  test('expectedAttachType: cgroup_sock_addr programs need one', async () => {
    await expect(BpfProgram.load({ type: 'cgroup_sock_addr', insns: ret(1), license: 'GPL' })).rejects.toMatchObject({ code: 'EINVAL' })
    using p = await BpfProgram.load({ type: 'cgroup_sock_addr', insns: ret(1), license: 'GPL', expectedAttachType: 'cgroup_inet4_connect' })
    expect(p.type).toBe('cgroup_sock_addr')
  })

  test('testRun: cpu sets BPF_F_TEST_RUN_ON_CPU (which skb programs refuse); socket filters need data', async () => {
    using p = await BpfProgram.load({ type: 'socket_filter', insns: ret(0), license: 'GPL' })
    await expect(p.testRun({ data: packet, cpu: 0 })).rejects.toMatchObject({ code: 'EINVAL' })
    await expect(p.testRun({})).rejects.toMatchObject({ code: 'EINVAL' })
    expect(p.testRunSync({ data: packet, cpu: undefined }).retval).toBe(0)
  })
})

describe('the kernel\'s reasons', () => {
  test('an out-of-bounds stack read names the register', async () => {
    const err = await BpfProgram.load({ type: 'socket_filter', insns: [asm.ldxDW(R0, R10, 8), asm.exit()], license: 'GPL' }).catch((e) => e)
    expect(err).toBeInstanceOf(VerifierError)
    expect(err.message).toMatch(/invalid (read from )?stack|R10/)
  })

  test('GPL-only helpers without a GPL license', async () => {
    const insns = [asm.mov64Imm(R1, 0), asm.mov64Imm(R2, 0), asm.call('trace_printk'), ...ret(0)]
    const err = await BpfProgram.load({ type: 'socket_filter', insns, license: 'MIT' }).catch((e) => e)
    expect(err).toBeInstanceOf(BpfError)
    expect(err.message).toMatch(/GPL/)
  })

  test('an unknown helper id and an unwritten register', async () => {
    const unknown = await BpfProgram.load({ type: 'socket_filter', insns: [asm.call(99999), ...ret(0)], license: 'GPL' }).catch((e) => e)
    expect(unknown.message).toMatch(/invalid func unknown#99999/)
    const unset = await BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Reg(R0, R7), asm.exit()], license: 'GPL' }).catch((e) => e)
    expect(unset.message).toMatch(/R7 !read_ok/)
  })
})

describe('what the kernel made of it', () => {
  test('info: sizes, load time, map ids', async () => {
    using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 1 })
    using p = await BpfProgram.load({ type: 'socket_filter', insns: [asm.ldMapFd(R1, m), ...ret(0)], license: 'GPL', name: 'with_map' })
    const i = p.info()
    expect(i).toMatchObject({ name: 'with_map', mapIds: [m.id], xlatedSize: 4 * 8 })
    expect(i.jitedSize).toBeGreaterThan(0)
    expect(i.loadTime).toBeGreaterThan(0n)
  })

  test('xlated(): the translated instructions read like bpftool prog dump xlated', async (ctx) => {
    using m = BpfMap.create({ type: 'array', key: 'u32', value: 'u32', maxEntries: 1 })
    const insns = [
      asm.mov64Reg(R6, R1), asm.ldMapFd(R2, m), asm.ldxW(R0, R6, 0),
      asm.jgtImm(R0, 100, 'big'), asm.add64Imm(R0, 1), asm.label('big'), asm.exit(),
    ]
    using p = await BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL' })
    const xlated = p.xlated()
    expect(xlated).toHaveLength(6)
    const ours = asm.toString(xlated, { maps: 'id' }).split('\n').map((l) => l.trim())
    expect(ours[1]).toBe(`1: r2 = map[id:${m.id}]`)
    // bpftool also prints the opcode: "0: (bf) r6 = r1".
    const theirs = bpftool(ctx).text('prog', 'dump', 'xlated', 'id', String(p.id))
      .split('\n').map((l) => l.trim()).filter((l) => /^\d+:/.test(l)).map((l) => l.replace(/^(\d+): \([0-9a-f]{2}\) /, '$1: '))
    expect(ours).toEqual(theirs)
  })
})

describe('opening', () => {
  test('fromId of a missing program, and a closed program', async () => {
    expect(() => BpfProgram.fromId(0x7ffffff0)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    const p = await BpfProgram.load({ type: 'socket_filter', insns: ret(0), license: 'GPL' })
    p.close()
    await expect(p.testRun({ data: packet })).rejects.toThrow(/already closed/)
    expect(String(p)).toBe('BpfProgram(socket_filter, closed)')
  })

  test('fromFd refuses an fd that is not a program, and closes it', () => {
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    const dup = new Fd(native.dupFd(m.fd), 'map')
    expect(() => BpfProgram.fromFd(dup)).toThrow(/is not a BPF program/)
    expect(dup.closed).toBe(true)
  })

  test('pinning twice is EEXIST; a pinned program outlives its fds', async () => {
    using fs = privateBpffs()
    const path = join(fs.path, 'kept')
    const p = await BpfProgram.load({ type: 'socket_filter', insns: ret(5), license: 'GPL' })
    const id = p.id
    p.pin(path)
    expect(() => p.pin(path)).toThrow(expect.objectContaining({ code: 'EEXIST' }))
    p.close()
    using back = BpfProgram.fromPin(path)
    expect(back.id).toBe(id)
    expect(back.pinnedAt).toBe(path)
    expect(back.testRunSync({ data: packet }).retval).toBe(5)
    back.unpin()
    expect(() => BpfProgram.fromPin(path)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })
})

describe('tokens', () => {
  const insns = ret(0)

  test('a token vets the request first: prog_load, the type, and attach type 0 when none is expected', async () => {
    const seen: unknown[] = []
    const refusing = {
      get fd(): number { throw new Error('the fd of a refusing token is never read') },
      check(req: unknown) {
        seen.push(req)
        throw new PolicyError('progs', "prog type 'socket_filter'", "token does not delegate program type 'socket_filter'")
      },
    }
    await expect(BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL', token: refusing })).rejects.toBeInstanceOf(PolicyError)
    expect(() => BpfProgram.loadSync({ type: 'cgroup_sock_addr', expectedAttachType: 'cgroup_inet4_connect', insns, token: refusing })).toThrow(PolicyError)
    expect(seen).toEqual([
      { cmd: 'prog_load', progType: 1, attachType: 0 },
      { cmd: 'prog_load', progType: kernel.progTypes.cgroup_sock_addr, attachType: kernel.attachTypes.cgroup_inet4_connect },
    ])
  })

  test('the token fd reaches the kernel, which refuses an fd that is no token', async (ctx) => {
    // A kernel without tokens refuses the token field itself (E2BIG: bytes past its attr).
    skipUnless(ctx, features.haveBpfToken)
    using notAToken = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    await expect(BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL', token: notAToken })).rejects.toMatchObject({ command: 'prog_load', code: 'EINVAL' })
  })

  test('the process default token applies unless a load passes token: null', async () => {
    const refusing = { fd: 1000, check() { throw new PolicyError('cmds', 'prog_load', 'token does not delegate prog_load') } }
    setDefaultToken(refusing)
    try {
      await expect(BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL' })).rejects.toThrow(/does not delegate prog_load/)
      using p = await BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL', token: null })
      expect(p.type).toBe('socket_filter')
    } finally {
      setDefaultToken(undefined)
    }
  })
})
