// OBJ_GET_INFO_BY_FD decoded into plain objects, using the layouts generated
// from kernel BTF. A kernel older than the layouts fills fewer bytes; fields it
// did not fill read as zero.
import { native } from './addon.js'
import { attachTypes, linkTypes, mapTypes, perfEventTypes, progTypes } from './generated/kernel-enums.js'
import { btfInfo, iterLinkVariants, linkInfo, linkInfoVariants, mapInfo, perfEventLinkVariants, progInfo, tokenInfo, type FieldLayout, type StructLayout } from './generated/kernel-layouts.js'
import { cString } from './c-string.js'
import { enumName } from './names.js'

type Fields<L extends StructLayout> = keyof L['fields']

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

class Reader<L extends StructLayout> {
  readonly view: DataView
  // The same bytes as a Buffer, for decoding strings in place.
  readonly #text: Buffer
  constructor(readonly layout: L, readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    this.#text = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  }
  private field(name: Fields<L>) {
    const f = this.layout.fields[name as string]
    if (!f) throw new Error(`layout has no field ${String(name)}`)
    return f
  }
  u32(name: Fields<L>): number {
    return this.u32At(this.field(name))
  }
  u64(name: Fields<L>): bigint {
    return this.u64At(this.field(name))
  }
  // For fields outside the named layout: the variants of a union.
  u32At(f: FieldLayout): number {
    return this.view.getUint32(f.offset, true)
  }
  u64At(f: FieldLayout): bigint {
    return this.view.getBigUint64(f.offset, true)
  }
  bytes(name: Fields<L>): Uint8Array {
    const f = this.field(name)
    return this.buf.slice(f.offset, f.offset + f.size)
  }
  cstring(name: Fields<L>): string {
    return this.cstringAt(this.field(name))
  }
  cstringAt(f: FieldLayout): string {
    // Object names are short and nearly always ASCII: built from char codes,
    // they skip Buffer.toString's checks and call into C++ (~100 ns of an
    // ID walk's step).
    const buf = this.buf
    let end = f.offset
    let ascii = true
    let s = ''
    for (; end < f.offset + f.size && buf[end] !== 0; end++) {
      if (buf[end] >= 0x80) ascii = false
      else s += String.fromCharCode(buf[end])
    }
    return ascii ? s : this.#text.toString('utf8', f.offset, end)
  }
  hex(name: Fields<L>): string {
    return this.hexAt(this.field(name))
  }
  hexAt(f: FieldLayout): string {
    let s = ''
    for (let i = f.offset; i < f.offset + f.size; i++) s += HEX[this.buf[i]]
    return s
  }
}

// One reusable buffer and view per layout: an info struct is read and
// decoded into a fresh object at once, so the bytes need not outlive the call,
// and an ID walk then allocates no off-heap buffer per object.
const readers = new Map<StructLayout, Reader<StructLayout>>()

function reader<L extends StructLayout>(layout: L): Reader<L> {
  let r = readers.get(layout) as Reader<L> | undefined
  if (!r) {
    r = new Reader(layout, new Uint8Array(layout.size))
    readers.set(layout, r)
  }
  return r
}

function read<L extends StructLayout>(fd: number, layout: L): Reader<L> {
  const r = reader(layout)
  // The native call zeroes the buffer before the kernel fills it.
  native.objGetInfoByFd(fd, r.buf)
  return r
}

export interface ProgramInfo {
  id: number
  type: string
  typeId: number
  name: string
  /** The program's tag (SHA of its instructions), hex, as bpftool prints it. */
  tag: string
  jitedSize: number
  xlatedSize: number
  mapIds: number[]
  btfId: number
  loadTime: bigint
  createdByUid: number
  gplCompatible: boolean
  /** Nanoseconds spent running, when kernel.bpf_stats_enabled is on. */
  runTimeNs: bigint
  runCount: bigint
  recursionMisses: bigint
  verifiedInsns: number
}

// The fields of the infos an ID walk decodes, named once: looked up by name
// per field (reader.u32('id')), one shared lookup site sees every name and
// V8 makes it a megamorphic keyed load, ~20 ns each, ~300 ns per program.
const P = progInfo.fields
const M = mapInfo.fields

export function progInfoByFd(fd: number): ProgramInfo {
  const r = read(fd, progInfo)
  let mapIds: number[] = []
  const nr = r.u32At(P.nr_map_ids)
  if (nr > 0) {
    // The count can grow between the two calls only for maps added by
    // PROG_BIND_MAP; read again until it fits.
    let ids = new Uint32Array(nr)
    let n = native.progGetMapIds(fd, ids)
    while (n > ids.length) {
      ids = new Uint32Array(n)
      n = native.progGetMapIds(fd, ids)
    }
    mapIds = [...ids.subarray(0, n)]
  }
  return decodeProgInfo(r, mapIds)
}

/**
 * The reader holding the info of the object after `startId` of `kind` (0
 * programs, 1 maps), filled by one native call (objNextInfo), and its
 * id; 0 at the end. For programs, `mapIds` receives their map IDs when they
 * fit (see nextProgInfo).
 */
function readNext<L extends StructLayout>(kind: number, layout: L, startId: number, mapIds?: Uint32Array): [number, Reader<L>] {
  const r = reader(layout)
  return [native.objNextInfo(kind, startId, r.buf, mapIds), r]
}

// Map IDs of the programs an ID walk meets, grown to the most any had.
let walkMapIds = new Uint32Array(16)

/** The program after `startId` and its info, or undefined at the end: one step of an ID walk. */
export function nextProgInfo(startId: number): ProgramInfo | undefined {
  for (;;) {
    const [id, r] = readNext(0, progInfo, startId, walkMapIds)
    if (id === 0) return undefined
    const nr = r.u32At(P.nr_map_ids)
    if (nr > walkMapIds.length) {
      // More maps than room: again from just before it, with room for them.
      walkMapIds = new Uint32Array(nr)
      startId = id - 1
      continue
    }
    return decodeProgInfo(r, nr > 0 ? [...walkMapIds.subarray(0, nr)] : [])
  }
}

/** The map after `startId` and its info, or undefined at the end. */
export function nextMapInfo(startId: number): MapInfo | undefined {
  const [id, r] = readNext(1, mapInfo, startId)
  return id === 0 ? undefined : decodeMapInfo(r)
}

function decodeProgInfo(r: Reader<typeof progInfo>, mapIds: number[]): ProgramInfo {
  const typeId = r.u32At(P.type)
  return {
    id: r.u32At(P.id),
    type: enumName(progTypes, typeId),
    typeId,
    name: r.cstringAt(P.name),
    tag: r.hexAt(P.tag),
    jitedSize: r.u32At(P.jited_prog_len),
    xlatedSize: r.u32At(P.xlated_prog_len),
    mapIds,
    btfId: r.u32At(P.btf_id),
    loadTime: r.u64At(P.load_time),
    createdByUid: r.u32At(P.created_by_uid),
    gplCompatible: (r.view.getUint8(P.gpl_compatible.offset) & 1) === 1,
    runTimeNs: r.u64At(P.run_time_ns),
    runCount: r.u64At(P.run_cnt),
    recursionMisses: r.u64At(P.recursion_misses),
    verifiedInsns: r.u32At(P.verified_insns),
  }
}

export interface MapInfo {
  id: number
  type: string
  typeId: number
  name: string
  keySize: number
  valueSize: number
  maxEntries: number
  flags: number
  btfId: number
  btfKeyTypeId: number
  btfValueTypeId: number
  mapExtra: bigint
}

export function mapInfoByFd(fd: number): MapInfo {
  return decodeMapInfo(read(fd, mapInfo))
}

function decodeMapInfo(r: Reader<typeof mapInfo>): MapInfo {
  const typeId = r.u32At(M.type)
  return {
    id: r.u32At(M.id),
    type: enumName(mapTypes, typeId),
    typeId,
    name: r.cstringAt(M.name),
    keySize: r.u32At(M.key_size),
    valueSize: r.u32At(M.value_size),
    maxEntries: r.u32At(M.max_entries),
    flags: r.u32At(M.map_flags),
    btfId: r.u32At(M.btf_id),
    btfKeyTypeId: r.u32At(M.btf_key_type_id),
    btfValueTypeId: r.u32At(M.btf_value_type_id),
    mapExtra: r.u64At(M.map_extra),
  }
}

export interface LinkInfo {
  id: number
  type: string
  typeId: number
  progId: number
  /** Attach type of the link where the kernel reports one (cgroup, netns, tcx, netkit, tracing, sockmap...). */
  attachType?: string
  /** cgroup links: the cgroup's id (its inode number in cgroup2); 0 once detached. */
  cgroupId?: bigint
  /** xdp, tcx and netkit links: the interface (0 once the interface is gone or the link detached). */
  ifindex?: number
  /** netns links: the namespace's inode number. */
  netnsIno?: number
  /** struct_ops and sockmap links, and iterators over a map: the map's id. */
  mapId?: number
  /** raw_tracepoint links and perf_event links on a tracepoint: its name. */
  tracepoint?: string
  /** tracing links (fentry, fexit, fmod_ret, lsm, freplace, tp_btf): the target's object id (0 for vmlinux) and BTF id. */
  targetObjId?: number
  targetBtfId?: number
  /** bpf_get_attach_cookie's value, where the link type reports it. */
  cookie?: bigint
  /** iter links: the target ('task', 'bpf_map', 'bpf_map_elem', ...), and the task or cgroup it is limited to. */
  iterTarget?: string
  iterTask?: { tid: number; pid: number }
  iterCgroup?: { cgroupId: bigint; order: number }
  /** netfilter links (Linux 6.4+). */
  netfilter?: { pf: number; hooknum: number; priority: number; flags: number }
  /** kprobe.multi links (Linux 6.5+ report them): addresses are zero without the privilege to see kernel addresses. */
  kprobeMulti?: { count: number; flags: number; missed: bigint; addresses: bigint[] }
  /** uprobe.multi links (Linux 6.8+ report them). */
  uprobeMulti?: { path: string; count: number; pid: number; flags: number; offsets: bigint[] }
  /** perf_event links (Linux 6.6+ report them): what the perf event is. */
  perfEvent?: {
    kind: string
    /** The kprobe's function, the uprobe's file or the tracepoint's name. */
    name?: string
    offset?: number
    address?: bigint
    missed?: bigint
    /** A software or hardware event: its perf type and config. */
    eventType?: number
    config?: bigint
  }
}

// Strings and arrays in a link's info are copied to user buffers the caller
// names; room for the longest name (KSYM_NAME_LEN 512) or path (PATH_MAX).
const NAME_ROOM = 512
const PATH_ROOM = 4096

/** The link info again, with `buffer` given to the kernel for the pointer field `ptr` whose length is at `len`. */
function readWithBuffer(fd: number, ptr: FieldLayout, len: FieldLayout, buffer: Uint8Array, elemSize = 1): Reader<typeof linkInfo> {
  const r = new Reader(linkInfo, new Uint8Array(linkInfo.size))
  native.objGetInfoWithBuffers(fd, r.buf, [[ptr.offset, buffer, len.offset, elemSize]])
  return r
}

function linkString(fd: number, ptr: FieldLayout, len: FieldLayout, room = NAME_ROOM): string {
  const buf = new Uint8Array(room)
  readWithBuffer(fd, ptr, len, buf)
  return cString(buf)
}

function linkU64s(fd: number, ptr: FieldLayout, len: FieldLayout, count: number): bigint[] {
  if (count === 0) return []
  const buf = new BigUint64Array(count)
  readWithBuffer(fd, ptr, len, new Uint8Array(buf.buffer), 8)
  return [...buf]
}

export function linkInfoByFd(fd: number): LinkInfo {
  const r = read(fd, linkInfo)
  const typeId = r.u32('type')
  const type = enumName(linkTypes, typeId)
  const info: LinkInfo = { id: r.u32('id'), type, typeId, progId: r.u32('prog_id') }
  // The per-type part of the union, as the kernel's BTF lays it out for this type.
  const v = (Object.hasOwn(linkInfoVariants, type) ? linkInfoVariants[type as keyof typeof linkInfoVariants] : {}) as Readonly<Record<string, FieldLayout>>
  if (v.attach_type) info.attachType = enumName(attachTypes, r.u32At(v.attach_type))
  if (v.cgroup_id) info.cgroupId = r.u64At(v.cgroup_id)
  if (v.ifindex) info.ifindex = r.u32At(v.ifindex)
  if (v.netns_ino) info.netnsIno = r.u32At(v.netns_ino)
  if (v.map_id) info.mapId = r.u32At(v.map_id)
  if (v.target_obj_id) info.targetObjId = r.u32At(v.target_obj_id)
  if (v.target_btf_id) info.targetBtfId = r.u32At(v.target_btf_id)
  if (v.cookie && type !== 'kprobe_multi' && type !== 'uprobe_multi') info.cookie = r.u64At(v.cookie)
  switch (type) {
    case 'raw_tracepoint':
      info.tracepoint = linkString(fd, v.tp_name, v.tp_name_len)
      break
    case 'iter':
      decodeIter(fd, r, info)
      break
    case 'netfilter':
      info.netfilter = { pf: r.u32At(v.pf), hooknum: r.u32At(v.hooknum), priority: r.view.getInt32(v.priority.offset, true), flags: r.u32At(v.flags) }
      break
    case 'kprobe_multi': {
      const count = r.u32At(v.count)
      info.kprobeMulti = { count, flags: r.u32At(v.flags), missed: r.u64At(v.missed), addresses: linkU64s(fd, v.addrs, v.count, count) }
      break
    }
    case 'uprobe_multi': {
      const count = r.u32At(v.count)
      info.uprobeMulti = {
        path: linkString(fd, v.path, v.path_size, PATH_ROOM), count, pid: r.u32At(v.pid), flags: r.u32At(v.flags), offsets: linkU64s(fd, v.offsets, v.count, count),
      }
      break
    }
    case 'perf_event':
      decodePerfEvent(fd, r, info)
      break
  }
  return info
}

function decodeIter(fd: number, r: Reader<typeof linkInfo>, info: LinkInfo): void {
  const v = linkInfoVariants.iter
  info.iterTarget = linkString(fd, v.target_name, v.target_name_len)
  // Which part of the iterator union holds parameters depends on the target.
  if (info.iterTarget === 'bpf_map_elem' || info.iterTarget === 'bpf_sk_storage_map' || info.iterTarget === 'sockmap') {
    info.mapId = r.u32At(iterLinkVariants.map.map_id)
  } else if (info.iterTarget === 'cgroup') {
    info.iterCgroup = { cgroupId: r.u64At(iterLinkVariants.cgroup.cgroup_id), order: r.u32At(iterLinkVariants.cgroup.order) }
  } else if (info.iterTarget === 'task' || info.iterTarget === 'task_file' || info.iterTarget === 'task_vma') {
    info.iterTask = { tid: r.u32At(iterLinkVariants.task.tid), pid: r.u32At(iterLinkVariants.task.pid) }
  }
}

function decodePerfEvent(fd: number, r: Reader<typeof linkInfo>, info: LinkInfo): void {
  const kind = enumName(perfEventTypes, r.u32At(linkInfoVariants.perf_event.type))
  const e: NonNullable<LinkInfo['perfEvent']> = { kind }
  if (kind === 'kprobe' || kind === 'kretprobe') {
    const k = perfEventLinkVariants.kprobe
    e.name = linkString(fd, k.func_name, k.name_len)
    e.offset = r.u32At(k.offset)
    e.address = r.u64At(k.addr)
    e.missed = r.u64At(k.missed)
    info.cookie = r.u64At(k.cookie)
  } else if (kind === 'uprobe' || kind === 'uretprobe') {
    const u = perfEventLinkVariants.uprobe
    e.name = linkString(fd, u.file_name, u.name_len, PATH_ROOM)
    e.offset = r.u32At(u.offset)
    info.cookie = r.u64At(u.cookie)
  } else if (kind === 'tracepoint') {
    const t = perfEventLinkVariants.tracepoint
    e.name = info.tracepoint = linkString(fd, t.tp_name, t.name_len)
    info.cookie = r.u64At(t.cookie)
  } else if (kind === 'event') {
    const ev = perfEventLinkVariants.event
    e.eventType = r.u32At(ev.type)
    e.config = r.u64At(ev.config)
    info.cookie = r.u64At(ev.cookie)
  }
  info.perfEvent = e
}

export interface BtfInfo {
  id: number
  name: string
  size: number
  kernelBtf: boolean
}

export function btfInfoByFd(fd: number): BtfInfo {
  const r = read(fd, btfInfo)
  return { id: r.u32('id'), name: native.btfGetName(fd), size: r.u32('btf_size'), kernelBtf: r.u32('kernel_btf') === 1 }
}

/**
 * What a BPF token delegates, as the kernel reports it (bpf_token_info): four
 * 64-bit masks indexed by the kernel's command, map, program and attach type
 * enums, the shape of a policy's masks.
 */
export interface TokenMasks {
  cmds: bigint
  maps: bigint
  progs: bigint
  attachs: bigint
}

/** bpf_token_info of token `fd` (OBJ_GET_INFO_BY_FD on a token: Linux 6.17+; EINVAL before). */
export function tokenInfoByFd(fd: number): TokenMasks {
  const r = read(fd, tokenInfo)
  return { cmds: r.u64('allowed_cmds'), maps: r.u64('allowed_maps'), progs: r.u64('allowed_progs'), attachs: r.u64('allowed_attachs') }
}
