// Owned fds: close once, `using`, dup, release, and the finalizer fallback.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { expect, test } from 'vitest'
import { Fd, kernel, native } from '../../lib/sys/index.js'

const newMapFd = () => native.mapCreate({ mapType: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 1 })

test('close is idempotent and a closed Fd says so', () => {
  const fd = new Fd(newMapFd(), 'map')
  const n = fd.fd
  expect(native.fdIsOpen(n)).toBe(true)
  fd.close()
  fd.close()
  expect(fd.closed).toBe(true)
  expect(native.fdIsOpen(n)).toBe(false)
  expect(() => fd.fd).toThrow(expect.objectContaining({ code: 'EBADF', message: 'map: file descriptor already closed' }))
  expect(String(fd)).toBe('Fd(map, closed)')
})

test('`using` closes at the end of the scope', () => {
  let n: number
  {
    using fd = new Fd(newMapFd(), 'map')
    n = fd.fd
  }
  expect(native.fdIsOpen(n)).toBe(false)
})

test('dup gives an independent owned fd of 3 or more; release hands the number over', () => {
  using a = new Fd(newMapFd(), 'map')
  using b = a.dup()
  expect(b.fd).toBeGreaterThan(2)
  expect(b.fd).not.toBe(a.fd)
  expect(native.mapMeta(b.fd).type).toBe(kernel.mapTypes.array)
  const c = a.dup()
  const raw = c.release()
  expect(c.closed).toBe(true)
  expect(native.fdIsOpen(raw)).toBe(true)
  native.closeFd(raw)
})

test('only fds of 3 and more are owned', () => {
  expect(() => new Fd(0)).toThrow(RangeError)
  expect(() => new Fd(2)).toThrow(RangeError)
  expect(() => new Fd(1.5)).toThrow(RangeError)
})

test('an Fd dropped without close is closed by the finalizer', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const n = (() => new Fd(newMapFd(), 'map').fd)()
  expect(native.fdIsOpen(n)).toBe(true)
  for (let i = 0; i < 50 && native.fdIsOpen(n); i++) {
    gc()
    await new Promise((r) => setTimeout(r, 10))
  }
  expect(native.fdIsOpen(n)).toBe(false)
  expect(Fd.openFds().some((f) => f.fd === n)).toBe(false)
})

test('fds are O_CLOEXEC and 3 or more', async () => {
  // Node reopens 0-2 at start-up, so the native move-up of 0-2 is defensive;
  // what can be checked is the flag and the range.
  const { readFileSync } = await import('node:fs')
  using m = new Fd(newMapFd(), 'map')
  using d = m.dup()
  for (const fd of [m.fd, d.fd]) {
    const flags = parseInt(/flags:\s*(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8)
    expect(flags & 0o2000000).not.toBe(0)
    expect(fd).toBeGreaterThan(2)
  }
})
