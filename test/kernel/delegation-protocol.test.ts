// The delegation protocol between a manager (this process, root in the
// initial user namespace) and tenants in their own namespaces: what is
// granted, read back three ways, asked for, refused, and left open.
import { describe, expect, test } from 'vitest'
import {
  DelegationRefusedError, FdSocket, Policy, serveDelegation, features } from '../../lib/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { startTenant, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Why these tests cannot run here (no BPF tokens, or no user namespaces), or undefined.
const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

describe('serve and request', () => {
  skipAllIf(missing)
  test('the policy round-trips through the grant, mountinfo, token info and fdinfo', async () => {
    const policy = Policy.from({
      cmds: ['map_create', 'prog_load', 'btf_load'],
      maps: [1, 'array', 'ringbuf'], // a number with a name becomes the name
      progs: 'any',
      attachs: ['cgroup_inet_ingress', 'xdp'],
    })
    const tenant = startTenant(`
      const token = await bpfkit.BpfToken.request(socket, { mountAt: '/sys/fs/bpf' })
      const info = token.info()
      report({
        mountinfo: bpfkit.Policy.fromMountinfo('/sys/fs/bpf').toJSON(),
        info: info.policy.toJSON(),
        source: info.source,
        supportsInfo: bpfkit.features.supportsTokenInfo(token),
        fdinfo: bpfkit.Policy.fromFdinfo(fs.readFileSync('/proc/self/fdinfo/' + token.fd, 'utf8')).toJSON(),
        masks: info.masks,
        // The last one: a bpffs already at /sys/fs/bpf (systemd mounts one) lies under the delegated mount.
        line: fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').findLast((l) => l.includes(' /sys/fs/bpf ') && l.includes(' - bpf ')),
      })
      token.close()
    `)
    const granted = await serveDelegation(tenant.socket, policy)
    expect(granted.equals(policy)).toBe(true)
    const r = await tenant.result
    const expected = { cmds: ['map_create', 'prog_load', 'btf_load'], maps: ['hash', 'array', 'ringbuf'], progs: 'any', attachs: ['cgroup_inet_ingress', 'xdp'] }
    expect(r.mountinfo).toEqual(expected)
    expect(r.info).toEqual(expected)
    expect(r.fdinfo).toEqual(expected)
    // OBJ_GET_INFO_BY_FD knows tokens from 6.17; before, fdinfo tells. The
    // features probe and info() must agree.
    expect(r.source).toBe(r.supportsInfo ? 'info' : 'fdinfo')
    expect(r.masks.progs).toBe(((1n << 64n) - 1n).toString())
    expect(r.line).toContain('delegate_cmds=map_create:prog_load:btf_load,delegate_maps=hash:array:ringbuf,delegate_progs=any,delegate_attachs=cgroup_inet_ingress:xdp')
  })

  test('a tenant may ask for less than offered, and gets exactly that', async () => {
    const tenant = startTenant(`
      const token = await bpfkit.BpfToken.request(socket, { policy: { cmds: ['map_create'], maps: ['hash'] } })
      report(token.policy.toJSON())
      token.close()
    `)
    const granted = await serveDelegation(tenant.socket, { cmds: 'any', maps: 'any', progs: ['xdp'] })
    expect(granted.toJSON()).toEqual({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] })
    expect(await tenant.result).toEqual(granted.toJSON())
  })

  test('asking for more than offered is refused on both sides', async () => {
    const tenant = startTenant(`
      report(await outcomeAsync(() => bpfkit.BpfToken.request(socket, { policy: { cmds: ['map_create', 'prog_load'] } })))
    `)
    await expect(serveDelegation(tenant.socket, { cmds: ['map_create'] })).rejects.toThrow(
      'serveDelegation: the tenant asked for delegate_cmds=map_create:prog_load, more than the offered delegate_cmds=map_create')
    const r = await tenant.result
    expect(r).toMatchObject({ ok: false, name: 'DelegationRefusedError', code: 'EACCES' })
    expect(r.message).toMatch(/^delegation refused by the manager: the tenant asked for/)
    expect(new DelegationRefusedError('x').code).toBe('EACCES')
  })

  test('a request that is not one is a protocol error, and leaves nothing open', async () => {
    const [manager, tenant] = FdSocket.pair()
    const before = fdTable()
    const served = serveDelegation(manager, { cmds: 'any' })
    await tenant.send(Buffer.from('{"protocol":"bpfkit-delegation/1","type":"grant","policy":{}}'), [0])
    await expect(served).rejects.toMatchObject({ name: 'ProtocolError', message: "expected a 'request' message, got 'grant'" })
    tenant.close()
    manager.close()
    expect(opened(before, fdTable())).toEqual([])
  })

  test('neither side keeps an fd it should not: context, mount and root are all closed', async () => {
    const tenant = startTenant(`
      const before = fdTargets()
      const token = await bpfkit.BpfToken.request(socket)
      const during = fdTargets()
      token.close()
      report({ before, during, after: fdTargets() })
    `)
    const before = fdTable()
    await serveDelegation(tenant.socket, { cmds: ['map_create'], maps: ['hash'] })
    const r = await tenant.result
    expect(opened(before, fdTable())).toEqual([])
    // While it lives, the tenant holds exactly one new fd: the token (a file
    // of the bpffs, unlinked); no context, mount or root directory fd.
    expect(extra(r.before, r.during)).toEqual(['/bpf-token (deleted)'])
    expect(extra(r.before, r.after)).toEqual([])
  })
})

// Targets in `b` beyond those in `a`, counting repeats.
function extra(a: string[], b: string[]): string[] {
  const left = [...a]
  return b.filter((t) => {
    const i = left.indexOf(t)
    if (i < 0) return true
    left.splice(i, 1)
    return false
  })
}

describe('a token works only in the user namespace that made it', () => {
  skipAllIf(missing)
  test('handed to a tenant in another user namespace, the kernel ignores it (EPERM)', async () => {
    const maker = startTenant(`
      const token = await bpfkit.BpfToken.request(socket)
      report(outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, token })))
      await socket.send(Buffer.from('token'), [token])
      token.close()
    `)
    const policy = { cmds: ['map_create'], maps: ['hash'] } as const
    await serveDelegation(maker.socket, policy)
    const m = await maker.socket.receive({ fds: 1 })
    expect(await maker.result).toEqual({ ok: true })
    const other = startTenant(`
      const msg = await socket.receive({ fds: 1 })
      const token = bpfkit.BpfToken.fromFd(msg.fds[0])
      report({
        policy: token.policy.toJSON(),
        map: outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, token })),
      })
      token.close()
    `)
    try {
      await other.socket.send(Buffer.from('a token from elsewhere'), m!.fds)
    } finally {
      m!.fds[0].close()
    }
    const r = await other.result
    expect(r.policy).toEqual(Policy.from(policy).toJSON())
    expect(r.map).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM' })
  })
})

describe('BpfToken.fromEnv, as libbpf finds tokens', () => {
  skipAllIf(missing)
  test('LIBBPF_BPF_TOKEN_PATH: a path must work, empty disables, unset tries /sys/fs/bpf quietly', async () => {
    const tenant = startTenant(`
      const before = { unset: bpfkit.BpfToken.fromEnv({}) === undefined }
      const { mount } = await bpfkit.requestDelegation(socket, { mountAt: '/sys/fs/bpf' })
      fs.mkdirSync('/sys/fs/bpf/not-root')
      const describe = (env) => { try { const t = bpfkit.BpfToken.fromEnv(env); if (!t) return 'none'; const p = String(t.policy); t.close(); return p } catch (e) { return e.code + ': ' + e.message } }
      report({
        before,
        unset: describe({}),
        explicit: describe({ LIBBPF_BPF_TOKEN_PATH: '/sys/fs/bpf' }),
        empty: describe({ LIBBPF_BPF_TOKEN_PATH: '' }),
        wrong: describe({ LIBBPF_BPF_TOKEN_PATH: '/sys/fs/bpf/not-root' }),
        processEnv: describe(undefined),
      })
      mount.close()
    `)
    await serveDelegation(tenant.socket, { cmds: ['map_create'], maps: ['hash'] })
    const r = await tenant.result
    // Before anything is mounted there, /sys/fs/bpf is the host's plain directory: no token, no error.
    expect(r.before).toEqual({ unset: true })
    expect(r.unset).toBe('delegate_cmds=map_create,delegate_maps=hash')
    expect(r.explicit).toBe('delegate_cmds=map_create,delegate_maps=hash')
    expect(r.empty).toBe('none')
    expect(r.wrong).toMatch(/^EINVAL: token_create: EINVAL: .*not the root directory of a bpffs mount/)
    expect(r.processEnv).toBe('delegate_cmds=map_create,delegate_maps=hash')
  })
})
