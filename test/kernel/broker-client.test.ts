// BrokerClient against a broker written by hand in the test: a net.Server
// whose connections are taken over by FdSocket and answered frame by frame.
// The client's own behaviour is what is tested (queueing, seq checks, error
// replies, typed objects from the fds it receives, a broker that goes away,
// timeouts, fds), with real kernel objects the test makes itself.
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { Btf } from '../../lib/btf/btf.js'
import { BrokerClient } from '../../lib/broker/client.js'
import { BrokerError, type ErrorBody } from '../../lib/broker/errors.js'
import { encodeFrame, errorReply, okReply, protocol, withMapFds, type ObjectView, type Request } from '../../lib/broker/protocol.js'
import { decodeRequest } from '../../lib/broker/validate.js'
import { CollectionSpec } from '../../lib/collection/spec.js'
import { FdSocket } from '../../lib/ipc/index.js'
import { BpfLink } from '../../lib/link/link.js'
import { BpfMap } from '../../lib/map/map.js'
import { btfForMap } from '../../lib/map/btf.js'
import { MapSpec } from '../../lib/map/spec.js'
import { ProgramPolicyError } from '../../lib/policy/check.js'
import { Policy } from '../../lib/policy/policy.js'
import { BpfProgram } from '../../lib/prog/program.js'
import { Fd, PolicyError, bpfObjectKind, native } from '../../lib/sys/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { childCgroup } from './helpers/scratch.js'

/** Anything with an fd: an Fd, a BpfMap, BpfProgram, BpfLink, or a number. */
type FdLike = number | { readonly fd: number }
type Answer =
  | { body?: Record<string, unknown>; fds?: FdLike[] }
  | { error: ErrorBody }
  | { raw: Buffer; fds?: FdLike[] }
  /** Bytes written as they are (no frame header added), then the connection is closed. */
  | { bytes: Buffer }
  | 'close'
  | 'silent'
type Handler = (req: Request, fds: Fd[]) => Answer | undefined | Promise<Answer | undefined>

const tenantPolicy = Policy.from({
  cmds: ['map_create', 'prog_load'], maps: ['hash', 'array', 'array_of_maps'], progs: ['socket_filter', 'cgroup_skb'], attachs: 'any',
  capabilities: { base: { helpers: ['map_lookup_elem', 'ktime_get_ns'], maps: ['hash', 'array'] } },
  contexts: [{ progs: ['socket_filter', 'cgroup_skb'], grant: ['base'] }],
})

/** What a handler made and sent: closed with the broker (the client got duplicates). */
const held: { close(): void }[] = []
const hold = <T extends { close(): void }>(o: T): T => (held.push(o), o)

const view = (kind: ObjectView['kind'], id: number, name = ''): ObjectView => ({ kind, id, origin: 'made', name, pins: [], info: {} })

/** A broker that answers frames by hand: hello by default, everything else through `handler`. */
class TestBroker {
  readonly dir = mkdtempSync(join(tmpdir(), 'bpfkit-broker-client-'))
  readonly path = join(this.dir, 'broker.sock')
  /** 'in <seq>' when a request has arrived, 'out <seq>' when its reply was sent. */
  readonly events: string[] = []
  readonly requests: Request[] = []
  readonly #sockets = new Set<FdSocket>()
  readonly #server: Server
  /** A frame sent the moment a connection is accepted, which is then closed (how a broker refuses a peer). */
  greeting: Buffer | undefined
  hello: Answer = { body: { tenant: 'alpha', policy: tenantPolicy.toJSON(), quota: { maps: 4, bytes: null }, usage: { maps: 1 }, broker: 'test', admin: false } }

  private constructor(private readonly handler: Handler) {
    this.#server = createServer({ pauseOnConnect: true }, (sock) => {
      const s = FdSocket.from(sock)
      if (this.greeting) {
        s.send(this.greeting).finally(() => s.close())
        return
      }
      this.#sockets.add(s)
      this.#session(s).catch(() => {}).finally(() => {
        s.close()
        this.#sockets.delete(s)
      })
    })
  }

  static async start(handler: Handler = () => undefined): Promise<TestBroker> {
    const b = new TestBroker(handler)
    await new Promise<void>((resolve) => b.#server.listen(b.path, resolve))
    return b
  }

  // Reads ahead: the next receive starts as soon as a request is in, so a
  // client that sent before its previous reply came shows as 'in' before 'out'.
  async #session(s: FdSocket): Promise<void> {
    const next = () => s.receive({ maxFds: 64 }).then((m) => {
      if (m) this.events.push(`in ${JSON.parse(m.data.toString()).seq}`)
      return m
    })
    let pending = next()
    for (;;) {
      const m = await pending
      if (m === undefined) return
      const req = decodeRequest(m.data, m.fds.length)
      this.requests.push(req)
      pending = next()
      pending.catch(() => {})
      let answer: Answer | undefined
      try {
        answer = await this.handler(req, m.fds)
        if (answer === undefined && req.type === 'hello') answer = this.hello
      } finally {
        for (const f of m.fds) f.close()
      }
      if (answer === 'close') return
      if (answer === 'silent' || answer === undefined) continue
      if ('bytes' in answer) {
        native.sendWithFds(s.fd, answer.bytes)
        return
      }
      const frame = 'raw' in answer ? answer.raw : encodeFrame('error' in answer ? errorReply(req.seq, answer.error) : okReply(req.seq, answer.body ?? {}))
      this.events.push(`out ${req.seq}`)
      await s.send(frame, ('fds' in answer ? answer.fds ?? [] : []).map((f) => (typeof f === 'number' ? f : f.fd)))
    }
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.close()
    for (const o of held.splice(0)) o.close()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Runs `body` with a broker and a connected client, closing both whatever happens. */
async function withClient(handler: Handler, body: (c: BrokerClient, b: TestBroker) => Promise<void>, options: { timeoutMs?: number } = {}): Promise<void> {
  const b = await TestBroker.start(handler)
  try {
    const c = await BrokerClient.connect(b.path, options)
    try {
      await body(c, b)
    } finally {
      c.close()
    }
  } finally {
    await b.close()
  }
}

async function rejection(p: Promise<unknown>): Promise<BrokerError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(BrokerError)
    return e as BrokerError
  }
  throw new Error('resolved')
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const socketFilter = () => BpfProgram.load({ type: 'socket_filter', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })

// Lookup of key 0 in `map`, then return 0: a socket filter that references a map twice.
const lookupInsns = (map: { fd: number }) => [
  asm.stW(asm.R10, -4, 0),
  asm.mov64Reg(asm.R2, asm.R10),
  asm.add64Imm(asm.R2, -4),
  asm.ldMapFd(asm.R1, map),
  asm.call('map_lookup_elem'),
  asm.ldMapFd(asm.R1, map),
  asm.mov64Imm(asm.R0, 0),
  asm.exit(),
]

describe('connect and hello', () => {
  test('the hello reply is kept: tenant, admin, policy, quota, usage', async () => {
    await withClient(() => undefined, async (c, b) => {
      expect(c.tenant).toBe('alpha')
      expect(c.admin).toBe(false)
      expect(c.policy).toBeInstanceOf(Policy)
      expect(c.policy!.equals(tenantPolicy)).toBe(true)
      expect(c.quota).toEqual({ maps: 4, bytes: null })
      expect(c.usage).toEqual({ maps: 1 })
      expect(c.brokerVersion).toBe('test')
      expect(b.requests[0]).toMatchObject({ protocol, type: 'hello', seq: 1 })
    })
  })

  test('the path defaults to $BPFKIT_BROKER; an admin has no tenant and no policy', async () => {
    const b = await TestBroker.start()
    b.hello = { body: { tenant: null, policy: null, quota: {}, usage: {}, broker: 'test', admin: true } }
    const before = process.env.BPFKIT_BROKER
    process.env.BPFKIT_BROKER = b.path
    try {
      using c = await BrokerClient.connect()
      expect({ tenant: c.tenant, admin: c.admin, policy: c.policy }).toEqual({ tenant: null, admin: true, policy: undefined })
    } finally {
      if (before === undefined) delete process.env.BPFKIT_BROKER
      else process.env.BPFKIT_BROKER = before
      await b.close()
    }
  })

  test('nobody listening: ENOENT from connect, naming the path', async () => {
    const e = await rejection(BrokerClient.connect('/nonexistent/bpfkit/broker.sock'))
    expect({ code: e.code, syscall: e.syscall, remote: e.remote }).toEqual({ code: 'ENOENT', syscall: 'connect', remote: false })
    expect(e.message).toMatch(/cannot connect to the broker at \/nonexistent\/bpfkit\/broker.sock: ENOENT: no broker listens there/)
  })

  test("the broker's refusal of the peer (an error with seq 0, then close) is the connect error", async () => {
    const b = await TestBroker.start()
    b.hello = { raw: encodeFrame(errorReply(0, { code: 'EACCES', message: 'no tenant matches pid 7 (uid 0, cgroup /x)' })) }
    try {
      const e = await rejection(BrokerClient.connect(b.path))
      expect({ code: e.code, remote: e.remote }).toEqual({ code: 'EACCES', remote: true })
      expect(e.message).toMatch(/no tenant matches pid 7/)
    } finally {
      await b.close()
    }
  })

  test('a broker that refuses at accept (error frame, close) before the hello is read: the reason, not EPIPE', async () => {
    const b = await TestBroker.start()
    b.greeting = encodeFrame(errorReply(0, { code: 'EACCES', message: 'no tenant matches pid 8' }))
    try {
      for (let i = 0; i < 10; i++) {
        const e = await rejection(BrokerClient.connect(b.path))
        expect({ code: e.code, remote: e.remote, message: e.message }).toEqual({ code: 'EACCES', remote: true, message: 'no tenant matches pid 8' })
        await sleep(i * 3)
      }
    } finally {
      await b.close()
    }
  })

  test('a broker that never answers hello: ETIMEDOUT within timeoutMs; an aborted connect: the abort reason', async () => {
    const b = await TestBroker.start()
    b.hello = 'silent'
    try {
      const started = Date.now()
      const e = await rejection(BrokerClient.connect(b.path, { timeoutMs: 200 }))
      expect(e.code).toBe('ETIMEDOUT')
      expect(e.message).toMatch(/hello: waiting for the reply/)
      expect(Date.now() - started).toBeLessThan(5000)
      const controller = new AbortController()
      const pending = BrokerClient.connect(b.path, { signal: controller.signal })
      setTimeout(() => controller.abort(new Error('changed my mind')), 50)
      await expect(pending).rejects.toThrow(/changed my mind/)
    } finally {
      await b.close()
    }
  })

  test('bad arguments are TypeError or RangeError before anything is opened', async () => {
    await expect(BrokerClient.connect('/x', { timeoutMs: 0 })).rejects.toThrow(RangeError)
    await expect(BrokerClient.connect('/x', { wait: true } as never)).rejects.toThrow(/unknown option 'wait'/)
    await expect(BrokerClient.connect('')).rejects.toThrow(TypeError)
  })
})

describe('requests', () => {
  test('one at a time: concurrent calls are queued, each gets its own reply, seqs count up', async () => {
    const handler: Handler = async (req) => {
      if (req.type !== 'show') return undefined
      await sleep(15)
      return { body: { object: view(req.kind, req.id) } }
    }
    await withClient(handler, async (c, b) => {
      const [x, y, z] = await Promise.all([c.show('map', 11), c.show('prog', 22), c.show('link', 33)])
      expect([x.kind, x.id, y.kind, y.id, z.kind, z.id]).toEqual(['map', 11, 'prog', 22, 'link', 33])
      expect(b.requests.map((r) => r.seq)).toEqual([1, 2, 3, 4])
      // Never a request in flight while another waits for its reply.
      expect(b.events).toEqual(['in 1', 'out 1', 'in 2', 'out 2', 'in 3', 'out 3', 'in 4', 'out 4'])
    })
  })

  test('a reply for another seq: EPROTO, the connection is closed, later requests say why', async () => {
    const handler: Handler = (req) => (req.type === 'list' ? { raw: encodeFrame(okReply(req.seq + 1, { objects: [] })) } : undefined)
    await withClient(handler, async (c) => {
      const e = await rejection(c.list())
      expect(e.code).toBe('EPROTO')
      expect(e.message).toMatch(/answered seq 3 to list seq 2: the connection is out of step/)
      expect(c.closed).toBe(true)
      const later = await rejection(c.show('map', 1))
      expect(later.code).toBe('EPIPE')
      expect(later.message).toMatch(/show: the connection to the broker is closed \(the broker answered seq 3/)
    })
  })

  test('a reply that is not a reply: EPROTO and closed', async () => {
    const handler: Handler = (req) => (req.type === 'list' ? { raw: Buffer.from('{"protocol":"bpfkit-broker/1","seq":2,"type":"maybe"}') } : undefined)
    await withClient(handler, async (c) => {
      const e = await rejection(c.list())
      expect(e.code).toBe('EPROTO')
      expect(e.message).toMatch(/type must be 'ok' or 'error'/)
      expect(c.closed).toBe(true)
    })
  })

  test('error replies become BrokerError (remote) with code, rule and violations; the connection stays', async () => {
    const violations = [{ program: 'f', insn: 4, kind: 'helper' as const, name: 'ktime_get_ns', context: [0], allowedBy: ['time'], message: 'insn 4: helper ktime_get_ns is not granted' }]
    const handler: Handler = (req) => {
      if (req.type === 'show') return { error: { code: 'ENOENT', message: `no ${req.kind} ${req.id} in your view` } }
      if (req.type === 'release') return { error: { code: 'EPERM', message: 'refused', rule: 'capabilities', violations } }
      if (req.type === 'list') return { body: { objects: [view('map', 5)] } }
      return undefined
    }
    await withClient(handler, async (c) => {
      const e = await rejection(c.show('map', 7))
      expect({ code: e.code, remote: e.remote, message: e.message, rule: e.rule }).toEqual({ code: 'ENOENT', remote: true, message: 'no map 7 in your view', rule: undefined })
      const p = await rejection(c.release('prog', 3))
      expect({ code: p.code, rule: p.rule, violations: p.violations }).toEqual({ code: 'EPERM', rule: 'capabilities', violations })
      expect(await c.list()).toEqual([view('map', 5)])
    })
  })

  test('the broker closing mid-request: a clear error, whether before the reply or inside it', async () => {
    await withClient((req) => (req.type === 'list' ? 'close' : undefined), async (c) => {
      const e = await rejection(c.list())
      expect(e.code).toBe('ECONNRESET')
      expect(e.message).toMatch(/the broker closed the connection before replying to list \(seq 2\)/)
      expect((await rejection(c.list())).code).toBe('EPIPE')
    })
    // A header claiming 100 bytes, then 6 of them, then the end.
    const half = Buffer.alloc(10)
    half.writeUInt32LE(100, 0)
    await withClient((req) => (req.type === 'list' ? { bytes: half } : undefined), async (c) => {
      const e = await rejection(c.list())
      expect(e.code).toBe('EPROTO')
      expect(e.message).toMatch(/list: waiting for the reply: the peer closed the socket in the middle of a message \(6 of 100 bytes\)/)
      expect(c.closed).toBe(true)
    })
  })

  test('a request that times out closes the client (its reply could answer the next one)', async () => {
    await withClient((req) => (req.type === 'stats' ? 'silent' : undefined), async (c) => {
      const e = await rejection(c.stats())
      expect(e.code).toBe('ETIMEDOUT')
      expect(c.closed).toBe(true)
    }, { timeoutMs: 300 })
  })

  test('close(): queued requests fail with EPIPE; closing twice is a no-op', async () => {
    await withClient((req) => (req.type === 'tenants' ? { body: { tenants: [] } } : undefined), async (c) => {
      const queued = c.tenants()
      c.close()
      c.close()
      expect((await rejection(queued)).code).toMatch(/^(EPIPE|EBADF)$/)
      expect((await rejection(c.tenants())).code).toBe('EPIPE')
    })
  })
})

describe('fds received become typed objects', () => {
  test('createMap: the spec travels wire-safe, the map comes back with its codecs', async () => {
    let made: BpfMap | undefined
    const handler: Handler = (req, fds) => {
      if (req.type !== 'map_create') return undefined
      expect(fds).toHaveLength(req.spec.innerMap === 0 ? 1 : 0)
      if (req.spec.innerMap === 0) expect(bpfObjectKind(fds[0]!.fd)).toBe('map')
      const inner = req.spec.innerMap === 0 ? BpfMap.fromFd(fds[0]!.dup()) : undefined
      try {
        made = BpfMap.create({ ...req.spec, innerMap: inner } as never)
      } finally {
        inner?.close()
      }
      return { body: { object: view('map', made.id, req.spec.name) }, fds: [made] }
    }
    await withClient(handler, async (c, b) => {
      const m = await c.createMap({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 8, name: 'counts' })
      try {
        expect(m).toBeInstanceOf(BpfMap)
        expect(m.id).toBe(made!.id)
        m.set(1, 5n)
        expect(m.get(1)).toBe(5n)
        expect(b.requests[1]).toEqual({ protocol, type: 'map_create', seq: 2, spec: { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8, name: 'counts' } })
      } finally {
        m.close()
        made!.close()
      }
      using inner = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
      const outer = await c.createMap({ type: 'array_of_maps', keySize: 4, maxEntries: 2, innerMap: inner })
      outer.close()
      made!.close()
      expect(b.requests[2]).toMatchObject({ type: 'map_create', spec: { type: 'array_of_maps', innerMap: 0 } })
      // Checked here: the tenant's policy, and what cannot travel.
      await expect(c.createMap({ type: 'ringbuf', maxEntries: 4096 })).rejects.toThrow(PolicyError)
      await expect(c.createMap({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 1, btf: true })).rejects.toThrow(/btf does not travel/)
      await expect(c.createMap({ type: 'array_of_maps', keySize: 4, maxEntries: 1, innerMap: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } })).rejects.toThrow(/not a template/)
      expect(b.requests).toHaveLength(3)
    })
  })

  test('loadProgram: referenced maps go as fds with ld_imm64 indexes; the broker loads with its own fds', async () => {
    using map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })
    const handler: Handler = async (req, fds) => {
      if (req.type !== 'prog_load') return undefined
      // The index rewrite, undone with the broker's fd numbers.
      const bytes = withMapFds(Buffer.from(req.spec.insns, 'base64'), fds.slice(0, req.maps).map((f) => f.fd))
      const p = hold(await BpfProgram.load({ type: req.spec.type as 'socket_filter', bytes, license: req.spec.license, name: req.spec.name, logLevel: req.spec.logLevel }))
      return { body: { object: view('prog', p.id), log: 'verified' }, fds: [p] }
    }
    await withClient(handler, async (c, b) => {
      for (const form of ['insns', 'bytes'] as const) {
        const insns = lookupInsns(map)
        const options = form === 'insns' ? { insns } : { bytes: asm.assemble(insns) }
        const p = await c.loadProgram({ type: 'socket_filter', ...options, license: 'GPL', name: `f_${form}`, logLevel: 1 })
        try {
          expect(p).toBeInstanceOf(BpfProgram)
          expect(p.type).toBe('socket_filter')
          expect(p.info().mapIds).toEqual([map.id])
          expect(p.log).toBe('verified')
        } finally {
          p.close()
        }
        // Two references to one map: one fd, index 0 in both.
        expect(b.requests.at(-1)).toMatchObject({ type: 'prog_load', maps: 1, spec: { type: 'socket_filter', license: 'GPL', name: `f_${form}`, logLevel: 1 } })
      }
    })
  })

  test("loadProgram: the tenant's policy refuses before anything is sent", async () => {
    await withClient(() => undefined, async (c, b) => {
      using ringbuf = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
      const helper = [asm.call('get_prandom_u32'), asm.mov64Imm(asm.R0, 0), asm.exit()]
      const e = await c.loadProgram({ type: 'socket_filter', insns: helper, license: 'GPL' }).catch((x) => x)
      expect(e).toBeInstanceOf(ProgramPolicyError)
      expect((e as ProgramPolicyError).violations.map((v) => v.name)).toEqual(['get_prandom_u32'])
      await expect(c.loadProgram({ type: 'xdp', insns: [asm.mov64Imm(asm.R0, 0), asm.exit()], license: 'GPL' })).rejects.toThrow(/policy does not delegate program type 'xdp'/)
      await expect(c.loadProgram({ type: 'socket_filter', insns: lookupInsns(ringbuf), license: 'GPL' })).rejects.toThrow(ProgramPolicyError)
      await expect(c.loadProgram({ type: 'socket_filter', bytes: new Uint8Array(16).fill(0x18, 0, 1).fill(0x10, 1, 2), license: 'GPL' })).rejects.toThrow(/references fd 0, which is not a BPF map/)
      await expect(c.loadProgram({ type: 'socket_filter', insns: [asm.exit()], fdArray: [] })).rejects.toThrow(/option 'fdArray' does not travel/)
      expect(b.requests.map((r) => r.type)).toEqual(['hello'])
    })
  })

  test('open (get_fd): a map, a program, a link and a BTF object, each typed; a wrong kind or count is EPROTO', async () => {
    using cgroup = childCgroup()
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    using prog = await socketFilter()
    using skb = await BpfProgram.load({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL' })
    using link = BpfLink.attachCgroup(cgroup.path, skb, 'cgroup_inet_ingress')
    using btf = Btf.loadSync(btfForMap('u32', 'u64').bytes)
    const objects = { map, prog, link, btf }
    const handler: Handler = (req) => {
      if (req.type !== 'get_fd') return undefined
      if (req.id === 99) return { body: { object: view('prog', 99) }, fds: [map] } // a map where a program was asked for
      if (req.id === 98) return { body: { object: view('map', 98) } } // no fd at all
      const o = objects[req.kind]
      return { body: { object: view(req.kind, req.id) }, fds: [o instanceof Btf ? o.fd : o] }
    }
    await withClient(handler, async (c) => {
      const m = await c.open('map', map.id)
      const p = await c.open('prog', prog.id)
      const l = await c.open('link', link.id)
      const t = await c.open('btf', btf.id)
      try {
        expect(m).toBeInstanceOf(BpfMap)
        expect(m.id).toBe(map.id)
        expect(p).toBeInstanceOf(BpfProgram)
        expect(p.id).toBe(prog.id)
        expect(l).toBeInstanceOf(BpfLink)
        expect(l.id).toBe(link.id)
        expect(t).toBeInstanceOf(Btf)
        expect(t.id).toBe(btf.id)
      } finally {
        for (const o of [m, p, l, t]) o.close()
      }
      const before = fdTable()
      const wrong = await rejection(c.open('prog', 99))
      expect(wrong.code).toBe('EPROTO')
      expect(wrong.message).toMatch(/sent a map where a prog was expected/)
      const none = await rejection(c.open('map', 98))
      expect(none.message).toMatch(/get_fd: the broker sent 0 fds, expected 1/)
      expect(opened(before, fdTable())).toEqual([])
    })
  })

  test('attach, detach, adopt, pin, unpin, list: the bodies as the protocol says', async () => {
    using cgroup = childCgroup()
    using skb = await BpfProgram.load({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress', insns: [asm.mov64Imm(asm.R0, 1), asm.exit()], license: 'GPL' })
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    let link: BpfLink | undefined
    const handler: Handler = (req, fds) => {
      switch (req.type) {
        case 'attach':
          link = BpfLink.attachCgroup(cgroup.path, skb, 'cgroup_inet_ingress')
          return { body: { object: view('link', link.id) }, fds: [link] }
        case 'adopt':
          return { body: { objects: fds.map((f) => view(bpfObjectKind(f.fd) as 'map', 1)) } }
        case 'pin':
          return { body: { path: `/sys/fs/bpf/bpfkit-tenants/alpha/${req.name}` } }
        default:
          return req.type === 'hello' ? undefined : { body: {} }
      }
    }
    await withClient(handler, async (c, b) => {
      const l = await c.attach(skb, 'cgroup_inet_ingress', { cgroup: '/web' })
      const linkId = link!.id
      expect(l.id).toBe(linkId)
      await c.detach(l)
      l.close()
      link!.close()
      const adopted = await c.adopt([map, skb])
      expect(adopted.map((v) => v.kind)).toEqual(['map', 'prog'])
      expect(await c.pin('map', 4, 'counts')).toBe('/sys/fs/bpf/bpfkit-tenants/alpha/counts')
      await c.unpin('counts')
      await c.release('map', 4)
      await expect(c.adopt([])).rejects.toThrow(RangeError)
      expect(b.requests.slice(1).map(({ protocol: _p, seq: _s, ...r }) => r)).toEqual([
        { type: 'attach', progId: skb.id, attachType: 'cgroup_inet_ingress', target: { cgroup: '/web' } },
        { type: 'detach', linkId },
        { type: 'adopt' },
        { type: 'pin', kind: 'map', id: 4, name: 'counts' },
        { type: 'unpin', name: 'counts' },
        { type: 'release', kind: 'map', id: 4 },
      ])
    })
  })

  test('loadCollection: the file travels as base64 with its variables; maps then programs come back by name', async () => {
    const path = join(__dirname, '../fixtures/bpf/counter.bpf.o')
    const loaded: { close(): void }[] = []
    const handler: Handler = async (req) => {
      if (req.type !== 'collection_load') return undefined
      const spec = CollectionSpec.fromBuffer(Buffer.from(req.elf, 'base64'))
      spec.variables.threshold!.set(Number(req.variables!.threshold))
      const coll = await spec.load()
      loaded.push(coll) // closed after the reply went: the fds travel as duplicates
      const maps = Object.entries(coll.maps)
      const programs = Object.entries(coll.programs)
      return {
        body: { maps: Object.fromEntries(maps.map(([n, m]) => [n, view('map', m.id, n)])), programs: Object.fromEntries(programs.map(([n, p]) => [n, view('prog', p.id, n)])) },
        fds: [...maps.map(([, m]) => m), ...programs.map(([, p]) => p)],
      }
    }
    await withClient(handler, async (c, b) => {
      const { maps, programs } = await c.loadCollection(path, { variables: { threshold: 3n } })
      try {
        const req = b.requests[1]!
        expect(req.type === 'collection_load' && Buffer.from(req.elf, 'base64').equals(readFileSync(path))).toBe(true)
        expect(req).toMatchObject({ type: 'collection_load', variables: { threshold: '3' } })
        expect(maps.counts).toBeInstanceOf(BpfMap)
        expect(programs.count_packets).toBeInstanceOf(BpfProgram)
        expect(programs.count_packets!.type).toBe('socket_filter')
        expect(programs.count_packets!.info().mapIds).toContain(maps.counts!.id)
      } finally {
        for (const o of [...Object.values(maps), ...Object.values(programs)]) o.close()
        for (const o of loaded) o.close()
      }
      await expect(c.loadCollection(new Uint8Array())).rejects.toThrow(/empty/)
    })
  })

  test('requestDelegation: a bpf filesystem context goes, a mount and the granted policy come back', async () => {
    const granted = Policy.from({ cmds: ['map_create'], maps: ['hash'], progs: [], attachs: [] })
    let sent: string | undefined
    const handler: Handler = (req, fds) => {
      if (req.type !== 'delegate') return undefined
      sent = readlinkSync(`/proc/self/fd/${fds[0]!.fd}`)
      // Any fd stands for the mount here: the client only hands it on.
      return { body: { policy: granted.toJSON() }, fds: [hold(fds[0]!.dup())] }
    }
    await withClient(handler, async (c, b) => {
      const d = await c.requestDelegation({ policy: granted })
      try {
        expect(sent).toMatch(/^anon_inode:\[?fscontext\]?$/)
        expect(d.mount).toBeInstanceOf(Fd)
        expect(d.policy.equals(granted)).toBe(true)
        expect(b.requests[1]).toMatchObject({ type: 'delegate', policy: granted.toJSON() })
      } finally {
        d.mount.close()
      }
    })
  })
})

describe('no fds left behind', () => {
  test('after connects, typed objects, error replies, refusals and a broker that vanished, the fd table is as before', async () => {
    using map = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
    const handler: Handler = (req) => {
      if (req.type === 'get_fd') return req.id === 1 ? { body: { object: view('map', 1) }, fds: [map] } : { error: { code: 'ENOENT', message: 'no map' } }
      if (req.type === 'show') return { body: { object: view('map', 1) }, fds: [map, map] } // fds with a reply that takes none
      if (req.type === 'list') return 'close'
      return undefined
    }
    // Warm up whatever Node opens once (its event loop's own fds).
    await withClient(handler, async (c) => void (await c.open('map', 1)).close())
    const before = fdTable()
    for (let i = 0; i < 5; i++) {
      await withClient(handler, async (c) => {
        ;(await c.open('map', 1)).close()
        await rejection(c.open('map', 2))
        expect((await rejection(c.show('map', 1))).message).toMatch(/show: the broker sent 2 fds, expected 0/)
        await rejection(c.list())
      })
    }
    await sleep(50)
    expect(opened(before, fdTable())).toEqual([])
  })
})
