// Opening a kernel object of a given kind by ID or by bpffs pin, checking that
// what came back is of that kind (a pin can hold any kind, and a wrong guess
// must not be read as something else), and walking the IDs of one kind.
import { readFileSync } from 'node:fs'
import { native } from './addon.js'
import { bpfObjectKind, Fd } from './fd.js'
import { btfInfoByFd, linkInfoByFd, mapInfoByFd, progInfoByFd, type BtfInfo, type LinkInfo, type MapInfo, type ProgramInfo } from './info.js'
import { walkIds } from './id-walk.js'

export type ObjectKind = 'prog' | 'map' | 'link' | 'btf'

/** What each kind's info is. */
export interface InfoOf {
  prog: ProgramInfo
  map: MapInfo
  link: LinkInfo
  btf: BtfInfo
}

interface KindCalls<K extends ObjectKind> {
  /** For messages: 'program'. */
  noun: string
  next: (id: number) => number
  byId: (id: number) => number
  info: (fd: number) => InfoOf[K]
}

const calls: { [K in ObjectKind]: KindCalls<K> } = {
  prog: { noun: 'program', next: (id) => native.progGetNextId(id), byId: (id) => native.progGetFdById(id), info: progInfoByFd },
  map: { noun: 'map', next: (id) => native.mapGetNextId(id), byId: (id) => native.mapGetFdById(id), info: mapInfoByFd },
  link: { noun: 'link', next: (id) => native.linkGetNextId(id), byId: (id) => native.linkGetFdById(id), info: linkInfoByFd },
  btf: { noun: 'BTF object', next: (id) => native.btfGetNextId(id), byId: (id) => native.btfGetFdById(id), info: btfInfoByFd },
}

/** 'program', 'map', 'link', 'BTF object': how messages name a kind. */
export function kindNoun(kind: ObjectKind): string {
  return calls[kind].noun
}

/** Opens the object of `kind` with ID `id` (CAP_SYS_ADMIN). Errors: BpfError ENOENT when none has that ID, EPERM. */
export function openById(kind: ObjectKind, id: number): Fd {
  return new Fd(calls[kind].byId(id), kind)
}

/**
 * Opens the object pinned at `path` and checks it is of `kind`: a TypeError
 * naming what it is otherwise (the fd is closed). BTF cannot be pinned.
 * Errors: BpfError ENOENT, EPERM, EINVAL (not a bpffs path).
 */
export function openPinned(kind: ObjectKind, path: string): Fd {
  const fd = new Fd(native.objGet(path), kind)
  const found = bpfObjectKind(fd.fd)
  if (found !== kind) {
    fd.close()
    const what = found === undefined ? 'not a BPF object' : found === 'token' ? 'a BPF token' : `a ${kindNoun(found)}`
    throw new TypeError(`the pin at ${path} is ${what}, not a ${kindNoun(kind)}`)
  }
  return fd
}

/** The info of an open object of `kind`. */
export function infoOf<K extends ObjectKind>(kind: K, fd: number): InfoOf[K] {
  return calls[kind].info(fd) as InfoOf[K]
}

/** Info of every loaded object of `kind`, by increasing ID; objects freed mid-walk are skipped. */
export function walkInfo<K extends ObjectKind>(kind: K): Generator<InfoOf[K]> {
  return walkOpen(kind, calls[kind].info as (fd: number) => InfoOf[K])
}

/** `read(fd)` of every loaded object of `kind` while it is open, by increasing ID; objects freed mid-walk are skipped. */
export function walkOpen<T>(kind: ObjectKind, read: (fd: number) => T): Generator<T> {
  const c = calls[kind]
  return walkIds({ next: c.next, open: c.byId, info: read, close: native.closeFd })
}

/**
 * The bytes the kernel charges an open map or program to its memory cgroup
 * (its fdinfo's `memlock`, what bpftool prints as bytes_memlock), or
 * undefined when the fdinfo has none (links, BTF).
 */
export function memlockOf(fd: number): number | undefined {
  const m = /^memlock:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
  return m ? Number(m[1]) : undefined
}
