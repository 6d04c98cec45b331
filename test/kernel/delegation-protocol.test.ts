// The delegation protocol between a manager (this process, root in the
// initial user namespace) and tenants in their own namespaces: what is
// granted, read back three ways, asked for, refused, and left open.
import { describe, expect, test } from 'vitest'
import {
  DelegationRefusedError, FdSocket, Policy, serveDelegation, features } from '../../lib/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { startTenantFixture, userNamespacesMissing } from './helpers/tenant.js'
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
    const tenant = startTenantFixture('policy-read-back')
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
    const tenant = startTenantFixture('ask-for-less')
    const granted = await serveDelegation(tenant.socket, { cmds: 'any', maps: 'any', progs: ['xdp'] })
    expect(granted.toJSON()).toEqual({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] })
    expect(await tenant.result).toEqual(granted.toJSON())
  })

  test('asking for more than offered is refused on both sides', async () => {
    const tenant = startTenantFixture('ask-for-more')
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
    const tenant = startTenantFixture('fds-kept')
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
    const maker = startTenantFixture('token-maker')
    const policy = { cmds: ['map_create'], maps: ['hash'] } as const
    await serveDelegation(maker.socket, policy)
    const m = await maker.socket.receive({ fds: 1 })
    expect(await maker.result).toEqual({ ok: true })
    const other = startTenantFixture('foreign-token')
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
    const tenant = startTenantFixture('token-from-env-variants')
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
