'use strict'
// Sequences for the raw-addon target: objects used across their close,
// handles of one kind passed where another is expected, memory handed to
// the wrong release call, waits whose fd is closed under them, calls made
// with the JS stack nearly exhausted, and getters that free what native
// already holds a pointer to.
const { buffer, number } = require('../gen.cjs')

const flags = (rng) => number(rng, [0, 0, 1, 2, 4, 0n])
const count = (rng) => number(rng, [16, 0, 1, 17])

const slotLifecycle = (rng) => {
  const fd = rng.pick(['h.hashMapFd()', 'h.arrayMapFd()'])
  const ops = []
  for (let i = rng.range(1, 5); i > 0; i--) {
    const slot = rng.weighted([[6, 's.slot'], [1, 's.slot + 1'], [1, () => rng.pick(['-1', '4294967296', 'NaN', "'0'", 'null', '{}'])]])
    ops.push(rng.pick([
      `await h.call('mapSlotLookup', () => native.mapSlotLookup(${slot}, ${flags(rng)}))`,
      `await h.call('mapSlotUpdate', () => native.mapSlotUpdate(${slot}, ${flags(rng)}))`,
      `await h.call('mapSlotDelete', () => native.mapSlotDelete(${slot}))`,
      `await h.call('mapSlotLookupAndDelete', () => native.mapSlotLookupAndDelete(${slot}, ${flags(rng)}))`,
      `await h.call('mapSlotClose', () => native.mapSlotClose(${slot}))`,
      // Batches through the slot: buffers checked against the sizes the slot read when it opened.
      `await h.call('mapSlotLookupBatch', () => native.mapSlotLookupBatch(${slot}, ${rng.pick(['null', buffer(rng, 4)])}, ${buffer(rng, 4)}, ${buffer(rng, 64)}, ${buffer(rng, 128)}, ${count(rng)}, ${flags(rng)}, ${flags(rng)}))`,
      `await h.call('mapSlotLookupAndDeleteBatch', () => native.mapSlotLookupAndDeleteBatch(${slot}, null, ${buffer(rng, 4)}, ${buffer(rng, 64)}, ${buffer(rng, 128)}, ${count(rng)}))`,
      `await h.call('mapSlotUpdateBatch', () => native.mapSlotUpdateBatch(${slot}, ${buffer(rng, 64)}, ${buffer(rng, 128)}, ${count(rng)}, ${flags(rng)}, ${flags(rng)}))`,
      `await h.call('mapSlotNextKeys', () => native.mapSlotNextKeys(${slot}, ${rng.pick(['true', 'false', '1', 'undefined'])}, ${buffer(rng, 64)}, ${count(rng)}))`,
      `await h.call('mapSlotDeleteBatch', () => native.mapSlotDeleteBatch(${slot}, ${buffer(rng, 64)}, ${count(rng)}))`,
      'h.closeNow(fd)',
      "await h.call('closeFd', () => native.closeFd(fd))",
      "await h.call('forgetFd', () => native.forgetFd(fd))",
      "h.nearStackLimit(() => native.mapSlotUpdate(s.slot, 0xffff))",
      "h.nearStackLimit(() => native.mapSlotLookup(s.slot, 0))",
      // The slot's buffers dropped by JS: the kernel must not write into freed memory.
      's.key = s.value = null; h.gc(); h.churn()',
    ]))
  }
  return `{
  const fd = ${fd}
  const s = await h.call('mapSlotOpen', () => h.ownNative('slot', native.mapSlotOpen(fd)))
  if (s) {
    new Uint8Array(s.key).fill(${rng.int(4)}); new Uint8Array(s.value).fill(7)
    ${ops.join('\n    ')}
  }
}`
}

const handleConfusion = (rng) => {
  const handle = () => rng.pick(['r', 'w', 'r', 'w', '{}', 'null', 'new ArrayBuffer(64)', 'h.throwingProxy()', 'Object.create(r ?? {})'])
  const ops = []
  for (let i = rng.range(1, 4); i > 0; i--) {
    ops.push(rng.pick([
      () => `await h.call('ringbufConsume', () => native.ringbufConsume(${handle()}, ${buffer(rng, 64)}, ${rng.pick(['new Uint32Array(4)', 'new Uint32Array(0)', 'new Uint8Array(16)', 'null'])}))`,
      () => `await h.call('ringbufPending', () => native.ringbufPending(${handle()}))`,
      () => `await h.call('ringbufCancel', () => native.ringbufCancel(${handle()}))`,
      () => `await h.call('ringbufClose', () => native.ringbufClose(${handle()}))`,
      () => `await h.call('ringbufWait', () => native.ringbufWait(${handle()}, ${rng.pick(['() => {}', 'null', "() => { throw new Error('fuzz: callback threw') }"])}))`,
      () => `await h.call('fdWaitCancel', () => native.fdWaitCancel(${handle()}))`,
      () => "h.closeNow(ringFd)",
    ])())
  }
  return `{
  const ringFd = h.ringbufMapFd()
  const r = await h.call('ringbufOpen', () => h.ownNative('ring', native.ringbufOpen(ringFd)))
  const w = await h.call('fdWait', () => h.ownNative('wait', native.fdWait(h.socketFd(), ${rng.pick(['false', 'true'])}, () => {})))
  ${ops.join('\n  ')}
  await new Promise((r) => setTimeout(r, 5))
}`
}

const wrongUnmap = (rng) => {
  const buf = rng.pick(['new ArrayBuffer(4096)', 'new WebAssembly.Memory({ initial: 1 }).buffer', 'new Uint8Array(8192).buffer', 'Buffer.alloc(4096).buffer', 'new SharedArrayBuffer(4096)', 'h.detached(4096).buffer'])
  return `{
  const ab = ${buf}
  await h.call('mapUnmap', () => native.mapUnmap(ab))
  // Memory that was never a map's mapping must still be usable.
  if (ab.byteLength > 0) new Uint8Array(ab).fill(1)
  const m = await h.call('mapMmap', () => h.ownNative('mmap', native.mapMmap(h.arrayMapFd(), ${rng.pick(['true', 'false'])})))
  if (m) {
    await h.call('mapUnmap', () => native.mapUnmap(m))
    await h.call('mapUnmap twice', () => native.mapUnmap(m))
    if (m.byteLength > 0) new Uint8Array(m).fill(2)
  }
}`
}

const closeWhileWaiting = (rng) => rng.pick([
  () => `{
  const [a, b] = h.native.unixSocketpair(); h.ownFd(a); h.ownFd(b)
  let status
  const w = await h.call('fdWait', () => h.ownNative('wait', native.fdWait(a, ${rng.pick(['false', 'true'])}, (s) => { status = s })))
  ${rng.pick(['h.closeNow(a)', "await h.call('closeFd', () => native.closeFd(a))", 'h.closeNow(b)'])}
  await new Promise((r) => setTimeout(r, ${rng.pick([0, 5])}))
  ${rng.pick(["await h.call('fdWaitCancel', () => native.fdWaitCancel(w))", ''])}
}`,
  () => `{
  const ringFd = h.ringbufMapFd()
  const r = await h.call('ringbufOpen', () => h.ownNative('ring', native.ringbufOpen(ringFd)))
  if (r) {
    await h.call('ringbufWait', () => native.ringbufWait(r, () => {}))
    ${rng.pick(['h.closeNow(ringFd)', "await h.call('ringbufClose', () => native.ringbufClose(r))", "await h.call('ringbufCancel', () => native.ringbufCancel(r))"])}
    await new Promise((r) => setTimeout(r, 5))
  }
}`,
])()

const nearStackLimit = (rng) => `{
  const fd = ${rng.pick(['h.hashMapFd()', 'h.closedFd()', 'h.pipeFd()'])}
  h.nearStackLimit(() => native.${rng.pick(['mapLookupElem(fd, new Uint8Array(4), new Uint8Array(8))', 'mapUpdateElem(fd, new Uint8Array(4), new Uint8Array(8), 0xffff)', 'mapDeleteElem(fd, new Uint8Array(4))', 'mapMeta(fd)', 'objGetInfoByFd(fd, new Uint8Array(8))'])})
}`

const sendMutatesData = (rng) => `{
  const [a, b] = h.native.unixSocketpair(); h.ownFd(a); h.ownFd(b)
  const data = new Uint8Array(${rng.pick([16, 4096, 65536])}).fill(0x41)
  const fds = h.mutatingGetter([0], 0, h.devNull(), () => ${rng.pick(['h.detach(data)', 'h.closeNow(a)', 'data.fill(0x42)'])})
  const sent = await h.call('sendWithFds', () => native.sendWithFds(a, data, fds))
  const got = new Uint8Array(65536)
  const r = await h.call('recvWithFds', () => h.ownNative('recv', native.recvWithFds(b, got, 4)))
  // What reaches the peer is what was sent (0x41) or what the getter wrote (0x42), never other memory.
  if (r && r.bytes > 0) h.expect(got.subarray(0, r.bytes).every((x) => x === 0x41 || x === 0x42), 'sendWithFds sent bytes that were not in the data')
}`

// Perf buffers write entries into the map they open on: only the harness's
// own perf_event_array or array map, small power-of-two page counts (the
// kernel allocates them per CPU), and every handle closed by the harness.
const perfBuffer = (rng) => {
  const cpus = rng.pick(['[0]', '[0, 0]', '[-1]', '[0.5]', '[2 ** 32]', "['0']", '[]', 'null', '[0, 1, 2, 3, 4, 5, 6, 7]', '{ length: 1 }'])
  const pages = rng.pick(['1', '2', '4', '8', '0', '3', '6', '2 ** 17', '-1', 'NaN', "'x'"])
  const wakeup = rng.pick(['1', '8', '0', '-1', '2 ** 32', 'NaN'])
  const mapFd = rng.pick(['h.perfEventArrayFd()', 'h.perfEventArrayFd()', 'h.arrayMapFd()', '-1', '2 ** 31', '1.5', "'3'", 'h.closedFd()'])
  const handle = () => rng.pick(['pb', 'pb', '{}', '5', 'null', 'h.throwingProxy()'])
  const ops = []
  for (let i = rng.range(1, 4); i > 0; i--) {
    ops.push(rng.pick([
      () => `await h.call('perfbufConsume', () => native.perfbufConsume(${handle()}, ${rng.pick(['new Uint8Array(0)', 'new Uint8Array(64)', 'new Uint8Array(65536)', 'null', 'new Uint32Array(4)'])}, ${rng.pick(['new Float64Array(0)', 'new Float64Array(3)', 'new Float64Array(3100)', 'new Float64Array(4)', 'new Uint32Array(3)'])}))`,
      () => `await h.call('perfbufPending', () => native.perfbufPending(${handle()}))`,
      () => `await h.call('perfbufCancel', () => native.perfbufCancel(${handle()}))`,
      () => `await h.call('perfbufClose', () => native.perfbufClose(${handle()}))`,
      () => `await h.call('perfbufWait', () => native.perfbufWait(${handle()}, ${rng.pick(['() => {}', 'null', "() => { throw new Error('fuzz: callback threw') }"])}))`,
    ])())
  }
  return `{
  const pb = await h.call('perfbufOpen', () => h.ownNative('perfbuf', native.perfbufOpen(${mapFd}, ${cpus}, ${pages}, ${wakeup})))
  ${ops.join('\n  ')}
  if (pb) await h.call('perfbufCancel', () => native.perfbufCancel(pb))
  await new Promise((r) => setTimeout(r, 5))
}`
}

// Netlink calls change interfaces and qdiscs: they run only inside a network
// namespace the case creates (withNetns(netnsCreate())), on its loopback
// (ifindex 1) or on interfaces the case makes there, never in the
// harness's own namespace, which is checked unchanged afterwards.
const netlinkInPrivateNetns = (rng) => {
  const name = () => rng.pick(["'nk0'", "'nk1'", "'x'.repeat(16)", "'a/b'", "'a\\u0000'", "''", "'é'", '5', 'null'])
  const ifindex = () => rng.pick(['1', '1', '2', '3', '99999', '0', '-1', '1.5', 'NaN', "'1'"])
  const filter = () => `{ ifindex: ${ifindex()}, egress: ${rng.pick(['false', 'true', "'yes'"])}, priority: ${rng.pick(['0', '1', '70000', '-1', 'undefined'])}, handle: ${rng.pick(['0', '1', '4294967295', 'undefined'])}, progFd: ${rng.pick(['cls', 'cls', 'h.progFd()', 'h.closedFd()', '-1'])}, name: ${rng.pick(["'f'", "'x'.repeat(300)", 'undefined', '7'])}, replace: ${rng.pick(['true', 'false', 'undefined'])} }`
  const ops = []
  for (let i = rng.range(1, 5); i > 0; i--) {
    ops.push(rng.pick([
      () => `native.netkitCreate(${name()}, ${name()}, ${rng.pick(['true', 'false', 'undefined', "'l2'"])})`,
      () => `native.tcClsactAdd(${ifindex()})`,
      () => `native.tcClsactDelete(${ifindex()})`,
      () => `native.tcFilterAdd(${filter()})`,
      () => `native.tcFilterDelete({ ifindex: ${ifindex()}, egress: ${rng.pick(['false', 'true'])}, priority: ${rng.pick(['1', '0', '70000'])}, handle: ${rng.pick(['1', '0', '4294967295'])} })`,
      () => `native.tcFilterList({ ifindex: ${ifindex()}, egress: ${rng.pick(['false', 'true', 'null'])} })`,
      () => `native.ifNameToIndex(${name()})`,
      () => `native.ifIndexToName(${ifindex()})`,
    ])())
  }
  return `{
  const home = require('node:fs').readlinkSync('/proc/thread-self/ns/net')
  const ns = await h.call('netnsCreate', () => h.ownNative('fd', native.netnsCreate()))
  const cls = h.ownFd(native.progLoadSync({ progType: 3, insns: h.returnZero, license: 'GPL' }).fd)
  if (ns !== undefined) {
${ops.map((op) => `    await h.call('withNetns', () => native.withNetns(ns, () => ${op}))`).join('\n')}
  }
  // An fd that is no namespace must never run the callback (a closed number
  // once did, at home, when withNetns's own open took that number).
  await h.call('withNetns', () => native.withNetns(${rng.pick(['h.pipeFd()', 'h.closedFd()', '-1', 'h.hashMapFd()'])}, () => h.expect(false, 'withNetns ran its callback for an fd that is no network namespace')))
  await h.call('withNetns', () => native.withNetns(ns ?? -1, ${rng.pick(["() => { throw new Error('fuzz: callback threw') }", 'null', '() => 1'])}))
  h.expect(require('node:fs').readlinkSync('/proc/thread-self/ns/net') === home, 'a netlink call left the thread in another network namespace')
}`
}

module.exports = [slotLifecycle, perfBuffer, netlinkInPrivateNetns, handleConfusion, wrongUnmap, closeWhileWaiting, nearStackLimit, sendMutatesData]
