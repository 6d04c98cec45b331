// A map fd's access mode through the broker (review of issue 16): adopt
// records a map, and the broker then hands it back read-write (get_fd opens
// its pin), so a read-only or write-only fd must not be adopted. The tenant
// is a real peer (test/kernel/helpers/broker.ts).
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { Fd, kernel, native } from '../../lib/sys/index.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

describe('broker review: map access modes', () => {
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

  test('adopt refuses a read-only or write-only map fd, and records nothing; a read-write one is adopted', async () => {
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'host_ro' })
    using ro = new Fd(native.mapGetFdById(map.id, kernel.flags.BPF_F_RDONLY), 'map')
    using wo = new Fd(native.mapGetFdById(map.id, kernel.flags.BPF_F_WRONLY), 'map')
    await expect(a.adopt([ro])).rejects.toMatchObject({ code: 'EPERM', rule: 'adopt', message: `fds[0] is a read-only fd of map ${map.id}: adopt takes maps you can read and write` })
    await expect(a.adopt([wo])).rejects.toMatchObject({ code: 'EPERM', message: `fds[0] is a write-only fd of map ${map.id}: adopt takes maps you can read and write` })
    expect(await a.list({ origins: ['adopted'] })).toEqual([])
    // Read-write: adopted, and get_fd gives it back (read-write, as it was).
    const [view] = await a.adopt([map])
    expect(view).toMatchObject({ kind: 'map', id: map.id, origin: 'adopted' })
    using back = await a.open('map', map.id)
    back.update(new Uint8Array(4), new Uint8Array([7, 0, 0, 0]))
    expect(map.lookup(new Uint8Array(4))).toEqual(new Uint8Array([7, 0, 0, 0]))
    await a.release('map', map.id)
  })
})
