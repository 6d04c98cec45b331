// The process's fd table, to prove that an operation leaves nothing open.
import { readdirSync, readlinkSync } from 'node:fs'

/** "fd -> target" for every open fd of `pid` (default: this process). */
export function fdTable(pid: number | 'self' = 'self'): Set<string> {
  const out = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.add(`${fd} -> ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`)
    } catch {
      // the directory listing's own fd, closed by now
    }
  }
  return out
}

/** Entries of `after` not in `before`. */
export function opened(before: Set<string>, after: Set<string>): string[] {
  return [...after].filter((e) => !before.has(e))
}
