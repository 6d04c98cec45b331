// A program on a perf event: the one step kprobes, uprobes, tracepoints and
// sampled software events share once their perf event is open. Where the
// kernel has perf_event links (5.15+) the attachment is a kernel link (an ID,
// pinnable, a cookie for bpf_get_attach_cookie); before that the program is
// set on the event by ioctl and the attachment lasts as long as its fd.
import { haveBpfCookie } from '../features/attach-trace.js'
import { havePerfLink, supportsPerfLink } from '../features/links.js'
import { Fd, closedError, kernel, native, progInfoByFd } from '../sys/index.js'
import type { FdRef } from '../map/values.js'
import { BpfLink, type Attachment } from './link.js'
import { programFd } from './program-ref.js'

export interface PerfAttachOptions {
  /** bpf_get_attach_cookie's value; needs perf_event links (Linux 5.15+). */
  cookie?: number | bigint
  /** The family's own cleanup once the attachment ends (a tracefs probe it made). */
  onClose?: () => void
}

/**
 * Whether `cookie` asks for one (anything but 0). A cookie needs perf_event
 * links and bpf_get_attach_cookie (Linux 5.15): before, their
 * NotSupportedError. The families call it before they open anything.
 */
export function wantsCookie(cookie: number | bigint | undefined): boolean {
  if (cookie === undefined || BigInt(cookie) === 0n) return false
  haveBpfCookie()
  havePerfLink()
  return true
}

/**
 * Attaches `program` to the open perf event `perf` and enables the event.
 * The link takes `perf` (closed on every path, failure included); `onClose`
 * runs when the attachment ends, or at once when attaching fails.
 */
export function linkPerfEvent(program: FdRef, perf: Fd, options: PerfAttachOptions = {}): BpfLink {
  const cleanup = () => {
    perf.close()
    options.onClose?.()
  }
  try {
    const progFd = programFd('attach', program)
    const hasCookie = wantsCookie(options.cookie)
    if (supportsPerfLink()) {
      const link = new Fd(native.linkCreate({ progFd, targetFd: perf.fd, attachType: kernel.attachTypes.perf_event, cookie: hasCookie ? options.cookie : undefined }), 'link')
      try {
        native.perfEventEnable(perf.fd)
      } catch (e) {
        link.close()
        throw e
      }
      // The link holds its own reference to the perf event.
      perf.close()
      return BpfLink.fromLinkFd(link, { onClose: options.onClose })
    }
    native.perfEventSetBpf(perf.fd, progFd)
    native.perfEventEnable(perf.fd)
    return BpfLink.fromAttachment(new PerfEventAttachment(perf, progInfoByFd(progFd).id, options.onClose))
  } catch (e) {
    cleanup()
    throw e
  }
}

/** A program set on a perf event by ioctl: detached by closing the event. */
class PerfEventAttachment implements Attachment {
  readonly kind = 'perf_event'
  #detached = false
  #done = false

  constructor(readonly perf: Fd, readonly progId: number, readonly onClose: (() => void) | undefined) {}

  get closed(): boolean {
    return this.#done
  }

  info() {
    if (this.#done) throw closedError('link (a program on a perf event)')
    if (this.#detached) throw new TypeError('the perf event attachment is detached')
    return { id: 0, type: 'perf_event', typeId: 0, progId: this.progId }
  }

  detach(): void {
    if (this.#detached || this.#done) return
    this.#detached = true
    this.perf.close()
    this.onClose?.()
  }

  close(): void {
    if (this.#done) return
    this.detach()
    this.#done = true
  }
}
