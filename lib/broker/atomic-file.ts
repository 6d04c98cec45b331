// A file replaced whole or not at all: written to `<path>.tmp` (0600),
// fsync'd, renamed over `path`, and the directory fsync'd, so that after a
// crash the file is the old version or the new one, never a mix. The
// registry and the quota book keep their state so.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export function writeFileAtomic(path: string, data: Buffer): void {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    for (let at = 0; at < data.length;) at += writeSync(fd, data, at)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  const dir = openSync(dirname(path), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}
