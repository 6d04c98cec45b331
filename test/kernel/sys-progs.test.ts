// PROG_LOAD and PROG_TEST_RUN through the native layer.
import { describe, expect, test } from 'vitest'
import { BpfError, Fd, kernel, native, VerifierError } from '../../lib/sys/index.js'
import { exit, mov64Imm, program, returnImm } from './helpers/raw.js'

const { progTypes } = kernel
const packet = new Uint8Array(64).fill(0xab)

describe('prog_load', () => {
  test('async and sync forms load a socket filter', async () => {
    const r = await native.progLoad({ progType: progTypes.socket_filter, insns: returnImm(0), license: 'GPL', name: 'sys_async' })
    using fd = new Fd(r.fd, 'prog')
    expect(r.log).toBe('')
    const s = native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(1), license: 'GPL' })
    using fd2 = new Fd(s.fd, 'prog')
    expect(fd2.fd).not.toBe(fd.fd)
  })

  test('log level 2 returns the verifier log, growing a tiny buffer', async () => {
    // 128 bytes cannot hold the log: the native layer grows it from log_true_size.
    const r = await native.progLoad({ progType: progTypes.socket_filter, insns: returnImm(0), license: 'GPL', logLevel: 2, logSize: 128 })
    using _fd = new Fd(r.fd, 'prog')
    expect(r.log.length).toBeGreaterThan(128)
    expect(r.log).toMatch(/processed \d+ insns/)
  })

  test('a rejected program is a VerifierError with the log, even at log level 0', async () => {
    // exit without setting r0
    const err = await native.progLoad({ progType: progTypes.socket_filter, insns: program(exit()), license: 'GPL' }).catch((e) => e)
    expect(err).toBeInstanceOf(VerifierError)
    expect(err).toMatchObject({ code: 'EACCES', command: 'prog_load' })
    expect((err as VerifierError).log.join('\n')).toMatch(/R0 !read_ok/)
    expect((err as Error).message).toMatch(/R0 !read_ok/)
    expect(() => native.progLoadSync({ progType: progTypes.socket_filter, insns: program(exit()), license: 'GPL' })).toThrow(VerifierError)
  })

  test('bad inputs fail before the syscall', async () => {
    expect(() => native.progLoadSync({ progType: progTypes.socket_filter, insns: new Uint8Array(12), license: 'GPL' })).toThrow(/multiple of 8/)
    expect(() => native.progLoadSync({ progType: progTypes.socket_filter, insns: new Uint8Array(0), license: 'GPL' })).toThrow(RangeError)
    expect(() => native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(0), logLevel: 1, logSize: 64 })).toThrow(/logSize/)
    expect(() => native.progLoadSync({ progType: progTypes.socket_filter, insns: 'nope' as unknown as Uint8Array })).toThrow(TypeError)
    expect(() => native.progLoad({ progType: progTypes.socket_filter, insns: returnImm(0), name: 'n'.repeat(20) })).toThrow(RangeError)
  })

  test('a GPL-only helper without a GPL license is refused with the reason', async () => {
    // bpf_ktime_get_ns is fine, but socket_filter with a non-GPL license calling
    // a gpl_only helper (trace_printk) is rejected
    const insns = program(mov64Imm(1, 0), mov64Imm(2, 0), new Uint8Array([0x85, 0, 0, 0, kernel.helpers.trace_printk, 0, 0, 0]), mov64Imm(0, 0), exit())
    const err = await native.progLoad({ progType: progTypes.socket_filter, insns, license: 'Proprietary' }).catch((e) => e)
    expect(err).toBeInstanceOf(BpfError)
    expect((err as Error).message).toMatch(/gpl|GPL|invalid/)
  })
})

describe('prog_test_run', () => {
  test('async and sync return retval, duration and output', async () => {
    const r = native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(42), license: 'GPL' })
    using fd = new Fd(r.fd, 'prog')
    const out = await native.progTestRun(fd.fd, { data: packet, repeat: 100, dataOutSize: 64 })
    expect(out.retval).toBe(42)
    expect(out.duration).toBeGreaterThanOrEqual(0)
    expect(out.dataOut?.length).toBe(64)
    const sync = native.progTestRunSync(fd.fd, { data: packet })
    expect(sync.retval).toBe(42)
    expect(sync.dataOut).toBeUndefined()
  })

  test('a too-small output buffer is ENOSPC naming the size needed', async () => {
    const r = native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(0), license: 'GPL' })
    using fd = new Fd(r.fd, 'prog')
    const err = await native.progTestRun(fd.fd, { data: packet, dataOutSize: 8 }).catch((e) => e)
    expect(err).toMatchObject({ code: 'ENOSPC', command: 'prog_test_run' })
    expect((err as Error).message).toMatch(/needs 64 data bytes/)
  })

  test('a closed or wrong fd is an error, not a crash', async () => {
    const r = native.progLoadSync({ progType: progTypes.socket_filter, insns: returnImm(0), license: 'GPL' })
    const fd = new Fd(r.fd, 'prog')
    const n = fd.fd
    fd.close()
    // The native call takes a dup of the fd before it starts, so a closed fd may fail at once (thrown) or in the worker (rejected).
    await expect((async () => native.progTestRun(n, { data: packet }))()).rejects.toMatchObject({ code: 'EBADF' })
    expect(() => native.progTestRunSync(-5, {})).toThrow(RangeError)
  })
})
