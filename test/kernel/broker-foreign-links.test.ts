// Links someone else attached to a tenant's cgroup:
// discovery shows them to the tenant (origin 'cgroup'), and that must stay
// all it does: no fd of them (get_fd), no pin keeping them alive, no detach.
// The host here is this test process; the tenant a real peer
// (test/kernel/helpers/broker.ts).
import { closeSync, constants, openSync, statSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfLink, BpfProgram } from '../../lib/index.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { kernel, native } from '../../lib/sys/index.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

/** Program ids attached to `dir` for cgroup_inet_ingress (PROG_QUERY). */
function attachedTo(dir: string): number[] {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    return native.progQuery({ targetFd: fd, attachType: kernel.attachTypes.cgroup_inet_ingress }).progIds
  } finally {
    closeSync(fd)
  }
}

/** A link of the host's on `dir`: a pass-all cgroup_skb program attached with link_create. */
async function hostLink(dir: string): Promise<{ prog: BpfProgram; link: BpfLink; close(): void }> {
  const prog = await BpfProgram.load({
    type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', name: 'host_pass', license: 'GPL',
    insns: [asm.mov64Imm(asm.R0, 1), asm.exit()],
  })
  const target = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    const link = BpfLink.create(prog, { attachType: 'cgroup_inet_ingress', targetFd: target })
    return { prog, link, close: () => (link.close(), prog.close()) }
  } catch (e) {
    prog.close()
    throw e
  } finally {
    closeSync(target)
  }
}

describe('broker: links on a tenant\'s cgroup that it did not make', () => {
  skipAllIf(why)
  let tb: TestBroker
  let a: BrokerClient

  beforeAll(async () => {
    if (why) return
    tb = await startTestBroker({ tenants: ['a'] })
    a = await tb.tenant('a').client()
  }, 60_000)

  afterAll(async () => {
    a?.close()
    await tb?.close()
  })

  test('the tenant sees the host\'s link, and cannot detach, open or pin it', async () => {
    const dir = tb.tenant('a').cgroupDir
    const host = await hostLink(dir)
    try {
      const id = host.link.id
      const listed = (await a.list({ kinds: ['link'] })).find((o) => o.id === id)
      expect(listed?.origin).toBe('cgroup')
      // Its program is the host's: not named.
      expect((await a.show('link', id)).info.progId).toBe(0)
      const refused = { code: 'EPERM', rule: 'origin', message: `link ${id} was attached to your cgroup by someone else: you may see it, not hold, pin or detach it` }
      await expect(a.detach(id)).rejects.toMatchObject(refused)
      await expect(a.open('link', id)).rejects.toMatchObject(refused)
      await expect(a.pin('link', id, 'hostlink')).rejects.toMatchObject(refused)
      // Still attached, still the host's only.
      expect(attachedTo(dir)).toEqual([host.prog.id])
      expect(host.link.info().cgroupId).toBe(BigInt(statSync(dir).ino))
    } finally {
      host.close()
    }
  })

  test('a link the tenant holds is its own to act on, even attached to its cgroup', async () => {
    const dir = tb.tenant('a').cgroupDir
    const host = await hostLink(dir)
    try {
      // Handed to the tenant (as a token-holding tenant would make one itself): its task holds it.
      await tb.tenant('a').hold([host.link.fd])
      using opened = await a.open('link', host.link.id)
      expect(opened.id).toBe(host.link.id)
      await a.detach(host.link.id)
      expect(attachedTo(dir)).toEqual([])
    } finally {
      await tb.tenant('a').drop()
      host.close()
    }
  })
})
