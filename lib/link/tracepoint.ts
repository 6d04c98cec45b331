// Tracepoint programs on a perf event of PERF_TYPE_TRACEPOINT, the event
// named by its tracefs id (events/CATEGORY/NAME/id).
import { haveTracepoints } from '../features/attach-trace.js'
import type { FdRef } from '../map/values.js'
import { Fd, SyscallError, native } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { BpfLink } from './link.js'
import { linkPerfEvent, wantsCookie } from './perf-attach.js'
import { pmuType } from './perf-event.js'
import { tracepointId } from './tracefs.js'
import { programOfType } from './program-ref.js'

export interface TracepointOptions {
  /** bpf_get_attach_cookie's value (perf_event links, Linux 5.15+). */
  cookie?: number | bigint
  /**
   * The tracepoint's id, when it was read elsewhere (tracefs mounted in
   * another mount namespace): then tracefs need not be mounted here.
   */
  id?: number
}

const EVENT_PART = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Attaches a tracepoint program to tracepoint `category`:`name`
 * ('syscalls', 'sys_enter_openat'), for every task on every CPU: the program
 * filters by pid itself. The id is read from tracefs (/sys/kernel/tracing,
 * else /sys/kernel/debug/tracing) unless given. Linux 4.7+; a perf_event
 * link from 5.15, a program set on the perf event by ioctl before. Needs
 * CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_BPF.
 * Errors: TypeError for bad names or options, or a program of another type;
 * Error (code 'ENOENT') for an unknown tracepoint or tracefs not mounted;
 * NotSupportedError from haveTracepoints, or haveBpfCookie for a cookie
 * before 5.15. Nothing stays open after a failure.
 */
export function attachTracepoint(program: FdRef, category: string, name: string, options: TracepointOptions = {}): BpfLink {
  const where = 'attachTracepoint'
  checkOptions(where, options, ['cookie', 'id'], { types: { cookie: ['number', 'bigint'], id: 'number' } })
  for (const [what, v] of [['category', category], ['name', name]] as const) {
    if (typeof v !== 'string') throw new TypeError(`${where}: ${what} must be a string, got ${describeValue(v)}`)
    if (!EVENT_PART.test(v)) throw new TypeError(`${where}: ${what} ${describeValue(v)} is not a tracepoint ${what} (letters, digits and '_')`)
  }
  if (options.id !== undefined && !(Number.isInteger(options.id) && options.id >= 0 && options.id <= 0xffffffff)) {
    throw new TypeError(`${where}: id must be a tracepoint id (a non-negative integer), got ${describeValue(options.id)}`)
  }
  programOfType(where, program, 'tracepoint')
  haveTracepoints()
  wantsCookie(options.cookie)
  const id = options.id ?? tracepointId(category, name)
  const type = pmuType('tracepoint')
  if (type === undefined) throw new Error(`${where}: no tracepoint PMU in /sys/bus/event_source/devices (is sysfs mounted?)`)
  let fd: number
  try {
    fd = native.perfEventOpen({ type, config: id, pid: -1, cpu: 0, disabled: true })
  } catch (e) {
    if (e instanceof SyscallError && (e.code === 'ENOENT' || e.code === 'EINVAL')) {
      throw Object.assign(new Error(`${where}: no tracepoint has id ${id} (${category}:${name}): perf_event_open says ${e.code}`, { cause: e }), { code: 'ENOENT' })
    }
    throw e
  }
  return linkPerfEvent(program, new Fd(fd, 'perf_event'), { cookie: options.cookie })
}
