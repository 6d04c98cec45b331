// A delegation carries its whole policy: the tenant's bpfkit refuses a
// program its grant's capabilities do not allow, before the kernel is asked.
import { describe, expect, test } from 'vitest'
import { Policy, serveDelegation, features } from '../../lib/index.js'
import { startTenantFixture, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

describe('a delegation with capabilities', () => {
  skipAllIf(missing)
  test('the tenant refuses a helper the grant does not allow, and loads one it does', async () => {
    const policy = Policy.from({
      cmds: ['prog_load'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'],
      capabilities: { rand: { helpers: ['get_prandom_u32'] }, time: { helpers: ['ktime_get_ns'] } },
      contexts: [{ progs: ['socket_filter'], grant: ['rand'] }],
    })
    const tenant = startTenantFixture('token-capabilities')
    await serveDelegation(tenant.socket, policy)
    const r = await tenant.result
    expect(r.allowed).toEqual({ ok: true })
    expect(r.refused).toMatchObject({ ok: false, name: 'PolicyError', code: 'EPERM', rule: 'capabilities', requested: 'helper ktime_get_ns' })
    expect(r.refused.message).toMatch(/helper ktime_get_ns is not granted to socket_filter; capability sets that allow it: time/)
  })
})
