import { describe, expect, test } from 'vitest'
import { BpfError, createBpfError, errnoName, NotSupportedError, PolicyError, VerifierError } from '../../lib/sys/errors.js'

describe('BpfError', () => {
  test('has Node\'s system-error shape plus the command', () => {
    const e = createBpfError('map_create', 1)
    expect(e).toBeInstanceOf(BpfError)
    expect(e).toBeInstanceOf(Error)
    expect(e).toMatchObject({ name: 'BpfError', code: 'EPERM', errno: -1, syscall: 'bpf', command: 'map_create' })
    expect(e.message).toBe('map_create: EPERM: no CAP_BPF (or CAP_SYS_ADMIN) and no token that covers this request; run as root or pass a token')
  })

  test('names Linux errnos Node lacks', () => {
    expect(errnoName(524)).toBe('ENOTSUPP')
    expect(errnoName(95)).toBe('EOPNOTSUPP')
    expect(errnoName(77)).toBe('EBADFD')
    expect(errnoName(2)).toBe('ENOENT')
    expect(errnoName(4000)).toBe('E4000')
  })

  test('detail and cause both appear', () => {
    const e = createBpfError('obj_get', 2, undefined, '/sys/fs/bpf/x')
    expect(e.message).toBe('obj_get: ENOENT (/sys/fs/bpf/x): no such pinned object')
  })
})

describe('VerifierError', () => {
  test('shows the last meaningful lines and counts the rest', () => {
    const log = ['0: R1=ctx() R10=fp0', '0: (95) exit', 'R0 !read_ok', 'processed 1 insns (limit 1000000) max_states_per_insn 0', ''].join('\n')
    const e = createBpfError('prog_load', 13, log)
    expect(e).toBeInstanceOf(VerifierError)
    expect((e as VerifierError).log).toHaveLength(4)
    expect(e.message).toBe('prog_load: EACCES: the verifier rejected the program\n  0: (95) exit\n  R0 !read_ok\n  (2 lines omitted)')
  })
})

test('PolicyError and NotSupportedError name what was refused', () => {
  const p = new PolicyError('token.maps', 'ringbuf', "token does not delegate map type 'ringbuf'")
  expect(p).toMatchObject({ name: 'PolicyError', rule: 'token.maps', requested: 'ringbuf', code: 'EPERM' })
  const n = new NotSupportedError('BPF token', '6.9')
  expect(n.message).toBe('BPF token is not supported by this kernel (needs Linux 6.9)')
  expect(n).toMatchObject({ feature: 'BPF token', minKernel: '6.9' })
})
