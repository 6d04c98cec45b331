// Bad input to the broker: malformed frames, oversized ones, too many fds,
// fds of the wrong kind, a peer that stalls mid-frame or vanishes before its
// reply, a peer no tenant matches. Each gets its own error (and, for a broken
// stream, its connection closed); meanwhile another tenant's requests keep
// succeeding, and the broker's fd table (this process: the broker runs
// in-process) is back where it started. Tenants and the stranger are real
// peers (test/kernel/helpers/broker.ts): child processes in their own user
// namespaces and cgroups, whose connections the test talks on.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/index.js'
import type { Broker } from '../../lib/broker/server.js'
import type { BrokerClient } from '../../lib/broker/client.js'
import { protocol } from '../../lib/broker/protocol.js'
import { havePeerPidfd } from '../../lib/features/misc.js'
import { FdSocket } from '../../lib/ipc/index.js'
import type { PolicyLike } from '../../lib/policy/index.js'
import { Fd, native } from '../../lib/sys/index.js'
import { Session } from '../../lib/broker/session.js'
import { startTestBroker, type TestBroker } from './helpers/broker.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

const policy: PolicyLike = { cmds: ['map_create', 'prog_load'], maps: ['hash', 'array'], progs: ['socket_filter'], attachs: ['cgroup_inet_ingress'] }
const idleTimeoutMs = 1500

const frame = (msg: object) => Buffer.from(JSON.stringify(msg))
let seq = 100
const request = (type: string, body: object = {}) => frame({ protocol, type, seq: ++seq, ...body })

/** The next reply on a raw connection, parsed; undefined once the broker closed it. */
async function reply(s: FdSocket): Promise<any> {
  const m = await s.receive({ maxFds: 4, signal: AbortSignal.timeout(10_000) })
  if (m === undefined) return undefined
  for (const f of m.fds) f.close()
  return JSON.parse(m.data.toString())
}

/** A raw connection made by the tenant's own process, past its hello. */
async function rawTenant(tb: TestBroker, name: string): Promise<FdSocket> {
  const s = await tb.tenant(name).connect()
  await s.send(request('hello'))
  const r = await reply(s)
  if (r?.type !== 'ok' || r.tenant !== name) throw new Error(`hello failed: ${JSON.stringify(r)}`)
  return s
}

/**
 * After the broker closed a connection: end of stream, or ECONNRESET when it
 * closed with bytes of ours still unread (a unix socket's peer sees that).
 */
async function closedByBroker(s: FdSocket): Promise<void> {
  try {
    expect(await reply(s)).toBeUndefined()
  } catch (e) {
    expect(e).toMatchObject({ code: 'ECONNRESET' })
  }
}

/** Until the broker has counted one more broken stream (its error frame is then queued for us). */
async function brokerBroke(broker: Broker, before: number): Promise<void> {
  for (let i = 0; i < 250 && broker.stats().protocolErrors <= before; i++) await sleep(20)
}

/** Writes raw bytes (a header of our own, part of a frame) straight to the socket. */
function sendRaw(s: FdSocket, bytes: Buffer, fds: number[] = []): void {
  const n = native.sendWithFds(s.fd, bytes, fds)
  if (n !== bytes.length) throw new Error(`short send: ${n} of ${bytes.length}`)
}

const header = (n: number) => {
  const h = Buffer.alloc(4)
  h.writeUInt32LE(n >>> 0)
  return h
}

// mov r0, 0; exit
const returnZero = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]).toString('base64')

describe('broker: bad input gets its own error, and nothing leaks', () => {
  skipAllIf(requireFeature(havePeerPidfd))

  const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()
  skipAllIf(why)

  let tb: TestBroker
  let broker: Broker
  let b: BrokerClient
  let baseline: Set<string>
  // The second tenant's steady traffic: a request every few ms from the first test to the last.
  let traffic: { stop: () => Promise<{ ok: number; errors: unknown[] }> }

  function startTraffic(): typeof traffic {
    let stopped = false
    let ok = 0
    const errors: unknown[] = []
    const loop = (async () => {
      while (!stopped) {
        try {
          const map = await b.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'b_steady' })
          const listed = await b.list({ kinds: ['map'] })
          if (!listed.some((o) => o.id === map.id)) throw new Error(`b's own map ${map.id} is missing from its list`)
          await b.release('map', map.id)
          map.close()
          ok++
        } catch (e) {
          errors.push(e)
        }
        await sleep(20)
      }
    })()
    return {
      stop: async () => {
        stopped = true
        await loop
        return { ok, errors }
      },
    }
  }

  beforeAll(async () => {
    if (why !== undefined) return
    tb = await startTestBroker({ tenants: [{ name: 'a', policy }, { name: 'b', policy }], strangers: 1, limits: { idleTimeoutMs } })
    broker = tb.broker
    baseline = fdTable()
    b = await tb.tenant('b').client()
    traffic = startTraffic()
  })

  afterAll(async () => {
    await traffic?.stop()
    b?.close()
    await tb?.close()
  })

  test('malformed JSON and an unknown type: an error reply, and the connection goes on', async () => {
    using s = await rawTenant(tb, 'a')
    await s.send(Buffer.from('{"protocol": "bpfkit-broker/1", "type": "list", "seq": 7,'))
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO' })
    await s.send(Buffer.from([0xff, 0xfe, 0x00]))
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO' })
    await s.send(frame({ protocol, type: 'frobnicate', seq: 8 }))
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO', seq: 8 })
    await s.send(frame({ protocol: 'bpfkit-broker/0', type: 'list', seq: 9 }))
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO' })
    await s.send(frame({ protocol, type: 'list', seq: 10, kinds: ['maps'] }))
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EINVAL', seq: 10 })
    await s.send(frame({ protocol, type: 'list', seq: 11 }))
    expect(await reply(s)).toMatchObject({ type: 'ok', seq: 11, objects: [] })
  })

  test('an oversized frame, 65 fds, fds mid-frame: an error frame, then the connection is closed', async () => {
    {
      using s = await rawTenant(tb, 'a')
      sendRaw(s, header((1 << 20) + 1))
      expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO', message: expect.stringContaining('over the limit') })
      await closedByBroker(s)
    }
    {
      using s = await rawTenant(tb, 'a')
      const file = openSync('/dev/null', 'r')
      const broken = broker.stats().protocolErrors
      try {
        await s.send(request('list'), new Array(65).fill(file))
      } finally {
        closeSync(file)
      }
      // The broker closes with our frame's bytes unread, so this end gets an
      // error condition; FdSocket reads what is queued only when it does not
      // wait on poll first (libuv reports POLLERR as EBADF), so wait here.
      await brokerBroke(broker, broken)
      expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO', message: expect.stringContaining('more fds than the 64') })
      await closedByBroker(s)
    }
    {
      // fds in the middle of a frame (after its header): the stream is broken.
      using s = await rawTenant(tb, 'a')
      const body = request('list')
      const file = openSync('/dev/null', 'r')
      const broken = broker.stats().protocolErrors
      try {
        sendRaw(s, header(body.length))
        await sleep(50)
        sendRaw(s, body, [file])
      } finally {
        closeSync(file)
      }
      await brokerBroke(broker, broken)
      expect(await reply(s)).toMatchObject({ type: 'error', code: 'EPROTO', message: expect.stringContaining('middle of a message') })
      await closedByBroker(s)
    }
    {
      // fds with a request that takes none: a well-framed bad request.
      using s = await rawTenant(tb, 'a')
      const file = openSync('/dev/null', 'r')
      try {
        await s.send(request('list'), [file])
      } finally {
        closeSync(file)
      }
      expect(await reply(s)).toMatchObject({ type: 'error', code: expect.stringMatching(/^(EINVAL|EPROTO)$/) })
    }
  })

  test('fds of the wrong kind: a pipe, a socket, another tenant\'s map', async () => {
    const a = await tb.tenant('a').client()
    try {
      const fifo = join(tb.dir, 'fifo')
      execFileSync('mkfifo', [fifo])
      const pipe = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
      const [x, y] = FdSocket.pair()
      using mapB = await b.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'b_foreign' })
      try {
        const load = (fd: number) => a.request('prog_load', { spec: { type: 'socket_filter', license: 'GPL', insns: returnZero }, maps: 1 }, [fd])
        await expect(load(pipe)).rejects.toMatchObject({ code: 'EINVAL', message: 'fds[0] is not a BPF object, not a map' })
        await expect(load(x.fd)).rejects.toMatchObject({ code: 'EINVAL', message: 'fds[0] is not a BPF object, not a map' })
        await expect(load(mapB.fd)).rejects.toMatchObject({ code: 'ENOENT', message: `no map ${mapB.id} in your view` })
        await expect(a.request('adopt', {}, [pipe])).rejects.toMatchObject({ code: 'EINVAL' })
        await expect(a.request('adopt', {}, [mapB.fd])).rejects.toMatchObject({ code: 'ENOENT', message: `no map ${mapB.id} in your view` })
        // Through the library's own route too: the client sends b's fd for a's ld_imm64.
        await expect(a.loadProgram({
          type: 'socket_filter', license: 'GPL', insns: [asm.ldMapFd(asm.R1, mapB), asm.mov64Imm(asm.R0, 0), asm.exit()],
        })).rejects.toMatchObject({ code: 'ENOENT' })
        expect(await a.list()).toEqual([])
      } finally {
        closeSync(pipe)
        x.close()
        y.close()
        await b.release('map', mapB.id)
      }
    } finally {
      a.close()
    }
  })

  test('half a frame, then silence: the idle timeout ends that connection only', async () => {
    using s = await rawTenant(tb, 'a')
    const body = request('list')
    sendRaw(s, Buffer.concat([header(body.length), body.subarray(0, 5)]))
    const t0 = Date.now()
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'ETIMEDOUT' })
    expect(Date.now() - t0).toBeGreaterThanOrEqual(idleTimeoutMs - 100)
    expect(await reply(s)).toBeUndefined()
  })

  test('a peer that vanishes before its reply (one that carries an fd) costs the broker nothing', async () => {
    for (let i = 0; i < 5; i++) {
      const s = await rawTenant(tb, 'a')
      await s.send(request('map_create', { spec: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'a_orphan' } }))
      s.close()
    }
    for (let i = 0; i < 5; i++) {
      const s = await rawTenant(tb, 'a')
      await s.send(request('list'))
      s.close()
    }
    // What was made is a's (registered before the reply): a can list and release it.
    await sleep(200)
    const a = await tb.tenant('a').client()
    try {
      const orphans = (await a.list({ kinds: ['map'] })).filter((o) => o.name === 'a_orphan')
      expect(orphans.length).toBeLessThanOrEqual(5)
      for (const o of orphans) await a.release('map', o.id)
      expect(await a.list()).toEqual([])
    } finally {
      a.close()
    }
  })

  test('a peer no tenant matches is refused with its own error', async () => {
    using s = await tb.strangers[0].connect()
    expect(await reply(s)).toMatchObject({ type: 'error', code: 'EACCES' })
    await closedByBroker(s)
  })

  test('the other tenant was served throughout, and the broker\'s fds are back where they started', async () => {
    const { ok, errors } = await traffic.stop()
    expect(errors).toEqual([])
    expect(ok).toBeGreaterThan(5)
    b.close()
    // Sessions (and the test broker's relay) end as their sockets close: wait for it.
    for (let i = 0; i < 100 && (broker.stats().connections > 0 || opened(baseline, fdTable()).length > 0); i++) await sleep(20)
    expect(broker.stats().connections).toBe(0)
    expect(opened(baseline, fdTable())).toEqual([])
    expect(broker.state.registry.records()).toEqual([])
  })
})

describe('broker session construction', () => {
  test('a session that cannot start leaves no duplicate of the socket behind (the peer sees the close)', () => {
    const [ours, theirs] = FdSocket.pair()
    // A number bpfkit believes it owns but the kernel has free, and the lowest
    // free one: the session's duplicate of the socket lands on it, and taking
    // that duplicate over fails (TypeError: already owned).
    const ghost = new Fd(native.dupFd(ours.fd), 'ghost')
    const n = ghost.fd
    native.closeFd(n)
    try {
      expect(() => new Session({ socket: ours, state: {} as never, peer: {} as never, tenant: null, handlers: {}, counters: { requests: 0, errors: 0, protocolErrors: 0 } }))
        .toThrow(/already owned/)
      expect(native.fdIsOpen(n)).toBe(false)
    } finally {
      ghost.release()
      ours.close()
      theirs.close()
    }
  })
})
