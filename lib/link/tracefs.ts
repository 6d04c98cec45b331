// tracefs: where the kernel's tracing files are, a tracepoint's id, and the
// legacy probe-event files (kprobe_events, uprobe_events) that kprobes and
// uprobes fall back to where their perf PMU is missing. bpfkit never mounts
// tracefs itself: the system (or a test's private mount namespace) does.
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { describeValue } from '../sys/options.js'

/** Where tracefs is found, in libbpf's order of preference. */
const TRACEFS_MOUNT_POINTS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'] as const

/** Unescapes the octal escapes (\040 for a space) /proc/self/mountinfo uses in paths. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Mount points of tracefs (and of debugfs, which holds an automounted tracefs at tracing/) in this mount namespace. */
function mounts(): { tracefs: string[]; debugfs: string[] } {
  const out = { tracefs: [] as string[], debugfs: [] as string[] }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ')
    if (right === undefined) continue
    const fstype = right.split(' ')[0]
    const point = unescapeMountPath(left.split(' ')[4])
    if (fstype === 'tracefs') out.tracefs.push(point)
    else if (fstype === 'debugfs') out.debugfs.push(point)
  }
  return out
}

/**
 * The directory where tracefs is mounted: /sys/kernel/tracing, else
 * /sys/kernel/debug/tracing (debugfs mounts tracefs there on first access),
 * else any other tracefs mount of this mount namespace, read from
 * /proc/self/mountinfo; undefined when there is none.
 */
export function findTracefs(): string | undefined {
  const { tracefs, debugfs } = mounts()
  for (const p of TRACEFS_MOUNT_POINTS) if (tracefs.includes(p)) return p
  // The automount under debugfs appears in mountinfo only once something looked inside.
  if (debugfs.includes('/sys/kernel/debug') && existsSync('/sys/kernel/debug/tracing/events')) return '/sys/kernel/debug/tracing'
  return tracefs[0]
}

/**
 * The tracefs directory, as findTracefs. Errors: an Error saying tracefs is
 * not mounted and how to mount it (code 'ENOENT').
 */
export function tracefsPath(): string {
  const p = findTracefs()
  if (p !== undefined) return p
  throw Object.assign(new Error(
    'tracefs is not mounted (none at /sys/kernel/tracing or /sys/kernel/debug/tracing in /proc/self/mountinfo); ' +
    'mount it with `mount -t tracefs nodev /sys/kernel/tracing`, or pass the tracepoint\'s id'), { code: 'ENOENT' })
}

// Tracepoint categories and names are C identifiers (events/CAT/NAME/).
const EVENT_PART = /^[A-Za-z_][A-Za-z0-9_]*$/

function checkEventPart(where: string, what: string, v: unknown): asserts v is string {
  if (typeof v !== 'string') throw new TypeError(`${where}: ${what} must be a string, got ${describeValue(v)}`)
  if (!EVENT_PART.test(v) || v.length > 255) throw new TypeError(`${where}: ${what} ${describeValue(v)} is not a tracepoint ${what} (letters, digits and '_')`)
}

/**
 * The id of tracepoint `category`/`name` (tracefs events/CAT/NAME/id), the
 * perf event config of PERF_TYPE_TRACEPOINT. Errors: TypeError for names that
 * cannot be tracepoints; Error (code 'ENOENT') when tracefs is not mounted or
 * the kernel has no such tracepoint.
 */
export function tracepointId(category: string, name: string, options: { tracefs?: string } = {}): number {
  checkEventPart('tracepointId', 'category', category)
  checkEventPart('tracepointId', 'name', name)
  const dir = options.tracefs ?? tracefsPath()
  const file = join(dir, 'events', category, name, 'id')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw Object.assign(new Error(`unknown tracepoint ${category}:${name} (no ${file})`), { code: 'ENOENT' })
    }
    throw e
  }
  const id = Number(text.trim())
  if (!Number.isInteger(id) || id < 0) throw new Error(`${file} holds ${JSON.stringify(text.trim())}, not a tracepoint id`)
  return id
}

/** The legacy probe-event files of tracefs. */
export type ProbeEventsFile = 'kprobe_events' | 'uprobe_events'

/** A probe event bpfkit added to kprobe_events or uprobe_events; remove() takes it out. */
export interface ProbeEvent {
  readonly file: ProbeEventsFile
  /** The event's group: 'bpfkit'. */
  readonly group: string
  /** bpfkit_<pid>_<n>: unique to this process. */
  readonly name: string
  /** Its tracepoint id, for a PERF_TYPE_TRACEPOINT perf event. */
  readonly id: number
  /** Takes the event out of the file (once every perf event on it is closed); later calls do nothing. */
  remove(): void
}

const GROUP = 'bpfkit'
let counter = 0

function appendLine(path: string, line: string): void {
  // One write per line: the kernel parses each write as a command.
  const fd = openSync(path, 'a')
  try {
    writeSync(fd, line)
  } finally {
    closeSync(fd)
  }
}

/** Sleeps the thread `ms` milliseconds (a removal racing the last perf event's release). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/**
 * Adds a probe event to tracefs `file` ('kprobe_events' or 'uprobe_events'):
 * `p:bpfkit/bpfkit_<pid>_<n> <target>` (`r:` for a return probe), where
 * target is what the file's syntax puts there: `[MOD:]SYM[+offs]` or a
 * kernel address for kprobes, `PATH:0xOFFSET` for uprobes. Returns the
 * event with its tracepoint id; remove() it once its perf events are closed.
 * Errors: the tracefs errors of tracefsPath; an Error naming the line the
 * kernel refused (code 'ENOENT' or 'EINVAL' as the kernel said: an unknown
 * symbol or file, a function that cannot be probed).
 */
export function addProbeEvent(file: ProbeEventsFile, target: string, options: { retprobe?: boolean; tracefs?: string } = {}): ProbeEvent {
  if (file !== 'kprobe_events' && file !== 'uprobe_events') throw new TypeError(`addProbeEvent: file must be 'kprobe_events' or 'uprobe_events', got ${describeValue(file)}`)
  if (typeof target !== 'string' || target === '' || /[\s\n]/.test(target)) throw new TypeError(`addProbeEvent: target must be a non-empty string without spaces, got ${describeValue(target)}`)
  const dir = options.tracefs ?? tracefsPath()
  const path = join(dir, file)
  if (!existsSync(path)) {
    throw Object.assign(new Error(`${path} does not exist: this kernel has no ${file === 'kprobe_events' ? 'kprobe events (CONFIG_KPROBE_EVENTS)' : 'uprobe events (CONFIG_UPROBE_EVENTS)'}`), { code: 'ENOENT' })
  }
  for (;;) {
    const name = `bpfkit_${process.pid}_${counter++}`
    // A crashed process with the same pid may have left its events behind
    // (older kernels accept a duplicate silently): skip names in use.
    if (existsSync(join(dir, 'events', GROUP, name))) continue
    const line = `${options.retprobe ? 'r' : 'p'}:${GROUP}/${name} ${target}`
    try {
      appendLine(path, line)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'EEXIST') continue
      throw Object.assign(new Error(`${path} refused '${line}': ${code ?? String(e)}${file === 'kprobe_events' ? ' (no such kernel function, or it cannot be probed)' : ' (no such file or offset)'}`, { cause: e }), { code })
    }
    let id: number
    try {
      id = tracepointId(GROUP, name, { tracefs: dir })
    } catch (e) {
      removeLine(path, name)
      throw e
    }
    let removed = false
    return Object.freeze({
      file, group: GROUP, name, id,
      remove() {
        if (removed) return
        removed = true
        removeLine(path, name)
      },
    })
  }
}

// EBUSY while a perf event on it is being released: that finishes quickly.
function removeLine(path: string, name: string): void {
  const line = `-:${GROUP}/${name}`
  for (let attempt = 0; ; attempt++) {
    try {
      appendLine(path, line)
      return
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code === 'EBUSY' && attempt < 20) {
        sleepSync(10)
        continue
      }
      throw Object.assign(new Error(`could not remove probe event ${GROUP}/${name} from ${path}: ${code ?? String(e)}`, { cause: e }), { code })
    }
  }
}
