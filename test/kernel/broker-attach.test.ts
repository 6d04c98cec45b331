// The broker's attach, detach, pin, unpin, delegate and list_all, with
// tenants that are real peers (test/kernel/helpers/broker.ts): each a child
// process in its own user namespace and scratch cgroup, whose connections the
// test talks on. The broker runs in this process; a connection from the test
// process itself is the admin's.
import { closeSync, mkdirSync, mkdtempSync, openSync, rmdirSync, statSync } from 'node:fs'
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfMap, BpfProgram, Policy } from '../../lib/index.js'
import type { Broker } from '../../lib/broker/server.js'
import { BrokerClient } from '../../lib/broker/client.js'
import type { PolicyLike } from '../../lib/policy/index.js'
import { havePeerPidfd } from '../../lib/features/misc.js'
import { kernel } from '../../lib/sys/index.js'
import { privateNetns } from './helpers/scratch.js'
import { attachedTo, passIngress, startTestBroker, type TestBroker } from './helpers/broker.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const policy: PolicyLike = {
  cmds: ['map_create', 'prog_load'],
  maps: ['hash', 'array'],
  progs: ['cgroup_skb', 'socket_filter'],
  attachs: ['cgroup_inet_ingress', 'cgroup_inet_egress'],
}

const repoRoot = join(__dirname, '..', '..')
const execFileAsync = promisify(execFile)

const netPolicy: PolicyLike = { cmds: ['prog_load'], progs: ['xdp', 'sched_cls'], attachs: ['xdp', 'tcx_ingress'] }



describe('broker: attach, detach, pins, list_all', () => {
  const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()
  skipAllIf(why)

  let tb: TestBroker
  let broker: Broker
  let dirA: string
  let dirB: string
  let dirN: string
  let a: BrokerClient
  let b: BrokerClient
  let admin: BrokerClient

  beforeAll(async () => {
    if (why !== undefined) return
    tb = await startTestBroker({
      tenants: [
        { name: 'a', policy, attach: { cgroup: true, netdev: false }, quota: { pins: 3 } },
        { name: 'b', policy, attach: { cgroup: true, netdev: false } },
        // Network devices only, in the namespace of its connecting process;
        // matched by cgroup alone, so that the CLI run in its cgroup (in the
        // initial user namespace) is this tenant too.
        { name: 'n', policy: netPolicy, attach: { cgroup: false, netdev: true }, matchUserns: false },
      ],
    })
    broker = tb.broker
    ;[dirA, dirB, dirN] = ['a', 'b', 'n'].map((n) => tb.tenant(n).cgroupDir)
    for (const d of [join(dirA, 'child'), join(dirB, 'child')]) mkdirSync(d)
    a = await tb.tenant('a').client()
    b = await tb.tenant('b').client()
    admin = await BrokerClient.connect(tb.socketPath, { timeoutMs: 10_000 })
  })

  afterAll(async () => {
    for (const c of [a, b, admin]) c?.close()
    for (const d of [dirA, dirB]) {
      try {
        if (d) rmdirSync(join(d, 'child'))
      } catch {
        // not made
      }
    }
    await tb?.close()
  })

  test('each client is its tenant, the third is the admin', () => {
    expect([a.tenant, b.tenant, admin.tenant, admin.admin]).toEqual(['a', 'b', null, true])
  })

  test('a tenant attaches its program to a cgroup of its own subtree, and detaches it', async () => {
    using prog = await a.loadProgram(passIngress('a_pass'))
    using link = await a.attach(prog, 'cgroup_inet_ingress', { cgroup: 'child' })
    const info = link.info()
    expect(info).toMatchObject({ type: 'cgroup', progId: prog.id, cgroupId: BigInt(statSync(join(dirA, 'child')).ino) })
    expect(attachedTo(join(dirA, 'child'))).toEqual([prog.id])
    expect((await a.list({ kinds: ['link'] })).map((o) => [o.id, o.origin])).toContainEqual([link.id, 'made'])
    // The tenant's own client fd closed would not detach it: the broker holds the link (pinned).
    await a.detach(link)
    expect(attachedTo(join(dirA, 'child'))).toEqual([])
    expect((await a.list({ kinds: ['link'] })).map((o) => o.id)).not.toContain(link.id)
    await a.release('prog', prog.id)
  })

  test('the tenant\'s own cgroup ("" or "/") is a target too; nothing outside it is', async () => {
    using prog = await a.loadProgram(passIngress('a_own'))
    using own = await a.attach(prog, 'cgroup_inet_ingress', { cgroup: '/' })
    expect(own.info().cgroupId).toBe(BigInt(statSync(dirA).ino))
    await a.detach(own)
    for (const path of ['../b', 'child/../../b', '../../', '..', `/..${tb.tenant('b').cgroupPath}`]) {
      await expect(a.attach(prog, 'cgroup_inet_ingress', { cgroup: path }), path).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.cgroup' })
    }
    // Absolute paths are the tenant's own tree: this one is not in it.
    for (const path of ['nonesuch', '/proc/self/ns/net']) {
      await expect(a.attach(prog, 'cgroup_inet_ingress', { cgroup: path }), path).rejects.toMatchObject({ code: 'ENOENT', message: `no cgroup '${path}' below your cgroup` })
    }
    expect(attachedTo(dirB)).toEqual([])
    await a.release('prog', prog.id)
  })

  test('a mount crossing into another tenant\'s cgroup is refused (cgroupfs has no symlinks: a bind mount is the way across)', async () => {
    // cgroup2 refuses symlink(2) (EPERM), so a bind mount of b's cgroup inside
    // a's subtree stands for the "link that leads elsewhere" case.
    const door = join(dirA, 'door')
    mkdirSync(door)
    execFileSync('mount', ['--bind', dirB, door])
    try {
      using prog = await a.loadProgram(passIngress('a_door'))
      await expect(a.attach(prog, 'cgroup_inet_ingress', { cgroup: 'door' })).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.cgroup' })
      await expect(a.attach(prog, 'cgroup_inet_ingress', { cgroup: 'door/child' })).rejects.toMatchObject({ code: 'EPERM' })
      expect(attachedTo(dirB)).toEqual([])
      await a.release('prog', prog.id)
    } finally {
      execFileSync('umount', [door])
      rmdirSync(door)
    }
  })

  test('another tenant\'s program id is not in the view: ENOENT, the same as an id that does not exist', async () => {
    using progB = await b.loadProgram(passIngress('b_prog'))
    await expect(a.attach(progB.id, 'cgroup_inet_ingress', { cgroup: 'child' })).rejects.toMatchObject({ code: 'ENOENT', message: `no prog ${progB.id} in your view` })
    await expect(a.attach(0x7ffffff0, 'cgroup_inet_ingress', { cgroup: 'child' })).rejects.toMatchObject({ code: 'ENOENT', message: `no prog ${0x7ffffff0} in your view` })
    // Nor its links: b attaches, a cannot detach it.
    using linkB = await b.attach(progB, 'cgroup_inet_ingress', { cgroup: 'child' })
    await expect(a.detach(linkB.id)).rejects.toMatchObject({ code: 'ENOENT', message: `no link ${linkB.id} in your view` })
    expect(attachedTo(join(dirB, 'child'))).toEqual([progB.id])
    await b.detach(linkB)
    await b.release('prog', progB.id)
  })

  test('an attach type the policy does not delegate is refused before any attach', async () => {
    using prog = await a.loadProgram(passIngress('a_sock'))
    await expect(a.attach(prog, 'cgroup_inet_sock_create', { cgroup: 'child' })).rejects.toMatchObject({ code: 'EPERM', rule: 'delegate_attachs' })
    await expect(a.attach(prog, 'xdp', { ifname: 'lo', netdev: 'xdp' })).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.netdev' })
    await a.release('prog', prog.id)
  })

  test('pin and unpin round trip under the tenant\'s own prefix', async () => {
    using map = await a.createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'a_pinned' })
    const path = await a.pin('map', map.id, 'counts')
    expect(path).toBe(join(tb.tenantPinRoot, 'a', 'counts'))
    expect((await a.show('map', map.id)).pins).toContain('counts')
    // The pin holds the object itself.
    using again = BpfMap.fromPin(path)
    expect(again.id).toBe(map.id)
    await expect(a.pin('map', map.id, 'counts')).rejects.toMatchObject({ code: 'EEXIST' })
    await a.unpin('counts')
    expect(() => statSync(path)).toThrow()
    expect((await a.show('map', map.id)).pins).not.toContain('counts')
    await expect(a.unpin('counts')).rejects.toMatchObject({ code: 'ENOENT', message: 'no pin counts in your view' })
    await a.release('map', map.id)
  })

  test('pins of another tenant\'s object, bad names, and past the quota are refused', async () => {
    using mapB = await b.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'b_map' })
    await expect(a.pin('map', mapB.id, 'stolen')).rejects.toMatchObject({ code: 'ENOENT', message: `no map ${mapB.id} in your view` })
    using mapA = await a.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'a_map' })
    for (const name of ['x/y', '..', '.', 'a.b', '../b/evil', '', 'x'.repeat(65), '/abs']) {
      // Raw requests: the broker's own checks, not the client's.
      await expect(a.request('pin', { kind: 'map', id: mapA.id, name }), name).rejects.toMatchObject({ code: expect.stringMatching(/^(EINVAL|EPROTO)$/) })
      await expect(a.request('unpin', { name }), name).rejects.toMatchObject({ code: expect.stringMatching(/^(EINVAL|EPROTO)$/) })
    }
    // b's pin cannot be removed from a's side: a's names live in a's directory only.
    await b.pin('map', mapB.id, 'shared_name')
    await expect(a.unpin('shared_name')).rejects.toMatchObject({ code: 'ENOENT' })
    statSync(join(tb.tenantPinRoot, 'b', 'shared_name'))
    // Quota: a may hold 3 pins.
    for (const n of ['p1', 'p2', 'p3']) await a.pin('map', mapA.id, n)
    await expect(a.pin('map', mapA.id, 'p4')).rejects.toMatchObject({ code: 'EDQUOT' })
    for (const n of ['p1', 'p2', 'p3']) await a.unpin(n)
    await b.unpin('shared_name')
    await a.release('map', mapA.id)
    await b.release('map', mapB.id)
  })

  test('list_all shows every object with its owner; tenants and stats are the admin\'s', async () => {
    using progA = await a.loadProgram(passIngress('a_listed'))
    using linkA = await a.attach(progA, 'cgroup_inet_ingress', { cgroup: 'child' })
    using mapB = await b.createMap({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name: 'b_listed' })
    using mine = await BpfProgram.load(passIngress('nobodys'))
    const all = await admin.listAll()
    const owner = (kind: string, id: number) => all.find((o) => o.kind === kind && o.id === id)?.owner
    expect(owner('prog', progA.id)).toBe('a')
    expect(owner('link', linkA.id)).toBe('a')
    expect(owner('map', mapB.id)).toBe('b')
    expect(owner('prog', mine.id)).toBe('-')
    const progs = await admin.listAll({ kinds: ['prog'] })
    expect(progs.every((o) => o.kind === 'prog')).toBe(true)
    const tenants = await admin.tenants() as Array<{ name: string; match: { cgroup: string }; usage: Record<string, number> }>
    expect(tenants.map((t) => [t.name, t.match.cgroup])).toEqual(['a', 'b', 'n'].map((n) => [n, tb.tenant(n).cgroupPath]))
    expect(tenants[0].usage).toMatchObject({ progs: 1, links: 1, connections: 1 })
    expect(tenants[1].usage).toMatchObject({ maps: 1, bytes: 32 })
    const stats = await admin.stats()
    expect(stats.tenants).toBe(3)
    expect(stats.fds).toBeGreaterThan(0)
    // The server's own counters, not only the registry's: each request counts.
    expect(stats).toMatchObject({ accepted: expect.any(Number), refused: expect.any(Number), errors: expect.any(Number), 'connections.a': 1 })
    expect(stats.registered_progs).toBeGreaterThanOrEqual(1)
    const again = await admin.stats()
    expect(again.requests).toBeGreaterThan(stats.requests)
    for (const req of ['list_all', 'tenants', 'stats']) await expect(a.request(req, {})).rejects.toMatchObject({ code: 'EACCES' })
    await a.detach(linkA)
    await a.release('prog', progA.id)
    await b.release('map', mapB.id)
  })

  test('a network device is looked up and attached in the namespace of the tenant\'s process, not the broker\'s', async () => {
    // The tenant's connecting process is the CLI, run in a network namespace
    // of the test's own (ip netns exec) and in the tenant's cgroup; the
    // program is one the tenant loaded earlier from here.
    using ns = privateNetns()
    const n = await tb.tenant('n').client()
    try {
      using prog = await n.loadProgram({ type: 'xdp', expectedAttachType: 'xdp', name: 'n_pass', license: 'GPL', insns: [asm.mov64Imm(asm.R0, 2), asm.exit()] })
      // Into the cgroup first: `ip netns exec` remounts /sys, where cgroup2 is.
      // Asynchronously: the broker answering it runs on this event loop.
      const cli = async (...args: string[]) => JSON.parse((await execFileAsync('sh', ['-c', 'echo $$ > "$0" && exec ip netns exec "$@"', join(dirN, 'cgroup.procs'), ns.name,
        process.execPath, join(repoRoot, 'dist/cli/main.js'), '--broker', broker.socketPath, ...args, '--json'], { encoding: 'utf8', timeout: 20_000 })).stdout)
      const { link: id } = await cli('attach', String(prog.id), 'xdp', '--xdp', 'veth0')
      {
        using link = BpfLink.fromId(id)
        expect(link.info()).toMatchObject({ type: 'xdp', progId: prog.id, ifindex: ns.ifindex('veth0') })
      }
      expect((await n.list({ kinds: ['link'] })).map((o) => o.id)).toContain(id)
      // From this process, in the broker's (the host's) namespace, no device is the tenant's.
      await expect(n.attach(prog, 'xdp', { ifname: 'veth0', netdev: 'xdp' })).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.netdev' })
      await expect(n.attach(prog, 'xdp', { ifname: 'lo', netdev: 'xdp' })).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.netdev' })
      // In its namespace, a device that is not there.
      await expect(cli('attach', String(prog.id), 'xdp', '--xdp', 'bpfkit-none0')).rejects.toThrow(/ENODEV/)
      // The attach type must be the family's.
      await expect(n.attach(prog, 'tcx_ingress', { ifname: 'veth0', netdev: 'xdp' })).rejects.toMatchObject({ code: 'EINVAL' })
      // Cgroups are not this tenant's to attach to.
      await expect(n.attach(prog, 'xdp', { cgroup: '/' })).rejects.toMatchObject({ code: 'EPERM', rule: 'attach.cgroup' })
      await n.detach(id)
      expect(() => BpfLink.fromId(id)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
      await n.release('prog', prog.id)
    } finally {
      n.close()
    }
  })

  test('delegate: a bpffs mount for the tenant\'s policy, or the smaller one it asks for; more is refused', async () => {
    const at = mkdtempSync(join(tmpdir(), 'bpfkit-broker-delegated-'))
    try {
      const small = await a.requestDelegation({ policy: { cmds: ['map_create'], maps: ['hash'] }, mountAt: at })
      small.mount.close()
      try {
        expect(small.policy.toJSON()).toEqual({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] })
        // What the kernel was told: the mount's own delegate_* options.
        expect(Policy.fromMountinfo(at).toJSON()).toEqual(small.policy.toJSON())
      } finally {
        execFileSync('umount', [at])
      }
    } finally {
      rmdirSync(at)
    }
    const full = await a.requestDelegation()
    full.mount.close()
    expect(full.policy.equals(policy)).toBe(true)
    await expect(a.requestDelegation({ policy: { cmds: ['btf_load'] } })).rejects.toMatchObject({ code: 'EPERM', rule: 'delegation' })
    // Not a bpf filesystem context: a map, or a file.
    using map = await a.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'a_notctx' })
    await expect(a.request('delegate', {}, [map.fd])).rejects.toMatchObject({ code: 'EINVAL', message: expect.stringContaining('fds[0] is a BPF map') })
    const file = openSync('/dev/null', 'r')
    try {
      await expect(a.request('delegate', {}, [file])).rejects.toMatchObject({ code: 'EINVAL' })
    } finally {
      closeSync(file)
    }
    await a.release('map', map.id)
  })

  test('a released link is detached once nothing holds it', async () => {
    using prog = await a.loadProgram(passIngress('a_release'))
    const link = await a.attach(prog, 'cgroup_inet_ingress', { cgroup: 'child' })
    const id = link.id
    await a.release('link', id)
    link.close()
    expect(() => BpfLink.fromId(id)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(attachedTo(join(dirA, 'child'))).toEqual([])
    await a.release('prog', prog.id)
  })
})
