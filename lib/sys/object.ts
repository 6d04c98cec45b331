// What maps and programs share as kernel objects owned through an fd:
// pinning in bpffs, closing, `using`.
import type { Fd } from './index.js'
import { Pin } from './pin.js'

export abstract class BpfObject {
  readonly #fd: Fd
  readonly #pin = new Pin()

  protected constructor(fd: Fd) {
    this.#fd = fd
  }

  /** The fd number; throws once the object is closed. */
  get fd(): number {
    return this.#fd.fd
  }

  get closed(): boolean {
    return this.#fd.closed
  }

  /** The bpffs path of the pin made by `pin` or opened by `fromPin`. */
  get pinnedAt(): string | undefined {
    return this.#pin.at
  }

  /** Pins at `path` in a bpffs, so the object outlives this process. Errors: EEXIST, ENOENT, EPERM. */
  pin(path: string): void {
    this.#pin.pin(this.fd, path)
  }

  /** Removes that pin; the object lives on while open. */
  unpin(): void {
    this.#pin.unpin()
  }

  /** Closing twice is a no-op; using a closed object throws. */
  close(): void {
    this.#fd.close()
  }

  [Symbol.dispose](): void {
    this.close()
  }

  /** Records the pin an object was opened from. */
  protected openedFromPin(path: string): void {
    this.#pin.at = path
  }
}
