// Using a token: map creation, program loads and BTF loads are allowed
// exactly as the policy says and refused outside it, by type and by attach
// type. Each refusal is checked twice: bpfkit's PolicyError before any
// syscall, and the kernel's own EPERM when the same token is passed raw.
import { describe, expect, test } from 'vitest'
import { Policy, serveDelegation, features } from '../../lib/index.js'
import { native } from '../../lib/sys/index.js'
import { startTenant, userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// Why these tests cannot run here (no BPF tokens, or no user namespaces), or undefined.
const missing = requireFeature(features.haveBpfToken) ?? userNamespacesMissing()

// Raw program and BTF bytes made in the tenant with bpfkit's assembler.
const helpers = `
const { asm, kernel } = bpfkit
const ret = (v) => asm.assemble([asm.mov64Imm(asm.R0, v), asm.exit()])
const intBtf = () => {
  const strings = Buffer.from('\\0int\\0', 'latin1')
  const b = Buffer.alloc(24 + 16 + strings.length)
  b.writeUInt16LE(0xeb9f, 0); b.writeUInt8(1, 2); b.writeUInt32LE(24, 4)
  b.writeUInt32LE(0, 8); b.writeUInt32LE(16, 12); b.writeUInt32LE(16, 16); b.writeUInt32LE(strings.length, 20)
  b.writeUInt32LE(1, 24); b.writeUInt32LE(1 << 24, 28); b.writeUInt32LE(4, 32); b.writeUInt32LE((1 << 24) | 32, 36)
  strings.copy(b, 40)
  return b
}
// The kernel's answer to the same request with the token passed raw, no bpfkit check.
const rawMap = (type, token) => outcome(() => { native.closeFd(native.mapCreate({ mapType: kernel.mapTypes[type], keySize: 4, valueSize: 8, maxEntries: 4, tokenFd: token.fd })) })
const rawProg = (type, attach, token) => outcome(() => {
  const r = native.progLoadSync({ progType: kernel.progTypes[type], insns: ret(1), license: 'GPL', tokenFd: token.fd,
    ...(attach === undefined ? {} : { expectedAttachType: kernel.attachTypes[attach] }) })
  native.closeFd(r.fd)
})
const rawBtf = (token) => outcome(() => native.closeFd(native.btfLoadSync({ btf: intBtf(), tokenFd: token.fd }).fd))
`

describe('a token allows exactly its policy', () => {
  skipAllIf(missing)
  const policy = Policy.from({
    cmds: ['map_create', 'prog_load', 'btf_load'],
    maps: ['hash', 'percpu_array'],
    progs: ['socket_filter', 'cgroup_skb'],
    attachs: ['cgroup_inet_egress'],
  })

  test('map types: the kernel and bpfkit agree, map by map', async () => {
    const tenant = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      const out = {}
      for (const type of ['hash', 'array', 'percpu_hash', 'percpu_array', 'lru_hash', 'ringbuf']) {
        const opts = type === 'ringbuf' ? { type, maxEntries: 4096, token } : { type, keySize: 4, valueSize: 8, maxEntries: 4, token }
        out[type] = { bpfkit: outcome(() => bpfkit.BpfMap.create(opts)), kernel: type === 'ringbuf' ? undefined : rawMap(type, token) }
      }
      out.noToken = outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 }))
      token.close()
      report(out)
    `)
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
    const tenant = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      const load = (type, expectedAttachType) => outcome(() => bpfkit.BpfProgram.loadSync({
        type, insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL', token, ...(expectedAttachType ? { expectedAttachType } : {}) }))
      const cases = [
        ['cgroup_skb', 'cgroup_inet_egress'],
        ['cgroup_skb', 'cgroup_inet_ingress'],
        ['socket_filter', undefined],
        ['socket_filter', 'cgroup_inet_egress'],
        ['xdp', undefined],
      ]
      const out = {}
      for (const [type, attach] of cases) out[type + '/' + (attach ?? 'none')] = { bpfkit: load(type, attach), kernel: rawProg(type, attach, token) }
      token.close()
      report(out)
    `)
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
    const tenant = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      report({
        bpfkit: await outcomeAsync(() => bpfkit.Btf.load(intBtf(), { token })),
        kernel: rawBtf(token),
      })
      token.close()
    `)
    await serveDelegation(tenant.socket, policy)
    expect(await tenant.result).toEqual({ bpfkit: { ok: true }, kernel: { ok: true } })

    const without = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      report({
        bpfkit: await outcomeAsync(() => bpfkit.Btf.load(intBtf(), { token })),
        kernel: rawBtf(token),
      })
      token.close()
    `)
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
    const tenant = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      const btf = await bpfkit.Btf.load(intBtf(), { token })
      const id = btf.id
      const out = { delegated: outcome(() => bpfkit.Btf.fromId(id, { token })), noToken: outcome(() => bpfkit.Btf.fromId(id, { token: null })) }
      btf.close(); token.close()
      const narrow = await bpfkit.BpfToken.request(socket)
      const again = await bpfkit.Btf.load(intBtf(), { token: narrow })
      out.refused = outcome(() => bpfkit.Btf.fromId(again.id, { token: narrow }))
      out.kernel = outcome(() => native.closeFd(native.btfGetFdById(again.id, 0, narrow.fd)))
      again.close(); narrow.close()
      report(out)
    `)
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
    const tenant = startTenant(`${helpers}
      const token = await bpfkit.BpfToken.request(socket)
      const capless = withoutCaps(\`
        const token = bpfkit.BpfToken.fromFd(3)
        const insns = [bpfkit.asm.mov64Imm(bpfkit.asm.R0, 0), bpfkit.asm.exit()]
        console.log(json({
          map: outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, token })),
          prog: outcome(() => bpfkit.BpfProgram.loadSync({ type: 'socket_filter', insns, license: 'GPL', token })),
          policy: token.policy.toJSON(),
        }))
        token.close()\`, token.fd)
      report({
        capless,
        noToken: outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })),
        both: outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, token })),
      })
      token.close()
    `)
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
    const tenant = startTenant(`
      const token = await bpfkit.BpfToken.request(socket)
      bpfkit.setDefaultToken(token)
      const m = (extra) => outcome(() => bpfkit.BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, ...extra }))
      report({ byDefault: m({}), optedOut: m({ token: null }), refused: m({ type: 'array' }) })
      bpfkit.setDefaultToken(undefined)
      token.close()
    `)
    await serveDelegation(tenant.socket, { cmds: ['map_create'], maps: ['hash'] })
    const r = await tenant.result
    expect(r.byDefault).toEqual({ ok: true })
    expect(r.optedOut).toMatchObject({ ok: false, code: 'EPERM', name: 'BpfError' })
    expect(r.refused).toMatchObject({ ok: false, name: 'PolicyError', requested: 'array' })
  })
})
