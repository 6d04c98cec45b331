// `bpfkit link`, through the real binary, on a link this test makes: a
// cgroup_skb program attached to a cgroup the test creates. list/show agree
// with bpftool; detach really stops the program (a process in the cgroup can
// send again), and only that link is detached.
import { spawnSync } from 'node:child_process'
import { mkdirSync, rmdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { asm, attachXdp, BpfLink, BpfProgram } from '../../lib/index.js'
import { tenantFixture } from './helpers/raw.js'
import { childCgroup, privateBpffs, privateNetns } from './helpers/scratch.js'
import { bpftool } from './helpers/bpftool.js'
import { bpfkit, bpfkitJson as json } from './helpers/cli-binary.js'
import { runCli } from './helpers/cli.js'

const tag = (process.pid % 100000).toString(36)

const dropEgress = (name: string) => BpfProgram.load({
  type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL', name,
})

/** A child that joins `cgroup` sends one UDP datagram on loopback: the send's error code, or null. */
function sendFromCgroup(cgroup: string): string | null {
  const r = spawnSync(process.execPath, [tenantFixture('cgroup-sender')], { env: { ...process.env, CG: cgroup }, encoding: 'utf8', timeout: 20_000 })
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim()).code
}

describe('bpfkit link list / show', () => {
  test('the test\'s cgroup link, by ID, by pin and by its program\'s name; bpftool agrees', async (ctx) => {
    using cg = childCgroup()
    using prog = await dropEgress(`lk_${tag}`)
    using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    using fs = privateBpffs()
    const id = link.id
    const want = { id, type: 'cgroup', prog_id: prog.id, attach_type: 'cgroup_inet_egress', cgroup_id: statSync(cg.path).ino }
    const byId = json('link', 'show', String(id))
    expect(byId).toEqual(want)
    expect(json('link', 'show', `lk_${tag}`)).toEqual(want)
    link.pin(join(fs.path, 'l'))
    expect(json('link', 'show', join(fs.path, 'l'))).toEqual(want)
    expect((json('link', 'list') as Array<{ id: number }>).find((l) => l.id === id)).toEqual(want)
    const text = bpfkit('link', 'show', String(id)).stdout
    expect(text).toBe(`${id}: cgroup  prog ${prog.id}  attach_type cgroup_inet_egress\n\tcgroup_id ${want.cgroup_id}\n`)
    const theirs = bpftool(ctx).json('link', 'show', 'id', String(id))
    for (const k of Object.keys(theirs).filter((k) => k !== 'pids' && k !== 'pinned')) expect(byId[k], k).toEqual(theirs[k])
  })
})

describe('bpfkit link: an xdp link in the test\'s own network namespace', () => {
  // No devname, unlike bpftool: an xdp link's info has the ifindex alone, and
  // naming it in the viewer's namespace can name another interface (the
  // test's veth0 has index 2 in its namespace, the host's 2 is another).
  test('shows its interface by index; bpftool agrees but for the name it guesses', async (ctx) => {
    using ns = privateNetns()
    using prog = await BpfProgram.load({ type: 'xdp', insns: [asm.mov64Imm(asm.R0, 2), asm.exit()], license: 'GPL', name: `lx_${tag}` })
    using link = attachXdp(prog, 'veth0', { netns: ns.path })
    const ours = json('link', 'show', `lx_${tag}`)
    expect(ours).toEqual({ id: link.id, type: 'xdp', prog_id: prog.id, ifindex: ns.ifindex() })
    const theirs = bpftool(ctx).json('link', 'show', 'id', String(link.id))
    for (const k of Object.keys(theirs).filter((k) => !['pids', 'pinned', 'devname'].includes(k))) expect(ours[k], k).toEqual(theirs[k])
  })
})

describe('bpfkit link detach', () => {
  test('detaches the named link only: its cgroup\'s traffic flows again, another link stays', async () => {
    using cg = childCgroup()
    // A second cgroup of the test's own, below the first (two childCgroup()s in one millisecond would share a name).
    const other = { path: join(cg.path, 'other'), [Symbol.dispose]() { rmdirSync(this.path) } }
    mkdirSync(other.path)
    using _other = other
    using prog = await dropEgress(`ld_${tag}`)
    using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    using kept = BpfLink.attachCgroup(other.path, prog, 'cgroup_inet_egress')
    expect(sendFromCgroup(cg.path)).toBe('EPERM')
    const r = bpfkit('link', 'detach', String(link.id))
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout).toBe(`detached link ${link.id}\n`)
    expect(sendFromCgroup(cg.path)).toBeNull()
    // The link object lives on, attached to nothing (cgroup id 0).
    expect(link.info().cgroupId).toBe(0n)
    expect(kept.info().cgroupId).toBe(BigInt(statSync(other.path).ino))
    expect(sendFromCgroup(other.path)).toBe('EPERM')
    // Two links of one program: naming them by the program's name is ambiguous.
    const both = bpfkit('link', 'detach', `ld_${tag}`)
    expect(both.status).toBe(1)
    expect(both.stderr).toBe(`bpfkit: link ld_${tag}: 2 links whose program is named 'ld_${tag}': IDs ${[link.id, kept.id].sort((a, b) => a - b).join(', ')}; name one by ID\n`)
    expect(kept.info().cgroupId).toBe(BigInt(statSync(other.path).ino))
  })

  test('usage errors exit 2, unknown links exit 1, --help exits 0', async () => {
    // Usage is checked before anything reaches the kernel: main() in-process is enough.
    for (const args of [['link'], ['link', 'remove', '1'], ['link', 'detach'], ['link', 'show', '1', '2'], ['link', 'list', '--bogus']]) {
      const r = await runCli(...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err, args.join(' ')).toMatch(/usage: bpfkit link/)
    }
    const help = await runCli('link', 'detach', '--help')
    expect(help.code).toBe(0)
    expect(help.out).toMatch(/^usage: bpfkit link detach LINK/)
    const none = bpfkit('link', 'detach', '4294967295')
    expect(none.status).toBe(1)
    expect(none.stderr).toBe('bpfkit: link 4294967295: no link has that ID\n')
    expect((await runCli('link', 'show', `nolink_${tag}`)).err).toMatch(/no link whose program is named 'nolink_.*' is loaded/)
  })
})
