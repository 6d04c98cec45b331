// One walk over a kind of kernel object by global ID: GET_NEXT_ID, open by
// ID, read its info, close. Objects freed between the two calls are skipped;
// a next ID that does not grow stops the walk instead of looping forever.
// The calls come from the caller (lib/ids.ts passes the native ones).

export interface IdWalk<T> {
  next: (id: number) => number
  open: (id: number) => number
  info: (fd: number) => T
  close: (fd: number) => void
}

export function* walkIds<T>(w: IdWalk<T>): Generator<T> {
  let id = 0
  for (;;) {
    const next = w.next(id)
    if (next === 0) return
    // IDs only grow; anything else would loop forever on a confused kernel.
    if (next <= id) throw new Error(`kernel returned next id ${next} after ${id}`)
    id = next
    let fd: number
    try {
      fd = w.open(id)
    } catch (e) {
      // Freed between GET_NEXT_ID and GET_FD_BY_ID: skip it.
      if ((e as { code?: string }).code === 'ENOENT') continue
      throw e
    }
    let info: T
    try {
      info = w.info(fd)
    } finally {
      w.close(fd)
    }
    yield info
  }
}
