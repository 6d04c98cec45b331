// Discovery (lib/broker/discovery.ts) against real processes, pins and links:
// two scratch tenants, each a cgroup of the test's own with a process in it
// that holds a map the test handed it (`sleep` with the map as fd 3), a
// bpffs of its own mounted in its own mount namespace (the tenant sees it
// at /sys/fs/bpf; the test pins into it through /proc/PID/root), and a
// cgroup link on its cgroup. Each tenant discovers exactly its own objects.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmdirSync, symlinkSync, writeFileSync, existsSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfMap, BpfProgram, FdSocket } from '../../lib/index.js'
import { peerPidfd } from '../../lib/ipc/index.js'
import type { PolicyDocument } from '../../lib/policy/index.js'
import { resolveTenant, type ResolvedTenant } from '../../lib/broker/config.js'
import { cgroupLinks, discover, DiscoveryCache, nestedCgroups, pinWalkLimits, type Discovered } from '../../lib/broker/discovery.js'
import { bpfFdsOf, cgroup2Root, cgroupPathOf, nsInode, pidsInUserns, tasksIn } from '../../lib/broker/procfs.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'
import { fdTable, opened } from './helpers/fds.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { repoRoot } from './helpers/raw.js'

const policy: PolicyDocument = { cmds: ['map_create'], maps: ['hash'] }

const hashMap = (name: string) => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 4, name })
const ingress = () => BpfProgram.load({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL', name: 'disc_ingress' })

/** Resolves when `child` has started (its pid is usable). */
function started(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
}

/** Waits until `check` holds (a child's namespaces or mounts take a moment to appear). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
}

interface ScratchTenant {
  name: string
  cgroupDir: string
  /** A process in the tenant's cgroup and own mount namespace, holding `held` as its fd 3, with a bpffs at /sys/fs/bpf. */
  holder: ChildProcess
  held: BpfMap
  pinned: BpfMap
  pinnedDeep: BpfMap
  link: BpfLink
  innerLink: BpfLink
  tenant: ResolvedTenant
}

const idsOf = (d: Discovered, kind: string) => new Set([...d.held, ...d.pinned.keys(), ...d.cgroup].filter((r) => r.startsWith(`${kind}:`)))
const all = (d: Discovered) => new Set([...d.held, ...d.pinned.keys(), ...d.cgroup])

describe('discover', () => {
  skipAllIf(userNamespacesMissing())
  let scratch: ReturnType<typeof childCgroup>
  let outside: ReturnType<typeof privateBpffs>
  let outsidePin: BpfMap
  let prog: BpfProgram
  const tenants: ScratchTenant[] = []

  beforeAll(async () => {
    scratch = childCgroup()
    // A bpffs in the host's mount namespace with a pin of its own: tenant
    // a's bpffs gets a symlink to it, which discovery must not follow.
    outside = privateBpffs()
    outsidePin = hashMap('disc_outside')
    outsidePin.pin(join(outside.path, 'foreign'))
    prog = await ingress()
    for (const name of ['a', 'b']) {
      const cgroupDir = join(scratch.path, name)
      mkdirSync(cgroupDir)
      mkdirSync(join(cgroupDir, 'inner'))
      const held = hashMap(`disc_held_${name}`)
      // The holder joins the cgroup itself, before anything else, then gets
      // its own mount namespace with a fresh bpffs at /sys/fs/bpf (private:
      // the host's /sys/fs/bpf is untouched), then waits.
      const holder = spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec unshare --mount --propagation private sh -c "mount -t bpf bpf /sys/fs/bpf && exec sleep 600"', cgroupDir], {
        stdio: ['ignore', 'ignore', 'inherit', held.fd],
      })
      await started(holder)
      const pid = holder.pid!
      // `sleep` is the same pid (exec all the way down) in the tenant's own mount namespace.
      await until(() => {
        try {
          return nsInode(pid, 'mnt') !== nsInode('self', 'mnt') && existsSync(`/proc/${pid}/root/sys/fs/bpf`) &&
            statSync(`/proc/${pid}/root/sys/fs/bpf`).dev !== statSync('/sys/fs/bpf').dev && cgroupPathOf(pid).endsWith(`/${name}`)
        } catch {
          return false
        }
      }, `tenant ${name}'s holder`)
      const bpffs = `/proc/${pid}/root/sys/fs/bpf`
      const pinned = hashMap(`disc_pin_${name}`)
      pinned.pin(join(bpffs, 'top'))
      mkdirSync(join(bpffs, 'dir'))
      mkdirSync(join(bpffs, 'dir', 'deeper'))
      const pinnedDeep = hashMap(`disc_deep_${name}`)
      pinnedDeep.pin(join(bpffs, 'dir', 'deeper', 'deep'))
      // The same object twice: both paths are listed.
      pinnedDeep.pin(join(bpffs, 'dir', 'again'))
      const link = BpfLink.attachCgroup(cgroupDir, prog, 'cgroup_inet_ingress')
      const innerLink = BpfLink.attachCgroup(join(cgroupDir, 'inner'), prog, 'cgroup_inet_ingress')
      const tenant = resolveTenant({ name, match: { cgroup: `/${basename(scratch.path)}/${name}` }, policy, bpffs: '/sys/fs/bpf' }, cgroup2Root())
      tenants.push({ name, cgroupDir, holder, held, pinned, pinnedDeep, link, innerLink, tenant })
    }
    const a = tenants[0]
    // In a's bpffs: an absolute symlink to the foreign pin (which a's mount
    // namespace, copied from the host's, can see), a relative one climbing
    // out, and one to a's own pin.
    const aFs = `/proc/${a.holder.pid}/root/sys/fs/bpf`
    symlinkSync(join(outside.path, 'foreign'), join(aFs, 'evil'))
    symlinkSync(`../../..${join(outside.path, 'foreign')}`, join(aFs, 'evil-relative'))
    symlinkSync('top', join(aFs, 'alias'))
    symlinkSync(outside.path, join(aFs, 'dir', 'evil-dir'))
    // The test's own fds now go: only the tenants' processes and pins keep the objects.
    for (const t of tenants) t.held.close()
  })

  afterAll(async () => {
    for (const t of tenants) {
      t.holder.kill('SIGKILL')
      await exited(t.holder)
      t.link.close()
      t.innerLink.close()
      t.pinned.close()
      t.pinnedDeep.close()
      t.held.close()
      rmdirSync(join(t.cgroupDir, 'inner'))
      rmdirSync(t.cgroupDir)
    }
    prog?.close()
    outsidePin?.close()
    outside?.[Symbol.dispose]()
    scratch?.[Symbol.dispose]()
  })

  test('procfs: the holder is in its cgroup and holds its map', () => {
    const [a] = tenants
    expect(tasksIn(a.cgroupDir)).toEqual([a.holder.pid])
    expect(tasksIn(scratch.path)).toEqual(tenants.map((t) => t.holder.pid!).sort((x, y) => x - y))
    expect(bpfFdsOf(a.holder.pid!)).toEqual([{ fd: 3, kind: 'map', id: expect.any(Number) }])
  })

  test('held, pinned (as the tenant sees them) and cgroup links, each tenant its own', () => {
    for (const t of tenants) {
      const before = fdTable()
      const d = discover(t.tenant)
      expect(opened(before, fdTable())).toEqual([])
      const heldId = bpfFdsOf(t.holder.pid!)[0].id
      expect(d.held).toEqual(new Set([`map:${heldId}`]))
      expect(d.pinned).toEqual(new Map([
        [`map:${t.pinned.id}`, ['/sys/fs/bpf/top']],
        [`map:${t.pinnedDeep.id}`, ['/sys/fs/bpf/dir/again', '/sys/fs/bpf/dir/deeper/deep']],
      ]))
      expect(d.cgroup).toEqual(new Set([`link:${t.link.id}`, `link:${t.innerLink.id}`]))
      expect(d.at).toBeGreaterThan(Date.now() - 10_000)
    }
    const [a, b] = tenants.map((t) => discover(t.tenant))
    // Nothing of one tenant's is the other's.
    expect([...all(a)].filter((r) => all(b).has(r))).toEqual([])
  })

  test('a tenant nested in another\'s cgroup keeps its tasks and links: the outer tenant\'s pass leaves its subtree out', () => {
    const [a, b] = tenants
    const outer = resolveTenant({ name: 'outer', match: { cgroup: `/${basename(scratch.path)}` }, policy }, cgroup2Root())
    const heldOf = (t: ScratchTenant) => `map:${bpfFdsOf(t.holder.pid!)[0].id}`
    // Alone, the outer tenant's subtree holds both a's and b's tasks and links.
    const alone = discover(outer)
    expect(alone.held).toEqual(new Set([heldOf(a), heldOf(b)]))
    expect(alone.cgroup).toEqual(new Set([a.link, a.innerLink, b.link, b.innerLink].map((l) => `link:${l.id}`)))
    expect(nestedCgroups(outer, [outer, a.tenant, b.tenant])).toEqual(new Set([a.tenant.match.cgroup!.id, b.tenant.match.cgroup!.id]))
    expect(nestedCgroups(a.tenant, [outer, a.tenant, b.tenant])).toEqual(new Set())
    // With a configured too, a's cgroup (and the inner one below it) is a's alone.
    const withA = discover(outer, undefined, { nested: nestedCgroups(outer, [outer, a.tenant]) })
    expect(withA.held).toEqual(new Set([heldOf(b)]))
    expect(withA.cgroup).toEqual(new Set([b.link, b.innerLink].map((l) => `link:${l.id}`)))
    // The cache asks the tenant list it was given.
    const cache = new DiscoveryCache(0, { tenants: () => [outer, a.tenant, b.tenant] })
    const both = cache.get(outer)
    expect(both.held.size + both.cgroup.size).toBe(0)
    expect(cache.get(a.tenant).held).toEqual(new Set([heldOf(a)]))
  })

  test('symlinks in the tenant bpffs are not followed: a pin outside it is never listed', () => {
    const d = discover(tenants[0].tenant)
    expect(d.pinned.has(`map:${outsidePin.id}`)).toBe(false)
    expect([...d.pinned.values()].flat().some((p) => /evil|alias/.test(p))).toBe(false)
    expect(idsOf(d, 'map').has(`map:${outsidePin.id}`)).toBe(false)
  })

  test('a hint: the peer pid picks the root; a pid of another tenant is refused as root', () => {
    const [a, b] = tenants
    expect(discover(a.tenant, { pid: a.holder.pid! }).pinned.size).toBe(2)
    // b's pid as a hint for a (without a pidfd): not a's process, so a's own task is used instead.
    const d = discover(a.tenant, { pid: b.holder.pid! })
    expect(d.pinned.has(`map:${b.pinned.id}`)).toBe(false)
    expect(d.pinned.has(`map:${a.pinned.id}`)).toBe(true)
  })

  test('a hint with a pidfd of another process than its pid is refused as root', (ctx) => {
    const why = requireFeature(havePeerPidfd)
    if (why !== undefined) ctx.skip(why)
    const [a, b] = tenants
    // A live pidfd of some other process (this one: a socketpair's peer is
    // its maker) proves nothing about b's pid.
    const [mine, theirs] = FdSocket.pair()
    try {
      using own = peerPidfd(mine)
      const e = discover(a.tenant, { pid: b.holder.pid!, pidfd: own })
      expect(e.pinned.has(`map:${b.pinned.id}`)).toBe(false)
      expect(e.pinned.has(`map:${a.pinned.id}`)).toBe(true)
    } finally {
      mine.close()
      theirs.close()
    }
  })

  test('a tenant matched by user namespace: its tasks are the namespace\'s processes', async () => {
    using map = hashMap('disc_userns')
    const child = spawn('unshare', ['--user', 'sleep', '600'], { stdio: ['ignore', 'ignore', 'inherit', map.fd] })
    try {
      await started(child)
      await until(() => {
        try {
          return nsInode(child.pid!, 'user') !== nsInode('self', 'user')
        } catch {
          return false
        }
      }, 'the child\'s user namespace')
      const ino = nsInode(child.pid!, 'user')
      expect(pidsInUserns(ino)).toEqual([child.pid])
      const t = resolveTenant({ name: 'ns', match: { userns: ino }, policy: { cmds: ['map_create'] } }, cgroup2Root())
      const d = discover(t)
      expect(d.held).toEqual(new Set([`map:${map.id}`]))
      expect(d.cgroup.size).toBe(0)
      // Matched by uid only: no tasks to look at (documented), so nothing held.
      expect(discover(resolveTenant({ name: 'uid', match: { uid: [0] }, policy: { cmds: ['map_create'] } }, cgroup2Root())).held.size).toBe(0)
    } finally {
      child.kill('SIGKILL')
      await exited(child)
    }
  })

  test('a map a tenant process made itself is held by it', async () => {
    const [a, b] = tenants
    // A node child that joins a's cgroup, then creates a map with the package and prints its id.
    const script = `const { BpfMap } = require(${JSON.stringify(join(repoRoot, 'dist', 'index.js'))})
const m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'disc_own' })
process.stdout.write(m.id + '\\n')
process.stdin.on('end', () => process.exit(0)); process.stdin.resume()`
    const child = spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$1" -e "$2"', a.cgroupDir, process.execPath, script], { stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      const id = await new Promise<number>((resolve, reject) => {
        let out = ''
        child.stdout!.on('data', (d) => {
          out += d
          if (out.includes('\n')) resolve(Number(out.trim()))
        })
        child.once('exit', (code) => reject(new Error(`child exited (${code})`)))
      })
      expect(id).toBeGreaterThan(0)
      expect(discover(a.tenant).held.has(`map:${id}`)).toBe(true)
      expect(all(discover(b.tenant)).has(`map:${id}`)).toBe(false)
    } finally {
      child.stdin!.end()
      await exited(child)
    }
  })

  test('vanished pids are skipped', async () => {
    const [a] = tenants
    // A process that joins a's cgroup, holds a map, and is killed: discovery goes on without it.
    using map = hashMap('disc_gone')
    const child = spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec sleep 600', join(a.cgroupDir, 'inner')], { stdio: ['ignore', 'ignore', 'inherit', map.fd] })
    await started(child)
    await until(() => tasksIn(a.cgroupDir).includes(child.pid!) && bpfFdsOf(child.pid!).length === 1, 'the second holder')
    expect(discover(a.tenant).held.has(`map:${map.id}`)).toBe(true)
    child.kill('SIGKILL')
    await exited(child)
    expect(bpfFdsOf(child.pid!)).toEqual([])
    expect(() => cgroupPathOf(child.pid!)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    const d = discover(a.tenant)
    expect(d.held.has(`map:${map.id}`)).toBe(false)
    expect(d.held.size).toBe(1)
  })

  test('cgroupLinks: every cgroup link by cgroup id', () => {
    const [a] = tenants
    const byCgroup = cgroupLinks()
    expect(byCgroup.get(statSync(a.cgroupDir, { bigint: true }).ino)).toEqual([a.link.id])
  })

  test('DiscoveryCache: kept for the TTL, fresh on demand, invalidated by name', () => {
    const [a] = tenants
    const cache = new DiscoveryCache(60_000)
    const first = cache.get(a.tenant)
    expect(cache.get(a.tenant)).toBe(first)
    const fresh = cache.get(a.tenant, undefined, { fresh: true })
    expect(fresh).not.toBe(first)
    expect(fresh).toEqual({ ...first, at: fresh.at })
    cache.invalidate('a')
    expect(cache.get(a.tenant)).not.toBe(fresh)
    // The same name resolved again is another tenant object: discovered afresh.
    const again = resolveTenant(a.tenant.source, cgroup2Root())
    expect(cache.get(again)).not.toBe(cache.get(a.tenant))
    expect(new DiscoveryCache(0).get(a.tenant)).toEqual(expect.objectContaining({ held: first.held }))
    expect(() => new DiscoveryCache(-1)).toThrow(RangeError)
  })

  test('the tenant pin directory of the broker is walked as the host sees it', () => {
    using fs = privateBpffs()
    const [a] = tenants
    mkdirSync(join(fs.path, 'a'))
    using map = hashMap('disc_tpin')
    map.pin(join(fs.path, 'a', 'mine'))
    symlinkSync(join(outside.path, 'foreign'), join(fs.path, 'a', 'evil'))
    const cache = new DiscoveryCache(0, { tenantPinRoot: fs.path })
    const d = cache.get(a.tenant)
    expect(d.pinned.get(`map:${map.id}`)).toEqual([join(fs.path, 'a', 'mine')])
    expect(d.pinned.has(`map:${outsidePin.id}`)).toBe(false)
    expect(discover(a.tenant, undefined, { pinDir: join(fs.path, 'missing') }).pinned.size).toBe(2)
  })

  test('a pin walk has bounds: 8 levels of directories, 10 000 entries', () => {
    using fs = privateBpffs()
    const [a] = tenants
    using map = hashMap('disc_bounds')
    const dir = join(fs.path, 'a')
    // Seven directories deep is still walked; eight is not.
    let deep = dir
    for (let i = 1; i <= 8; i++) {
      deep = join(deep, `d${i}`)
      mkdirSync(deep, { recursive: true })
      if (i === 7) map.pin(join(deep, 'seven'))
    }
    map.pin(join(deep, 'eight'))
    expect(pinWalkLimits).toEqual({ depth: 8, entries: 10_000 })
    expect(discover(a.tenant, undefined, { pinDir: dir }).pinned.get(`map:${map.id}`)).toEqual([join(dir, 'd1/d2/d3/d4/d5/d6/d7/seven')])
    // 10 000 more pins: 10 001 paths in all, 10 010 entries with the directories. Which
    // are left out depends on readdir's order; never more than the budget is looked at.
    for (let i = 0; i < pinWalkLimits.entries; i++) map.pin(join(dir, `p${String(i).padStart(5, '0')}`))
    const before = fdTable()
    const paths = discover(a.tenant, undefined, { pinDir: dir }).pinned.get(`map:${map.id}`)!
    expect(opened(before, fdTable())).toEqual([])
    expect(paths.length).toBeLessThanOrEqual(pinWalkLimits.entries)
    expect(paths.length).toBeGreaterThanOrEqual(pinWalkLimits.entries - 9)
  })
})
