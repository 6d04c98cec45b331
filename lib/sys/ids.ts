// Walking the kernel's global IDs (GET_NEXT_ID + GET_FD_BY_ID + info), as
// `bpftool prog show` does. Needs CAP_SYS_ADMIN in the initial user namespace.
import {
  btfInfoByFd, linkInfoByFd, native, nextMapInfo, nextProgInfo,
  type BtfInfo, type LinkInfo, type MapInfo, type ProgramInfo,
} from './index.js'
import { walkIds } from './id-walk.js'

/** IDs of loaded programs, in increasing order. */
export function* programIds(): Generator<number> {
  for (let id = native.progGetNextId(0); id !== 0; id = native.progGetNextId(id)) yield id
}

/** Info of every loaded program. Objects freed mid-walk are skipped. */
export function* programs(): Generator<ProgramInfo> {
  // One native call per program (info.ts nextProgInfo), not four.
  for (let p = nextProgInfo(0); p !== undefined; p = nextProgInfo(p.id)) yield p
}

export function* maps(): Generator<MapInfo> {
  for (let m = nextMapInfo(0); m !== undefined; m = nextMapInfo(m.id)) yield m
}

export function links(): Generator<LinkInfo> {
  return walkIds({ next: native.linkGetNextId, open: (id) => native.linkGetFdById(id), info: linkInfoByFd, close: native.closeFd })
}

export function btfs(): Generator<BtfInfo> {
  return walkIds({ next: native.btfGetNextId, open: (id) => native.btfGetFdById(id), info: btfInfoByFd, close: native.closeFd })
}
