// A map fd's access mode through the broker: the
// broker opens maps with full access (by id, or by its pin), so what a
// tenant holds read-only must not come back read-write: adopt refuses such
// an fd (the broker would hand the recorded map back read-write), get_fd of
// a map the tenant's tasks hold gives no more access than they have, and a
// pin request of one is refused. The tenant is a real peer
// (test/kernel/helpers/broker.ts).
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm, BpfMap } from '../../lib/index.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import { Fd, kernel, native } from '../../lib/sys/index.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

describe('broker: map access modes', () => {
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

  test('prog_load refuses a read-only or write-only map fd: the program could write through it', async () => {
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'host_ro2' })
    using ro = BpfMap.fromFd(new Fd(native.mapGetFdById(map.id, kernel.flags.BPF_F_RDONLY), 'map'))
    // The tenant's own task holds it (read-write): in its view, so only the fd's mode is in question.
    await tb.tenant('a').hold([map.fd])
    try {
      const insns = (m: { fd: number }) => [asm.ldMapFd(asm.R1, m), asm.mov64Imm(asm.R0, 0), asm.exit()]
      await expect(a.loadProgram({ type: 'socket_filter', license: 'GPL', insns: insns(ro) })).rejects.toMatchObject({
        code: 'EPERM', rule: 'prog_load', message: `fds[0] is a read-only fd of map ${map.id}: a program may use only maps you can read and write`,
      })
      expect(await a.list({ kinds: ['prog'], origins: ['made'] })).toEqual([])
      using prog = await a.loadProgram({ type: 'socket_filter', license: 'GPL', insns: insns(map) })
      await a.release('prog', prog.id)
    } finally {
      await tb.tenant('a').drop()
    }
  })

  test('get_fd of a map the tenant holds read-only is read-only; write-only is write-only; read-write is read-write', async () => {
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'host_held' })
    const key = new Uint8Array(4)
    for (const [flags, canRead, canWrite] of [[kernel.flags.BPF_F_RDONLY, true, false], [kernel.flags.BPF_F_WRONLY, false, true], [0, true, true]] as const) {
      using held = new Fd(native.mapGetFdById(map.id, flags), 'map')
      await tb.tenant('a').hold([held])
      try {
        expect((await a.show('map', map.id)).origin).toBe('held')
        using back = await a.open('map', map.id)
        const wrote = (() => {
          try {
            back.update(key, new Uint8Array([flags + 1, 0, 0, 0]))
            return true
          } catch (e) {
            expect((e as { code?: string }).code).toBe('EPERM')
            return false
          }
        })()
        const read = (() => {
          try {
            back.lookup(key)
            return true
          } catch (e) {
            expect((e as { code?: string }).code).toBe('EPERM')
            return false
          }
        })()
        expect([flags, read, wrote]).toEqual([flags, canRead, canWrite])
        if (!(canRead && canWrite)) {
          await expect(a.pin('map', map.id, 'laundered')).rejects.toMatchObject({ code: 'EPERM', rule: 'pin' })
        } else {
          expect(await a.pin('map', map.id, 'laundered')).toBe(`${tb.tenantPinRoot}/a/laundered`)
          await a.unpin('laundered')
        }
      } finally {
        await tb.tenant('a').drop()
      }
    }
  })
})
