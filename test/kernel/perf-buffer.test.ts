// Perf buffers: samples written by a real program (bpf_perf_event_output with
// BPF_F_CURRENT_CPU, run by the test through BPF_PROG_TEST_RUN) and read
// through PerfBuffer, per CPU, across wrap-arounds of small rings, with the
// kernel's lost-samples counts; close leaves neither fds nor map entries.
import { execFileSync } from 'node:child_process'
import { readlinkSync } from 'node:fs'
import { afterEach, beforeEach, expect, test } from 'vitest'
import { BpfMap, type BpfProgram, type Collection } from '../../lib/index.js'
import { PerfBuffer, type PerfRecord } from '../../lib/map/perf-buffer.js'
import { onlineCpus } from '../../lib/sys/cpus.js'
import { fixtureSpec, packet } from './helpers/collection.js'
import { fdTable, opened } from './helpers/fds.js'

// struct sample: u64 seq, then pattern[i] = seq * 0x0101010101010101 + i.
const SAMPLE = 40
// The kernel pads a raw sample so that 4 + size is a multiple of 8 (not zeroed).
const RAW = 44
const ENOENT = 2

let coll: Collection
let prog: BpfProgram
let events: BpfMap

beforeEach(async () => {
  coll = await fixtureSpec('attach-perfbuf').load()
  prog = coll.programs.output_sample
  events = coll.maps.events as BpfMap
})

afterEach(() => coll.close())

function seqOf(r: PerfRecord): number {
  return Number(new DataView(r.data.buffer, r.data.byteOffset, r.data.length).getBigUint64(0, true))
}

// Every byte of the sample, so a record copied wrong across the ring's end shows.
function expectWellFormed(r: PerfRecord): void {
  expect(r.lost).toBe(0)
  expect(r.data.length).toBe(RAW)
  const v = new DataView(r.data.buffer, r.data.byteOffset, r.data.length)
  const seq = v.getBigUint64(0, true)
  for (let i = 0; i < 4; i++) {
    const want = BigInt.asUintN(64, seq * 0x0101010101010101n + BigInt(i))
    if (v.getBigUint64(8 + 8 * i, true) !== want) throw new Error(`sample ${seq}: pattern[${i}] is wrong`)
  }
  // The 4 bytes past SAMPLE are the kernel's padding: not zeroed, so not checked.
}

const state = (i: number) => Number(coll.maps.state.get(i) as bigint)

// Runs `fn` with this thread allowed on `cpu` only (its own affinity, put
// back afterwards): test runs on this thread (testRunSync) then write to
// that CPU's ring, and a ring can be filled on purpose.
function onCpu<T>(cpu: number, fn: () => T): T {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()!
  const before = execFileSync('taskset', ['-pc', tid], { encoding: 'utf8' }).trim().split(': ').pop()!
  execFileSync('taskset', ['-pc', String(cpu), tid], { stdio: 'ignore' })
  try {
    return fn()
  } finally {
    execFileSync('taskset', ['-pc', before, tid], { stdio: 'ignore' })
  }
}

// A CPU this thread may run on, among those the map has entries for.
function someCpu(): number {
  const tid = readlinkSync('/proc/thread-self').split('/').pop()!
  const allowed = execFileSync('taskset', ['-pc', tid], { encoding: 'utf8' }).trim().split(': ').pop()!
  const first = Number(allowed.split(/[,-]/)[0])
  return onlineCpus().includes(first) ? first : onlineCpus()[0]
}

test('samples are read with their CPU, in order per CPU, whole', async () => {
  using pb = PerfBuffer.open(events)
  expect(pb.cpus).toEqual(onlineCpus().filter((c) => c < events.maxEntries))
  for (let i = 0; i < 10; i++) await prog.testRun({ data: packet, repeat: 5 })
  expect(pb.pending).toBe(50 * 56)
  const got = pb.read()
  expect(got).toHaveLength(50)
  for (const r of got) {
    expectWellFormed(r)
    expect(pb.cpus).toContain(r.cpu)
  }
  for (const cpu of pb.cpus) {
    const seqs = got.filter((r) => r.cpu === cpu).map(seqOf)
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b))
  }
  expect(got.map(seqOf).sort((a, b) => a - b)).toEqual([...Array(50).keys()])
  expect(pb.read()).toEqual([])
  expect(pb.pending).toBe(0)
  expect(state(1)).toBe(0) // nothing refused
  expect(pb.lost).toBe(0)
})

test('consume and consumeBatches drain without copies', async () => {
  using pb = PerfBuffer.open(events, { pageCount: 2 })
  await prog.testRun({ data: packet, repeat: 7 })
  const seqs: number[] = []
  expect(pb.consume((r) => { expectWellFormed(r); seqs.push(seqOf(r)) })).toBe(7)
  expect(seqs.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6])
  await prog.testRun({ data: packet, repeat: 3 })
  let records = 0
  let bytes = 0
  expect(pb.consumeBatches((buf, recs, n) => {
    records += n
    bytes = recs[3 * (n - 1)]
    for (let i = 0; i < n; i++) expect(recs[3 * i + 2]).toBe(0)
    expect(buf.length).toBeGreaterThanOrEqual(bytes)
  })).toBe(3)
  expect(records).toBe(3)
  expect(bytes).toBe(3 * RAW)
  expect(pb.consume(() => { throw new Error('no records left') })).toBe(0)
})

test('the async iterator wakes when a program writes, and stops on abort', async () => {
  using pb = PerfBuffer.open(events)
  const ac = new AbortController()
  const seen: number[] = []
  const consumer = (async () => {
    for await (const r of pb.records({ signal: ac.signal })) {
      seen.push(seqOf(r))
      if (seen.length === 3) ac.abort()
    }
  })()
  await new Promise((r) => setTimeout(r, 20)) // the consumer is now waiting
  expect(seen).toEqual([])
  await prog.testRun({ data: packet })
  await new Promise((r) => setTimeout(r, 20))
  expect(seen).toEqual([0])
  await prog.testRun({ data: packet, repeat: 2 })
  await consumer
  expect(seen.sort()).toEqual([0, 1, 2])
})

test('wakeupEvents: a waiting reader wakes every N samples of a CPU', async () => {
  const cpu = someCpu()
  using pb = PerfBuffer.open(events, { wakeupEvents: 4, cpus: [cpu] })
  let woken = false
  const waiting = pb.wait().then((ready) => { woken = ready })
  onCpu(cpu, () => prog.testRunSync({ data: packet, repeat: 3 }))
  await new Promise((r) => setTimeout(r, 50))
  expect(woken).toBe(false) // 3 samples wait in the ring, unannounced
  expect(pb.pending).toBe(3 * 56)
  onCpu(cpu, () => prog.testRunSync({ data: packet }))
  await waiting
  expect(woken).toBe(true)
  expect(pb.read().map(seqOf)).toEqual([0, 1, 2, 3])
})

test('records that wrap around a one-page ring are read whole, thousands of them', async () => {
  using pb = PerfBuffer.open(events, { pageCount: 1 })
  const cpu = someCpu()
  const seqs: number[] = []
  onCpu(cpu, () => {
    for (let round = 0; round < 50; round++) {
      prog.testRunSync({ data: packet, repeat: 60 }) // 60 x 56 bytes < 4096: fits, and wraps over the rounds
      for (const r of pb.read()) {
        expectWellFormed(r)
        expect(r.cpu).toBe(cpu)
        seqs.push(seqOf(r))
      }
    }
  })
  expect(seqs).toEqual([...Array(3000).keys()]) // 3000 x 56 bytes: the 4 KiB ring wrapped 41 times
  expect(state(1)).toBe(0)
})

test('a full ring loses samples, and the reader is told how many', async () => {
  using pb = PerfBuffer.open(events, { pageCount: 1 })
  const cpu = someCpu()
  const first = onCpu(cpu, () => {
    prog.testRunSync({ data: packet, repeat: 200 }) // 200 x 56 bytes: the 4 KiB ring holds 73
    return pb.read()
  })
  expect(first.every((r) => r.lost === 0 && r.cpu === cpu)).toBe(true)
  expect(first.map(seqOf)).toEqual([...Array(first.length).keys()])
  expect(first.length).toBe(Math.floor(4096 / 56))
  expect(state(1)).toBe(200 - first.length) // the program saw each loss as an error
  expect(pb.lost).toBe(0) // the kernel reports the loss with its next sample on that CPU
  const next = onCpu(cpu, () => {
    prog.testRunSync({ data: packet })
    return pb.read()
  })
  expect(next).toHaveLength(2)
  expect(next[0]).toEqual({ cpu, data: new Uint8Array(0), lost: 200 - first.length })
  expectWellFormed(next[1])
  expect(seqOf(next[1])).toBe(200)
  expect(pb.lost).toBe(200 - first.length)
})

test('close deletes the map entries it set and leaves no fd open', async () => {
  const before = fdTable()
  const pb = PerfBuffer.open(events, { pageCount: 4 })
  expect(opened(before, fdTable()).filter((e) => e.includes('perf_event'))).toHaveLength(pb.cpus.length)
  await prog.testRun({ data: packet })
  expect(pb.read()).toHaveLength(1)
  pb.close()
  pb.close() // a no-op
  expect(opened(before, fdTable())).toEqual([])
  // Programs now find no event at their CPU's index.
  await prog.testRun({ data: packet })
  expect(state(1)).toBe(1)
  expect(state(2)).toBe(ENOENT)
  for (const cpu of onlineCpus().filter((c) => c < events.maxEntries)) {
    expect(events.delete(new Uint8Array(new Uint32Array([cpu]).buffer))).toBe(false)
  }
  expect(() => pb.read()).toThrow(/perf buffer already closed/)
  expect(() => pb.pending).toThrow(/already closed/)
  await expect(pb.wait()).rejects.toThrow(/already closed/)
  // A new reader on the same map works, and only one at a time per CPU.
  using again = PerfBuffer.open(events)
  expect(() => PerfBuffer.open(events, { cpus: [again.cpus[0]] })).toThrow(/is read by another PerfBuffer/)
  await prog.testRun({ data: packet })
  expect(again.read().map(seqOf)).toEqual([2])
})

test('closing the reader ends a waiting iterator', async () => {
  const pb = PerfBuffer.open(events)
  const done = (async () => {
    const out = []
    for await (const r of pb) out.push(r)
    return out
  })()
  await new Promise((r) => setTimeout(r, 10))
  pb.close()
  expect(await done).toEqual([])
  using other = PerfBuffer.open(events)
  const it = other.records({ signal: AbortSignal.abort() })
  expect(await it.next()).toEqual({ done: true, value: undefined })
})

test('bad input is refused clearly and leaves nothing open or set', () => {
  const before = fdTable()
  using arr = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
  expect(() => PerfBuffer.open(arr)).toThrow(/array map, not a perf_event_array/)
  // The native check too, for callers that pass a wrong type name.
  expect(() => PerfBuffer.open({ fd: arr.fd, type: 'perf_event_array', maxEntries: 1 })).toThrow(/not a perf_event_array/)
  for (const pageCount of [3, 0, 6, 1.5, 1 << 17]) {
    expect(() => PerfBuffer.open(events, { pageCount })).toThrow(RangeError)
  }
  expect(() => PerfBuffer.open(events, { pageCount: 3 })).toThrow(/power of two/)
  expect(() => PerfBuffer.open(events, { pageCount: '8' as unknown as number })).toThrow(TypeError)
  expect(() => PerfBuffer.open(events, { wakeupEvents: 0 })).toThrow(RangeError)
  expect(() => PerfBuffer.open(events, { cpus: [] })).toThrow(/cpus is empty/)
  expect(() => PerfBuffer.open(events, { cpus: [events.maxEntries] })).toThrow(/past the map's/)
  expect(() => PerfBuffer.open(events, { cpus: [0, 0] })).toThrow(/listed twice/)
  expect(() => PerfBuffer.open(events, { cpus: [-1] })).toThrow(TypeError)
  expect(() => PerfBuffer.open(events, { pages: 8 } as never)).toThrow(/unknown option 'pages'/)
  expect(() => PerfBuffer.open(null as never)).toThrow(TypeError)
  // A CPU that does not exist fails in perf_event_open after CPU 0 was set
  // up: CPU 0's event, ring and map entry are undone.
  using wide = BpfMap.create({ type: 'perf_event_array', keySize: 4, valueSize: 4, maxEntries: 4096 })
  expect(() => PerfBuffer.open(wide, { cpus: [0, 4095] })).toThrow(expect.objectContaining({ syscall: 'perf_event_open' }))
  expect(wide.delete(new Uint8Array(4))).toBe(false)
  const closed = BpfMap.create({ type: 'perf_event_array', keySize: 4, valueSize: 4, maxEntries: 2 })
  closed.close()
  expect(() => PerfBuffer.open(closed)).toThrow(/already closed/)
  arr.close()
  wide.close()
  expect(opened(before, fdTable())).toEqual([])
})

test('a map\'s perfBuffer() is closed with the map, and again by its own close()', async () => {
  const before = fdTable()
  const events = BpfMap.create({ type: 'perf_event_array', keySize: 4, valueSize: 4, maxEntries: Math.max(...onlineCpus()) + 1 })
  const pb = events.perfBuffer({ pageCount: 1 })
  const waiting = pb.wait()
  expect(pb.closed).toBe(false)
  events.close()
  expect(pb.closed).toBe(true)
  await expect(waiting).resolves.toBe(false)
  pb.close()
  expect(opened(before, fdTable())).toEqual([])
  const other = BpfMap.create({ type: 'perf_event_array', keySize: 4, valueSize: 4, maxEntries: Math.max(...onlineCpus()) + 1 })
  other.perfBuffer({ pageCount: 1 }).close()
  other.close()
  expect(opened(before, fdTable())).toEqual([])
})
