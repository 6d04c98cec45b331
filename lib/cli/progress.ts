// A progress line for long work (walking thousands of objects, dumping a big
// map): on stderr, only when stderr is a terminal, so it never mixes into
// --json on stdout or into a pipe. It appears only once the work has taken a
// while, so quick commands print nothing extra, and is erased when done.

export interface ProgressStream {
  isTTY?: boolean
  write(s: string): boolean
}

const showAfterMs = 300
const redrawEveryMs = 100

export class Progress {
  #count = 0
  #shown = false
  #lastDraw = 0
  readonly #start = Date.now()

  /** `label`: what is being done ('walking programs'); `total` when known. */
  constructor(readonly label: string, readonly total?: number, readonly stream: ProgressStream = process.stderr) {}

  /** One more item done. */
  tick(n = 1): void {
    this.#count += n
    if (!this.stream.isTTY) return
    const now = Date.now()
    if (now - this.#start < showAfterMs || now - this.#lastDraw < redrawEveryMs) return
    this.#lastDraw = now
    this.#shown = true
    const of = this.total === undefined ? '' : ` of ${this.total}`
    this.stream.write(`\r\x1b[K${this.label}: ${this.#count}${of}`)
  }

  get count(): number {
    return this.#count
  }

  /** Erases the line, if it was ever shown. */
  done(): void {
    if (this.#shown) this.stream.write('\r\x1b[K')
    this.#shown = false
  }
}

/** `items`, ticking a Progress per item; the line is erased when the walk ends or is abandoned. */
export function* withProgress<T>(label: string, items: Iterable<T>, stream?: ProgressStream): Generator<T> {
  const p = new Progress(label, undefined, stream)
  try {
    for (const item of items) {
      yield item
      p.tick()
    }
  } finally {
    p.done()
  }
}
