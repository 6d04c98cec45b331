// Bad arguments are named, never answered by a JavaScript internal: every
// public entry point of maps, programs, links, ring buffers, mappings and the
// assembler is called with null, undefined, wrong types and edge numbers in
// each argument position (and each option field), and no error may read like
// "Cannot read properties of null" or "x is not iterable". Objects a call
// happens to create are closed; the file's fd-leak check covers the rest.
import { createSocket } from 'node:dgram'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { asm, BpfLink, BpfMap, BpfProgram, features, MapSpec, ProgramSpec } from '../../lib/index.js'

const internal = /Cannot read prop|is not iterable|is not a function|undefined is not|null is not|Cannot convert|Cannot destructure|is not a constructor|Cannot use 'in' operator|Cannot mix BigInt|Invalid array length|Maximum call stack/

// No small numbers: an fd number the test runner happens to hold must never
// be reached by a call made with a "bad" value.
const bads: unknown[] = [null, undefined, -1, 1.5, NaN, 2 ** 40, 'x', {}, [], [null], [[null]], true, Symbol('s'), () => 1, 10n]

function show(x: unknown): string {
  return typeof x === 'symbol' || typeof x === 'bigint' || typeof x === 'function' ? String(x) : JSON.stringify(x) ?? String(x)
}

function dispose(r: unknown): void {
  if (r !== null && typeof r === 'object' && typeof (r as { close?: unknown }).close === 'function') (r as { close(): void }).close()
}

/** Calls `f` with every bad value; returns the internal-looking (or non-Error) failures. */
async function walk(name: string, f: (bad: never) => unknown): Promise<string[]> {
  const found: string[] = []
  for (const bad of bads) {
    try {
      dispose(await f(bad as never))
    } catch (e) {
      if (!(e instanceof Error)) found.push(`${name}(${show(bad)}): threw a non-Error ${show(e)}`)
      else if (internal.test(e.message)) found.push(`${name}(${show(bad)}): ${e.constructor.name}: ${e.message}`)
    }
  }
  return found
}

/** Every field of `valid` replaced in turn by every bad value. */
async function walkFields(name: string, valid: Record<string, unknown>, f: (o: never) => unknown): Promise<string[]> {
  const found = await walk(name, f)
  for (const key of Object.keys(valid)) found.push(...await walk(`${name}.${key}`, (bad) => f({ ...valid, [key]: bad } as never)))
  return found
}

const insns = [asm.mov64Imm(asm.R0, 0), asm.exit()]
let raw: BpfMap
let typed: BpfMap<number, bigint>
let queue: BpfMap<Uint8Array, number>
// Bloom filters came in Linux 5.16: left out where the probe says so.
let bloom: BpfMap<Uint8Array, number> | undefined
let ring: BpfMap
let mmapable: BpfMap<number, bigint>
let prog: BpfProgram

beforeAll(() => {
  raw = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 8 })
  typed = BpfMap.create({ type: 'hash', key: 'u32', value: 'u64', maxEntries: 8 })
  queue = BpfMap.create({ type: 'queue', value: 'u32', maxEntries: 4 })
  if (features.supportsMapType('bloom_filter')) bloom = BpfMap.create({ type: 'bloom_filter', value: 'u32', maxEntries: 4 })
  ring = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  mmapable = BpfMap.create({ type: 'array', key: 'u32', value: 'u64', maxEntries: 2, flags: ['mmapable'] })
  prog = BpfProgram.loadSync({ type: 'socket_filter', insns, license: 'GPL' })
})

afterAll(() => {
  for (const o of [raw, typed, queue, bloom, ring, mmapable, prog]) o?.close()
})

test('map creation and opening name bad arguments', async () => {
  const found = [
    ...await walkFields('BpfMap.create', { type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'bad_args', flags: ['no_prealloc'], numaNode: 0, mapExtra: 0 }, (o) => BpfMap.create(o)),
    ...await walkFields('BpfMap.create typed', { type: 'hash', key: 'u32', value: { struct: [['a', 'u32']] }, maxEntries: 1, btf: true, token: null }, (o) => BpfMap.create(o)),
    ...await walkFields('BpfMap.create innerMap', { type: 'array_of_maps', keySize: 4, maxEntries: 1, innerMap: { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 } }, (o) => BpfMap.create(o)),
    ...await walkFields('innerMap template', { type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, flags: 0 }, (t) => BpfMap.create({ type: 'hash_of_maps', keySize: 4, maxEntries: 1, innerMap: t })),
    ...await walkFields('MapSpec.from', { type: 'array', key: 'u32', value: { array: 'u8', length: 3 }, maxEntries: 1 }, (o) => MapSpec.from(o)),
    ...await walk('BpfMap.fromId', (b) => BpfMap.fromId(b)),
    ...await walk('BpfMap.fromPin', (b) => BpfMap.fromPin(b)),
    ...await walk('BpfMap.fromPin options', (b) => BpfMap.fromPin('/sys/fs/bpf/bpfkit-no-such-pin', b)),
    ...await walk('BpfMap.fromFd', (b) => BpfMap.fromFd(b)),
  ]
  expect(found).toEqual([])
})

test('map element, batch, queue and mapping calls name bad arguments', async () => {
  const found: string[] = []
  for (const [label, m] of [['raw', raw], ['typed', typed]] as const) {
    const map = m as BpfMap<unknown, unknown>
    const key = label === 'raw' ? new Uint8Array(4) : 1
    const value = label === 'raw' ? new Uint8Array(8) : 1n
    found.push(
      ...await walk(`${label}.lookup`, (b) => map.lookup(b)),
      ...await walk(`${label}.lookupInto key`, (b) => map.lookupInto(b, new Uint8Array(8))),
      ...await walk(`${label}.lookupInto out`, (b) => map.lookupInto(key, b)),
      ...await walk(`${label}.has`, (b) => map.has(b)),
      ...await walk(`${label}.update key`, (b) => map.update(b, value)),
      ...await walk(`${label}.update value`, (b) => map.update(key, b)),
      ...await walk(`${label}.update flags`, (b) => map.update(key, value, b)),
      ...await walk(`${label}.set`, (b) => map.set(key, b)),
      ...await walk(`${label}.delete`, (b) => map.delete(b)),
      ...await walk(`${label}.lookupAndDelete`, (b) => map.lookupAndDelete(b)),
      ...await walk(`${label}.lookupBatch`, (b) => map.lookupBatch(b)),
      ...await walkFields(`${label}.lookupBatch options`, { batchSize: 4, delete: false }, (o) => map.lookupBatch(o)),
      ...await walk(`${label}.lookupBatchBytes`, (b) => map.lookupBatchBytes(b)),
      ...await walk(`${label}.updateBatch`, (b) => map.updateBatch(b)),
      ...await walk(`${label}.updateBatch entry`, (b) => map.updateBatch([b])),
      ...await walk(`${label}.updateBatch key`, (b) => map.updateBatch([[b, value]])),
      ...await walk(`${label}.updateBatch options`, (b) => map.updateBatch([[key, value]], b)),
      ...await walk(`${label}.updateBatchBytes keys`, (b) => map.updateBatchBytes(b, new Uint8Array(8))),
      ...await walk(`${label}.updateBatchBytes values`, (b) => map.updateBatchBytes(new Uint8Array(4), b)),
      ...await walk(`${label}.updateBatchBytes options`, (b) => map.updateBatchBytes(new Uint8Array(4), new Uint8Array(8), b)),
      ...await walk(`${label}.deleteBatch`, (b) => map.deleteBatch(b)),
      ...await walk(`${label}.deleteBatch key`, (b) => map.deleteBatch([b])),
      ...await walk(`${label}.push`, (b) => map.push(b)),
      ...await walk(`${label}.mmap`, (b) => map.mmap(b)),
    )
  }
  found.push(
    ...await walk('queue.push', (b) => queue.push(b)),
    ...await walk('queue.push flags', (b) => queue.push(1, b)),
    ...(bloom ? await walk('bloom.mayContain', (b) => bloom!.mayContain(b)) : []),
    ...await walk('mmap options', (b) => mmapable.mmap(b)),
  )
  using view = mmapable.mmap()
  found.push(
    ...await walk('mapping.get', (b) => view.get(b)),
    ...await walk('mapping.set index', (b) => view.set(b, 1n)),
    ...await walk('mapping.set value', (b) => view.set(0, b)),
  )
  expect(found).toEqual([])
})

test('ring buffer calls name bad arguments', async () => {
  const rb = ring.ringBuffer()
  // Options that are fine ({}, undefined) wait for a record that never comes:
  // such a wait is given up after a moment and ended by close() below.
  const soon = (p: Promise<unknown>) => Promise.race([p, new Promise((resolve) => setTimeout(resolve, 20))])
  const found = [
    ...await walk('ringbuf.consume', (b) => rb.consume(b)),
    ...await walk('ringbuf.consumeBatches', (b) => rb.consumeBatches(b)),
    ...await walk('ringbuf.records signal', (b) => soon(rb.records({ signal: b }).next())),
    ...await walk('ringbuf.wait', (b) => soon(rb.wait(b))),
    ...await walk('ringbuf.records', (b) => soon(rb.records(b).next())),
  ]
  rb.close()
  expect(found).toEqual([])
})

test('program loading, opening and test runs name bad arguments', async () => {
  const found = [
    ...await walkFields('BpfProgram.loadSync', { type: 'socket_filter', insns, license: 'GPL', name: 'bad_args', logLevel: 0, logSize: 0, flags: [], kernVersion: 0 }, (o) => BpfProgram.loadSync(o)),
    ...await walkFields('BpfProgram.load', { type: 'socket_filter', insns, license: 'GPL', expectedAttachType: 0, attachBtfId: 0, token: null }, (o) => BpfProgram.load(o)),
    ...await walkFields('BpfProgram.load bytes', { type: 'socket_filter', bytes: asm.assemble(insns), license: 'GPL', attachBtfObjFd: 0, attachProgFd: 0 }, (o) => BpfProgram.load(o)),
    ...await walk('insns item', (b) => BpfProgram.loadSync({ type: 'socket_filter', insns: [b, asm.exit()] as never, license: 'GPL' })),
    ...await walkFields('insn field', { ...asm.mov64Imm(asm.R0, 0) }, (i) => BpfProgram.loadSync({ type: 'socket_filter', insns: [i, asm.exit()], license: 'GPL' })),
    ...await walkFields('ld_imm64 map', { ...asm.ldMapFd(asm.R1, raw) }, (i) => ProgramSpec.from({ type: 'socket_filter', insns: [i, asm.mov64Imm(asm.R0, 0), asm.exit()] })),
    ...await walk('ProgramSpec.from', (b) => ProgramSpec.from(b)),
    ...await walk('BpfProgram.fromId', (b) => BpfProgram.fromId(b)),
    ...await walk('BpfProgram.fromPin', (b) => BpfProgram.fromPin(b)),
    ...await walk('BpfProgram.fromFd', (b) => BpfProgram.fromFd(b)),
    ...await walk('testRun', (b) => prog.testRun(b)),
    ...await walkFields('testRunSync', { data: new Uint8Array(64), repeat: 1, dataOutSize: 64, cpu: 0 }, (o) => prog.testRunSync(o)),
  ]
  expect(found).toEqual([])
})

test('links name bad arguments', async () => {
  const sock = createSocket('udp4')
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve))
  try {
    const found = [
      ...await walk('attachSocketFilter socket', (b) => BpfLink.attachSocketFilter(b, prog)),
      ...await walk('attachSocketFilter program', (b) => BpfLink.attachSocketFilter(sock, b)),
      ...await walk('BpfLink.create program', (b) => BpfLink.create(b, { attachType: 'cgroup_inet_ingress', targetFd: -1 })),
      ...await walk('BpfLink.create options', (b) => BpfLink.create(prog, b)),
      ...await walkFields('BpfLink.create option', { attachType: 'cgroup_inet_ingress', targetFd: -1, flags: 0, cookie: 0 }, (o) => BpfLink.create(prog, o)),
      ...await walk('attachCgroup cgroup', (b) => BpfLink.attachCgroup(b, prog, 'cgroup_inet_ingress')),
      ...await walk('attachCgroup program', (b) => BpfLink.attachCgroup('/nonexistent-cgroup', b, 'cgroup_inet_ingress')),
      ...await walk('attachCgroup attach type', (b) => BpfLink.attachCgroup(-1, prog, b)),
      ...await walk('attachCgroup options', (b) => BpfLink.attachCgroup(-1, prog, 'cgroup_inet_ingress', b)),
      ...await walk('BpfLink.fromId', (b) => BpfLink.fromId(b)),
      ...await walk('BpfLink.fromPin', (b) => BpfLink.fromPin(b)),
    ]
    expect(found).toEqual([])
  } finally {
    sock.close()
  }
})

test('assembler builders name bad arguments', async () => {
  const found: string[] = []
  for (const [name, f] of Object.entries(asm)) {
    if (typeof f !== 'function') continue
    const call = f as (...a: unknown[]) => unknown
    for (let pos = 0; pos < Math.max(call.length, 1); pos++) {
      found.push(...await walk(`asm.${name} argument ${pos}`, (b) => call(...[0, 0, 0, 0].map((v, i) => (i === pos ? b : v)))))
    }
  }
  expect(found).toEqual([])
})

test('the cases the fuzzer found are TypeErrors that name the argument', () => {
  expect(() => typed.updateBatch(null as never)).toThrow(new TypeError('updateBatch: entries must be an iterable, got null'))
  expect(() => typed.updateBatch([null] as never)).toThrow(/updateBatch: entry 0 must be a \[key, value\] pair, got null/)
  expect(() => typed.deleteBatch(null as never)).toThrow(new TypeError('deleteBatch: keys must be an iterable, got null'))
  expect(() => BpfProgram.loadSync({ type: 'socket_filter', insns: [null] as never, license: 'GPL' })).toThrow(new TypeError('instruction 0: not an instruction or label: null'))
  expect(() => BpfProgram.loadSync({ type: 'socket_filter', insns: null as never, license: 'GPL' })).toThrow(/insns must be an array of instructions, got null/)
  expect(() => BpfLink.create(prog, undefined as never)).toThrow(/BpfLink.create: options must be an object/)
})
