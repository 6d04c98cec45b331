// Using a token: map creation, program loads and BTF loads are allowed
// exactly as the policy says and refused outside it, by type and by attach
// type. Each refusal is checked twice: bpfkit's PolicyError before any
// syscall, and the kernel's own EPERM when the same token is passed raw.
import { describe, expect, test } from 'vitest'
import { Policy, serveDelegation, features } from '../../lib/index.js'
import { startTenantFixture, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Why these tests cannot run here (no BPF tokens, or no user namespaces), or undefined.
const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

describe('a token allows exactly its policy', () => {
  skipAllIf(missing)
  const policy = Policy.from({
    cmds: ['map_create', 'prog_load', 'btf_load'],
    maps: ['hash', 'percpu_array'],
    progs: ['socket_filter', 'cgroup_skb'],
    attachs: ['cgroup_inet_egress'],
  })

  test('map types: the kernel and bpfkit agree, map by map', async () => {
    const tenant = startTenantFixture('token-map-types')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    for (const type of ['hash', 'percpu_array']) {
      expect(r[type]).toEqual({ bpfkit: { ok: true }, kernel: { ok: true } })
    }
    for (const type of ['array', 'percpu_hash', 'lru_hash']) {
      expect(r[type].bpfkit).toMatchObject({ ok: false, name: 'PolicyError', code: 'EPERM', rule: 'delegate_maps', requested: type })
      expect(r[type].bpfkit.message).toBe(`token does not delegate map type '${type}'; it delegates map types: hash, percpu_array`)
      expect(r[type].kernel).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM', command: 'map_create' })
    }
    expect(r.ringbuf.bpfkit).toMatchObject({ name: 'PolicyError', requested: 'ringbuf' })
    // CAP_BPF in the user namespace without a token: the kernel says no.
    expect(r.noToken).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM' })
  })

  test('program types and attach types, with attach type 0 for programs that name none', async () => {
    const tenant = startTenantFixture('token-prog-types')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    expect(r['cgroup_skb/cgroup_inet_egress']).toEqual({ bpfkit: { ok: true }, kernel: { ok: true } })
    // socket_filter ignores the expected attach type, but the token check does not.
    expect(r['socket_filter/cgroup_inet_egress']).toEqual({ bpfkit: { ok: true }, kernel: { ok: true } })
    expect(r['cgroup_skb/cgroup_inet_ingress'].bpfkit).toMatchObject({ name: 'PolicyError', rule: 'delegate_attachs', requested: 'cgroup_inet_ingress' })
    expect(r['cgroup_skb/cgroup_inet_ingress'].kernel).toMatchObject({ code: 'EPERM', command: 'prog_load' })
    const none = r['socket_filter/none']
    expect(none.bpfkit).toMatchObject({ name: 'PolicyError', rule: 'delegate_attachs', requested: 'cgroup_inet_ingress' })
    expect(none.bpfkit.message).toContain('a program loaded without an expected attach type asks for attach type 0')
    expect(none.kernel).toMatchObject({ code: 'EPERM' })
    expect(r['xdp/none'].bpfkit).toMatchObject({ name: 'PolicyError', rule: 'delegate_progs', requested: 'xdp' })
    expect(r['xdp/none'].kernel).toMatchObject({ code: 'EPERM' })
  })

  test('BTF loads need btf_load delegated', async () => {
    const tenant = startTenantFixture('token-btf-load')
    await serveDelegation(tenant.socket, policy)
    expect(await tenant.result).toEqual({ bpfkit: { ok: true }, kernel: { ok: true } })

    const without = startTenantFixture('token-btf-load')
    await serveDelegation(without.socket, { cmds: ['map_create'], maps: 'any' })
    const r = await without.result
    expect(r.bpfkit).toMatchObject({ name: 'PolicyError', rule: 'delegate_cmds', requested: 'btf_load' })
    expect(r.bpfkit.message).toBe("token does not delegate command 'btf_load'; it delegates commands: map_create")
    expect(r.kernel).toMatchObject({ code: 'EPERM', command: 'btf_load' })
  })
})

// BTF_GET_FD_BY_ID takes a token from Linux 6.18: a declared feature (features.haveBtfByIdToken).
const btfByIdMissing = missing ?? requireFeature(features.haveBtfByIdToken)

describe('opening BTF by ID with a token', () => {
  skipAllIf(btfByIdMissing)
  test('Btf.fromId needs btf_get_fd_by_id delegated', async () => {
    const tenant = startTenantFixture('btf-by-id-token')
    await serveDelegation(tenant.socket, { cmds: ['btf_load', 'btf_get_fd_by_id'] })
    await serveDelegation(tenant.socket, { cmds: ['btf_load'] })
    const r = await tenant.result
    // BTF_GET_FD_BY_ID takes a token from Linux 6.18.
    expect(r.delegated).toEqual({ ok: true })
    expect(r.noToken).toMatchObject({ ok: false, code: 'EPERM' })
    expect(r.refused).toMatchObject({ ok: false, name: 'PolicyError', rule: 'delegate_cmds', requested: 'btf_get_fd_by_id' })
    expect(r.kernel).toMatchObject({ ok: false, code: 'EPERM', command: 'btf_get_fd_by_id' })
  })
})

describe('a token needs CAP_BPF beside it, and CAP_BPF a token', () => {
  skipAllIf(missing)
  test('token without CAP_BPF fails; CAP_BPF without token fails; both succeed', async () => {
    const tenant = startTenantFixture('token-and-cap-bpf')
    const policy = Policy.from({ cmds: ['map_create', 'prog_load'], maps: ['hash'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'] })
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    // The capless process holds the same token (passed as an fd) and its
    // policy covers both requests, so the refusals are the kernel's.
    expect(r.capless.policy).toEqual(policy.toJSON())
    expect(r.capless.map).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM' })
    expect(r.capless.prog).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM' })
    expect(r.noToken).toMatchObject({ ok: false, name: 'BpfError', code: 'EPERM' })
    expect(r.both).toEqual({ ok: true })
  })
})

describe('the process-wide default token', () => {
  skipAllIf(missing)
  test('is used when a call names none, and null opts out', async () => {
    const tenant = startTenantFixture('default-token')
    await serveDelegation(tenant.socket, { cmds: ['map_create'], maps: ['hash'] })
    const r = await tenant.result
    expect(r.byDefault).toEqual({ ok: true })
    expect(r.optedOut).toMatchObject({ ok: false, code: 'EPERM', name: 'BpfError' })
    expect(r.refused).toMatchObject({ ok: false, name: 'PolicyError', requested: 'array' })
  })
})
