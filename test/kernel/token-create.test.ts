// Token creation, replaying the kernel selftest scenarios
// (tools/testing/selftests/bpf/prog_tests/token.c) through bpfkit's public
// API in real user namespaces: where BPF_TOKEN_CREATE is refused and why,
// and that a tenant cannot delegate to itself.
import { describe, expect, test } from 'vitest'
import {
  BpfToken, delegate, features, openBpffsContext, openMountRoot, Policy, serveDelegation,
} from '../../lib/index.js'
import { startTenantFixture, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Why these tests cannot run here (no BPF tokens, or no user namespaces), or undefined.
const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

const policy = Policy.from({ cmds: ['map_create'], maps: ['hash'] })

describe('BPF_TOKEN_CREATE', () => {
  skipAllIf(missing)
  test('refused in the initial user namespace (EOPNOTSUPP), even from a delegated bpffs', () => {
    using context = openBpffsContext()
    using mount = delegate({ cmds: 'any', maps: 'any' }, context)
    using root = openMountRoot(mount)
    let err: any
    try {
      BpfToken.create(root)
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ name: 'BpfError', code: 'EOPNOTSUPP', command: 'token_create' })
    expect(err.message).toMatch(/belongs to the initial user namespace; tokens are made in a user namespace/)
  })

  test('refused without delegate options (ENOENT)', async () => {
    const tenant = startTenantFixture('token-request')
    expect(await serveDelegation(tenant.socket, Policy.none())).toEqual(Policy.none())
    const r = await tenant.result
    expect(r).toMatchObject({ ok: false, code: 'ENOENT', command: 'token_create' })
    expect(r.message).toMatch(/has no delegate_\* options, so there is nothing to delegate/)
  })

  test('refused from another user namespace than the bpffs was made in (EPERM)', async () => {
    // The tenant makes the context; the manager configures it and then tries
    // to make a token from it itself.
    const tenant = startTenantFixture('delegation-request')
    const m = await tenant.socket.receive({ fds: 1 })
    const [context] = m!.fds
    try {
      using mount = delegate(policy, context)
      using root = openMountRoot(mount)
      let err: any
      try {
        BpfToken.create(root)
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'EPERM', command: 'token_create' })
      expect(err.message).toMatch(/belongs to another user namespace/)
    } finally {
      context.close()
      tenant.socket.close()
    }
    expect(await tenant.result).toMatchObject({ ok: false, name: 'ProtocolError' })
  })

  test('refused from a directory below the root (EINVAL), an O_PATH mount fd (EBADF), not bpffs (EINVAL)', async () => {
    const tenant = startTenantFixture('token-create-places')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    expect(r.below).toMatchObject({ ok: false, code: 'EINVAL', command: 'token_create' })
    expect(r.below.message).toMatch(/is not the root directory of a bpffs mount/)
    expect(r.opath).toMatchObject({ ok: false, code: 'EBADF' })
    expect(r.opath.message).toMatch(/is an O_PATH fd \(fsmount returns one\); open the mount's root first/)
    expect(r.proc).toMatchObject({ ok: false, code: 'EINVAL' })
    expect(r.missing).toMatchObject({ ok: false, code: 'ENOENT' })
    expect(r.missing.message).toMatch(/cannot open the bpffs at \/no\/such\/dir/)
    expect(r.root).toEqual({ ok: true })
    expect(r.rootFd).toEqual({ ok: true })
  })

  test('refused without CAP_BPF in the user namespace (EPERM)', async () => {
    const tenant = startTenantFixture('token-without-cap-bpf')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    expect(r).toMatchObject({ ok: false, code: 'EPERM' })
    expect(r.message).toMatch(/the caller lacks CAP_BPF in its user namespace/)
  })
})

describe('a tenant cannot delegate to itself', () => {
  skipAllIf(missing)
  test('delegate_* options on its own context are EPERM, for every kind', async () => {
    const tenant = startTenantFixture('delegate-to-self')
    const r = await tenant.result
    for (const kind of ['cmds', 'maps', 'progs', 'attachs']) {
      expect(r[kind]).toMatchObject({ ok: false, code: 'EPERM', name: 'SyscallError' })
      expect(r[kind].message).toMatch(/^fsconfig: EPERM: /)
      expect(r[kind].message).toMatch(new RegExp(`setting delegate_${kind}=any on the tenant's bpffs: delegate_\\* options need CAP_SYS_ADMIN in the initial user namespace`))
    }
  })

  test('nor widen a delegated mount by reconfiguring it (fspick)', async () => {
    const tenant = startTenantFixture('widen-delegated-mount')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    for (const key of ['delegate_cmds', 'delegate_maps', 'delegate_progs', 'delegate_attachs']) {
      expect(r[key]).toMatchObject({ ok: false, code: 'EPERM' })
    }
    expect(r.after).toEqual(policy.toJSON())
  })
})
