// Collection.attach: programs attached by their section names as a libbpf
// skeleton does, targets for the hooks a section cannot name, skips with a
// reason, links closed with the collection, and nothing left attached after
// a failure.
import { spawnSync } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { attachFreplace, features, ids } from '../../lib/index.js'
import { fixtureSpec, packet } from './helpers/collection.js'
import { tenantFixture } from './helpers/raw.js'
import { childCgroup, privateNetns } from './helpers/scratch.js'
import { requireFeature, skipUnless } from './helpers/requires.js'

async function loaded() {
  const spec = fixtureSpec('attach-auto')
  spec.variables.target_tgid.set(process.pid)
  return spec.load()
}

const linkIds = () => new Set([...ids.links()].map((l) => l.id))
const slot = (coll: Awaited<ReturnType<typeof loaded>>, n: number) => coll.maps.hits.get(n) as bigint

function sendFromCgroup(cgroup: string): void {
  const r = spawnSync(process.execPath, [tenantFixture('cgroup-sender')], { env: { ...process.env, CG: cgroup }, encoding: 'utf8', timeout: 20_000 })
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`)
}

describe('Collection.attach', () => {
  test('attaches by section and to the targets given, skips the rest with reasons; close detaches', async () => {
    using cg = childCgroup()
    const before = linkIds()
    const coll = await loaded()
    try {
      const links = await coll.attach({ cgroup: cg.path, programs: ['on_enter', 'on_egress', 'on_xdp', 'on_socket'] })
      expect(Object.keys(links.links).sort()).toEqual(['on_egress', 'on_enter'])
      expect(links.links.on_enter.info()).toMatchObject({ type: 'raw_tracepoint', tracepoint: 'sys_enter', progId: coll.programs.on_enter.id })
      expect(links.links.on_egress.info()).toMatchObject({ type: 'cgroup', attachType: 'cgroup_inet_egress' })
      expect(links.skipped).toEqual({
        on_xdp: 'an xdp program needs an interface: give targets.xdp',
        on_socket: 'a socket filter needs a socket: BpfLink.attachSocketFilter',
      })
      const enters = slot(coll, 0)
      closeSync(openSync('/dev/null', 'r'))
      expect(slot(coll, 0)).toBeGreaterThan(enters)
      sendFromCgroup(cg.path)
      expect(slot(coll, 1)).toBeGreaterThan(0n)
      const made = [...linkIds()].filter((id) => !before.has(id))
      expect(made).toHaveLength(2)
    } finally {
      coll.close()
    }
    expect([...linkIds()].filter((id) => !before.has(id))).toEqual([])
  })

  test('an xdp program goes to the interface given, in its namespace', async () => {
    using ns = privateNetns()
    using coll = await loaded()
    const links = await coll.attach({ xdp: { iface: 'veth0', netns: ns.path }, programs: ['on_xdp'] })
    expect(links.links.on_xdp.info()).toMatchObject({ type: 'xdp', ifindex: ns.ifindex('veth0'), progId: coll.programs.on_xdp.id })
    await expect(coll.attach({ xdp: { iface: 'veth0', nets: ns.path } as never, programs: ['on_xdp'] })).rejects.toThrow(TypeError)
  })

  test('a kprobe section attaches by itself where the kernel has kprobes', async (ctx) => {
    const why = requireFeature(features.haveKprobes)
    if (why) return ctx.skip(why)
    using coll = await loaded()
    const links = await coll.attach({ programs: ['on_kprobe'] })
    expect(links.links.on_kprobe.info().type).toBe('perf_event')
    closeSync(openSync('/dev/null', 'r'))
    expect(slot(coll, 2)).toBeGreaterThan(0n)
    links.close()
    const after = slot(coll, 2)
    closeSync(openSync('/dev/null', 'r'))
    expect(slot(coll, 2)).toBe(after)
  })

  test('a failing attach closes the links already made and names the program', async () => {
    const before = linkIds()
    using coll = await loaded()
    await expect(coll.attach({ cgroup: '/nonexistent-bpfkit-cgroup', programs: ['on_enter', 'on_egress'] })).rejects.toThrow(/attach: program 'on_egress': .*ENOENT|no such file/i)
    expect([...linkIds()].filter((id) => !before.has(id))).toEqual([])
  })

  test('bad targets are TypeErrors and attach nothing', async () => {
    const before = linkIds()
    using coll = await loaded()
    await expect(coll.attach({ cgroups: '/x' } as never)).rejects.toThrow(TypeError)
    await expect(coll.attach({ programs: ['nope'] })).rejects.toThrow(/'nope' is not a loaded program of the collection/)
    await expect(coll.attach({ programs: 'on_enter' } as never)).rejects.toThrow(TypeError)
    // A target no selected program needs is not looked at.
    await expect(coll.attach({ sockmap: 'nope', programs: [] })).resolves.toMatchObject({ links: {}, skipped: {} })
    expect([...linkIds()].filter((id) => !before.has(id))).toEqual([])
  })
})

describe('freplace programs in a collection (attachTargets)', () => {
  const tracing = (programs: string[], options: Parameters<ReturnType<typeof fixtureSpec>['load']>[0] = {}) => {
    const spec = fixtureSpec('attach-tracing')
    spec.variables.target_tgid.set(process.pid)
    return spec.load({ programs, ...options })
  }

  test('a freplace program loads against the target given and replaces its function until closed', async (ctx) => {
    skipUnless(ctx, features.haveTrampolines)
    using targets = await tracing(['freplace_target'])
    const target = targets.programs.freplace_target
    const run = async () => (await target.testRun({ data: packet })).retval
    using coll = await tracing(['new_decide'], { attachTargets: { new_decide: { program: target } } })
    expect(await run()).toBe(2) // XDP_PASS from decide()
    const links = await coll.attach()
    expect(links.skipped).toEqual({ new_decide: 'a freplace program needs its target program: attachFreplace' })
    using link = attachFreplace(coll.programs.new_decide)
    expect(await run()).toBe(1) // XDP_DROP from new_decide()
    link.close()
    expect(await run()).toBe(2)
  })

  test('bad targets are TypeErrors before anything is loaded', async () => {
    using targets = await tracing(['on_sys_enter'])
    const program = targets.programs.on_sys_enter
    await expect(tracing(['new_decide'])).rejects.toThrow(/'new_decide' is a freplace program: give the program it replaces a function of in attachTargets.new_decide/)
    await expect(tracing(['on_sys_enter'], { attachTargets: { on_sys_enter: { program } } })).rejects.toThrow(/only freplace programs take a target program/)
    await expect(tracing(['new_decide'], { attachTargets: { nope: { program } } })).rejects.toThrow(/'nope', which is not a program being loaded/)
    await expect(tracing(['new_decide'], { attachTargets: { new_decide: { program, fn: 'x' } as never } })).rejects.toThrow(TypeError)
    await expect(tracing(['new_decide'], { attachTargets: { new_decide: { program, function: 'no_such_function' } } })).rejects.toThrow(/no function 'no_such_function'|without BTF/)
  })
})
