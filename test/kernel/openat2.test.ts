// openat2 confinement (native openat2, lib/sys/resolve): a path resolved
// inside a directory never leaves it, by symlink, `..`, absolute path or
// mount; and what the broker does with the fds (readdir, BPF_OBJ_GET) works
// through /proc/self/fd/N.
import { constants, fstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import * as features from '../../lib/features/index.js'
import { Fd, SyscallError, native } from '../../lib/sys/index.js'
import { fdPath, openBeneath, resolveFlags } from '../../lib/sys/resolve.js'
import { privateBpffs } from './helpers/scratch.js'
import { skipUnless } from './helpers/requires.js'

const O_PATH = 0o10000000

let root: string
let rootFd: Fd

beforeEach((ctx) => skipUnless(ctx, features.haveOpenat2))

beforeAll(() => {
  // root/a/file, root/a/inner -> file (a relative symlink that stays inside),
  // root/out -> /etc (an absolute symlink out), root/up -> .. (a relative one out).
  root = mkdtempSync(join(tmpdir(), 'bpfkit-openat2-'))
  mkdirSync(join(root, 'a'))
  writeFileSync(join(root, 'a', 'file'), 'inside')
  symlinkSync('file', join(root, 'a', 'inner'))
  symlinkSync('/etc', join(root, 'out'))
  symlinkSync('..', join(root, 'up'))
  writeFileSync(join(root, '..', `${root.split('/').pop()}-outside`), 'outside')
  rootFd = new Fd(openSync(root, constants.O_RDONLY | constants.O_DIRECTORY), 'dir')
})

afterAll(() => {
  rootFd?.close()
  rmSync(`${root}-outside`, { force: true })
  rmSync(root, { recursive: true, force: true })
})

function sameInode(fd: Fd, path: string): boolean {
  const a = fstatSync(fd.fd)
  const b = statSync(path)
  return a.dev === b.dev && a.ino === b.ino
}

function code(fn: () => unknown): string | undefined {
  try {
    const r = fn()
    if (r instanceof Fd) r.close()
    return undefined
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e
    expect(e.syscall).toBe('openat2')
    return e.code
  }
}

describe('openBeneath', () => {
  test('opens a file and a directory below the root', () => {
    using f = openBeneath(rootFd, 'a/file')
    expect(sameInode(f, join(root, 'a', 'file'))).toBe(true)
    using d = openBeneath(rootFd.fd, 'a', { directory: true })
    expect(sameInode(d, join(root, 'a'))).toBe(true)
    using again = openBeneath(rootFd, 'a/../a/./file')
    expect(sameInode(again, join(root, 'a', 'file'))).toBe(true)
    expect(code(() => openBeneath(rootFd, 'a/file', { directory: true }))).toBe('ENOTDIR')
    expect(code(() => openBeneath(rootFd, 'missing'))).toBe('ENOENT')
  })

  test('symlinks are refused (ELOOP), the ones leading out and the ones that stay inside', () => {
    expect(code(() => openBeneath(rootFd, 'out/passwd'))).toBe('ELOOP')
    expect(code(() => openBeneath(rootFd, 'out', { inRoot: true }))).toBe('ELOOP')
    expect(code(() => openBeneath(rootFd, 'up/a'))).toBe('ELOOP')
    expect(code(() => openBeneath(rootFd, 'a/inner'))).toBe('ELOOP')
    // The link itself can be named with pathOnly + noFollow; it is never followed.
    using link = openBeneath(rootFd, 'out', { pathOnly: true, noFollow: true })
    expect(fstatSync(link.fd).isSymbolicLink()).toBe(true)
  })

  test('with BENEATH, `..` above the root and absolute paths are refused (EXDEV)', () => {
    const outside = `../${root.split('/').pop()}-outside`
    expect(code(() => openBeneath(rootFd, outside))).toBe('EXDEV')
    expect(code(() => openBeneath(rootFd, '..'))).toBe('EXDEV')
    expect(code(() => openBeneath(rootFd, 'a/../../x'))).toBe('EXDEV')
    expect(code(() => openBeneath(rootFd, `${root}/a/file`))).toBe('EXDEV')
  })

  test('with IN_ROOT, absolute paths and `..` resolve inside the root', () => {
    using abs = openBeneath(rootFd, '/a/file', { inRoot: true })
    expect(sameInode(abs, join(root, 'a', 'file'))).toBe(true)
    using up = openBeneath(rootFd, '../../../a/file', { inRoot: true })
    expect(sameInode(up, join(root, 'a', 'file'))).toBe(true)
    using top = openBeneath(rootFd, '/', { inRoot: true, directory: true })
    expect(sameInode(top, root)).toBe(true)
    // The host path of the root, given as the tenant would see it, does not exist inside.
    expect(code(() => openBeneath(rootFd, `${root}/a/file`, { inRoot: true }))).toBe('ENOENT')
  })

  test('mounts are not crossed (EXDEV)', () => {
    using slash = new Fd(openSync('/', constants.O_RDONLY | constants.O_DIRECTORY), 'dir')
    expect(code(() => openBeneath(slash, 'proc/self', { pathOnly: true }))).toBe('EXDEV')
  })

  test('a directory fd is listed through fdPath, opened for reading and with O_PATH', () => {
    using d = openBeneath(rootFd, 'a', { directory: true })
    expect(fdPath(d)).toBe(`/proc/self/fd/${d.fd}`)
    expect(readdirSync(fdPath(d)).sort()).toEqual(['file', 'inner'])
    using p = openBeneath(rootFd, 'a', { directory: true, pathOnly: true })
    expect(p.kind).toBe('path')
    expect((native.fdFlags(p.fd) & O_PATH) !== 0).toBe(true)
    expect(readdirSync(fdPath(p)).sort()).toEqual(['file', 'inner'])
  })

  test('argument errors: TypeError for bad dirs, paths and options', () => {
    expect(() => openBeneath(-1, 'a')).toThrow(TypeError)
    expect(() => openBeneath(rootFd, '')).toThrow(TypeError)
    expect(() => openBeneath(rootFd, 'a', { inRoot: 1 } as never)).toThrow(TypeError)
    expect(() => openBeneath(rootFd, 'a', { follow: true } as never)).toThrow(/unknown option 'follow'/)
    expect(() => fdPath(-1)).toThrow(TypeError)
  })
})

describe('native openat2', () => {
  test('flags and resolve bits outside the allow-lists are RangeErrors, before any syscall', () => {
    const ok = resolveFlags.beneath
    for (const flags of [constants.O_WRONLY, constants.O_RDWR, constants.O_CREAT, constants.O_TRUNC, constants.O_APPEND, O_PATH | constants.O_CREAT]) {
      expect(() => native.openat2(rootFd.fd, 'a/file', flags, ok)).toThrow(RangeError)
    }
    expect(() => native.openat2(rootFd.fd, 'a/file', 0, 0x20)).toThrow(RangeError) // RESOLVE_CACHED: not allowed
    expect(() => native.openat2(rootFd.fd, 'a/file', 0, resolveFlags.beneath | resolveFlags.inRoot)).toThrow(/exclude each other/)
    expect(() => native.openat2(rootFd.fd, 'a/file', -1, ok)).toThrow(RangeError)
    expect(() => native.openat2(rootFd.fd, '', 0, ok)).toThrow(TypeError)
    expect(() => native.openat2(rootFd.fd, 'a\0b', 0, ok)).toThrow(TypeError)
  })

  test('every fd is O_CLOEXEC; undefined is the current directory; a closed dir fd is EBADF', () => {
    const fd = new Fd(native.openat2(undefined, root, O_PATH | constants.O_DIRECTORY, 0), 'path')
    try {
      expect(native.fdFlags(fd.fd) & O_PATH).toBe(O_PATH)
      expect(sameInode(fd, root)).toBe(true)
    } finally {
      fd.close()
    }
    using f = openBeneath(rootFd, 'a/file')
    expect(/^flags:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${f.fd}`, 'utf8'))?.[1]).toMatch(/2\d{6}$/)
    const closed = openSync('/dev/null', 'r')
    native.closeFd(closed)
    expect(code(() => native.openat2(closed, 'a', 0, 0))).toBe('EBADF')
  })
})

describe('bpffs pins through O_PATH fds', () => {
  test('BPF_OBJ_GET opens a pin through fdPath of its O_PATH fd; a symlinked pin is refused', () => {
    using fs = privateBpffs()
    mkdirSync(join(fs.path, 'tenant'))
    using map = new Fd(native.mapCreate({ mapType: 2, keySize: 4, valueSize: 4, maxEntries: 1 }), 'map')
    native.objPin(map.fd, join(fs.path, 'tenant', 'm'))
    symlinkSync(join(fs.path, 'tenant', 'm'), join(fs.path, 'tenant', 'alias'))
    using dir = new Fd(openSync(fs.path, constants.O_RDONLY | constants.O_DIRECTORY), 'dir')
    using tenant = openBeneath(dir, 'tenant', { directory: true })
    expect(readdirSync(fdPath(tenant)).sort()).toEqual(['alias', 'm'])
    using pin = openBeneath(tenant, 'm', { pathOnly: true })
    using opened = new Fd(native.objGet(fdPath(pin)), 'map')
    const idOf = (fd: Fd) => /^map_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd.fd}`, 'utf8'))?.[1]
    expect(idOf(opened)).toBe(idOf(map))
    expect(idOf(opened)).toMatch(/^\d+$/)
    expect(code(() => openBeneath(tenant, 'alias', { pathOnly: true }))).toBe('ELOOP')
  })
})
