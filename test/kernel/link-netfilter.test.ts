// Netfilter links hook the network namespace of the process that makes them,
// so the attach runs in a child inside the test's own namespace
// (test/fixtures/tenant/netfilter-in-netns.ts, with the compiled package):
// the host's netfilter is never touched. The child counts its own packets;
// the test meanwhile checks the link from outside and sends traffic in the
// host's namespace, which the program must not see.
import { spawn } from 'node:child_process'
import * as dgram from 'node:dgram'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { describe, expect, test } from 'vitest'
import { haveNetfilterLinks } from '../../lib/features/attach-sockets.js'
import { attachNetfilter } from '../../lib/link/netfilter.js'
import { asm, BpfProgram, ids } from '../../lib/index.js'
import { kernel } from '../../lib/sys/index.js'
import { fixture } from './helpers/collection.js'
import { bpftool, bpftoolMissing } from './helpers/bpftool.js'
import { tenantFixture } from './helpers/raw.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateNetns } from './helpers/scratch.js'

async function sendOnHost(n: number): Promise<void> {
  const rx = dgram.createSocket('udp4')
  rx.bind(0, '127.0.0.1')
  await once(rx, 'listening')
  const s = dgram.createSocket('udp4')
  for (let i = 0; i < n; i++) await new Promise<void>((resolve, reject) => s.send('x', rx.address().port, '127.0.0.1', (e) => (e ? reject(e) : resolve())))
  s.close()
  rx.close()
}

describe('attachNetfilter', () => {
  skipAllIf(requireFeature(haveNetfilterLinks))

  test('counts the packets of its own namespace only; info; no update; bad attaches refused; detach ends it', async (ctx) => {
    using ns = privateNetns()
    let shown: unknown
    let linkId = 0
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, tenantFixture('netfilter-in-netns'), fixture('attach-sockets.bpf.o')], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const next = async () => {
      const r = await lines.next()
      if (r.done) throw new Error(`the child ended early: ${stderr}`)
      return JSON.parse(r.value)
    }
    try {
      const attached = await next()
      expect(attached.stage).toBe('attached')
      const { info, progId } = attached
      // NFPROTO_IPV4 = 2, NF_INET_LOCAL_OUT = 3.
      expect(info).toMatchObject({ type: 'netfilter', progId, netfilter: { pf: 2, hooknum: 3, priority: -128, flags: 0 } })
      expect([...ids.links()].filter((l) => l.progId === progId).map((l) => l.id)).toEqual([info.id])
      // Read while the link lives; compared at the end, where a missing bpftool skips.
      shown = bpftoolMissing() === undefined ? bpftool(ctx).json('link', 'show', 'id', String(info.id)) : undefined
      linkId = info.id
      await sendOnHost(3)
      child.stdin.write('go\n')
      const done = await next()
      expect(done).toMatchObject({
        afterHostTraffic: '0',
        afterOwnTraffic: '3',
        update: 'EOPNOTSUPP',
        refused: { samePriority: 'EBUSY', family: 'EAFNOSUPPORT', hook: 'EPROTO', reservedPriority: 'ERANGE', defragTooEarly: 'ERANGE' },
        // NFPROTO_IPV6 = 10, NF_INET_LOCAL_IN = 1, BPF_F_NETFILTER_IP_DEFRAG.
        defragInfo: { type: 'netfilter', netfilter: { pf: 10, hooknum: 1, priority: 10, flags: 1 } },
        whileAttached: [info.id],
        afterClose: [],
        afterDetachTraffic: '3',
      })
      const [code] = (await once(child, 'exit')) as [number]
      expect(code).toBe(0)
    } finally {
      if (child.exitCode === null) child.kill()
    }
    bpftool(ctx)
    // bpftool before 7.2 knows no netfilter links: it prints the type's number and the common fields.
    const known = (shown as { type: unknown }).type === 'netfilter'
    expect(shown).toMatchObject(known ? { id: linkId, pf: 2, hooknum: 3, prio: -128 } : { id: linkId, type: kernel.linkTypes.netfilter })
  })

  test('argument errors are TypeErrors / RangeErrors before the kernel is asked', async () => {
    using prog = await BpfProgram.load({ type: 'netfilter', expectedAttachType: 'netfilter', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL' })
    const ok = { family: 'ipv4', hook: 'local_in', priority: 5 } as const
    expect(() => attachNetfilter(prog, { ...ok, family: 'ipx' as never })).toThrow(/family must be one of ipv4, ipv6/)
    expect(() => attachNetfilter(prog, { ...ok, hook: 'input' as never })).toThrow(/hook must be one of prerouting, local_in, forward, local_out, postrouting/)
    expect(() => attachNetfilter(prog, { ...ok, hook: -1 })).toThrow(RangeError)
    expect(() => attachNetfilter(prog, { ...ok, priority: 2 ** 31 })).toThrow(/priority must be a 32-bit integer/)
    expect(() => attachNetfilter(prog, { ...ok, priority: 1.5 })).toThrow(RangeError)
    expect(() => attachNetfilter(prog, { ...ok, priority: '5' as never })).toThrow(/'priority' must be a number/)
    expect(() => attachNetfilter(prog, { ...ok, defrag: 1 as never })).toThrow(/'defrag' must be a boolean/)
    expect(() => attachNetfilter(prog, { ...ok, prio: 1 } as never)).toThrow(/unknown option 'prio'/)
    expect(() => attachNetfilter(prog, undefined as never)).toThrow(TypeError)
    expect(() => attachNetfilter({} as never, ok)).toThrow(TypeError)
    expect([...ids.links()].filter((l) => l.progId === prog.id)).toEqual([])
  })
})
