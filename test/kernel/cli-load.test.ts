// `bpfkit load`, through the real binary: a fixture object loaded, pinned
// under a private bpffs, attached by section to a cgroup the test made (and
// counting its packets there), refused by a policy with nothing loaded, and
// left with nothing behind when an attach fails.
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BpfMap, BpfProgram, ids } from '../../lib/index.js'
import { bpftool } from './helpers/bpftool.js'
import { fixture } from './helpers/collection.js'
import { repoRoot, tenantFixture } from './helpers/raw.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'

const cli = join(repoRoot, 'dist/cli/main.js')
const bpfkit = (...args: string[]) => spawnSync(process.execPath, [cli, 'load', ...args], { encoding: 'utf8' })
const counter = fixture('counter.bpf.o')
const attachAuto = fixture('attach-auto.bpf.o')
const programIds = () => new Set([...ids.programs()].map((p) => p.id))
const linkIds = () => new Set([...ids.links()].map((l) => l.id))

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-load-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('bpfkit load', () => {
  test('without --pin: loads, lists what it made, says it is released on exit; it is', () => {
    const r = bpfkit(counter, '--json')
    expect(r.status).toBe(0)
    const loaded = JSON.parse(r.stdout)
    expect(Object.keys(loaded.programs)).toEqual(['count_packets'])
    expect(loaded.maps.counts).toMatchObject({ type: 'array' })
    expect(loaded.programs.count_packets.pinned).toBeUndefined()
    expect(r.stderr).toMatch(/nothing pinned, so counter\.bpf\.o's objects are released as bpfkit exits/)
    expect(programIds().has(loaded.programs.count_packets.id)).toBe(false)
    const text = bpfkit(counter)
    expect(text.stdout).toMatch(/^map \d+: counts \(array\)\n/)
    expect(text.stdout).toMatch(/\nprog \d+: count_packets \(socket_filter\)\n$/)
  })

  test('--pin DIR: maps and programs pinned under DIR/maps and DIR/progs, dots made underscores; bpftool sees them there', (ctx) => {
    using fs = privateBpffs()
    const pin = join(fs.path, 'counter')
    const r = bpfkit(counter, '--pin', pin, '--json')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    const loaded = JSON.parse(r.stdout)
    expect(readdirSync(join(pin, 'maps')).sort()).toEqual(['_bss', '_rodata', 'counts'])
    expect(loaded.maps['.rodata'].pinned).toBe(join(pin, 'maps', '_rodata'))
    using prog = BpfProgram.fromPin(join(pin, 'progs', 'count_packets'))
    expect(prog.id).toBe(loaded.programs.count_packets.id)
    using map = BpfMap.fromPin(join(pin, 'maps', 'counts'))
    expect(map.id).toBe(loaded.maps.counts.id)
    // Pinned again at the same place: EEXIST, exit 1, the first pins untouched.
    const again = bpfkit(counter, '--pin', pin)
    expect(again.status).toBe(1)
    expect(again.stderr).toMatch(/EEXIST/)
    using still = BpfProgram.fromPin(join(pin, 'progs', 'count_packets'))
    expect(still.id).toBe(prog.id)
    const tool = bpftool(ctx)
    expect(tool.json('prog', 'show', 'pinned', join(pin, 'progs', 'count_packets'))).toMatchObject({ id: prog.id, name: 'count_packets', type: 'socket_filter' })
    expect(tool.json('map', 'show', 'pinned', join(pin, 'maps', 'counts'))).toMatchObject({ id: map.id, name: 'counts', type: 'array' })
  })

  test('--attach --cgroup --set: programs attached by section and to the cgroup, links pinned; the test\'s syscalls and the cgroup\'s packets are counted', async () => {
    using fs = privateBpffs()
    using cg = childCgroup()
    const pin = join(fs.path, 'auto')
    // on_enter attaches system-wide, and counts only this test's own syscalls (target_tgid).
    const r = bpfkit(attachAuto, '--pin', pin, '--attach', '--cgroup', cg.path, '--program', 'on_enter', '--program', 'on_egress', '--program', 'on_xdp',
      '--set', `target_tgid=${process.pid}`, '--json')
    expect(r.status, r.stderr).toBe(0)
    const loaded = JSON.parse(r.stdout)
    expect(Object.keys(loaded.links).sort()).toEqual(['on_egress', 'on_enter'])
    expect(loaded.links.on_egress).toMatchObject({ type: 'cgroup', pinned: join(pin, 'links', 'on_egress') })
    expect(loaded.skipped).toEqual({ on_xdp: 'an xdp program needs an interface: give --xdp IF' })
    expect(linkIds().has(loaded.links.on_egress.id)).toBe(true)
    const sent = spawnSync(process.execPath, [tenantFixture('cgroup-sender')], { env: { ...process.env, CG: cg.path }, encoding: 'utf8', timeout: 20_000 })
    expect(sent.status, sent.stderr).toBe(0)
    using hits = BpfMap.fromPin(join(pin, 'maps', 'hits'))
    const slot = (n: number) => new DataView(hits.lookup(new Uint8Array(new Uint32Array([n]).buffer))!.buffer).getBigUint64(0, true)
    expect(slot(1)).toBeGreaterThan(0n)
    const enters = slot(0)
    closeSync(openSync('/dev/null', 'r'))
    expect(slot(0)).toBeGreaterThan(enters)
    // The links end with their pins (the bpffs goes at the end of the test);
    // older kernels (5.10) free a released link a moment later.
    rmSync(join(pin, 'links'), { recursive: true })
    for (const deadline = Date.now() + 20_000; linkIds().has(loaded.links.on_egress.id) && Date.now() < deadline;) await sleep(100)
    expect(linkIds().has(loaded.links.on_egress.id)).toBe(false)
  })

  test('an attach that fails: exit 1, nothing pinned, no program or link left', () => {
    using fs = privateBpffs()
    const pin = join(fs.path, 'bad')
    const [progsBefore, linksBefore] = [programIds(), linkIds()]
    const r = bpfkit(attachAuto, '--pin', pin, '--attach', '--xdp', 'bpfkit-no-such0', '--program', 'on_xdp')
    expect(r.status).toBe(1)
    expect(r.stderr).toMatch(/bpfkit-no-such0/)
    expect(r.stdout).toBe('')
    expect(existsSync(pin)).toBe(false)
    expect([...programIds()].filter((id) => !progsBefore.has(id))).toEqual([])
    expect([...linkIds()].filter((id) => !linksBefore.has(id))).toEqual([])
  })

  test('a program the verifier refuses: exit 1 with the verifier\'s words and the C line, nothing pinned', () => {
    using fs = privateBpffs()
    const pin = join(fs.path, 'rejected')
    const r = bpfkit(fixture('rejected.bpf.o'), '--pin', pin, '--program', 'unchecked_lookup')
    expect(r.status).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^bpfkit: unchecked_lookup: rejected\.bpf\.c:\d+: return \*value \+ 1;/)
    expect(r.stderr).toMatch(/prog_load: EACCES: the verifier rejected the program/)
    expect(existsSync(pin)).toBe(false)
  })

  test('--policy: a violation is exit 1 with the violations, and nothing is loaded or pinned; an allowed object loads', () => {
    using fs = privateBpffs()
    const policy = join(dir, 'net.json')
    writeFileSync(policy, JSON.stringify({
      cmds: ['map_create', 'prog_load'], maps: 'any', progs: 'any', attachs: 'any',
      capabilities: { 'net.read': { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns', 'skb_load_bytes'], maps: ['hash', 'array'] } },
      contexts: [{ progs: ['socket_filter'], grant: ['net.read'] }],
    }))
    const pin = join(fs.path, 'net')
    const refused = bpfkit(fixture('policy-net.bpf.o'), '--pin', pin, '--policy', policy)
    expect(refused.status).toBe(1)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toContain('lru_counter: 1 violation')
    expect(refused.stderr).toMatch(/map recent of type lru_hash is not granted to socket_filter/)
    expect(refused.stderr).toMatch(/policy-net\.bpf\.o is not allowed by .*net\.json; nothing was loaded/)
    expect(existsSync(pin)).toBe(false)
    // Only the programs it allows: they load.
    const allowed = bpfkit(fixture('policy-net.bpf.o'), '--pin', pin, '--policy', policy, '--program', 'count_bytes')
    expect(allowed.status, allowed.stderr).toBe(0)
    expect(readdirSync(join(pin, 'progs'))).toEqual(['count_bytes'])
  })

  test('usage errors exit 2 with load\'s usage; a missing object exits 1; --help exits 0', () => {
    const bad: [string[], RegExp][] = [
      [[], /load: expected OBJ\.bpf\.o, missing OBJ\.bpf\.o/],
      [[counter, '--attach'], /--attach needs --pin DIR/],
      [[counter, '--cgroup', '/sys/fs/cgroup'], /--cgroup is a target for --attach/],
      [[counter, '--program', 'nope'], /counter\.bpf\.o has no program 'nope' \(it has count_packets\)/],
      [[counter, '--pin'], /--pin needs a value/],
      [[counter, '--bogus'], /unknown option '--bogus'/],
      [[attachAuto, '--set', 'nope=1'], /--set nope: the object has no global 'nope' \(it has target_tgid\)/],
      [[attachAuto, '--set', 'target_tgid'], /--set takes VAR=VALUE, got 'target_tgid'/],
      [[attachAuto, '--set', 'target_tgid=abc'], /--set target_tgid=abc: /],
    ]
    for (const [args, message] of bad) {
      const r = bpfkit(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr).toContain('usage: bpfkit load OBJ.bpf.o')
    }
    const missing = bpfkit(join(dir, 'none.bpf.o'))
    expect(missing.status).toBe(1)
    expect(missing.stderr).toMatch(/ENOENT/)
    const help = bpfkit('--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toContain('--attach         attach each program whose section says where')
  })
})
