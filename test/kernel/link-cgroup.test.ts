// Kernel links (BPF_LINK_CREATE) on a cgroup the test creates: a child
// process that joins it sees the program's verdict on its own traffic.
import { spawnSync } from 'node:child_process'
import { closeSync, constants, existsSync, openSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfProgram } from '../../lib/index.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'
import { bpftool, type Bpftool } from './helpers/bpftool.js'
import { tenantFixture } from './helpers/raw.js'

const dropEgress = () => BpfProgram.load({
  type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL', name: 'drop_egress',
})

/** Runs a Node child that joins `cgroup` and sends one UDP datagram on loopback; returns the send error code or null. */
function sendFromCgroup(cgroup: string): string | null {
  const r = spawnSync(process.execPath, [tenantFixture('cgroup-sender')], { env: { ...process.env, CG: cgroup }, encoding: 'utf8', timeout: 20_000 })
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim()).code
}

function bpftoolJson(tool: Bpftool, ...args: string[]): any {
  const out = tool.text(...args, '--json')
  // `bpftool cgroup show` prints nothing at all for a cgroup without programs.
  return out.trim() === '' ? [] : JSON.parse(out)
}

// What bpftool sees attached to a cgroup through links. Not `bpftool cgroup
// show`: Debian 12's bpftool asks PROG_QUERY for per-program attach flags,
// which kernels before 6.0 refuse, and then prints nothing useful; its link
// list reads the same facts on every kernel.
function bpftoolAttached(tool: Bpftool, cgroupPath: string): Array<{ id: number; attach_type: string; name: string }> {
  const ino = statSync(cgroupPath).ino
  return (bpftoolJson(tool, 'link', 'show') as Array<{ type: string; cgroup_id: number; prog_id: number; attach_type: string }>)
    .filter((l) => l.type === 'cgroup' && l.cgroup_id === ino)
    .map((l) => ({ id: l.prog_id, attach_type: l.attach_type, name: bpftoolJson(tool, 'prog', 'show', 'id', String(l.prog_id)).name }))
}

describe('attachCgroup', () => {
  test('a cgroup_skb egress link drops the traffic of processes in the cgroup until detached', async () => {
    using cg = childCgroup()
    using prog = await dropEgress()
    expect(sendFromCgroup(cg.path)).toBeNull()
    using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    expect(link.kind).toBe('link')
    expect(sendFromCgroup(cg.path)).toBe('EPERM')
    link.detach()
    expect(sendFromCgroup(cg.path)).toBeNull()
    link.detach()
  })

  test('info: link type, program, attach type, cgroup id; bpftool agrees', async (ctx) => {
    using cg = childCgroup()
    using prog = await dropEgress()
    using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    const info = link.info()
    expect(info).toMatchObject({ type: 'cgroup', progId: prog.id, attachType: 'cgroup_inet_egress', cgroupId: BigInt(statSync(cg.path).ino) })
    expect(info.id).toBeGreaterThan(0)
    expect(link.id).toBe(info.id)
    const tool = bpftool(ctx)
    expect(bpftoolJson(tool, 'link', 'show', 'id', String(info.id))).toMatchObject({
      id: info.id, type: 'cgroup', prog_id: prog.id, attach_type: 'cgroup_inet_egress', cgroup_id: Number(info.cgroupId),
    })
    const attached = bpftoolAttached(tool, cg.path)
    expect(attached).toEqual([expect.objectContaining({ id: prog.id, attach_type: 'cgroup_inet_egress', name: 'drop_egress' })])
    link.detach()
    expect(link.info().cgroupId).toBe(0n)
  })

  test('fromId, pin, fromPin; a pinned link outlives its fds and goes with its pin', async (ctx) => {
    using fs = privateBpffs()
    using cg = childCgroup()
    using prog = await dropEgress()
    const path = join(fs.path, 'link')
    const link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
    const id = link.id
    {
      using same = BpfLink.fromId(id)
      expect(same.info()).toEqual(link.info())
    }
    link.pin(path)
    link.close()
    expect(() => link.fd).toThrow(/already closed/)
    const tool = bpftool(ctx)
    expect(bpftoolAttached(tool, cg.path)).toHaveLength(1)
    expect(sendFromCgroup(cg.path)).toBe('EPERM')
    {
      using back = BpfLink.fromPin(path)
      expect(back.id).toBe(id)
      expect(back.pinnedAt).toBe(path)
    }
    // Closing a link opened from its pin leaves the pin, so it stays attached.
    expect(bpftoolAttached(tool, cg.path)).toHaveLength(1)
    const again = BpfLink.fromPin(path)
    again.unpin()
    expect(existsSync(path)).toBe(false)
    expect(sendFromCgroup(cg.path)).toBe('EPERM')
    again.close() // the last reference: detached
    expect(bpftoolAttached(tool, cg.path)).toEqual([])
    expect(sendFromCgroup(cg.path)).toBeNull()
    expect(() => BpfLink.fromId(id)).toThrow(expect.objectContaining({ code: 'ENOENT' }))
  })

  test('a cgroup by fd, and the generic create', async (ctx) => {
    using cg = childCgroup()
    using prog = await dropEgress()
    const dir = openSync(cg.path, constants.O_RDONLY | constants.O_DIRECTORY)
    try {
      using a = BpfLink.attachCgroup(dir, prog, 'cgroup_inet_egress')
      using b = BpfLink.create(prog, { attachType: 'cgroup_inet_egress', targetFd: dir })
      expect(a.info().cgroupId).toBe(b.info().cgroupId)
      expect(bpftoolAttached(bpftool(ctx), cg.path)).toHaveLength(2)
    } finally {
      closeSync(dir)
    }
    expect(bpftoolAttached(bpftool(ctx), cg.path)).toEqual([])
  })

  test('errors: mismatched attach type, no such cgroup, not a cgroup, bad names, not a link', async () => {
    using cg = childCgroup()
    using prog = await dropEgress()
    // A cgroup_skb program cannot serve a socket-creation hook.
    expect(() => BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_sock_create')).toThrow(expect.objectContaining({ code: 'EINVAL', command: 'link_create' }))
    expect(() => BpfLink.attachCgroup(join(cg.path, 'missing'), prog, 'cgroup_inet_egress')).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    expect(() => BpfLink.attachCgroup('/tmp', prog, 'cgroup_inet_egress')).toThrow(expect.objectContaining({ code: 'EBADF' }))
    expect(() => BpfLink.attachCgroup(cg.path, prog, 'cgroup_egress' as never)).toThrow(/unknown attach type 'cgroup_egress'/)
    expect(() => BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress', { flag: 1 } as never)).toThrow(/unknown option 'flag'/)
    expect(() => BpfLink.attachCgroup(cg.path, {} as never, 'cgroup_inet_egress')).toThrow(TypeError)
    expect(() => BpfLink.fromId(0)).toThrow(RangeError)
    using fs = privateBpffs()
    prog.pin(join(fs.path, 'prog'))
    expect(() => BpfLink.fromPin(join(fs.path, 'prog'))).toThrow(/is not a BPF link/)
    prog.unpin()
  })
})
