import { describe, expect, test } from 'vitest'
import { BpfError, createBpfError, createNativeError, createSyscallError, errnoName, NotSupportedError, PolicyError, SyscallError, VerifierError } from '../../lib/sys/errors.js'

describe('BpfError', () => {
  test('has Node\'s system-error shape plus the command', () => {
    const e = createBpfError('map_create', 1)
    expect(e).toBeInstanceOf(BpfError)
    expect(e).toBeInstanceOf(Error)
    expect(e).toMatchObject({ name: 'BpfError', code: 'EPERM', errno: -1, syscall: 'bpf', command: 'map_create' })
    expect(e.message).toBe('map_create: EPERM: no CAP_BPF (or CAP_SYS_ADMIN) and no token that covers this request (run as root or pass a token), or a BPF LSM such as the guard refused it')
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

describe('SyscallError', () => {
  test('is the base of BpfError, in Node\'s system-error shape', () => {
    const s = new SyscallError('sendmsg', 32)
    expect(s).toBeInstanceOf(Error)
    expect(s).toMatchObject({ name: 'SyscallError', code: 'EPIPE', errno: -32, syscall: 'sendmsg', message: 'sendmsg: EPIPE' })
    expect(s).not.toHaveProperty('command')
    const b = new BpfError('map_create', 1)
    expect(b).toBeInstanceOf(SyscallError)
    expect(b).toMatchObject({ name: 'BpfError', code: 'EPERM', errno: -1, syscall: 'bpf', command: 'map_create' })
    // A negative errno is taken as Node spells it.
    expect(new SyscallError('mmap', -12)).toMatchObject({ code: 'ENOMEM', errno: -12 })
  })

  test('the native factory makes a BpfError for bpf() and a SyscallError naming any other call', () => {
    const bpf = createNativeError('map_create', 1)
    expect(bpf).toBeInstanceOf(BpfError)
    expect(bpf).toMatchObject({ syscall: 'bpf', command: 'map_create' })
    const other = createNativeError('fsopen', 19, undefined, 'nosuchfs', 'fsopen')
    expect(other).not.toBeInstanceOf(BpfError)
    expect(other).toMatchObject({ name: 'SyscallError', syscall: 'fsopen', code: 'ENODEV', message: 'fsopen: ENODEV (nosuchfs): no filesystem of that type' })
  })

  test('causes are the call\'s own, never bpf() guesses', () => {
    // Before: these went through the bpf() table: "kernel too old?", "run as root".
    for (const syscall of ['munmap', 'fspick', 'fsmount', 'fsconfig']) {
      expect(createSyscallError(syscall, 22).message).not.toMatch(/kernel too old/)
    }
    expect(createSyscallError('munmap', 22).message).toBe('munmap: EINVAL: not a mapping made by mapMmap')
    expect(createSyscallError('poll', 1, 'uv_poll_init').message).toBe('poll: EPERM (uv_poll_init): this kind of file cannot be waited on (epoll refuses regular files and /dev/null)')
    expect(createSyscallError('fsopen', 38).message).toBe('fsopen: ENOSYS: the kernel has no fsopen() (the mount API is Linux 5.2+)')
    expect(createSyscallError('sendmsg', 32).message).toBe('sendmsg: EPIPE: the peer closed the socket')
  })

  test('a cause established by native code replaces the guess', () => {
    const e = createNativeError('map_lookup_elem', 22, undefined, undefined, 'bpf', 'the fd is not a BPF map')
    expect(e.message).toBe('map_lookup_elem: EINVAL: the fd is not a BPF map')
    expect(createSyscallError('obj', 1, 'x', 'because').message).toBe('obj: EPERM (x): because')
  })

  test('NotSupportedError and errno 95 use one name', () => {
    // Before: NotSupportedError.code was 'ENOTSUP' while errno 95 read as 'EOPNOTSUPP'.
    expect(new NotSupportedError('x', '5.8').code).toBe('EOPNOTSUPP')
    expect(new NotSupportedError('x', '5.8').code).toBe(errnoName(95))
    expect(new BpfError('token_create', 95).code).toBe('EOPNOTSUPP')
  })
})
