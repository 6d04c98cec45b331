// A delegation carries the full policy to the tenant (issue 13): the grant
// message is the policy's toJSON, and the tenant's Policy.from reads the
// capability sets and contexts back. Messages are at most 64 KiB
// (receiveMessage's limit): a policy past it does not cross.
import { describe, expect, test } from 'vitest'
import { receiveMessage, sendMessage } from '../../lib/delegation/protocol.js'
import { FdSocket } from '../../lib/ipc/socket.js'
import { Policy } from '../../lib/policy/index.js'
import { helpers } from '../../lib/sys/generated/kernel-enums.js'

const policy = Policy.from({
  cmds: ['map_create', 'prog_load'], maps: ['hash', 'ringbuf'], progs: ['socket_filter', 'kprobe'], attachs: 'any',
  capabilities: {
    base: { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns'] },
    'net.read': { include: ['base'], helpers: ['skb_load_bytes'], maps: ['hash', 'array'] },
    'trace.read': { include: ['base'], helpers: ['probe_read_kernel'], kfuncs: ['bpf_task_acquire'], maps: ['ringbuf'] },
  },
  contexts: [
    { progs: ['socket_filter'], grant: ['net.read'] },
    { progs: ['kprobe'], attachTo: ['tcp_*'], grant: ['trace.read'] },
  ],
}, { kernelBtf: null })

describe('a policy with capabilities over the delegation protocol', () => {
  test('the grant carries capability sets and contexts, and the tenant reads the same policy', async () => {
    const [manager, tenant] = FdSocket.pair()
    try {
      await sendMessage(manager, { type: 'grant', policy: policy.toJSON() })
      const { message, fds } = await receiveMessage(tenant, 'grant', 0)
      expect(fds).toEqual([])
      expect(message.policy).toEqual(JSON.parse(JSON.stringify(policy)))
      const received = Policy.from(message.policy, { kernelBtf: null })
      expect(received.equals(policy)).toBe(true)
      expect(received.hasCapabilities).toBe(true)
      expect(received.grantsFor({ type: 'kprobe', attachTo: 'tcp_connect' }).contexts).toEqual([1])
    } finally {
      manager.close()
      tenant.close()
    }
  })

  test('every helper in a set and a hundred contexts still fit in one message', () => {
    const big = Policy.from({
      capabilities: { all: { helpers: Object.keys(helpers).filter((h) => h !== 'unspec') } },
      contexts: Array.from({ length: 100 }, (_, i) => ({ progs: ['kprobe' as const], attachTo: [`function_number_${i}_*`], grant: ['all'] })),
    }, { kernelBtf: null })
    expect(JSON.stringify({ protocol: 'bpfkit-delegation/1', type: 'grant', policy: big }).length).toBeLessThan(64 * 1024)
  })

  test('past 64 KiB the tenant refuses the message', async () => {
    const huge = Policy.from({
      capabilities: Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`set.${i}`, { helpers: Object.keys(helpers).slice(1, 20) }])),
    }, { kernelBtf: null })
    const [manager, tenant] = FdSocket.pair()
    try {
      const sent = sendMessage(manager, { type: 'grant', policy: huge.toJSON() })
      await expect(receiveMessage(tenant, 'grant', 0)).rejects.toThrow(/message of \d+ bytes is over the limit of 65536/)
      manager.close()
      await sent.catch(() => undefined)
    } finally {
      manager.close()
      tenant.close()
    }
  })
})
