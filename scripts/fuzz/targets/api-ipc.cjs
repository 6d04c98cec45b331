'use strict'
// Public-API cases for fd sockets, ring buffers and mmap'd arrays: random
// frames (well-formed or not) with random fds, receive options, closes
// while a receive or a ring buffer wait is pending, and mappings used
// after their map closed.
const { buffer, number, object, some, wrongTypes } = require('../gen.cjs')

const fdList = (rng) => rng.pick(['[]', '[m]', '[m.fd]', '[-1]', '[h.closedFd()]', '[closedFd]', '[NaN]', "['3']", '[null]',
  'new Array(254).fill(m.fd)', 'new Array(253).fill(m.fd)', '[h.pipeFd(), h.devNull()]', 'null', "'fds'", '{ length: 1 }'])
const receiveOptions = (rng) => object(rng, some(rng, [
  ['fds', number(rng, [0, 1, 2, 253, 254])], ['maxFds', number(rng, [0, 1, 4, 253])], ['maxBytes', number(rng, [0, 16, 1 << 20, 4])],
  ['signal', rng.pick(['AbortSignal.timeout(20)', 'AbortSignal.abort()', 'null', '{}'])],
], 0.4))

/** Raw bytes on the stream: a frame header claiming any length, then any payload. */
const rawFrame = (rng) => {
  const len = rng.pick([0, 1, 4, 16, 0xffffffff, 0x7fffffff, 1 << 20])
  const payload = rng.int(24)
  return `(() => { const f = new Uint8Array(${rng.pick([0, 2, 4 + payload])}); if (f.length >= 4) new DataView(f.buffer).setUint32(0, ${len}, true); return f })()`
}

const socket = (rng) => {
  const steps = []
  for (let i = rng.range(1, 4); i > 0; i--) {
    steps.push(rng.pick([
      () => `await h.call('send', () => a.send(${buffer(rng, 16)}, ${fdList(rng)}${rng.bool(0.2) ? `, ${object(rng, [['signal', rng.pick(['AbortSignal.abort()', 'null'])]])}` : ''}))`,
      () => `await h.call('raw send', () => h.native.sendWithFds(a.fd, ${rawFrame(rng)}, ${rng.pick(['[]', '[m.fd]', 'undefined'])}))`,
      // Nothing may ever arrive: the socket is closed after a while, which must settle the receive.
      () => `h.own(await h.call('receive', () => h.closeAfter(b, 100, b.receive(${receiveOptions(rng)}))))`,
      () => `h.own(await h.call('receive (timed)', () => b.receive({ signal: AbortSignal.timeout(20), maxFds: ${rng.pick([0, 4, 253])} })))`,
      // Issue 11 item 5: closing while receive() waits must reject it, never abort or leave it pending.
      // (a is b's peer only when made by pair(); the close of b after 200 ms ends a wait that nothing else ends.)
      () => `{ const p = h.call('receive, then close', () => h.closeAfter(b, 200, b.receive())); ${rng.pick(['b.close()', 'a.close()', 'h.closeNow(b.fd)'])}; h.own(await p) }`,
      () => `await h.call('close', () => ${rng.pick(['a', 'b'])}.close())`,
      () => `await h.call('fd', () => ${rng.pick(['a', 'b'])}.fd)`,
    ])())
  }
  return `{
  const m = await h.setup(() => h.own(BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1 })))
  const closedFd = h.own(new Fd(h.fdNumber('/dev/null'))); closedFd.close()
  const [a, b] = await h.setup(() => h.own(${rng.bool(0.9) ? 'FdSocket.pair()' : `[FdSocket.from(${rng.pick(['h.socketFd()', '-1', 'null', '{}', 'h.pipeFd()'])}), h.own(FdSocket.pair())[1]]`}))
  ${steps.join('\n  ')}
}`
}

// Issue 11 item 7: a size limit that is not a positive integer (or too small) must refuse, never let the message through.
const receiveLimit = (rng) => {
  const limit = rng.pick(['NaN', '-1', '0.5', 'Infinity', '0', '63', "'64'", 'null', '-0', '2 ** 53'])
  return `{
  const [a, b] = h.own(FdSocket.pair())
  await h.setup(() => a.send(new Uint8Array(64)))
  const got = h.own(await h.call(${JSON.stringify(`receive with maxBytes ${limit}`)}, () => h.closeAfter(b, 200, b.receive({ maxBytes: ${limit} }))))
  h.expect(got === undefined, ${JSON.stringify(`receive({ maxBytes: ${limit} }) let a 64-byte message through`)})
}`
}

const ringbuf = (rng) => {
  const steps = []
  for (let i = rng.range(1, 4); i > 0; i--) {
    steps.push(rng.pick([
      () => "await h.call('pending', () => r.pending)",
      () => "await h.call('read', () => r.read())",
      () => `await h.call('consume', () => r.consume(${rng.pick(['() => {}', 'null', "() => { throw new Error('fuzz: callback threw') }", '5'])}))`,
      () => `await h.call('consumeBatches', () => r.consumeBatches(${rng.pick(['() => {}', 'null'])}))`,
      () => `await h.call('wait', () => h.closeAfter(r, 100, r.wait(${rng.pick(['AbortSignal.timeout(10)', 'AbortSignal.abort()', '{}', "'x'", ''])})))`,
      // Issue 11 item 5: a wait whose map or consumer closes must settle.
      () => `{ const w = h.call('wait, then close', () => r.wait()); ${rng.pick(['r.close()', 'm.close()'])}; await w }`,
      () => `{ const it = h.call('records', async () => { for await (const _ of r.records({ signal: AbortSignal.timeout(10) })) break }); await it }`,
      () => "await h.call('close', () => r.close())",
      () => "await h.call('map close', () => m.close())",
      () => "await h.call('second consumer', () => h.own(m.ringBuffer()))",
    ])())
  }
  return `{
  const m = await h.setup(() => h.own(BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })))
  const r = await h.setup(() => h.own(m.ringBuffer()))
  ${steps.join('\n  ')}
}`
}

const mmap = (rng) => {
  const steps = []
  for (let i = rng.range(1, 5); i > 0; i--) {
    steps.push(rng.pick([
      () => `await h.call('get', () => a.get(${number(rng, [0, 3, 4, -1])}))`,
      () => `await h.call('set', () => a.set(${number(rng, [0, 3, 4])}, ${rng.pick(['new Uint8Array(8)', 'new Uint8Array(7)', '1n', '1', 'null', 'h.detached(8)'])}))`,
      () => "await h.call('buffer', () => new Uint8Array(a.buffer).reduce((x, y) => x + y, 0))",
      // A read-only mapping must refuse its buffer and give copies: a write into its pages would be SIGSEGV.
      () => "await h.call('buffer write', () => new Uint8Array(a.buffer).fill(1))",
      () => "await h.call('view write', () => { const v = a.get(0); if (v instanceof Uint8Array) v.fill(1) })",
      () => "await h.call('close', () => a.close())",
      () => "await h.call('map close', () => m.close())",
      () => "await h.call('second mmap', () => h.own(m.mmap({ writable: false })))",
    ])())
  }
  return `{
  const m = await h.setup(() => h.own(BpfMap.create({ type: 'array', keySize: 4, ${rng.pick(["valueSize: 8", "value: 'u64'"])}, maxEntries: 4, flags: ['mmapable'] })))
  const writable = ${rng.pick(['true', 'false'])}
  const a = await h.setup(() => h.own(m.mmap({ writable })))
  ${steps.join('\n  ')}
}`
}

const fdObjects = (rng) => `{
  const f = await h.call('new Fd', () => h.own(new Fd(${rng.pick(['h.fdNumber("/dev/null")', '-1', '0', 'NaN', "'5'", 'null', '2 ** 31', "Symbol('fd')", 'Object.create(null)'])}${rng.bool(0.3) ? `, ${rng.pick(["'map'", '5', 'null'])}` : ''})))
  if (f) {
    ${Array.from({ length: rng.range(1, 3) }, () => rng.pick(["await h.call('dup', () => h.own(f.dup()))", "await h.call('release', () => h.ownFd(f.release()))", "await h.call('close', () => f.close())", "await h.call('fd', () => f.fd)", "await h.call('toString', () => String(f))"])).join('\n    ')}
  }
}`

module.exports = { socket, receiveLimit, ringbuf, mmap, fdObjects, wrongTypes }
