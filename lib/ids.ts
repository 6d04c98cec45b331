// Walking the kernel's global IDs (GET_NEXT_ID + GET_FD_BY_ID + info), as
// `bpftool prog show` does. Needs CAP_SYS_ADMIN in the initial user namespace.
import {
  btfInfoByFd, linkInfoByFd, mapInfoByFd, native, progInfoByFd,
  type BtfInfo, type LinkInfo, type MapInfo, type ProgramInfo,
} from './sys/index.js'

type Walk<T> = {
  next: (id: number) => number
  open: (id: number) => number
  info: (fd: number) => T
}

function* walk<T>(w: Walk<T>): Generator<T> {
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
      native.closeFd(fd)
    }
    yield info
  }
}

/** IDs of loaded programs, in increasing order. */
export function* programIds(): Generator<number> {
  for (let id = native.progGetNextId(0); id !== 0; id = native.progGetNextId(id)) yield id
}

/** Info of every loaded program. Objects freed mid-walk are skipped. */
export function programs(): Generator<ProgramInfo> {
  return walk({ next: native.progGetNextId, open: (id) => native.progGetFdById(id), info: progInfoByFd })
}

export function maps(): Generator<MapInfo> {
  return walk({ next: native.mapGetNextId, open: (id) => native.mapGetFdById(id), info: mapInfoByFd })
}

export function links(): Generator<LinkInfo> {
  return walk({ next: native.linkGetNextId, open: (id) => native.linkGetFdById(id), info: linkInfoByFd })
}

export function btfs(): Generator<BtfInfo> {
  return walk({ next: native.btfGetNextId, open: (id) => native.btfGetFdById(id), info: btfInfoByFd })
}
