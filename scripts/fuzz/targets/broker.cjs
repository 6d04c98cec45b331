'use strict'
// Fuzz target: the tenant broker (lib/broker), in process, on a socket of
// its own. The fuzz child starts one broker on first use (cases share it)
// with one tenant, matched by a cgroup of the child's own that it moves
// itself into; pins go into a bpffs of its own mounted on
// $TMPDIR/bpfkit-fuzz-<pid> (a host need not have /sys/fs/bpf mounted, and
// the fuzzer touches nothing there), unmounted when the child exits (and,
// from a child that was killed, by the next one).
//
// Cases: well-formed requests with one field mutated (any value, deleted, or
// an unknown key beside it), sent as raw frames so that the broker and not
// the client's own checks meets them; raw frames whose header lies (lengths
// 0, 1, 2^31, 2^32-1, a payload cut short); requests carrying random fds
// (pipes, /dev/null, sockets, maps, programs, BTF, closed numbers); closes in
// the middle of a request; the BrokerClient's own methods with hostile
// arguments; and decodeRequest on its own (pure: `decode`, also meant for
// the api target).
//
// Oracle: every request settles (a hang is the harness's finding); every
// reply decodes (decodeReply) and an error reply's message is not a
// JavaScript-internal one; no unhandled rejection (the child reports
// those); after the case, with its sockets closed and what it made released,
// the broker has no session left, its registry is as empty as before and
// the tenant's pin directory too; the process's fd table is the harness's
// own check.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { anyValue, wrongTypes } = require('../gen.cjs')

exports.name = 'broker'
exports.needsDist = true

exports.prelude = (root) =>
  `const B = require(${JSON.stringify(__filename)})
const { BrokerClient } = require(${JSON.stringify(path.join(root, 'dist/broker/client.js'))})`

const protocol = 'bpfkit-broker/1'
const returnZeroB64 = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]).toString('base64')
const tenant = 'fuzz'

// ---- the shared broker (one per fuzz child) ----

let shared

/** The child's broker, started on first use: { broker, socket, stateDir, pinBase, tenantPins, api }. */
exports.shared = (h) => {
  shared ??= start(h)
  return shared
}

function cgroup2Mount() {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right?.startsWith('cgroup2 ')) {
      const f = left.split(' ')
      return { root: f[3], point: f[4] }
    }
  }
  throw new Error('fuzz: no cgroup2 mount (the broker target matches its tenant by cgroup)')
}

function ownCgroupDir(mount) {
  const line = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::'))
  if (!line) throw new Error('fuzz: this process is in no cgroup v2')
  const p = line.slice(3)
  return path.join(mount.point, mount.root === '/' ? p : p.slice(mount.root.length))
}

const alive = (pid) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return e.code === 'EPERM'
  }
}

const unmountAndRemove = (p) => {
  try { execFileSync('umount', [p], { stdio: 'ignore' }) } catch {}
  fs.rmdirSync(p)
}

/** What a killed fuzz child left: its bpffs mount and its cgroup (names with a pid that is gone). */
function removeStale(mount) {
  for (const [dir, rm] of [[os.tmpdir(), unmountAndRemove], [mount.point, (p) => fs.rmdirSync(p)]]) {
    let names = []
    try { names = fs.readdirSync(dir) } catch {}
    for (const name of names) {
      const m = /^bpfkit-fuzz-(\d+)$/.exec(name)
      if (m && !alive(Number(m[1]))) try { rm(path.join(dir, name)) } catch {}
    }
  }
}

async function start(h) {
  if (process.getuid?.() !== 0) throw new Error('fuzz: the broker target needs root (a broker, a cgroup, pins)')
  const api = require(path.join(h.root, 'dist/index.js'))
  const { startBroker } = require(path.join(h.root, 'dist/broker/server.js'))
  const validate = require(path.join(h.root, 'dist/broker/validate.js'))
  const mount = cgroup2Mount()
  removeStale(mount)
  const name = `bpfkit-fuzz-${process.pid}`
  const home = ownCgroupDir(mount)
  const cgroup = path.join(mount.point, name)
  const pinBase = path.join(os.tmpdir(), name)
  const dir = fs.mkdtempSync(path.join(h.tmp, 'broker-'))
  fs.mkdirSync(cgroup)
  fs.mkdirSync(pinBase)
  execFileSync('mount', ['-t', 'bpf', 'bpf', pinBase])
  const moveTo = (d) => fs.writeFileSync(path.join(d, 'cgroup.procs'), String(process.pid))
  process.on('exit', () => {
    // Synchronous only: the broker's sockets die with the process; its pins and the cgroup must not outlive it.
    try { moveTo(home) } catch {}
    try { fs.rmdirSync(cgroup) } catch {}
    try { unmountAndRemove(pinBase) } catch {}
  })
  moveTo(cgroup)
  const config = {
    socket: path.join(dir, 'broker.sock'),
    stateDir: path.join(dir, 'state'),
    pinRoot: path.join(pinBase, 'broker'),
    tenantPinRoot: path.join(pinBase, 'tenants'),
    tenants: [{
      name: tenant,
      match: { cgroup: `/${name}` },
      policy: { cmds: 'any', maps: 'any', progs: ['socket_filter'], attachs: 'any' },
      quota: { maps: 32, progs: 8, pins: 16, connections: 64 },
    }],
    guard: false,
    limits: { idleTimeoutMs: 3000, maxConnectionsPerTenant: 64 },
  }
  const broker = await startBroker(config, { log: () => {} })
  return {
    broker, api, validate, socket: config.socket, stateDir: config.stateDir,
    tenantPins: path.join(config.tenantPinRoot, tenant),
    /** Sockets the running case opened, closed by finish. */
    open: new Set(),
  }
}

// ---- helpers the case source calls (B.*) ----

/** A raw connection (an FdSocket), owned by the case. */
exports.connect = (h, s) => new Promise((resolve, reject) => {
  const c = require('node:net').connect({ path: s.socket })
  c.once('error', reject)
  c.once('connect', () => {
    const sock = s.api.FdSocket.from(c)
    s.open.add(sock)
    resolve(h.own(sock))
  })
})

/** A BrokerClient, owned by the case. */
exports.client = async (h, s, BrokerClient) => {
  const c = await BrokerClient.connect(s.socket, { timeoutMs: 5000 })
  s.open.add(c)
  return h.own(c)
}

/**
 * Sends one request frame (JSON of `msg`, or the bytes given) with `fds` and
 * reads the reply, which must come and decode. Gives the reply or undefined
 * (the client side refused the fds, or the broker closed the connection).
 */
exports.exchange = async (h, s, sock, msg, fds = []) => {
  const data = msg instanceof Uint8Array ? msg : Buffer.from(JSON.stringify(msg))
  const sent = await h.call('send', () => sock.send(data, fds).then(() => true))
  if (!sent || sock.closed) return undefined
  const got = h.own(await h.call('receive reply', () => h.closeAfter(sock, 2000, sock.receive({ maxFds: 8 }))))
  if (!got) return undefined
  let reply
  try {
    reply = s.validate.decodeReply(got.data)
  } catch (e) {
    h.expect(false, `the broker's reply does not decode: ${e.message}`)
    return undefined
  }
  // The type as sent may be anything (an object without a prototype): named only when a string.
  const type = typeof msg.type === 'string' ? msg.type : 'raw bytes'
  if (reply.type === 'error') h.classify(`broker reply to ${type}`, new Error(reply.message))
  else h.expect(got.fds.length <= 1 || type === 'collection_load', `${got.fds.length} fds with an ok reply to ${type}`)
  return reply
}

/** Raw bytes on a connection (a header may lie), then maybe a reply or a close; must settle. */
exports.raw = async (h, s, sock, bytes, fds, closeAfter) => {
  const sent = await h.call('raw send', () => h.native.sendWithFds(sock.fd, bytes, fds))
  if (sent === undefined || closeAfter) {
    sock.close()
    return
  }
  // Often nothing comes (a header still short of 4 bytes, a payload still owed): the case's close settles it.
  h.own(await h.call('receive after raw bytes', () => h.closeAfter(sock, 200, sock.receive({ maxFds: 8 }))))
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Sessions (connections) the broker still serves. */
const sessions = (s) => s.broker.stats().connections

async function quiet(s, ms = 3000) {
  const end = Date.now() + ms
  while (sessions(s) > 0 && Date.now() < end) await sleep(5)
  return sessions(s)
}

/** Records in the broker's registry: what stats() counts, and what registry.json (saved before each reply) holds. */
function registrySize(s) {
  const counted = s.broker.stats().objects
  let saved = 0
  try {
    saved = JSON.parse(fs.readFileSync(path.join(s.stateDir, 'registry.json'), 'utf8')).objects.length
  } catch (e) {
    if (e.code !== 'ENOENT') throw e
  }
  return Math.max(counted, saved)
}

function pinNames(s) {
  try {
    return fs.readdirSync(s.tenantPins)
  } catch {
    return []
  }
}

/**
 * The case's end: its sockets closed, the broker quiet (no session), what
 * the case made or adopted released and its pins unpinned by a clean
 * client; then the oracle: no session, registry empty, no pins.
 */
exports.finish = async (h, s, BrokerClient) => {
  for (const x of s.open) try { x.close() } catch {}
  s.open.clear()
  const left = await quiet(s)
  h.expect(left === 0, `${left} broker sessions still open 3 s after their peers closed`)
  const c = await h.setup(() => BrokerClient.connect(s.socket, { timeoutMs: 5000 }))
  try {
    for (const v of await c.list()) {
      if (v.origin === 'made' || v.origin === 'adopted') await c.release(v.kind, v.id)
    }
    for (const name of pinNames(s)) await c.unpin(name)
  } finally {
    c.close()
  }
  const after = await quiet(s)
  h.expect(after === 0, `${after} broker sessions still open after the clean client closed`)
  const size = registrySize(s)
  h.expect(size === 0, `the broker's registry holds ${size} records after the case released everything`)
  const pins = pinNames(s)
  h.expect(pins.length === 0, `tenant pins left after unpinning: ${pins.join(', ')}`)
}

// ---- generators (source text) ----

/** JSON values that no field expects, as source text. */
const jsonHostile = [
  'null', 'true', '-1', '0.5', '2 ** 32', '2 ** 53', '-0', '1e308', "''", "'x'.repeat(5000)", "'\\u0000'",
  "'../../etc'", "'a.b'", '[]', '{}', '[1, 2]', "['map', 'nope']", "{ '__proto__': { admin: true } }",
  "JSON.parse('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]')", "'map'", "'prog'", '4294967295',
]

const fdExpr = (rng) => rng.pick(['h.pipeFd()', 'h.devNull()', 'h.hashMapFd()', 'h.arrayMapFd()', 'h.ringbufMapFd()', 'h.progFd()', 'h.btfFd()', 'h.socketFd()', 'h.dirFd()', 'h.closedFd()'])
const kindOf = (rng) => rng.pick(['map', 'map', 'prog', 'link', 'btf'])
/** An id: of an object the case made, of one it holds, one nobody has, or an edge. */
const idExpr = (rng, pure) => pure ? rng.pick(['1', '5', '2147483647', '4294967295', '0']) : rng.pick(['made.at(-1) ?? 1', 'made[0] ?? 0', 'h.idOf(h.hashMapFd(), "map")', 'h.idOf(h.progFd(), "prog")', '1', '2147483647', '4294967295', '0'])
const pinName = (rng) => rng.pick(['p1', 'p2', 'fuzz_pin', 'a-b'])

/** A valid request of each type: [type, body source, fds source]. */
const requests = {
  hello: () => ['{ client: "fuzz" }', '[]'],
  list: (rng) => [rng.pick(['{}', "{ kinds: ['map'] }", "{ kinds: ['prog', 'btf'], origins: ['made'] }", "{ origins: ['held', 'pinned'] }"]), '[]'],
  show: (rng, pure) => [`{ kind: '${kindOf(rng)}', id: ${idExpr(rng, pure)} }`, '[]'],
  get_fd: (rng, pure) => [`{ kind: '${kindOf(rng)}', id: ${idExpr(rng, pure)} }`, '[]'],
  release: (rng, pure) => [`{ kind: '${kindOf(rng)}', id: ${idExpr(rng, pure)} }`, '[]'],
  pin: (rng, pure) => [`{ kind: '${kindOf(rng)}', id: ${idExpr(rng, pure)}, name: '${pinName(rng)}' }`, '[]'],
  unpin: (rng) => [`{ name: '${pinName(rng)}' }`, '[]'],
  map_create: (rng) => rng.pick([
    () => [`{ spec: { type: '${rng.pick(['hash', 'array', 'lru_hash'])}', keySize: 4, valueSize: ${rng.pick([4, 8, 64])}, maxEntries: ${rng.pick([1, 16, 1024])}, name: 'fz' } }`, '[]'],
    () => ["{ spec: { type: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: 0 } }", '[h.arrayMapFd()]'],
  ])(),
  prog_load: (rng) => rng.pick([
    () => [`{ spec: { type: 'socket_filter', license: 'GPL', insns: '${returnZeroB64}', name: 'fz' }, maps: 0 }`, '[]'],
    () => [`{ spec: { type: 'socket_filter', license: 'GPL', insns: '${returnZeroB64}' }, maps: 1 }`, '[h.hashMapFd()]'],
  ])(),
  collection_load: (rng) => [`{ elf: '${Buffer.from(rng.bytes(rng.int(64))).toString('base64')}' }`, '[]'],
  adopt: (rng) => ['{}', `[${Array.from({ length: rng.range(1, 3) }, () => rng.pick(['h.hashMapFd()', 'h.progFd()', 'h.btfFd()', 'h.arrayMapFd()'])).join(', ')}]`],
  attach: (rng, pure) => [`{ progId: ${pure ? 3 : 'made.at(-1) ?? 1'}, attachType: 'cgroup_inet_ingress', target: { cgroup: '.' } }`, '[]'],
  detach: (rng, pure) => [`{ linkId: ${idExpr(rng, pure)} }`, '[]'],
  delegate: () => ['{}', '[h.pipeFd()]'],
  list_all: () => ['{}', '[]'],
  stats: () => ['{}', '[]'],
}
const types = Object.keys(requests)

/** Each request's fields ('a.b' inside an object), for picking one to mutate. */
const fieldsOf = {
  hello: ['client'],
  list: ['kinds', 'kinds.0', 'origins', 'origins.0'],
  show: ['kind', 'id'],
  get_fd: ['kind', 'id'],
  release: ['kind', 'id'],
  pin: ['kind', 'id', 'name'],
  unpin: ['name'],
  map_create: ['spec', 'spec.type', 'spec.keySize', 'spec.valueSize', 'spec.maxEntries', 'spec.name', 'spec.flags', 'spec.innerMap', 'spec.mapExtra', 'spec.numaNode', 'token'],
  prog_load: ['spec', 'spec.type', 'spec.license', 'spec.insns', 'spec.name', 'spec.logLevel', 'spec.expectedAttachType', 'spec.attachBtfId', 'maps', 'token'],
  collection_load: ['elf', 'name', 'variables', 'variables.x', 'programs', 'token'],
  adopt: [],
  attach: ['progId', 'attachType', 'target', 'target.cgroup', 'target.ifname', 'target.netdev', 'flags'],
  detach: ['linkId'],
  delegate: ['policy', 'policy.cmds'],
  list_all: ['kinds'],
  stats: [],
}
const envelope = ['protocol', 'type', 'seq']
const otherFields = ['kind', 'id', 'name', 'kinds', 'client', 'linkId', 'spec', '__proto__', 'constructor']
/** Mostly one of the request's own fields; sometimes the envelope, or a key of another request. */
const pickField = (rng, type) => rng.weighted([
  [fieldsOf[type].length ? 7 : 0, () => rng.pick(fieldsOf[type])],
  [2, () => rng.pick(envelope)],
  [1, () => rng.pick(otherFields)],
])

/** A request with one thing wrong: a field's value, a field gone, or a key too many; or the envelope wrong. */
const mutated = (rng) => {
  const type = rng.pick(types)
  const [body, fds] = requests[type](rng)
  const field = pickField(rng, type)
  const value = rng.weighted([[5, () => rng.pick(jsonHostile)], [2, () => rng.pick(['"list"', '"hello"', '"bpfkit-broker/0"', `'${rng.pick(types)}'`])], [1, () => anyValue(rng)]])
  const how = rng.weighted([[6, 'set'], [2, 'delete'], [2, 'extra']])
  return `{
  const sock = await h.setup(() => B.connect(h, s))
  const msg = { protocol: '${protocol}', type: '${type}', seq: ${rng.int(1000)}, ...${body} }
  B.mutate(msg, ${JSON.stringify(field)}, ${JSON.stringify(how)}, () => (${value}))
  const reply = await B.exchange(h, s, sock, msg, ${fds})
  if (reply?.type === 'ok' && reply.object) made.push(reply.object.id)
}`
}

/** Sets, deletes or adds beside `field` ('a.b' reaches into a nested object); a value that cannot be JSON is sent as it serialises. */
exports.mutate = (msg, field, how, value) => {
  const parts = field.split('.')
  let o = msg
  for (const p of parts.slice(0, -1)) {
    if (o[p] === null || typeof o[p] !== 'object') o[p] = {}
    o = o[p]
  }
  const last = parts[parts.length - 1]
  let v
  try {
    v = value()
    JSON.stringify(v)
  } catch {
    // A bigint, a throwing proxy: what cannot travel as JSON travels as a string.
    v = 'unserialisable'
  }
  if (how === 'delete') delete o[last]
  else if (how === 'extra') o[`${last}_extra`] = v ?? 1
  else o[last] = v
}

/** A valid request, raw or through the client's low-level request(). */
const valid = (rng) => {
  const type = rng.pick(types)
  const [body, fds] = requests[type](rng)
  if (rng.bool(0.5)) {
    return `{
  const sock = await h.setup(() => B.connect(h, s))
  const reply = await B.exchange(h, s, sock, { protocol: '${protocol}', type: '${type}', seq: ${rng.int(1 << 30)}, ...${body} }, ${fds})
  if (reply?.type === 'ok' && reply.object) made.push(reply.object.id)
}`
  }
  return `{
  const c = await h.setup(() => B.client(h, s, BrokerClient))
  const r = h.own(await h.call('request ${type}', () => c.request('${type}', ${body}, ${fds})))
  if (r?.reply?.object) made.push(r.reply.object.id)
}`
}

/** The client's own methods, with hostile arguments now and then. */
const clientApi = (rng) => {
  const arg = (valid) => (rng.bool(0.75) ? valid : rng.pick(wrongTypes))
  const steps = []
  for (let i = rng.range(1, 4); i > 0; i--) {
    steps.push(rng.pick([
      () => `{ const m = h.own(await h.call('createMap', () => c.createMap(${arg(`{ type: 'hash', keySize: 4, valueSize: 8, maxEntries: ${rng.pick([1, 8, 0, -1])} }`)}))); if (m) made.push(m.id) }`,
      () => `h.own(await h.call('list', () => c.list(${arg(rng.pick(['', "{ kinds: ['map'] }", '{ kinds: [] }']))})))`,
      () => `h.own(await h.call('show', () => c.show(${arg(`'${kindOf(rng)}'`)}, ${arg(idExpr(rng))})))`,
      () => `h.own(await h.call('open', () => c.open(${arg(`'${kindOf(rng)}'`)}, ${arg(idExpr(rng))})))`,
      () => `await h.call('release', () => c.release(${arg("'map'")}, ${arg(idExpr(rng))}))`,
      () => `await h.call('pin', () => c.pin(${arg("'map'")}, ${arg(idExpr(rng))}, ${arg(`'${pinName(rng)}'`)}))`,
      () => `await h.call('unpin', () => c.unpin(${arg(`'${pinName(rng)}'`)}))`,
      // An Fd owns a number of its own (a dup, or one the harness does not own): one owner per number.
      () => `{ const v = h.own(await h.call('adopt', () => c.adopt(${arg(`[${rng.pick(['h.own(s.api.BpfMap.create({ type: "hash", keySize: 4, valueSize: 4, maxEntries: 1 }))', 'h.own(new s.api.Fd(h.native.dupFd(h.hashMapFd())))', "h.own(new s.api.Fd(h.fdNumber('/dev/null')))"])}]`)}))); }`,
      () => `h.own(await h.call('loadProgram', () => c.loadProgram(${arg("{ type: 'socket_filter', insns: h.returnZero, license: 'GPL' }")})))`,
    ])())
  }
  return `{
  const c = await h.setup(() => B.client(h, s, BrokerClient))
  ${steps.join('\n  ')}
}`
}

/** A frame whose header lies, or is cut, on a fresh connection. */
const rawFrame = (rng) => {
  const len = rng.pick([0, 1, 2 ** 31, 2 ** 32 - 1, 16, 1 << 20, (1 << 20) + 1])
  const body = rng.int(24)
  const fds = rng.pick(['[]', '[]', `[${fdExpr(rng)}]`])
  return `{
  const sock = await h.setup(() => B.connect(h, s))
  const f = new Uint8Array(${rng.pick([2, 4, 4 + body])}); if (f.length >= 4) new DataView(f.buffer).setUint32(0, ${len}, true)
  await B.raw(h, s, sock, f, ${fds}, ${rng.bool(0.4)})
}`
}

/** A well-formed request with fds it must not have, or of the wrong kinds. */
const randomFds = (rng) => {
  const type = rng.pick(['list', 'map_create', 'prog_load', 'adopt', 'adopt', 'delegate', 'hello'])
  const [body] = requests[type](rng)
  const n = rng.pick([0, 1, 1, 2, 3, 17, 65])
  // Many fds: one of them, many times (what matters is the count).
  const fds = n > 3 ? `new Array(${n}).fill(${fdExpr(rng)})` : `[${Array.from({ length: n }, () => fdExpr(rng)).join(', ')}]`
  return `{
  const sock = await h.setup(() => B.connect(h, s))
  const reply = await B.exchange(h, s, sock, { protocol: '${protocol}', type: '${type}', seq: 7, ...${body} }, ${fds})
  if (reply?.type === 'ok' && reply.object) made.push(reply.object.id)
}`
}

/** A request whose connection closes before the reply: the broker may finish it, must not keep anything of the peer. */
const closeMid = (rng) => {
  const type = rng.pick(['map_create', 'list', 'prog_load', 'adopt', 'get_fd'])
  const [body, fds] = requests[type](rng)
  if (rng.bool(0.5)) {
    return `{
  const c = await h.setup(() => B.client(h, s, BrokerClient))
  const p = h.call('request, then close', () => c.request('${type}', ${body}, ${fds}))
  ${rng.pick(['c.close()', 'await null; c.close()', 'setTimeout(() => c.close(), 1)'])}
  h.own(await p)
}`
  }
  return `{
  const sock = await h.setup(() => B.connect(h, s))
  await h.call('send, then close', () => sock.send(Buffer.from(JSON.stringify({ protocol: '${protocol}', type: '${type}', seq: 9, ...${body} })), ${fds}))
  ${rng.pick(['sock.close()', 'await null; sock.close()', 'await new Promise((r) => setTimeout(r, 1)); sock.close()'])}
}`
}

/**
 * decodeRequest alone (pure): a request frame with one thing wrong and any
 * fd count must decode or throw a BrokerError EPROTO/EINVAL, never anything
 * else. Self-contained source, so the api target can use it too.
 */
const decode = (rng) => {
  const type = rng.pick(types)
  const [body] = requests[type](rng, true)
  const field = pickField(rng, type)
  const value = rng.weighted([[4, () => rng.pick(jsonHostile)], [1, () => anyValue(rng)]])
  const bytes = rng.weighted([
    [6, () => 'Buffer.from(JSON.stringify(msg))'],
    [1, () => `Buffer.from(JSON.stringify(msg)).subarray(0, ${rng.int(40)})`],
    [1, () => `h.fill(new Uint8Array(${JSON.stringify(Array.from(rng.bytes(32)))}), ${rng.int(48)})`],
    [1, () => "Buffer.from('['.repeat(100000))"],
  ])
  return `{
  const V = require(require('node:path').join(h.root, 'dist/broker/validate.js'))
  const msg = { protocol: '${protocol}', type: '${type}', seq: 1, ...${body} }
  require(${JSON.stringify(__filename)}).mutate(msg, ${JSON.stringify(field)}, '${rng.pick(['set', 'set', 'delete', 'extra'])}', () => (${value}))
  try {
    V.decodeRequest(${bytes}, ${rng.pick(['0', '1', '2', '16', '17', '253', '-1', '0.5', 'NaN'])})
  } catch (e) {
    h.expect(e?.name === 'BrokerError' && ['EPROTO', 'EINVAL', 'E2BIG'].includes(e.code), \`decodeRequest threw \${e?.name} \${e?.code}: \${e?.message}\`)
    h.classify('decodeRequest', e)
  }
}`
}
exports.decode = decode

const scenarios = [[5, mutated], [2, valid], [2, clientApi], [2, rawFrame], [2, randomFds], [1, closeMid]]

exports.generate = (rng) => {
  if (rng.bool(0.15)) return decode(rng)
  const parts = []
  for (let i = rng.range(1, 4); i > 0; i--) parts.push(rng.weighted(scenarios.map(([w, f]) => [w, () => f(rng)])))
  return `const s = await h.setup(() => B.shared(h))
const made = []
${parts.join('\n')}
await B.finish(h, s, BrokerClient)`
}

