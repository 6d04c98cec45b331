// perf_event programs on sampled software events, one perf event (and one
// link) per CPU; and the pieces every perf-event-based family shares: a
// PMU's type and format bits from sysfs, and the check that a program is of
// the type the hook runs.
import { readFileSync } from 'node:fs'
import { havePerfEventPrograms } from '../features/attach-trace.js'
import { kernelBtf } from '../features/prog-types.js'
import type { FdRef } from '../map/values.js'
import { Fd, native } from '../sys/index.js'
import { onlineCpus } from '../sys/cpus.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { BpfLink } from './link.js'
import { linkPerfEvent, wantsCookie } from './perf-attach.js'
import { programOfType } from './program-ref.js'

const PMUS = '/sys/bus/event_source/devices'

/**
 * The perf event type number of PMU `name` ('software', 'tracepoint',
 * 'kprobe', 'uprobe'), read from sysfs; undefined when the kernel has no
 * such PMU.
 */
export function pmuType(name: string): number | undefined {
  try {
    return Number(readFileSync(`${PMUS}/${name}/type`, 'utf8').trim())
  } catch {
    return undefined
  }
}

/**
 * The (first) bit of perf_event_attr.config that format field `field` of PMU
 * `name` sets ('config:0' in .../kprobe/format/retprobe is bit 0,
 * 'config:32-63' in .../uprobe/format/ref_ctr_offset starts at 32). Errors: an Error
 * when the file is missing or not a single config bit.
 */
export function pmuConfigBit(name: string, field: string): number {
  const path = `${PMUS}/${name}/format/${field}`
  const text = readFileSync(path, 'utf8').trim()
  const m = /^config:(\d+)(?:-\d+)?$/.exec(text)
  if (!m) throw new Error(`${path} holds '${text}', not a config bit`)
  return Number(m[1])
}


/** Software events by perf's own names, and the perf_sw_ids enumerator each is. */
const SOFTWARE_EVENTS = {
  'cpu-clock': 'PERF_COUNT_SW_CPU_CLOCK',
  'task-clock': 'PERF_COUNT_SW_TASK_CLOCK',
  'page-faults': 'PERF_COUNT_SW_PAGE_FAULTS',
  'context-switches': 'PERF_COUNT_SW_CONTEXT_SWITCHES',
  'cpu-migrations': 'PERF_COUNT_SW_CPU_MIGRATIONS',
  'minor-faults': 'PERF_COUNT_SW_PAGE_FAULTS_MIN',
  'major-faults': 'PERF_COUNT_SW_PAGE_FAULTS_MAJ',
  'alignment-faults': 'PERF_COUNT_SW_ALIGNMENT_FAULTS',
  'emulation-faults': 'PERF_COUNT_SW_EMULATION_FAULTS',
  'cgroup-switches': 'PERF_COUNT_SW_CGROUP_SWITCHES',
} as const

export type SoftwareEventName = keyof typeof SOFTWARE_EVENTS

/**
 * The config number of software event `name`, from the running kernel's BTF
 * (enum perf_sw_ids): an event the kernel does not know is an Error there.
 */
function softwareEventConfig(name: SoftwareEventName): number {
  const btf = kernelBtf()
  if (btf === null) throw new Error(`attachPerfEvent: cannot tell the number of software event '${name}' without the kernel's BTF (/sys/kernel/btf/vmlinux); pass it as a number`)
  const id = btf.find('perf_sw_ids', 'ENUM')
  const value = id === undefined ? undefined : btf.enumValues(btf.type(id)).find((v) => v.name === SOFTWARE_EVENTS[name])?.value
  if (value === undefined) throw new Error(`attachPerfEvent: this kernel has no software event '${name}' (${SOFTWARE_EVENTS[name]})`)
  return Number(value)
}

export interface PerfEventOptions {
  /** A software event by perf's name ('cpu-clock', 'task-clock', 'page-faults', ...) or its config number. */
  event: SoftwareEventName | number
  /** Run the program every N events (nanoseconds for the clocks). One of samplePeriod and sampleFreq. */
  samplePeriod?: number | bigint
  /** Run the program about N times a second, per CPU. */
  sampleFreq?: number | bigint
  /** Which CPUs to sample on: a list, or 'all' online CPUs (default). */
  cpus?: readonly number[] | 'all'
  /** bpf_get_attach_cookie's value (perf_event links, Linux 5.15+). */
  cookie?: number | bigint
}

/**
 * One link per CPU of a perf_event program on a sampled event: closing
 * (or detaching) it ends them all. Iterable over its links.
 */
export class PerfEventLinks implements Iterable<BpfLink> {
  /** @internal */
  constructor(readonly cpus: readonly number[], readonly links: readonly BpfLink[]) {}

  get closed(): boolean {
    return this.links.every((l) => l.closed)
  }

  /** Detaches every CPU's link now (they stay open until close). */
  detach(): void {
    for (const l of this.links) l.detach()
  }

  /** Closes every CPU's link; idempotent. */
  close(): void {
    let first: unknown
    for (const l of this.links) {
      try {
        l.close()
      } catch (e) {
        first ??= e
      }
    }
    if (first !== undefined) throw first
  }

  [Symbol.dispose](): void {
    this.close()
  }

  [Symbol.iterator](): Iterator<BpfLink> {
    return this.links[Symbol.iterator]()
  }
}

function positive(where: string, what: string, v: unknown): void {
  if (typeof v === 'number' ? !(Number.isSafeInteger(v) && v > 0) : typeof v === 'bigint' ? !(v > 0n && v < 1n << 64n) : true) {
    throw new TypeError(`${where}: ${what} must be a positive integer, got ${describeValue(v)}`)
  }
}

/**
 * Attaches a perf_event program to a sampled software event on each CPU
 * asked (default: every online CPU), counting every task on that CPU: the
 * program filters by pid itself. Returns one link per CPU, closed together.
 * Needs CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_BPF. Linux 4.9+; on kernels
 * before perf links (5.15) each is a program set on its perf event by ioctl.
 * Errors: TypeError for bad options or a program of another type; Error for
 * a software event this kernel does not know; SyscallError from
 * perf_event_open (ENODEV for an offline CPU); NotSupportedError from
 * havePerfEventPrograms, or haveBpfCookie for a cookie before 5.15. Nothing stays open after a failure.
 */
export function attachPerfEvent(program: FdRef, options: PerfEventOptions): PerfEventLinks {
  const where = 'attachPerfEvent'
  checkOptions(where, options, ['event', 'samplePeriod', 'sampleFreq', 'cpus', 'cookie'], { required: true, types: { cookie: ['number', 'bigint'] } })
  programOfType(where, program, 'perf_event')
  const { event, samplePeriod, sampleFreq } = options
  let config: number
  if (typeof event === 'number') {
    if (!Number.isSafeInteger(event) || event < 0) throw new TypeError(`${where}: event must be a software event name or a non-negative integer, got ${describeValue(event)}`)
    config = event
  } else if (typeof event === 'string' && Object.hasOwn(SOFTWARE_EVENTS, event)) {
    config = softwareEventConfig(event)
  } else {
    throw new TypeError(`${where}: unknown event ${describeValue(event)} (known: ${Object.keys(SOFTWARE_EVENTS).join(', ')}, or a number)`)
  }
  if ((samplePeriod === undefined) === (sampleFreq === undefined)) throw new TypeError(`${where}: give exactly one of samplePeriod and sampleFreq`)
  if (samplePeriod !== undefined) positive(where, 'samplePeriod', samplePeriod)
  if (sampleFreq !== undefined) positive(where, 'sampleFreq', sampleFreq)
  const cpus = options.cpus === undefined || options.cpus === 'all' ? onlineCpus() : options.cpus
  if (!Array.isArray(cpus) || cpus.length === 0 || !cpus.every((c) => Number.isInteger(c) && c >= 0 && c < 0x7fffffff)) {
    throw new TypeError(`${where}: cpus must be 'all' or a non-empty list of CPU numbers, got ${describeValue(options.cpus)}`)
  }
  if (new Set(cpus).size !== cpus.length) throw new TypeError(`${where}: cpus lists a CPU twice`)
  havePerfEventPrograms()
  wantsCookie(options.cookie)
  const type = pmuType('software')
  if (type === undefined) throw new Error(`${where}: no software PMU in ${PMUS} (is sysfs mounted?)`)
  const links: BpfLink[] = []
  try {
    for (const cpu of cpus) {
      const perf = new Fd(native.perfEventOpen({ type, config, samplePeriod, sampleFreq, disabled: true, pid: -1, cpu }), 'perf_event')
      links.push(linkPerfEvent(program, perf, { cookie: options.cookie }))
    }
  } catch (e) {
    for (const l of links) l.close()
    throw e
  }
  return new PerfEventLinks(Object.freeze([...cpus]), Object.freeze(links))
}
