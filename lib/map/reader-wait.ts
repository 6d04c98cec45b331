// What the ring buffer and perf buffer readers share: one pending wait for
// their native poll on Node's loop, ended by the poll, an AbortSignal or the
// reader's close, and the record stream built on read-then-wait.
import { closedError, createSyscallError } from '../sys/index.js'
import { checkOptions, describeValue } from '../sys/options.js'

// A signal that is not an AbortSignal would make a wait nothing can end.
function badSignal(where: string, signal: unknown): TypeError {
  return new TypeError(`${where}: signal must be an AbortSignal, got ${describeValue(signal)}`)
}

/** The native side of one reader: its poll, and its cancel while the reader is open. */
export interface NativePoll {
  /** Starts the poll; `onReady` gets a status (negative errno on failure). */
  start(onReady: (status: number) => void): void
  /** Stops a pending poll of a reader still open. */
  cancel(): void
}

export class ReaderWait {
  #wake: ((ready: boolean) => void) | undefined

  /** `what` names the reader in errors ('ring buffer'). */
  constructor(readonly what: string) {}

  /**
   * Resolves true when the poll says records are ready, false when `signal`
   * aborts or end() is called (the reader closed). `poll` is undefined for a
   * closed reader. Errors (as rejections): EBADF for a closed reader,
   * TypeError while another wait is pending, SyscallError 'poll'.
   */
  wait(signal: AbortSignal | undefined, poll: NativePoll | undefined): Promise<boolean> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) return Promise.reject(badSignal('wait', signal))
    if (poll === undefined) return Promise.reject(closedError(this.what))
    if (this.#wake) return Promise.reject(new TypeError(`${this.what}: another wait is in progress`))
    return new Promise<boolean>((resolve, reject) => {
      if (signal?.aborted) return resolve(false)
      const onAbort = () => finish(false)
      const finish = (ready: boolean) => {
        signal?.removeEventListener('abort', onAbort)
        if (this.#wake === finish) this.#wake = undefined
        if (!ready) poll.cancel()
        resolve(ready)
      }
      this.#wake = finish
      signal?.addEventListener('abort', onAbort, { once: true })
      poll.start((status) => {
        if (status < 0) {
          this.#wake = undefined
          signal?.removeEventListener('abort', onAbort)
          reject(createSyscallError('poll', -status, `waiting on the ${this.what}`))
        } else finish(true)
      })
    })
  }

  /** Ends a pending wait with false: the reader closed. */
  end(): void {
    this.#wake?.(false)
  }
}

/**
 * Records as they arrive: a batch from `read` while there is one, else a
 * wait, until `signal` aborts or the reader closes (`open` turns false).
 */
export async function* recordStream<T>(options: { signal?: AbortSignal }, open: () => boolean, read: () => T[], wait: (signal?: AbortSignal) => Promise<boolean>): AsyncGenerator<T, void, undefined> {
  checkOptions('records', options, ['signal'])
  const signal = options.signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw badSignal('records', signal)
  while (open() && !signal?.aborted) {
    const batch = read()
    if (batch.length > 0) {
      yield* batch
      continue
    }
    if (!(await wait(signal))) return
  }
}
