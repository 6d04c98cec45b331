'use strict'
// Public-API cases for maps: BpfMap.create with random options, then
// operations with random keys, values, flags and batch options, typed maps,
// use after close, and an fd number closed and reused behind bpfkit's back.
const g = require('../gen.cjs')
const { buffer, number, object, some, wrongTypes, literal } = g

const types = ['hash', 'array', 'percpu_hash', 'percpu_array', 'lru_hash', 'lru_percpu_hash', 'ringbuf', 'queue', 'stack',
  'bloom_filter', 'array_of_maps', 'hash_of_maps', 'lpm_trie', 'prog_array', 'perf_event_array', 'sockmap', 'HASH', 'nope', '']
const typeDescs = ["'u32'", "'u64'", "'i8'", "'f64'", "'u16'", "{ struct: [['a', 'u32'], ['b', 'u64']] }", "{ array: 'u8', length: 4 }",
  "'u128'", "{ struct: null }", "{ array: 'u8', length: -1 }", "{ struct: [['a', 'nope']] }", "{ array: 'u32', length: 1.5 }", '{}', 'null', "['u32']"]
const updateFlags = ["'any'", "'noexist'", "'exist'", "'lock'", '0', '1', '2', '4', '-1', "'bogus'", 'NaN', '2n', '[]']

function createOptions(rng) {
  // A huge entry count only with a type the kernel refuses before allocating.
  const huge = rng.bool(0.1)
  return object(rng, some(rng, [
    ['type', huge ? "'nope'" : rng.weighted([[8, () => literal(rng.pick(types))], [1, () => number(rng, [1, 2, 27, 0, 9999])]])],
    ['keySize', number(rng, [4, 8, 0, 1, 16])], ['valueSize', number(rng, [8, 4, 0, 1, 64])],
    ['key', rng.pick(typeDescs)], ['value', rng.pick(typeDescs)],
    ['maxEntries', huge ? rng.pick(g.hugeNumbers) : number(rng, [1, 8, 64, 4096])],
    ['name', rng.pick(["'fuzz'", "'x'.repeat(16)", "'bad name!'", "''", "'é'", "'\\u0000'", ...wrongTypes.slice(0, 6)])],
    ['flags', rng.pick(["'no_prealloc'", "['mmapable']", "['rdonly_prog', 'wronly_prog']", "'bogus'", '1024', "[1, 'x']", '-1', 'null', '[null]', '2 ** 40'])],
    ['numaNode', number(rng, [0, -1, 1])],
    ['innerMap', rng.pick(["{ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 }", "{ type: 'nope' }", 'inner', 'null', '{}', '5'])],
    ['mapExtra', number(rng, [0, 1, 5n, -1n])],
    ['btf', rng.pick(['true', 'false', '{}', "{ btf: null, keyTypeId: 1, valueTypeId: 1 }", 'null'])],
    ['token', rng.pick(['null', 'undefined', '{}', '5', "'token'"])],
  ], 0.45).concat([['type', "'hash'"], ['keySize', '4'], ['valueSize', '8'], ['maxEntries', '8']].filter(() => rng.bool(0.5))))
}

const rawKey = (rng) => rng.weighted([[5, () => buffer(rng, 4)], [1, () => number(rng, [1, 0])], [1, "'key'"], [1, 'null']])
const rawValue = (rng) => rng.weighted([[5, () => buffer(rng, 8)], [1, () => number(rng, [1, 0])], [1, '[new Uint8Array(8)]'], [1, '{ fd: -1 }']])
const typedKey = (rng) => number(rng, [0, 1, 7, 2 ** 32 - 1, 1n])
const typedValue = (rng) => rng.pick(['1n', '0n', '2n ** 64n', '-1n', '1', '1.5', "'1'", 'null', '{ a: 1, b: 2n }', '[1]'])

function batchOptions(rng) {
  return object(rng, some(rng, [['count', number(rng, [1, 8, 0, 100000])], ['flags', rng.pick(updateFlags)], ['elemFlags', rng.pick(updateFlags)], ['start', rng.pick(['undefined', 'null', 'new Uint8Array(4)', '{}'])]], 0.4))
}

function mapOps(rng, m, key, value) {
  const ops = []
  for (let i = rng.range(1, 6); i > 0; i--) {
    const k = key(rng)
    const v = value(rng)
    ops.push(rng.pick([
      `await h.call('lookup', () => ${m}.lookup(${k}))`,
      `await h.call('get', () => ${m}.get(${k}))`,
      `await h.call('has', () => ${m}.has(${k}))`,
      `await h.call('lookupInto', () => ${m}.lookupInto(${k}, ${buffer(rng, 8)}))`,
      `await h.call('update', () => ${m}.update(${k}, ${v}${rng.bool() ? `, ${rng.pick(updateFlags)}` : ''}))`,
      `await h.call('set', () => ${m}.set(${k}, ${v}))`,
      `await h.call('delete', () => ${m}.delete(${k}))`,
      `await h.call('lookupAndDelete', () => ${m}.lookupAndDelete(${k}))`,
      `await h.call('push', () => ${m}.push(${v}))`,
      `await h.call('pop', () => ${m}.pop())`,
      `await h.call('peek', () => ${m}.peek())`,
      `await h.call('mayContain', () => ${m}.mayContain(${v}))`,
      `await h.call('keys', () => { let n = 0; for (const _ of ${m}.keys()) if (++n > 100) break })`,
      `await h.call('entries', () => { let n = 0; for (const _ of ${m}) if (++n > 100) break })`,
      `await h.call('lookupBatch', () => ${m}.lookupBatch(${batchOptions(rng)}))`,
      `await h.call('lookupBatchBytes', () => ${m}.lookupBatchBytes(${batchOptions(rng)}))`,
      `await h.call('updateBatchBytes', () => ${m}.updateBatchBytes(${buffer(rng, 16)}, ${buffer(rng, 32)}, ${object(rng, [['flags', rng.pick(updateFlags)]])}))`,
      `await h.call('updateBatch', () => ${m}.updateBatch(${rng.pick([`[[${k}, ${v}]]`, '[]', 'null', '[null]', "'entries'", '{}', `[[${k}]]`, 'h.throwingIterable()', `new Map([[${k}, ${v}]])`])}))`,
      `await h.call('deleteBatch', () => ${m}.deleteBatch(${rng.pick([`[${k}]`, '[]', 'null', '[null]', '5', 'h.throwingIterable()'])}))`,
      `await h.call('freeze', () => ${m}.freeze())`,
      `await h.call('info', () => ${m}.info())`,
      `await h.call('id', () => ${m}.id)`,
      `await h.call('mmap', () => h.own(${m}.mmap(${rng.pick(['', '{ writable: false }', '{ writable: 1 }', '{ bogus: 1 }', 'null'])})))`,
      `await h.call('ringBuffer', () => h.own(${m}.ringBuffer()))`,
      `await h.call('close', () => ${m}.close())`,
      `h.nearStackLimit(() => ${m}.update(${k}, ${v}, 'exist'))`,
    ]))
  }
  return ops.join('\n  ')
}

const create = (rng) => `{
  const inner = await h.call('inner', () => h.own(BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })))
  const m = await h.call('BpfMap.create', () => h.own(BpfMap.create(${createOptions(rng)})))
  if (m) {
  ${mapOps(rng, 'm', (r) => r.bool(0.7) ? rawKey(r) : typedKey(r), (r) => r.bool(0.7) ? rawValue(r) : typedValue(r))}
  }
}`

const rawMapOps = (rng) => {
  const type = rng.pick(['hash', 'array', 'percpu_array', 'lru_hash', 'queue', 'bloom_filter', 'lpm_trie'])
  const keySize = ['queue', 'bloom_filter'].includes(type) ? 0 : type === 'lpm_trie' ? 8 : 4
  const flags = ['lpm_trie'].includes(type) ? ", flags: ['no_prealloc']" : ''
  return `{
  const m = await h.setup(() => h.own(BpfMap.create({ type: '${type}', keySize: ${keySize}, valueSize: 8, maxEntries: 8${flags} })))
  ${mapOps(rng, 'm', rawKey, rawValue)}
}`
}

const typedMapOps = (rng) => {
  const type = rng.pick(['hash', 'array', 'percpu_hash'])
  // Arrays are indexed by a 4-byte key.
  const key = type === 'array' ? rng.pick(["'u32'", "'i32'"]) : rng.pick(["'u32'", "'u64'", "'i32'"])
  const value = rng.pick(["'u64'", "{ struct: [['a', 'u32'], ['b', 'u64']] }", "{ array: 'u16', length: 3 }"])
  return `{
  const m = await h.setup(() => h.own(BpfMap.create({ type: '${type}', key: ${key}, value: ${value}, maxEntries: 8 })))
  ${mapOps(rng, 'm', typedKey, typedValue)}
}`
}

// Issue 11 item 1: a map fd closed and its number reused must never let the old object reach the new map.
const fdReuse = (rng) => {
  const op = rng.pick(['delete(new Uint8Array(4))', 'update(new Uint8Array(4), new Uint8Array(8))', 'lookupAndDelete(new Uint8Array(4))'])
  return `{
  const [a, b] = h.own(FdSocket.pair())
  const first = await h.setup(() => h.own(BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 })))
  await h.setup(() => a.send(new Uint8Array([1]), [first.fd]))
  const msg = h.own(await h.setup(() => b.receive({ fds: 1 })))
  const fd = msg.fds[0]
  const old = await h.setup(() => h.own(BpfMap.fromFd(fd)))
  ${rng.pick(["await h.call('lookup', () => old.lookup(new Uint8Array(4)))", ''])}
  h.closeNow(fd.release())
  const fresh = await h.setup(() => h.own(BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 })))
  fresh.update(new Uint8Array(4), new Uint8Array(8).fill(9))
  await h.call('old map ${op.split('(')[0]}', () => old.${op})
  h.expect(fresh.lookup(new Uint8Array(4))?.[0] === 9, 'an operation on a map whose fd was closed behind its back changed another map')
}`
}

module.exports = { create, rawMapOps, typedMapOps, fdReuse }
