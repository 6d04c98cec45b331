// matchKeys and kernelDev (issue 15): a tenant's match resolved to the keys
// the guard's programs look up (a user namespace's inode, a cgroup v2 id, a
// bpffs superblock's device in the kernel's encoding), against this host's
// real /proc, cgroup2 mount and a private bpffs mounted here (root only),
// and every way a match can be wrong.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { kernelDev, matchKeys, type TenantMatch } from '../../lib/guard/match.js'

const isRoot = process.getuid?.() === 0

/** The mountinfo line of the mount at `path`: its major:minor (the kernel's s_dev) and its filesystem type. */
function mountOf(path: string): { major: number; minor: number; fstype: string } | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    const fields = left.split(' ')
    if (fields[4] !== path || right === undefined) continue
    const [major, minor] = fields[2].split(':').map(Number)
    return { major, minor, fstype: right.split(' ')[0] }
  }
  return undefined
}

function cgroup2Root(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right?.startsWith('cgroup2 ')) return left.split(' ')[4]
  }
  return undefined
}

const scratch = mkdtempSync(join(tmpdir(), 'bpfkit-guard-match-'))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** What `fn` throws, for checking its class, message and code together. */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (e) {
    return e as Error & { code?: string }
  }
  throw new Error('expected a throw')
}

describe('matchKeys: userns', () => {
  const ownInode = Number(statSync('/proc/self/ns/user').ino)

  test('a namespace path resolves to its inode, which is the number its link shows', () => {
    expect(matchKeys({ userns: '/proc/self/ns/user' })).toEqual({ userns: ownInode })
    expect(matchKeys({ userns: `/proc/${process.pid}/ns/user` })).toEqual({ userns: ownInode })
    expect(readlinkSync('/proc/self/ns/user')).toBe(`user:[${ownInode}]`)
  })

  test('a symlink to a user namespace link is followed', () => {
    const link = join(scratch, 'userns-link')
    symlinkSync('/proc/self/ns/user', link)
    expect(matchKeys({ userns: link })).toEqual({ userns: ownInode })
  })

  test('an inode number is taken as is, up to 2^32-1', () => {
    expect(matchKeys({ userns: 4026531837 })).toEqual({ userns: 4026531837 })
    expect(matchKeys({ userns: 0xffffffff })).toEqual({ userns: 0xffffffff })
    expect(matchKeys({ userns: 1 })).toEqual({ userns: 1 })
  })

  test('numbers that are no inode are a RangeError', () => {
    for (const n of [0, -1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY]) {
      const e = thrown(() => matchKeys({ userns: n }))
      expect({ n, type: e.constructor.name, message: e.message }).toEqual({ n, type: 'RangeError', message: `guard: match.userns ${n} is not an inode number` })
    }
  })

  test('neither a path nor a number is a TypeError', () => {
    for (const [v, shown] of [[true, 'boolean true'], [4026531837n, 'bigint 4026531837'], [{}, 'an object']] as const) {
      expect(() => matchKeys({ userns: v as never })).toThrow(new TypeError(`guard: match.userns must be a path (/proc/<pid>/ns/user) or an inode number, got ${shown}`))
    }
  })

  test('a file that is not a namespace is a TypeError', () => {
    for (const path of ['/proc/self/status', '/etc/hostname', scratch]) {
      expect(() => matchKeys({ userns: path })).toThrow(new TypeError(`guard: match.userns: ${path} is not a namespace file (like /proc/<pid>/ns/user)`))
    }
  })

  test('another kind of namespace is a TypeError naming its kind, through symlinks too', () => {
    expect(() => matchKeys({ userns: '/proc/self/ns/net' })).toThrow(new TypeError('guard: match.userns: /proc/self/ns/net is a net namespace, not a user namespace (like /proc/<pid>/ns/user)'))
    expect(() => matchKeys({ userns: '/proc/self/ns/mnt' })).toThrow(/is a mnt namespace, not a user namespace/)
    const link = join(scratch, 'netns-link')
    symlinkSync('/proc/self/ns/net', link)
    expect(() => matchKeys({ userns: link })).toThrow(new TypeError(`guard: match.userns: ${link} is a net namespace, not a user namespace (like /proc/<pid>/ns/user)`))
  })

  test('a missing path is an Error with code ENOENT naming the key and path', () => {
    const path = join(scratch, 'no-such-file')
    const e = thrown(() => matchKeys({ userns: path }))
    expect([e.constructor.name, e.code, e.message]).toEqual(['Error', 'ENOENT', `guard: match.userns: ${path}: ENOENT`])
  })
})

describe('matchKeys: cgroup', () => {
  const root = cgroup2Root()
  // This process's own cgroup, read only: '0::/path' in /proc/self/cgroup.
  const own = root && join(root, readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))!.slice(3))

  test('a cgroup v2 directory resolves to its inode number, the cgroup id (the root is 1)', (ctx) => {
    if (root === undefined) return ctx.skip('no cgroup2 mount in /proc/self/mountinfo')
    expect(matchKeys({ cgroup: root })).toEqual({ cgroup: 1n })
    expect(matchKeys({ cgroup: own! })).toEqual({ cgroup: statSync(own!, { bigint: true }).ino })
    expect(typeof matchKeys({ cgroup: own! }).cgroup).toBe('bigint')
  })

  test('ids: numbers and bigints up to 2^64-1, as bigints', () => {
    expect(matchKeys({ cgroup: 1 })).toEqual({ cgroup: 1n })
    expect(matchKeys({ cgroup: 12345 })).toEqual({ cgroup: 12345n })
    expect(matchKeys({ cgroup: (1n << 64n) - 1n })).toEqual({ cgroup: (1n << 64n) - 1n })
  })

  test('ids that are no cgroup id are a RangeError', () => {
    for (const v of [0, -1, 1.5, Number.NaN, 0n, -1n, 1n << 64n, 2 ** 64]) {
      const e = thrown(() => matchKeys({ cgroup: v }))
      expect({ v: String(v), type: e.constructor.name, message: e.message }).toEqual({ v: String(v), type: 'RangeError', message: `guard: match.cgroup ${v} is not a cgroup id` })
    }
  })

  test('neither a path nor an id is a TypeError', () => {
    expect(() => matchKeys({ cgroup: true as never })).toThrow(new TypeError('guard: match.cgroup must be a cgroup v2 directory or id, got boolean true'))
  })

  test('a directory elsewhere, or a file in a cgroup, is not a cgroup v2 directory', (ctx) => {
    const file = root && join(root, 'cgroup.procs')
    for (const path of [scratch, '/proc', ...(file ? [file] : [])]) {
      expect(() => matchKeys({ cgroup: path })).toThrow(new TypeError(`guard: match.cgroup: ${path} is not a cgroup v2 directory`))
    }
    if (root === undefined) ctx.skip('no cgroup2 mount: the file in a cgroup was not tried')
  })

  test('a missing path is an Error with code ENOENT', () => {
    const path = join(scratch, 'no-such-cgroup')
    const e = thrown(() => matchKeys({ cgroup: path }))
    expect([e.constructor.name, e.code, e.message]).toEqual(['Error', 'ENOENT', `guard: match.cgroup: ${path}: ENOENT`])
  })
})

describe('matchKeys: token', () => {
  // A private bpffs of the test's own, never the host's /sys/fs/bpf.
  let bpffs: string | undefined
  beforeAll(() => {
    if (!isRoot) return
    bpffs = mkdtempSync(join(tmpdir(), 'bpfkit-guard-bpffs-'))
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs])
  })
  afterAll(() => {
    if (bpffs === undefined) return
    execFileSync('umount', [bpffs])
    rmSync(bpffs, { recursive: true, force: true })
  })

  test("a bpffs mount resolves to its superblock's device as the kernel encodes it (major << 20 | minor)", (ctx) => {
    if (!isRoot) return ctx.skip('mounting a private bpffs needs root')
    const m = mountOf(bpffs!)!
    expect(m.fstype).toBe('bpf')
    const expected = ((m.major << 20) | m.minor) >>> 0
    expect(matchKeys({ token: bpffs! })).toEqual({ bpffs: expected })
    // A directory inside it is on the same superblock.
    execFileSync('mkdir', [join(bpffs!, 'sub')])
    expect(matchKeys({ token: join(bpffs!, 'sub') })).toEqual({ bpffs: expected })
  })

  test('a path outside any bpffs is a TypeError', (ctx) => {
    const paths = [scratch, '/proc/self', ...(cgroup2Root() ? [cgroup2Root()!] : [])]
    for (const path of paths) expect(() => matchKeys({ token: path })).toThrow(new TypeError(`guard: match.token: ${path} is not a bpffs`))
    if (!cgroup2Root()) ctx.skip('no cgroup2 mount: only two paths tried')
  })

  test('a missing path is an Error with code ENOENT; a non-string a TypeError', () => {
    const path = join(scratch, 'no-such-bpffs')
    const e = thrown(() => matchKeys({ token: path }))
    expect([e.constructor.name, e.code, e.message]).toEqual(['Error', 'ENOENT', `guard: match.token: ${path}: ENOENT`])
    expect(() => matchKeys({ token: 5 as never })).toThrow(new TypeError('guard: match.token must be the path of a bpffs, got number 5'))
  })

  test('all three keys at once', (ctx) => {
    if (!isRoot) return ctx.skip('mounting a private bpffs needs root')
    const m = mountOf(bpffs!)!
    expect(matchKeys({ userns: 7, cgroup: 9n, token: bpffs! })).toEqual({ userns: 7, cgroup: 9n, bpffs: ((m.major << 20) | m.minor) >>> 0 })
  })
})

describe('matchKeys: the match itself', () => {
  test('an unknown key is a TypeError listing the known ones', () => {
    expect(() => matchKeys({ pid: 1 } as TenantMatch)).toThrow(new TypeError("guard: match: unknown key 'pid' (known: userns, cgroup, token)"))
  })

  test('a match naming nothing is a TypeError', () => {
    for (const m of [{}, { userns: undefined }, { cgroup: undefined, token: undefined }]) {
      expect(() => matchKeys(m)).toThrow(new TypeError('guard: match names nothing: give userns, cgroup or token'))
    }
  })

  test('a match that is no object is a TypeError', () => {
    for (const [v, shown] of [[null, 'null'], [undefined, 'undefined'], ['/proc/self/ns/user', "'/proc/self/ns/user'"], [[], 'an array'], [5, 'number 5']] as const) {
      expect(() => matchKeys(v as never)).toThrow(new TypeError(`guard: match must be an object like { userns, cgroup, token }, got ${shown}`))
    }
  })
})

describe('kernelDev: stat st_dev to the kernel s_dev', () => {
  // glibc's makedev: minor's low 8 bits, major's low 12 bits at 8, minor's rest at 20, major's rest at 44.
  const makedev = (major: bigint, minor: bigint) => (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) | ((major & ~0xfffn) << 32n)

  test('known encodings', () => {
    expect(kernelDev(40)).toBe(40) // major 0, minor 40 (an anonymous device)
    expect(kernelDev(makedev(0n, 40n))).toBe(40)
    expect(kernelDev((8 << 8) | 1)).toBe((8 << 20) | 1) // sda1
    expect(kernelDev(makedev(8n, 1n))).toBe((8 << 20) | 1)
    // A minor above 255: its high bits sit at 20 in st_dev.
    expect(kernelDev(makedev(0n, 300n))).toBe(300)
    expect(makedev(0n, 300n)).toBe(0x2cn | (0x1n << 20n))
    expect(kernelDev(makedev(259n, 65537n))).toBe(((259 << 20) | 65537) >>> 0)
    // The largest the kernel has: 12-bit major, 20-bit minor.
    expect(kernelDev(makedev(0xfffn, 0xfffffn))).toBe(0xffffffff)
  })

  test('numbers and bigints alike', () => {
    expect(kernelDev(2049n)).toBe(kernelDev(2049))
  })

  test("this host's mounts: stat's st_dev becomes mountinfo's major:minor", () => {
    // Filesystems with one superblock per mount (not btrfs subvolumes, whose st_dev is their own).
    const mounts = ['/proc', '/sys', cgroup2Root()].filter((p): p is string => p !== undefined)
    for (const path of mounts) {
      const m = mountOf(path)
      if (m === undefined) continue
      expect({ path, dev: kernelDev(statSync(path, { bigint: true }).dev) }).toEqual({ path, dev: ((m.major << 20) | m.minor) >>> 0 })
    }
  })
})
