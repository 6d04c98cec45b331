// Errors name the call that failed and the real cause (issue 11 "errors that
// name the wrong cause", issue 10 SyscallError): calls other than bpf() are
// SyscallErrors naming their own syscall, never a BpfError with syscall
// 'bpf'; no "kernel too old?" or "run as root" guesses where native code can
// tell what is really wrong.
import { mkdirSync, mkdtempSync, openSync, closeSync, rmdirSync, writeFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfError, BpfMap, BpfProgram, FdSocket, SyscallError } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'
import { privateBpffs } from './helpers/scratch.js'

function thrown(f: () => unknown): SyscallError {
  try {
    f()
  } catch (e) {
    return e as SyscallError
  }
  throw new Error('expected a throw')
}

// A SyscallError for `syscall`, not a BpfError, without the guesses meant for bpf().
function expectSyscallError(e: SyscallError, syscall: string, code: string, message: RegExp): void {
  expect(e).toBeInstanceOf(SyscallError)
  expect(e).not.toBeInstanceOf(BpfError)
  expect(e).toMatchObject({ name: 'SyscallError', syscall, code })
  expect(e.errno).toBeLessThan(0)
  expect(e.message).toMatch(message)
  expect(e.message).not.toMatch(/kernel too old|CAP_BPF|run as root/)
}

let devNull: number
beforeAll(() => {
  devNull = openSync('/dev/null', 'r')
})
afterAll(() => closeSync(devNull))

describe('calls other than bpf() are SyscallErrors naming their own syscall', () => {
  test('sendmsg and recvmsg', async () => {
    const [a, b] = FdSocket.pair()
    b.close()
    const sent = await a.send(Buffer.from('x')).catch((e) => e)
    a.close()
    expectSyscallError(sent, 'sendmsg', 'EPIPE', /^sendmsg: EPIPE: sending on an fd socket: the peer closed the socket$/)
    expectSyscallError(thrown(() => native.recvWithFds(devNull, new Uint8Array(4), 0)), 'recvmsg', 'ENOTSOCK', /^recvmsg: ENOTSOCK: not a socket$/)
  })

  test('poll: a file epoll refuses is not a privilege problem', () => {
    // Before: "uv_poll_init: EPERM: no CAP_BPF ... run as root".
    expectSyscallError(thrown(() => native.fdWait(devNull, false, () => {})), 'poll', 'EPERM', /^poll: EPERM \(uv_poll_init\): this kind of file cannot be waited on/)
  })

  test('fsopen, fspick, fsconfig, fsmount', () => {
    expectSyscallError(thrown(() => native.fsopen('nosuchfs')), 'fsopen', 'ENODEV', /^fsopen: ENODEV \(nosuchfs\): no filesystem of that type$/)
    expectSyscallError(thrown(() => native.fspick(undefined, '/nonexistent-bpfkit')), 'fspick', 'ENOENT', /^fspick: ENOENT \(\/nonexistent-bpfkit\): no such file or directory$/)
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-fspick-'))
    try {
      // Before: "invalid attributes for this kernel ... (kernel too old?)".
      expectSyscallError(thrown(() => native.fspick(undefined, dir)), 'fspick', 'EINVAL', /the path is not the root of a mount/)
    } finally {
      rmdirSync(dir)
    }
    const context = native.fsopen('bpf')
    try {
      // 'mode' and not a delegate_* option: before 6.9 bpffs ignores options it does not know.
      expectSyscallError(thrown(() => native.fsconfigString(context, 'mode', 'nosuchmode')), 'fsconfig', 'EINVAL', /^fsconfig: EINVAL \(mode=nosuchmode\): the filesystem does not accept this option or value/)
      expectSyscallError(thrown(() => native.fsmount(context, 0)), 'fsmount', 'EINVAL', /the context has no superblock yet \(fsconfig create first\)/)
    } finally {
      native.closeFd(context)
    }
  })

  test('close', () => {
    const [x, y] = native.unixSocketpair()
    native.closeFd(x)
    native.closeFd(y)
    expectSyscallError(thrown(() => native.closeFd(x)), 'close', 'EBADF', /^close: EBADF: the file descriptor is not open/)
  })
})

describe('pins and maps name the real cause', () => {
  test('a pin outside a bpffs says so, as root too', () => {
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-nopin-'))
    try {
      // Before: "obj_pin: EPERM: no CAP_BPF ... run as root or pass a token".
      const e = thrown(() => m.pin(join(dir, 'm')))
      expect(e).toBeInstanceOf(BpfError)
      expect(e).toMatchObject({ code: 'EPERM', syscall: 'bpf', command: 'obj_pin' })
      expect(e.message).toBe(`obj_pin: EPERM (${dir}/m): ${dir} is not in a bpffs; pins live in a mounted bpffs (mount -t bpf bpf /sys/fs/bpf)`)
      writeFileSync(join(dir, 'file'), 'x')
      // Before: "obj_get: EACCES: permission denied by the kernel or an LSM".
      const got = thrown(() => BpfMap.fromPin(join(dir, 'file')))
      expect(got).toMatchObject({ code: 'EACCES', command: 'obj_get' })
      expect(got.message).toMatch(/is not in a bpffs, so it is not a pinned object/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a missing directory is not a missing pin', () => {
    using fs = privateBpffs()
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    // Before: "no such pinned object" for both.
    const pin = thrown(() => m.pin(join(fs.path, 'nodir', 'm')))
    expect(pin).toMatchObject({ code: 'ENOENT', command: 'obj_pin' })
    expect(pin.message).toMatch(new RegExp(`: no such directory: ${fs.path}/nodir$`))
    const get = thrown(() => BpfMap.fromPin(join(fs.path, 'nodir', 'm')))
    expect(get.message).toMatch(new RegExp(`: no such directory: ${fs.path}/nodir$`))
    // A missing pin in a directory that exists is still just that.
    mkdirSync(join(fs.path, 'dir'))
    expect(thrown(() => BpfMap.fromPin(join(fs.path, 'dir', 'm'))).message).toMatch(/: no such pinned object$/)
    // And a directory is not an object.
    expect(thrown(() => BpfMap.fromPin(join(fs.path, 'dir'))).message).toMatch(/ is a directory, not a pinned object$/)
  })

  test('a map operation on an fd that is no BPF object says so', () => {
    // Before: "EINVAL (fd is not a BPF map): flags or arguments this map type does not accept".
    const e = thrown(() => native.mapLookupElem(devNull, new Uint8Array(4), new Uint8Array(4)))
    expect(e).toMatchObject({ code: 'EINVAL', command: 'map_lookup_elem' })
    expect(e.message).toBe('map_lookup_elem: EINVAL: the fd is not a BPF map')
  })

  test('a map operation on a program fd says it is a program, not absurd key sizes', () => {
    // Before: "RangeError: key needs 833221721 bytes": the program's info read as a map's.
    using prog = BpfProgram.loadSync({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })
    for (const call of [
      () => native.mapLookupElem(prog.fd, new Uint8Array(4), new Uint8Array(8)),
      () => native.mapDeleteElem(prog.fd, new Uint8Array(4)),
    ]) {
      const e = thrown(call)
      expect(e).toBeInstanceOf(BpfError)
      expect(e).toMatchObject({ code: 'EINVAL' })
      expect(e.message).toMatch(/: EINVAL: the fd is not a BPF map \(it is bpf-prog\)$/)
    }
  })
})
