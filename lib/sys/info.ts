// OBJ_GET_INFO_BY_FD decoded into plain objects, using the layouts generated
// from kernel BTF. A kernel older than the layouts fills fewer bytes; fields it
// did not fill read as zero.
import { native } from './addon.js'
import { attachTypes, linkTypes, mapTypes, progTypes } from './generated/kernel-enums.js'
import { btfInfo, linkInfo, linkInfoVariants, mapInfo, progInfo, tokenInfo, type FieldLayout, type StructLayout } from './generated/kernel-layouts.js'
import { enumName } from './names.js'

type Fields<L extends StructLayout> = keyof L['fields']

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
    const f = this.field(name)
    let end = f.offset
    while (end < f.offset + f.size && this.buf[end] !== 0) end++
    return this.#text.toString('utf8', f.offset, end)
  }
  hex(name: Fields<L>): string {
    const f = this.field(name)
    return this.#text.toString('hex', f.offset, f.offset + f.size)
  }
}

// One reusable buffer and view per layout: an info struct is read and
// decoded into a fresh object at once, so the bytes need not outlive the call,
// and an ID walk then allocates no off-heap buffer per object.
const readers = new Map<StructLayout, Reader<StructLayout>>()

function read<L extends StructLayout>(fd: number, layout: L): Reader<L> {
  let r = readers.get(layout) as Reader<L> | undefined
  if (!r) {
    r = new Reader(layout, new Uint8Array(layout.size))
    readers.set(layout, r)
  }
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

export function progInfoByFd(fd: number): ProgramInfo {
  const r = read(fd, progInfo)
  let mapIds: number[] = []
  const nr = r.u32('nr_map_ids')
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
  const typeId = r.u32('type')
  const gplBits = progInfo.fields.gpl_compatible
  return {
    id: r.u32('id'),
    type: enumName(progTypes, typeId),
    typeId,
    name: r.cstring('name'),
    tag: r.hex('tag'),
    jitedSize: r.u32('jited_prog_len'),
    xlatedSize: r.u32('xlated_prog_len'),
    mapIds,
    btfId: r.u32('btf_id'),
    loadTime: r.u64('load_time'),
    createdByUid: r.u32('created_by_uid'),
    gplCompatible: (r.view.getUint8(gplBits.offset) & 1) === 1,
    runTimeNs: r.u64('run_time_ns'),
    runCount: r.u64('run_cnt'),
    recursionMisses: r.u64('recursion_misses'),
    verifiedInsns: r.u32('verified_insns'),
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
  const r = read(fd, mapInfo)
  const typeId = r.u32('type')
  return {
    id: r.u32('id'),
    type: enumName(mapTypes, typeId),
    typeId,
    name: r.cstring('name'),
    keySize: r.u32('key_size'),
    valueSize: r.u32('value_size'),
    maxEntries: r.u32('max_entries'),
    flags: r.u32('map_flags'),
    btfId: r.u32('btf_id'),
    btfKeyTypeId: r.u32('btf_key_type_id'),
    btfValueTypeId: r.u32('btf_value_type_id'),
    mapExtra: r.u64('map_extra'),
  }
}

export interface LinkInfo {
  id: number
  type: string
  typeId: number
  progId: number
  /** Attach type of the link where the kernel reports one (cgroup, netns, tcx, netkit, ...). */
  attachType?: string
  /** cgroup links: the cgroup's id (its inode number in cgroup2); 0 once detached. */
  cgroupId?: bigint
}

export function linkInfoByFd(fd: number): LinkInfo {
  const r = read(fd, linkInfo)
  const typeId = r.u32('type')
  const type = enumName(linkTypes, typeId)
  const info: LinkInfo = { id: r.u32('id'), type, typeId, progId: r.u32('prog_id') }
  // The per-type part of the union, as the kernel's BTF lays it out for this type.
  const variant: Readonly<Record<string, FieldLayout>> | undefined = Object.hasOwn(linkInfoVariants, type)
    ? linkInfoVariants[type as keyof typeof linkInfoVariants]
    : undefined
  if (variant?.attach_type) info.attachType = enumName(attachTypes, r.u32At(variant.attach_type))
  if (variant?.cgroup_id) info.cgroupId = r.u64At(variant.cgroup_id)
  return info
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
