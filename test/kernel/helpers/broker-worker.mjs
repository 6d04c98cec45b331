// A worker process of the broker load test (test/kernel/broker-load.test.ts),
// started with child_process.fork and driven by one IPC message. It runs the
// compiled package (dist/, built by the suite's global setup), as a tenant's
// process would.
//
// { mode: 'tenants', socket, home, tenants: [{ name, cgroupDir }], maps }:
//   for each tenant in turn, moves the whole process into the tenant's
//   cgroup (its pid into cgroup.procs), connects (the broker identifies a
//   peer once, at accept) and keeps the connection; then moves back to
//   `home`, a cgroup no tenant matches, so that nothing it holds later counts
//   as a tenant's. Then every tenant at once: `maps` map_creates (each fd
//   closed at once: the broker keeps the map pinned), list, release each,
//   list. Answers { results: [{ name, hello, made, first, second }] } with
//   object refs as 'kind:id'.
// { mode: 'malformed', socket, cgroupDir, count, seed }: moves into one
//   tenant's cgroup for good and sends `count` malformed frames (see
//   malformedFrame below), reconnecting whenever the broker closed the
//   connection. Answers { sent, replies: { code: n }, oks, closes, reconnects, silent, lost }.
// { mode: 'check', socket, cgroupDir }: connects as that cgroup's tenant and
//   answers { hello, list } (the broker is still serving).
// { mode: 'holder', cgroupDir }: a process of the tenant's own holding a map
//   it made itself (found by discovery); sends { held }, stops when told.
import { createRequire } from 'node:module'
import { closeSync, openSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const require = createRequire(import.meta.url)
// Only the modes that speak as a client load it (the malformed frames need none).
const client = () => require(join(root, 'dist/broker/client.js')).BrokerClient
const { FdSocket } = require(join(root, 'dist/ipc/index.js'))
const { native } = require(join(root, 'dist/sys/addon.js'))

const protocol = 'bpfkit-broker/1'
const ref = (v) => `${v.kind}:${v.id}`
const moveTo = (dir) => writeFileSync(join(dir, 'cgroup.procs'), String(process.pid))

async function tenants({ socket, home, tenants, maps }) {
  const clients = []
  try {
    for (const t of tenants) {
      moveTo(t.cgroupDir)
      clients.push(await client().connect(socket, { timeoutMs: 20_000 }))
    }
  } finally {
    moveTo(home)
  }
  return Promise.all(tenants.map(async (t, i) => {
    const c = clients[i]
    try {
      const made = []
      for (let j = 0; j < maps; j++) {
        const m = await c.createMap({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 16, name: `load_${j}` })
        made.push(`map:${m.id}`)
        m.close()
      }
      const first = (await c.list()).map(ref)
      for (const r of made) await c.release('map', Number(r.split(':')[1]))
      const second = (await c.list()).map(ref)
      return { name: t.name, hello: c.tenant, made, first, second }
    } finally {
      c.close()
    }
  }))
}

// ---- malformed frames ----

/** A small PRNG (mulberry32), so a failing run can be repeated with its seed. */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const json = (o) => Buffer.from(JSON.stringify(o))
const deep = (n) => '['.repeat(n) + ']'.repeat(n)

/**
 * Well-framed payloads that no broker may accept: not JSON, not an object,
 * another protocol, unknown types, wrong or missing fields, unknown keys,
 * out-of-range values, deep nesting, long strings, bad pin names. None can
 * create anything (every map_create here has an invalid spec).
 */
const badPayloads = [
  () => Buffer.from('{"protocol":'),
  () => Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
  () => Buffer.from('null'),
  () => Buffer.from('[]'),
  () => Buffer.from('"list"'),
  () => Buffer.from('1e999'),
  () => Buffer.alloc(0),
  () => Buffer.from(deep(64)),
  () => Buffer.from(`{"protocol":"${protocol}","type":"list","seq":1,"kinds":${deep(40)}}`),
  () => Buffer.from(`{"protocol":"${protocol}","type":"list","seq":1,"__proto__":{"admin":true}}`),
  () => json({ protocol: 'bpfkit-broker/0', type: 'list', seq: 1 }),
  () => json({ type: 'list', seq: 1 }),
  () => json({ protocol, type: 'nope', seq: 1 }),
  () => json({ protocol, type: 'constructor', seq: 1 }),
  () => json({ protocol, type: 'list', seq: -1 }),
  () => json({ protocol, type: 'list', seq: 'x' }),
  () => json({ protocol, type: 'list', seq: 1, kinds: ['nope'] }),
  () => json({ protocol, type: 'list', seq: 1, kinds: 'map' }),
  () => json({ protocol, type: 'list', seq: 1, bogus: 1 }),
  () => json({ protocol, type: 'show', seq: 1, kind: 'map', id: -1 }),
  () => json({ protocol, type: 'show', seq: 1, kind: 'map', id: 1e20 }),
  () => json({ protocol, type: 'show', seq: 1, kind: 'map', id: '7' }),
  () => json({ protocol, type: 'show', seq: 1, kind: 'token', id: 1 }),
  () => json({ protocol, type: 'get_fd', seq: 1, kind: 'prog' }),
  () => json({ protocol, type: 'release', seq: 1, kind: 'map', id: 0.5 }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: { type: 'hash', keySize: 4, valueSize: 8 } }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: { type: 'nope', keySize: 4, valueSize: 8, maxEntries: 1 } }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: { type: 'hash', keySize: -4, valueSize: 8, maxEntries: 1 } }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1, name: 'x'.repeat(16) } }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1, bogus: true } }),
  () => json({ protocol, type: 'map_create', seq: 1, spec: 'hash' }),
  () => json({ protocol, type: 'prog_load', seq: 1, spec: { type: 'socket_filter', license: 'GPL', insns: '!!!' }, maps: 0 }),
  () => json({ protocol, type: 'prog_load', seq: 1, spec: { type: 'socket_filter', license: 'GPL', insns: '' }, maps: 3 }),
  () => json({ protocol, type: 'pin', seq: 1, kind: 'map', id: 1, name: '../escape' }),
  () => json({ protocol, type: 'pin', seq: 1, kind: 'map', id: 1, name: 'a.b' }),
  () => json({ protocol, type: 'unpin', seq: 1, name: '' }),
  () => json({ protocol, type: 'attach', seq: 1, progId: 1, attachType: 'cgroup_inet_ingress', target: { cgroup: '../..' } }),
  () => json({ protocol, type: 'detach', seq: 1 }),
  () => json({ protocol, type: 'adopt', seq: 1 }),
  () => json({ protocol, type: 'delegate', seq: 1 }),
  () => json({ protocol, type: 'hello', seq: 1, client: 'x'.repeat(5000) }),
  () => json({ protocol, type: 'list_all', seq: 1 }),
]

/** One malformed frame: `{ kind, bytes, fds?, closeAfter? }`. Most are well framed; some break the framing itself. */
function malformedFrame(rnd, junkFd) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)]
  const r = rnd()
  if (r < 0.75) return { kind: 'payload', bytes: frame(pick(badPayloads)()) }
  if (r < 0.82) {
    // A well-formed list with fds it must not carry.
    return { kind: 'fds', bytes: frame(json({ protocol, type: 'list', seq: 2 })), fds: [junkFd] }
  }
  if (r < 0.88) {
    // A header claiming more than the frame limit (or the most a u32 can say).
    const claim = pick([2 ** 31, 2 ** 32 - 1, (1 << 20) + 1])
    const b = Buffer.alloc(8)
    b.writeUInt32LE(claim, 0)
    return { kind: 'oversize', bytes: b, framing: true }
  }
  if (r < 0.94) {
    // Cut: the header promises more than comes, then the connection ends.
    const body = json({ protocol, type: 'list', seq: 3 })
    const b = Buffer.alloc(4 + 5)
    b.writeUInt32LE(body.length, 0)
    body.copy(b, 4, 0, 5)
    return { kind: 'cut', bytes: b, framing: true, closeAfter: true }
  }
  if (r < 0.97) return { kind: 'short-header', bytes: Buffer.from([pick([0, 1, 2]), 0]), framing: true, closeAfter: true }
  // 65 fds: over the broker's maxFds (64).
  return { kind: 'too-many-fds', bytes: frame(json({ protocol, type: 'list', seq: 4 })), fds: new Array(65).fill(junkFd), framing: true }
}

function frame(payload) {
  const b = Buffer.alloc(4 + payload.length)
  b.writeUInt32LE(payload.length, 0)
  payload.copy(b, 4)
  return b
}

function connectRaw(path) {
  return new Promise((resolve, reject) => {
    const s = connect({ path })
    s.once('error', reject)
    s.once('connect', () => resolve(FdSocket.from(s)))
  })
}

/** Writes raw bytes (a header may lie), fds on the first byte, waiting while the socket is full. */
async function sendRaw(sock, bytes, fds) {
  let off = 0
  while (off < bytes.length) {
    const n = native.sendWithFds(sock.fd, bytes.subarray(off), off === 0 ? fds : undefined)
    if (n < 0) await new Promise((r) => setTimeout(r, 1))
    else off += n
  }
}

/** The next message, or undefined for a close (or a stream the broker broke off); 'silent' when nothing came in 10 s. */
async function nextReply(sock) {
  try {
    const m = await sock.receive({ maxFds: 4, maxBytes: 1 << 20, signal: AbortSignal.timeout(10_000) })
    if (m) for (const fd of m.fds) fd.close()
    return m
  } catch (e) {
    return e.name === 'TimeoutError' || e.name === 'AbortError' ? 'silent' : undefined
  }
}

/**
 * Sends `count` malformed frames in batches: up to 16 well-framed ones back
 * to back (the broker answers each, in order), their replies read; then,
 * when the batch drew one, a frame that breaks the framing, after which the
 * broker closes (a best-effort error frame, then the end). The framing
 * frame goes only once the replies are in: a broker that closes with bytes
 * of ours unread resets the connection, and FdSocket then loses replies
 * still queued on our side (its poll sees the error first). Every
 * well-framed frame must get its error reply (`lost` counts closes instead).
 */
async function malformed({ socket, cgroupDir, count, seed }) {
  moveTo(cgroupDir)
  const rnd = prng(seed)
  // Not a BPF object: an fd of the wrong kind wherever it goes.
  const junkFd = openSync('/dev/null', 'r')
  const out = { sent: 0, replies: {}, oks: [], closes: 0, reconnects: 0, silent: 0, lost: 0 }
  const count1 = (msg, f) => {
    if (msg.type === 'ok') out.oks.push(f.kind)
    else out.replies[msg.code] = (out.replies[msg.code] ?? 0) + 1
  }
  let sock
  try {
    while (out.sent < count) {
      if (!sock || sock.closed) {
        if (sock) out.reconnects++
        sock = await connectRaw(socket)
      }
      const batch = []
      let breaker
      while (batch.length < 16 && out.sent + batch.length < count) {
        const f = malformedFrame(rnd, junkFd)
        if (f.framing) {
          breaker = f
          break
        }
        batch.push(f)
      }
      for (const f of batch) await sendRaw(sock, f.bytes, f.fds)
      out.sent += batch.length
      let open = true
      for (const f of batch) {
        const reply = await nextReply(sock)
        if (reply === undefined || reply === 'silent') {
          if (reply === 'silent') out.silent++
          else out.lost++
          out.closes++
          sock.close()
          open = false
          break
        }
        count1(JSON.parse(reply.data.toString()), f)
      }
      if (!breaker || !open || out.sent >= count) continue
      await sendRaw(sock, breaker.bytes, breaker.fds)
      out.sent++
      out.closes++
      if (breaker.closeAfter) {
        sock.close()
        continue
      }
      // A last error frame (when it is not lost to the reset), then the end; nothing else.
      const last = await nextReply(sock)
      if (last === 'silent') out.silent++
      else if (last !== undefined) {
        count1(JSON.parse(last.data.toString()), breaker)
        const end = await nextReply(sock)
        if (end === 'silent') out.silent++
        else if (end !== undefined) out.oks.push(`${breaker.kind}: a second frame after a framing error`)
      }
      sock.close()
    }
  } finally {
    sock?.close()
    closeSync(junkFd)
  }
  return out
}

async function check({ socket, cgroupDir, home }) {
  moveTo(cgroupDir)
  let c
  try {
    c = await client().connect(socket, { timeoutMs: 20_000 })
  } finally {
    moveTo(home)
  }
  try {
    return { hello: c.tenant, list: (await c.list()).map(ref) }
  } finally {
    c.close()
  }
}

/**
 * A process of the tenant's own: moves into its cgroup, makes a map itself
 * (not through the broker: the broker finds it among the tenant's tasks'
 * fds), sends { held: 'map:ID' }, and holds it until told to stop.
 */
async function holder({ cgroupDir }) {
  moveTo(cgroupDir)
  const { BpfMap } = require(join(root, 'dist/index.js'))
  const m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'held' })
  process.send({ held: `map:${m.id}` })
  await new Promise((resolve) => process.once('message', resolve))
  m.close()
  return { closed: true }
}

process.once('message', async (task) => {
  try {
    const run = { tenants, malformed, check, holder }[task.mode]
    const result = await run(task)
    process.send({ ok: true, result }, () => process.exit(0))
  } catch (e) {
    process.send({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e), code: e?.code }, () => process.exit(1))
  }
})
