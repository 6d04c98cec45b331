// The broker's configuration: defaults filled in, every refusal naming the
// field. Cgroups are plain directories under a temp "cgroup root" (config
// only stats them), so this needs no privileges.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { checkTenants, loadConfig, resolveConfig, resolveTenant, type BrokerConfig, type TenantConfig } from '../../lib/broker/config.js'
import { cgroup2Root } from '../../lib/broker/procfs.js'
import { defaultLimits } from '../../lib/broker/protocol.js'
import { Policy, type PolicyDocument } from '../../lib/policy/index.js'

const root = mkdtempSync(join(tmpdir(), 'bpfkit-broker-config-'))
for (const d of ['tenants/a', 'tenants/a/inner', 'tenants/b', 'file-parent']) mkdirSync(join(root, d), { recursive: true })
writeFileSync(join(root, 'not-a-dir'), '')
afterAll(() => rmSync(root, { recursive: true, force: true }))

const policy: PolicyDocument = { cmds: ['map_create'], maps: ['hash'] }
const tenant = (name: string, extra: Partial<TenantConfig> = {}): TenantConfig => ({ name, match: { cgroup: `/tenants/${name}` }, policy, ...extra })
const config = (extra: Partial<BrokerConfig> = {}): BrokerConfig => ({ cgroupRoot: root, tenants: [tenant('a'), tenant('b')], ...extra })

/** The error `f` throws: its class and message. */
function thrown(f: () => unknown): Error {
  try {
    f()
  } catch (e) {
    return e as Error
  }
  throw new Error('did not throw')
}

describe('resolveConfig', () => {
  test('defaults', () => {
    const c = resolveConfig(config())
    expect(c).toMatchObject({
      socket: '/run/bpfkit/broker.sock',
      socketMode: 0o666,
      stateDir: '/var/lib/bpfkit/broker',
      pinRoot: '/sys/fs/bpf/bpfkit-broker',
      tenantPinRoot: '/sys/fs/bpf/bpfkit-tenants',
      cgroupRoot: root,
      admin: { uids: [0] },
      limits: defaultLimits,
      guard: false,
    })
    const [a] = c.tenants
    expect(a.name).toBe('a')
    expect(a.match).toEqual({ cgroup: { path: '/tenants/a', dir: join(root, 'tenants/a'), id: statSync(join(root, 'tenants/a'), { bigint: true }).ino } })
    expect(a.policy).toBeInstanceOf(Policy)
    expect(a.policy.cmds).toEqual(['map_create'])
    expect(a.quota).toEqual({ maps: Infinity, bytes: Infinity, progs: Infinity, links: Infinity, pins: Infinity, connections: Infinity })
    expect(a.loadAs).toBe('broker')
    expect(a.attach).toEqual({ cgroup: true, netdev: false })
    expect(a.bpffs).toBeUndefined()
    // No guard configured: nothing is registered with one.
    expect(a.guard).toBe(false)
    expect(a.source).toEqual(tenant('a'))
  })

  test('the cgroup root defaults to where cgroup2 is mounted', () => {
    const mountinfo = '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n'
    expect(cgroup2Root(mountinfo)).toBe('/sys/fs/cgroup/unified')
    // A bind mount of a subtree is a last resort; the whole hierarchy wins.
    expect(cgroup2Root('40 25 0:26 /sub /mnt/x rw - cgroup2 cgroup2 rw\n' + mountinfo)).toBe('/sys/fs/cgroup/unified')
    expect(cgroup2Root('41 25 0:26 / /a\\040b rw - cgroup2 cgroup2 rw\n')).toBe('/a b')
    expect(() => cgroup2Root('30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n')).toThrow(/no cgroup2/)
    expect(resolveConfig({ tenants: [] }).cgroupRoot).toBe(cgroup2Root())
  })

  test('values given are kept, paths normalized, limits merged', () => {
    const c = resolveConfig(config({
      socket: '/tmp/x//broker.sock', socketMode: 0o660, stateDir: '/var/lib/b/', pinRoot: '/sys/fs/bpf/b', tenantPinRoot: '/sys/fs/bpf/t',
      admin: { uids: [0, 1000, 1000] }, limits: { maxFds: 8, discoveryTtlMs: 0 }, guard: { pinPath: '/sys/fs/bpf/guard' },
      tenants: [
        tenant('a', {
          quota: { maps: 3, bytes: 1 << 20 }, loadAs: 'token', bpffs: '/sys/fs/bpf/', attach: { netdev: true }, guard: false,
          match: { cgroup: '/tenants//a/', userns: 4026531837, uid: [1000, 0] },
        }),
        tenant('b'),
      ],
    }))
    expect(c.socket).toBe('/tmp/x/broker.sock')
    expect(c.socketMode).toBe(0o660)
    expect(c.stateDir).toBe('/var/lib/b')
    expect(c.admin.uids).toEqual([0, 1000])
    expect(c.limits).toEqual({ ...defaultLimits, maxFds: 8, discoveryTtlMs: 0 })
    expect(c.guard).toEqual({ pinPath: '/sys/fs/bpf/guard' })
    const [a, b] = c.tenants
    expect(a.match.cgroup?.path).toBe('/tenants/a')
    expect(a.match.userns).toBe(4026531837)
    expect(a.match.uid).toEqual([0, 1000])
    expect(a.quota).toMatchObject({ maps: 3, bytes: 1 << 20, progs: Infinity })
    expect(a.loadAs).toBe('token')
    expect(a.bpffs).toBe('/sys/fs/bpf')
    expect(a.attach).toEqual({ cgroup: true, netdev: true })
    expect(a.guard).toBe(false)
    // With a guard, tenants register by default.
    expect(b.guard).toBe(true)
    expect(resolveConfig(config({ socket: { fd: 3 } })).socket).toEqual({ fd: 3 })
  })

  test('userns from a namespace file is its inode; non-initial is kept', () => {
    const t = resolveTenant({ name: 'u', match: { userns: '/proc/self/ns/user' }, policy }, root)
    expect(t.match.userns).toBe(statSync('/proc/self/ns/user').ino)
    expect(resolveTenant({ name: 'u', match: { userns: 'non-initial', uid: [5] }, policy }, root).match).toEqual({ userns: 'non-initial', uid: [5] })
  })

  test('a resolved configuration resolves again to the same', () => {
    const c = resolveConfig(config({ tenants: [tenant('a', { quota: { maps: 1 } })] }))
    const again = resolveConfig(c as unknown as BrokerConfig)
    expect(again.tenants[0]).toEqual(c.tenants[0])
    expect(again.tenants[0].source).toBe(c.tenants[0].source)
  })

  test('overlapping cgroup subtrees are allowed', () => {
    const c = resolveConfig(config({ tenants: [tenant('a'), { name: 'inner', match: { cgroup: '/tenants/a/inner' }, policy }] }))
    expect(c.tenants.map((t) => t.name)).toEqual(['a', 'inner'])
  })
})

describe('refusals', () => {
  const cases: [string, () => unknown, ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, RegExp][] = [
    ['unknown top-level key', () => resolveConfig({ ...config(), sockets: 'x' } as never), TypeError, /^config: unknown key 'sockets'/],
    ['not an object', () => resolveConfig(null as never), TypeError, /^config must be an object/],
    ['tenants missing', () => resolveConfig({ cgroupRoot: root } as never), TypeError, /^tenants must be an array/],
    ['unknown tenant key', () => resolveConfig(config({ tenants: [{ ...tenant('a'), cgroup: '/x' } as never] })), TypeError, /^tenants\[0\]: unknown key 'cgroup'/],
    ['unknown match key', () => resolveConfig(config({ tenants: [tenant('a', { match: { pid: 1 } as never })] })), TypeError, /^tenants\[0\]\.match: unknown key 'pid'/],
    ['unknown quota key', () => resolveConfig(config({ tenants: [tenant('a', { quota: { map: 1 } as never })] })), TypeError, /^tenants\[0\]\.quota: unknown key 'map'/],
    ['unknown attach key', () => resolveConfig(config({ tenants: [tenant('a', { attach: { xdp: true } as never })] })), TypeError, /^tenants\[0\]\.attach: unknown key 'xdp'/],
    ['unknown limit', () => resolveConfig(config({ limits: { maxFrames: 1 } as never })), TypeError, /^limits: unknown key 'maxFrames'/],
    ['unknown admin key', () => resolveConfig(config({ admin: { uid: [0] } as never })), TypeError, /^admin: unknown key 'uid'/],
    ['unknown guard key', () => resolveConfig(config({ guard: { path: '/x' } as never })), TypeError, /^guard: unknown key 'path'/],
    ['name with a dot', () => resolveConfig(config({ tenants: [tenant('a.b', { match: { uid: [1] } })] })), TypeError, /^tenants\[0\]\.name must be 1-63 of A-Z a-z 0-9 _ -, got 'a\.b'/],
    ['name with a slash', () => resolveConfig(config({ tenants: [tenant('a/b', { match: { uid: [1] } })] })), TypeError, /^tenants\[0\]\.name/],
    ['empty name', () => resolveConfig(config({ tenants: [tenant('', { match: { uid: [1] } })] })), TypeError, /^tenants\[0\]\.name/],
    ['name of 64', () => resolveConfig(config({ tenants: [tenant('x'.repeat(64), { match: { uid: [1] } })] })), TypeError, /^tenants\[0\]\.name/],
    ['name not a string', () => resolveConfig(config({ tenants: [tenant(7 as never)] })), TypeError, /^tenants\[0\]\.name must be a string/],
    ['duplicate names', () => resolveConfig(config({ tenants: [tenant('a'), tenant('a', { match: { uid: [1] } })] })), TypeError, /^tenants\[1\]\.name: 'a' is also tenants\[0\]/],
    ['identical matchers', () => resolveConfig(config({ tenants: [tenant('a'), { name: 'a2', match: { cgroup: '/tenants/a/' }, policy }] })), TypeError, /^tenants\[1\]\.match: identical to tenants\[0\] \(a\)/],
    ['identical uid sets in another order', () => resolveConfig(config({ tenants: [{ name: 'x', match: { uid: [1, 2] }, policy }, { name: 'y', match: { uid: [2, 1] }, policy }] })), TypeError, /^tenants\[1\]\.match: identical/],
    ['empty match', () => resolveConfig(config({ tenants: [tenant('a', { match: {} })] })), TypeError, /^tenants\[0\]\.match must give at least one of cgroup, userns, uid/],
    ['match missing', () => resolveConfig(config({ tenants: [{ name: 'a', policy } as never] })), TypeError, /^tenants\[0\]\.match is required/],
    ['policy missing', () => resolveConfig(config({ tenants: [{ name: 'a', match: { uid: [1] } } as never] })), TypeError, /^tenants\[0\]\.policy is required/],
    ['bad policy', () => resolveConfig(config({ tenants: [tenant('a', { policy: { maps: ['hashh'] } as never })] })), TypeError, /^tenants\[0\]\.policy: .*hashh/],
    ['policy bit out of range', () => resolveConfig(config({ tenants: [tenant('a', { policy: { maps: [64] } })] })), RangeError, /^tenants\[0\]\.policy: /],
    ['relative cgroup', () => resolveConfig(config({ tenants: [tenant('a', { match: { cgroup: 'tenants/a' } })] })), TypeError, /^tenants\[0\]\.match\.cgroup must be an absolute path/],
    ['cgroup with ..', () => resolveConfig(config({ tenants: [tenant('a', { match: { cgroup: '/tenants/../tenants/a' } })] })), TypeError, /^tenants\[0\]\.match\.cgroup must not contain '\.\.'/],
    ['the root cgroup', () => resolveConfig(config({ tenants: [tenant('a', { match: { cgroup: '/' } })] })), TypeError, /^tenants\[0\]\.match\.cgroup must be below the cgroup2 root/],
    ['missing cgroup', () => resolveConfig(config({ tenants: [tenant('a', { match: { cgroup: '/tenants/zz' } })] })), TypeError, /^tenants\[0\]\.match\.cgroup: no cgroup \/tenants\/zz below .* \(ENOENT\)/],
    ['cgroup not a directory', () => resolveConfig(config({ tenants: [tenant('a', { match: { cgroup: '/not-a-dir' } })] })), TypeError, /^tenants\[0\]\.match\.cgroup: .* is not a directory/],
    ['userns of the wrong kind', () => resolveConfig(config({ tenants: [tenant('a', { match: { userns: '/proc/self/ns/net' } })] })), TypeError, /^tenants\[0\]\.match\.userns: \/proc\/self\/ns\/net is not a user namespace/],
    ['userns relative', () => resolveConfig(config({ tenants: [tenant('a', { match: { userns: 'proc/self/ns/user' } })] })), TypeError, /^tenants\[0\]\.match\.userns must be an absolute path/],
    ['userns missing file', () => resolveConfig(config({ tenants: [tenant('a', { match: { userns: '/nonexistent/ns' } })] })), TypeError, /^tenants\[0\]\.match\.userns: cannot stat \/nonexistent\/ns: ENOENT/],
    ['userns inode 0', () => resolveConfig(config({ tenants: [tenant('a', { match: { userns: 0 } })] })), RangeError, /^tenants\[0\]\.match\.userns must be an integer in 1\.\./],
    ['uid empty', () => resolveConfig(config({ tenants: [tenant('a', { match: { uid: [] } })] })), TypeError, /^tenants\[0\]\.match\.uid must name at least one uid/],
    ['uid negative', () => resolveConfig(config({ tenants: [tenant('a', { match: { uid: [-1] } })] })), RangeError, /^tenants\[0\]\.match\.uid\[0\] must be an integer in 0\.\.4294967294, got -1/],
    ['uid not a list', () => resolveConfig(config({ tenants: [tenant('a', { match: { uid: 0 as never } })] })), TypeError, /^tenants\[0\]\.match\.uid must be an array/],
    ['negative quota', () => resolveConfig(config({ tenants: [tenant('a', { quota: { maps: -1 } })] })), RangeError, /^tenants\[0\]\.quota\.maps must be an integer in 0\.\./],
    ['fractional quota', () => resolveConfig(config({ tenants: [tenant('a', { quota: { bytes: 1.5 } })] })), RangeError, /^tenants\[0\]\.quota\.bytes must be an integer/],
    ['quota as a string', () => resolveConfig(config({ tenants: [tenant('a', { quota: { links: '3' as never } })] })), TypeError, /^tenants\[0\]\.quota\.links must be a number, got '3'/],
    ['quota not an object', () => resolveConfig(config({ tenants: [tenant('a', { quota: 3 as never })] })), TypeError, /^tenants\[0\]\.quota must be an object/],
    ['bad loadAs', () => resolveConfig(config({ tenants: [tenant('a', { loadAs: 'root' as never })] })), TypeError, /^tenants\[0\]\.loadAs must be 'broker' or 'token', got 'root'/],
    ['relative bpffs', () => resolveConfig(config({ tenants: [tenant('a', { bpffs: 'sys/fs/bpf' })] })), TypeError, /^tenants\[0\]\.bpffs must be an absolute path, got 'sys\/fs\/bpf'/],
    ['attach not boolean', () => resolveConfig(config({ tenants: [tenant('a', { attach: { cgroup: 1 as never } })] })), TypeError, /^tenants\[0\]\.attach\.cgroup must be a boolean/],
    ['guard not boolean', () => resolveConfig(config({ tenants: [tenant('a', { guard: 'yes' as never })] })), TypeError, /^tenants\[0\]\.guard must be a boolean/],
    ['relative socket', () => resolveConfig(config({ socket: 'broker.sock' })), TypeError, /^socket must be an absolute path, got 'broker\.sock'/],
    ['socket fd negative', () => resolveConfig(config({ socket: { fd: -1 } })), RangeError, /^socket\.fd must be an integer/],
    ['socket mode too wide', () => resolveConfig(config({ socketMode: 0o1777 })), RangeError, /^socketMode must be an integer in 0\.\.511, got 1023/],
    ['relative stateDir', () => resolveConfig(config({ stateDir: 'state' })), TypeError, /^stateDir must be an absolute path/],
    ['relative pinRoot', () => resolveConfig(config({ pinRoot: 'pins' })), TypeError, /^pinRoot must be an absolute path/],
    ['relative tenantPinRoot', () => resolveConfig(config({ tenantPinRoot: './t' })), TypeError, /^tenantPinRoot must be an absolute path/],
    ['relative cgroupRoot', () => resolveConfig({ cgroupRoot: 'cg', tenants: [] }), TypeError, /^cgroupRoot must be an absolute path/],
    ['relative guard pin path', () => resolveConfig(config({ guard: { pinPath: 'guard' } })), TypeError, /^guard\.pinPath must be an absolute path/],
    ['tenant pins inside the broker pins', () => resolveConfig(config({ pinRoot: '/sys/fs/bpf/b', tenantPinRoot: '/sys/fs/bpf/b/t' })), TypeError, /^pinRoot \(\/sys\/fs\/bpf\/b\) and tenantPinRoot \(\/sys\/fs\/bpf\/b\/t\) must be separate/],
    ['the same pin roots', () => resolveConfig(config({ pinRoot: '/sys/fs/bpf/b', tenantPinRoot: '/sys/fs/bpf/b/' })), TypeError, /must be separate/],
    ['no admin uid', () => resolveConfig(config({ admin: { uids: [] } })), TypeError, /^admin\.uids must name at least one uid/],
    ['limit of 0', () => resolveConfig(config({ limits: { maxFds: 0 } })), RangeError, /^limits\.maxFds must be an integer in 1\.\./],
    ['negative TTL', () => resolveConfig(config({ limits: { discoveryTtlMs: -1 } })), RangeError, /^limits\.discoveryTtlMs must be an integer in 0\.\./],
  ]
  test.each(cases)('%s', (_, f, type, message) => {
    const e = thrown(f)
    expect(e).toBeInstanceOf(type)
    expect(e.message).toMatch(message)
  })

  test('more than 64 tenants registered with the guard', () => {
    const many: TenantConfig[] = Array.from({ length: 65 }, (_, i) => ({ name: `t${i}`, match: { uid: [1000 + i] }, policy }))
    const e = thrown(() => resolveConfig({ cgroupRoot: root, tenants: many, guard: { pinPath: '/sys/fs/bpf/guard' } }))
    expect(e).toBeInstanceOf(RangeError)
    expect(e.message).toMatch(/^tenants: 65 tenants have guard on, the guard holds at most 64/)
    // 64 fit; the 65th may opt out; without a guard any number is fine (the load test's 100).
    expect(resolveConfig({ cgroupRoot: root, tenants: many.slice(0, 64), guard: { pinPath: '/g' } }).tenants).toHaveLength(64)
    expect(resolveConfig({ cgroupRoot: root, tenants: [...many.slice(0, 64), { ...many[64], guard: false }], guard: { pinPath: '/g' } }).tenants).toHaveLength(65)
    expect(resolveConfig({ cgroupRoot: root, tenants: [...many, ...many.map((t, i) => ({ ...t, name: `u${i}`, match: { uid: [5000 + i] } }))] }).tenants).toHaveLength(130)
  })

  test('checkTenants: the same checks for a tenant set at run time', () => {
    const c = resolveConfig(config())
    const again = resolveTenant(tenant('a', { match: { uid: [9] } }), root)
    expect(() => checkTenants([...c.tenants, again], false)).toThrow(new TypeError("tenants[2].name: 'a' is also tenants[0]"))
    expect(() => checkTenants([...c.tenants, resolveTenant(tenant('c', { match: { cgroup: '/tenants/b' } }), root)], false)).toThrow(/identical to tenants\[1\] \(b\)/)
  })
})

describe('loadConfig', () => {
  test('reads JSON and names the file in errors', () => {
    const good = join(root, 'broker.json')
    writeFileSync(good, JSON.stringify({ cgroupRoot: root, tenants: [{ name: 'a', match: { cgroup: '/tenants/a' }, policy }] }))
    expect(loadConfig(good).tenants[0].name).toBe('a')
    const bad = join(root, 'bad.json')
    writeFileSync(bad, '{ "tenants": [')
    expect(thrown(() => loadConfig(bad))).toBeInstanceOf(SyntaxError)
    expect(thrown(() => loadConfig(bad)).message).toMatch(new RegExp(`^${bad}: not JSON`))
    const wrong = join(root, 'wrong.json')
    writeFileSync(wrong, JSON.stringify({ cgroupRoot: root, tenants: [{ name: 'a', match: { cgroup: '/tenants/a' }, policy, quota: { maps: -2 } }] }))
    expect(thrown(() => loadConfig(wrong))).toEqual(new RangeError(`${wrong}: tenants[0].quota.maps must be an integer in 0..9007199254740991, got -2`))
    expect(thrown(() => loadConfig(join(root, 'none.json')))).toMatchObject({ code: 'ENOENT' })
  })
})
