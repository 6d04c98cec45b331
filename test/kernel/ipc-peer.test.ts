// Peer credentials and pidfds of unix socket peers (SO_PEERCRED,
// SO_PEERPIDFD), and pidfd liveness: what the broker identifies tenants by.
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import * as features from '../../lib/features/index.js'
import { FdSocket, peerCredentials, peerPidfd, pidfdIsAlive } from '../../lib/ipc/index.js'
import * as bpfkit from '../../lib/index.js'
import { Fd, SyscallError, native } from '../../lib/sys/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { skipUnless } from './helpers/requires.js'

const self = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }

// The pid a pidfd refers to, from its fdinfo (-1 once the process is reaped).
function pidOf(pidfd: Fd): number {
  return Number(/^Pid:\s*(-?\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${pidfd.fd}`, 'utf8'))?.[1])
}

function isCloexec(fd: number): boolean {
  const flags = /^flags:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]
  return (parseInt(flags, 8) & 0o2000000) !== 0
}

let dir: string
let server: Server
let path: string
const accepted: ((s: Socket) => void)[] = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bpfkit-peer-'))
  path = join(dir, 'sock')
  server = createServer({ pauseOnConnect: true }, (s) => {
    const next = accepted.shift()
    if (next) next(s)
    else s.destroy()
  })
  await new Promise<void>((r) => server.listen(path, r))
})

afterAll(async () => {
  await new Promise((r) => server.close(r))
  rmSync(dir, { recursive: true, force: true })
})

// The next connection, taken over as the broker does (FdSocket.from in the 'connection' handler).
function nextConnection(): Promise<FdSocket> {
  return new Promise((resolve) => accepted.push((s) => resolve(FdSocket.from(s))))
}

describe('peer credentials', () => {
  test('the package exports them', () => {
    expect([bpfkit.peerCredentials, bpfkit.peerPidfd, bpfkit.pidfdIsAlive]).toEqual([peerCredentials, peerPidfd, pidfdIsAlive])
  })

  test('over a socketpair: our own pid, uid and gid, from both ends', () => {
    const [a, b] = FdSocket.pair()
    try {
      expect(peerCredentials(a)).toEqual(self)
      expect(peerCredentials(b)).toEqual(self)
    } finally {
      a.close()
      b.close()
    }
  })

  test('over a connection to a listening unix socket, on both sides', async () => {
    const conn = nextConnection()
    const client = connect(path)
    const mine = await new Promise<FdSocket>((resolve) => client.once('connect', () => resolve(FdSocket.from(client))))
    const theirs = await conn
    try {
      expect(peerCredentials(theirs)).toEqual(self)
      expect(peerCredentials(mine)).toEqual(self)
    } finally {
      mine.close()
      theirs.close()
    }
  })

  test('a TCP socket is a TypeError, not pid 0', async () => {
    const tcp = createServer((s) => s.destroy())
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
    try {
      const { port } = tcp.address() as { port: number }
      const client = connect(port, '127.0.0.1')
      const s = await new Promise<FdSocket>((resolve) => client.once('connect', () => resolve(FdSocket.from(client))))
      try {
        expect(() => peerCredentials(s)).toThrow(TypeError)
        expect(() => peerCredentials(s)).toThrow(/not a unix socket/)
        expect(() => peerPidfd(s)).toThrow(TypeError)
      } finally {
        s.close()
      }
    } finally {
      await new Promise((r) => tcp.close(r))
    }
  })

  test('a closed socket is EBADF; an fd that is no socket is ENOTSOCK; a non-FdSocket is a TypeError', () => {
    const [a, b] = FdSocket.pair()
    const n = a.fd
    a.close()
    b.close()
    expect(() => peerCredentials(a)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    expect(() => peerPidfd(a)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    // The native call on the number itself (now closed): a SyscallError naming getsockopt.
    try {
      native.unixPeerCred(n)
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(SyscallError)
      expect(e).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' })
    }
    using file = new Fd(openSync('/dev/null', 'r'), 'file')
    expect(() => native.unixPeerCred(file.fd)).toThrow(expect.objectContaining({ code: 'ENOTSOCK' }))
    expect(() => peerCredentials({ fd: 3 } as unknown as FdSocket)).toThrow(TypeError)
  })
})

describe('peer pidfds', () => {
  test('the feature is declared for 6.5', () => {
    expect(features.miscVersions.peerPidfd).toEqual({ version: '6.5' })
    expect(features.miscVersions.openat2).toEqual({ version: '5.6' })
  })

  test('a socketpair peer pidfd refers to this process, is O_CLOEXEC, and is alive', (ctx) => {
    skipUnless(ctx, features.havePeerPidfd)
    const before = fdTable()
    const [a, b] = FdSocket.pair()
    const pidfd = peerPidfd(a)
    try {
      expect(pidfd.kind).toBe('pidfd')
      expect(pidfd.fd).toBeGreaterThan(2)
      expect(isCloexec(pidfd.fd)).toBe(true)
      expect(pidOf(pidfd)).toBe(process.pid)
      expect(pidfdIsAlive(pidfd)).toBe(true)
    } finally {
      pidfd.close()
      a.close()
      b.close()
    }
    expect(opened(before, fdTable())).toEqual([])
  })

  test('the pidfd of a child that connected refers to the child; once it exits and is reaped it is not alive', async (ctx) => {
    skipUnless(ctx, features.havePeerPidfd)
    const conn = nextConnection()
    // The child connects, waits for one byte, then exits.
    const child = spawn(process.execPath, ['-e', `const s = require('node:net').connect(${JSON.stringify(path)}); s.once('data', () => process.exit(0))`], {
      stdio: 'ignore',
    })
    const exited = new Promise((r) => child.once('exit', r))
    const socket = await conn
    const pidfd = peerPidfd(socket)
    try {
      expect(peerCredentials(socket)).toEqual({ pid: child.pid, uid: self.uid, gid: self.gid })
      expect(pidOf(pidfd)).toBe(child.pid)
      expect(pidfdIsAlive(pidfd)).toBe(true)
      await socket.send(Buffer.from('x'))
      expect(await exited).toBe(0) // Node's 'exit' comes after waitpid: the child is reaped
      expect(pidfdIsAlive(pidfd)).toBe(false)
      expect(pidOf(pidfd)).toBe(-1)
      // The credentials stay what they were at connect(). A pidfd asked for
      // now is refused (before 6.15 or so) or, where pidfds of reaped tasks
      // exist (6.18 here), never alive: either way no live process answers.
      expect(peerCredentials(socket).pid).toBe(child.pid)
      let late: Fd | undefined
      try {
        late = peerPidfd(socket)
      } catch (e) {
        expect(e).toMatchObject({ syscall: 'getsockopt' })
        expect(['ESRCH', 'EINVAL']).toContain((e as SyscallError).code)
      }
      if (late !== undefined) {
        try {
          expect(pidfdIsAlive(late)).toBe(false)
        } finally {
          late.close()
        }
      }
    } finally {
      pidfd.close()
      socket.close()
    }
  })

  test('pidfdIsAlive: an fd that is not a pidfd is an error; a closed Fd is EBADF', () => {
    const file = new Fd(openSync('/dev/null', 'r'), 'file')
    try {
      expect(() => pidfdIsAlive(file)).toThrow(expect.objectContaining({ syscall: 'pidfd_send_signal' }))
    } finally {
      file.close()
    }
    expect(() => pidfdIsAlive(file)).toThrow(expect.objectContaining({ code: 'EBADF' }))
    expect(() => pidfdIsAlive(3 as unknown as Fd)).toThrow(TypeError)
  })
})
