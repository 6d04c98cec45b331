// BPF iterators (Linux 5.8+): an iter program is linked to its target (task,
// bpf_map, bpf_map_elem of one map, a cgroup walk, ...) and every
// BPF_ITER_CREATE on the link starts a fresh walk whose output is read like a
// file. A pinned iterator link is read by reading its bpffs path (`cat`).
//
// Reads run on libuv's thread pool (fs.read on the iterator fd): one read()
// runs the program over as many objects as fit in the buffer, which for a
// walk of every task can take milliseconds, so it must not block the event
// loop. The fd is closed only when no read is in flight.
import { read as fsRead } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { closeSync, openSync } from 'node:fs'
import { haveIterators } from '../features/attach-tracing.js'
import type { FdRef } from '../map/values.js'
import { BpfError, Fd, closedError, enumName, kernel, native, progInfoByFd } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { BpfLink } from './link.js'
import type { TracingProgram } from './tracing.js'
import { programFd } from './program-ref.js'

/** enum bpf_cgroup_iter_order (Linux 6.1). */
export const cgroupIterOrders = { self_only: 1, descendants_pre: 2, descendants_post: 3, ancestors_up: 4 } as const
export type CgroupIterOrder = keyof typeof cgroupIterOrders

export interface IterOptions {
  /** The map a bpf_map_elem, bpf_sk_storage_map or sockmap iterator walks (Linux 5.9+). */
  map?: FdRef
  /** The cgroup a cgroup iterator starts from: a cgroup v2 directory path or an open fd (Linux 6.1+). */
  cgroup?: string | number
  /** The cgroup walk's order; default 'descendants_pre'. */
  order?: CgroupIterOrder
  /** One task (tid), one process (pid) or a pidfd's process for task, task_file and task_vma iterators (Linux 6.1+). */
  task?: { tid?: number; pid?: number; pidFd?: number }
}

// union bpf_iter_link_info: map { map_fd @0 }, cgroup { order @0, cgroup_fd @4,
// cgroup_id @8 }, task { tid @0, pid @4, pid_fd @8 }; 16 bytes since 6.1.
const ITER_INFO_SIZE = 16
// Targets whose walk is over the elements of one map given at attach.
const MAP_TARGETS = new Set(['bpf_map_elem', 'bpf_sk_storage_map', 'sockmap'])

function mapFd(where: string, map: unknown): number {
  if (map === null || typeof map !== 'object' || !('fd' in map)) throw new TypeError(`${where}: map must be a BpfMap or an object with a map fd, got ${describeValue(map)}`)
  return (map as FdRef).fd
}

function u32(where: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 0xffffffff) throw new TypeError(`${where}: ${what} must be a positive integer, got ${describeValue(v)}`)
  return v
}

// The iterInfo bytes, and what must be closed once the link exists.
function iterInfo(where: string, o: IterOptions): { bytes?: Uint8Array; close?: () => void } {
  const given = (['map', 'cgroup', 'task'] as const).filter((k) => o[k] !== undefined)
  if (given.length > 1) throw new TypeError(`${where}: map, cgroup and task are exclusive (got ${given.join(', ')})`)
  if (o.order !== undefined && o.cgroup === undefined) throw new TypeError(`${where}: order applies to a cgroup iterator; give cgroup too`)
  if (given.length === 0) return {}
  const bytes = new Uint8Array(ITER_INFO_SIZE)
  const v = new DataView(bytes.buffer)
  if (o.map !== undefined) {
    v.setUint32(0, mapFd(where, o.map), true)
    return { bytes }
  }
  if (o.task !== undefined) {
    const t = o.task
    if (t === null || typeof t !== 'object') throw new TypeError(`${where}: task must be { tid } or { pid } or { pidFd }, got ${describeValue(t)}`)
    checkOptions(`${where} task`, t, ['tid', 'pid', 'pidFd'])
    const keys = Object.keys(t).filter((k) => (t as Record<string, unknown>)[k] !== undefined)
    if (keys.length !== 1) throw new TypeError(`${where}: task needs exactly one of tid, pid and pidFd`)
    if (t.tid !== undefined) v.setUint32(0, u32(where, 'task.tid', t.tid), true)
    if (t.pid !== undefined) v.setUint32(4, u32(where, 'task.pid', t.pid), true)
    if (t.pidFd !== undefined) v.setUint32(8, u32(where, 'task.pidFd', t.pidFd), true)
    return { bytes }
  }
  const cg = o.cgroup
  const order = o.order ?? 'descendants_pre'
  if (typeof order !== 'string' || !Object.hasOwn(cgroupIterOrders, order)) {
    throw new TypeError(`${where}: order must be one of ${Object.keys(cgroupIterOrders).join(', ')}, got ${describeValue(order)}`)
  }
  if (typeof cg !== 'string' && typeof cg !== 'number') throw new TypeError(`${where}: cgroup must be a cgroup directory path or an fd, got ${describeValue(cg)}`)
  const fd = typeof cg === 'number' ? cg : openSync(cg, 'r')
  v.setUint32(0, cgroupIterOrders[order], true)
  v.setUint32(4, fd, true)
  return { bytes, close: typeof cg === 'number' ? undefined : () => closeSync(fd) }
}

/**
 * Links an iterator program (SEC("iter/<target>"): task, task_file,
 * task_vma, bpf_map, bpf_map_elem, bpf_prog, bpf_link, tcp, udp, unix,
 * cgroup, ksym, ...) to its target, with the target's parameters: `map` for
 * map element iterators, `cgroup` (+ `order`) for cgroup iterators, `task`
 * to walk one task or process. Nothing runs until the link is read
 * (openIterator, or reading its pin). Linux 5.8+ (targets added since: see
 * haveIterTarget). The link can be updated to another program of the same
 * target (5.9+). Errors: TypeError for a program that is not an iterator
 * program or bad options; NotSupportedError before 5.8; BpfError EINVAL for
 * parameters the target does not take, EPERM without CAP_BPF + CAP_PERFMON.
 */
export function attachIter(program: TracingProgram, options: IterOptions = {}): BpfLink {
  const where = 'attachIter'
  checkOptions(where, options, ['map', 'cgroup', 'order', 'task'])
  const progFd = programFd(where, program)
  const type = typeof program.type === 'string' ? program.type : enumName(kernel.progTypes, progInfoByFd(progFd).typeId)
  const section = program.section?.replace(/^\?/, '')
  const notIter = type !== 'tracing'
    || (program.expectedAttachType !== undefined && program.expectedAttachType !== 'trace_iter' && program.expectedAttachType !== kernel.attachTypes.trace_iter)
    || (section !== undefined && !/^iter(\.s)?\//.test(section))
  if (notIter) throw new TypeError(`${where}: the program is not an iterator program (a tracing program from SEC("iter/<target>")); it is ${type}${section ? ` from SEC("${section}")` : ''}`)
  // What the section names ('iter/bpf_map_elem'): checked here, since the kernel's answer to a
  // missing map is a bare EBADF (it looks up map fd 0).
  const given = (['map', 'cgroup', 'task'] as const).filter((k) => options[k] !== undefined)
  if (given.length > 1) throw new TypeError(`${where}: map, cgroup and task are exclusive (got ${given.join(', ')})`)
  const target = section === undefined ? undefined : program.attachTo ?? section.replace(/^iter(\.s)?\//, '')
  if (target !== undefined && MAP_TARGETS.has(target) !== (options.map !== undefined)) {
    throw new TypeError(options.map === undefined
      ? `${where}: a ${target} iterator walks one map: give options.map`
      : `${where}: options.map is for map iterators (${[...MAP_TARGETS].join(', ')}); this program iterates ${target}`)
  }
  haveIterators()
  const info = iterInfo(where, options)
  try {
    const fd = native.linkCreate({ progFd, attachType: kernel.attachTypes.trace_iter, iterInfo: info.bytes })
    return BpfLink.fromLinkFd(new Fd(fd, 'link'))
  } catch (e) {
    if (e instanceof BpfError && e.code === 'EINVAL') {
      throw new BpfError('link_create', e.errno, `${where}: link_create: EINVAL: the program is not an iterator program loaded for BPF_TRACE_ITER, or its target does not take the parameters given (${Object.keys(options).join(', ') || 'none'})`)
    }
    throw e
  } finally {
    info.close?.()
  }
}

const CHUNK = 64 * 1024

/**
 * One walk of an iterator: read it as an async iterable of chunks (Buffers),
 * or whole with readAll(). Made by openIterator; close() (or `using`) ends
 * it early. Reading runs on the thread pool; closing during a read closes
 * the fd once that read returns.
 */
export class IteratorReader implements AsyncIterable<Buffer> {
  readonly #fd: Fd
  #reading = false
  #closing = false
  #done = false

  /** @internal Made by openIterator. */
  constructor(fd: Fd) {
    this.#fd = fd
  }

  get closed(): boolean {
    return this.#fd.closed || this.#closing
  }

  /** The next chunk of output, or undefined at the end (then the reader is closed). */
  async read(): Promise<Buffer | undefined> {
    if (this.#done) return undefined
    if (this.closed) throw closedError('iterator')
    if (this.#reading) throw new TypeError('iterator: a read is already in flight; await it first')
    this.#reading = true
    const fd = this.#fd.fd
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(CHUNK)
        const n = await new Promise<number>((resolve, reject) => fsRead(fd, buf, 0, CHUNK, null, (err, bytes) => (err ? reject(err) : resolve(bytes))))
          .catch((e: NodeJS.ErrnoException) => {
            // The kernel stops a walk after a million objects per read() and asks to be called again.
            if (e.code === 'EAGAIN') return -1
            throw e
          })
        if (n < 0) continue
        if (n === 0) {
          this.#done = true
          return undefined
        }
        return buf.subarray(0, n)
      }
    } finally {
      this.#reading = false
      if (this.#done || this.#closing) this.#fd.close()
    }
  }

  /** The whole remaining output as text (UTF-8). */
  async readAll(): Promise<string> {
    const chunks: Buffer[] = []
    for await (const c of this) chunks.push(c)
    return Buffer.concat(chunks).toString('utf8')
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const c = await this.read()
        if (c === undefined) return
        yield c
      }
    } finally {
      this.close()
    }
  }

  /** Ends the walk; idempotent. */
  close(): void {
    if (this.#reading) {
      this.#closing = true
      return
    }
    this.#done = true
    this.#fd.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }
}

/**
 * Starts a walk of an iterator link (BPF_ITER_CREATE, Linux 5.8+): each call
 * runs the program over the target afresh. Errors: EBADF for a closed link;
 * TypeError for a link that is not an iterator link (BpfError EINVAL from
 * the kernel, explained).
 */
export function openIterator(link: BpfLink | FdRef): IteratorReader {
  if (link === null || typeof link !== 'object' || !('fd' in link)) throw new TypeError(`openIterator: link must be a BpfLink of an iterator, got ${describeValue(link)}`)
  let fd: number
  try {
    fd = native.iterCreate(link.fd)
  } catch (e) {
    if (e instanceof BpfError && e.code === 'EINVAL') throw new TypeError(`openIterator: the link is not an iterator link (BPF_ITER_CREATE: EINVAL)`, { cause: e })
    throw e
  }
  return new IteratorReader(new Fd(fd, 'iter'))
}

/** Reads a whole walk of an iterator link as text. */
export async function readIterator(link: BpfLink | FdRef): Promise<string> {
  return openIterator(link).readAll()
}

/**
 * Reads the iterator link pinned at `path` in bpffs, as `cat` would: each
 * read of the pin is a fresh walk. Runs on the thread pool. Errors: ENOENT;
 * EPERM/EACCES for a pin that is not an iterator link (bpffs refuses to open it).
 */
export async function readIteratorPin(path: string): Promise<string> {
  if (typeof path !== 'string') throw new TypeError(`readIteratorPin: path must be a string, got ${describeValue(path)}`)
  return readFile(path, 'utf8')
}
