// BpfLink: socket filters on sockets the test owns, cgroup links on a cgroup
// the test made. Nothing attaches to the host's interfaces or root cgroup.
import { createSocket, type Socket } from 'node:dgram'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { asm, BpfLink, BpfProgram, ids } from '../../lib/index.js'
import { childCgroup, privateBpffs } from './helpers/scratch.js'

const returns = (n: number) => [asm.mov64Imm(asm.R0, n), asm.exit()]

async function udpPair() {
  const rx = createSocket('udp4')
  const tx = createSocket('udp4')
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r))
  await new Promise<void>((r) => tx.bind(0, '127.0.0.1', r))
  return { rx, tx, port: rx.address().port, [Symbol.asyncDispose]: async () => { rx.close(); tx.close() } }
}

/** Sends one datagram and reports whether it arrived within 200 ms. */
function delivered(rx: Socket, tx: Socket, port: number, payload: string): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { rx.off('message', onMessage); resolve(false) }, 200)
    const onMessage = (m: Buffer) => {
      if (m.toString() !== payload) return
      clearTimeout(timer)
      rx.off('message', onMessage)
      resolve(true)
    }
    rx.on('message', onMessage)
    tx.send(payload, port, '127.0.0.1')
  })
}

test('a socket filter that drops everything, then detached', async () => {
  await using s = await udpPair()
  expect(await delivered(s.rx, s.tx, s.port, 'before')).toBe(true)
  const drop = await BpfProgram.load({ type: 'socket_filter', insns: returns(0), license: 'GPL', name: 'drop_all' })
  const link = BpfLink.attachSocketFilter(s.rx, drop)
  const progId = drop.id
  drop.close() // the socket keeps its own reference
  expect(link.info()).toMatchObject({ type: 'socket_filter', progId })
  expect(await delivered(s.rx, s.tx, s.port, 'dropped')).toBe(false)
  link.detach()
  expect(await delivered(s.rx, s.tx, s.port, 'after')).toBe(true)
  link.close()
  expect(() => link.info()).toThrow(/already closed/)
})

test('closing a socket filter link detaches it; only socket filters attach', async () => {
  await using s = await udpPair()
  using drop = await BpfProgram.load({ type: 'socket_filter', insns: returns(0), license: 'GPL' })
  const link = BpfLink.attachSocketFilter(s.rx, drop)
  link.close()
  expect(await delivered(s.rx, s.tx, s.port, 'after close')).toBe(true)
  using xdp = await BpfProgram.load({ type: 'xdp', insns: returns(2), license: 'GPL' })
  expect(() => BpfLink.attachSocketFilter(s.rx, xdp)).toThrow(expect.objectContaining({ code: 'EINVAL' }))
  expect(() => BpfLink.attachSocketFilter({}, drop)).toThrow(/cannot find the socket's fd/)
})

test('cgroup link on a cgroup the test made: info, ids, pin, fromId, detach', async () => {
  using cg = childCgroup()
  using fs = privateBpffs()
  using prog = await BpfProgram.load({
    type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress', insns: returns(1), license: 'GPL', name: 'cg_allow',
  })
  using link = BpfLink.attachCgroup(cg.path, prog, 'cgroup_inet_egress')
  const info = link.info()
  expect(info).toMatchObject({ type: 'cgroup', progId: prog.id, attachType: 'cgroup_inet_egress' })
  expect([...ids.links()].some((l) => l.id === info.id)).toBe(true)
  using again = BpfLink.fromId(info.id)
  expect(again.info().progId).toBe(prog.id)
  link.pin(join(fs.path, 'link'))
  using pinned = BpfLink.fromPin(join(fs.path, 'link'))
  expect(pinned.id).toBe(info.id)
  pinned.unpin()
  link.detach()
  expect(link.info().progId).toBe(prog.id) // a detached link still describes itself
  expect(() => BpfLink.attachCgroup(cg.path, prog, 'no_such' as never)).toThrow(/unknown attach type/)
})
