// The bpffs pin an object was pinned at or opened from, shared by maps,
// programs, BTF and links (links cannot extend BpfObject: a socket filter
// attachment has no fd of its own).
import { unlinkSync } from 'node:fs'
import { native } from './index.js'

export class Pin {
  at: string | undefined

  /** Pins `fd` at `path` in a bpffs. Errors: EEXIST, ENOENT, EPERM. */
  pin(fd: number, path: string): void {
    native.objPin(fd, path)
    this.at = path
  }

  /** Removes the pin; the object lives on while open. */
  unpin(): void {
    if (this.at === undefined) return
    unlinkSync(this.at)
    this.at = undefined
  }
}
