// The single importer of the native addon. node-gyp-build picks build/Release
// when built from source and a prebuild from prebuilds/ otherwise, so an
// installed package needs neither a compiler nor an install script.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { createNativeError } from './errors.js'

export type Bytes = ArrayBufferView

export interface MapCreateAttrs {
  mapType: number
  keySize: number
  valueSize: number
  maxEntries: number
  mapFlags?: number
  innerMapFd?: number
  numaNode?: number
  name?: string
  mapIfindex?: number
  btfFd?: number
  btfKeyTypeId?: number
  btfValueTypeId?: number
  btfVmlinuxValueTypeId?: number
  mapExtra?: number | bigint
  tokenFd?: number
}

export interface ProgLoadAttrs {
  progType: number
  insns: Bytes
  license?: string
  name?: string
  logLevel?: number
  logSize?: number
  kernVersion?: number
  progFlags?: number
  progIfindex?: number
  expectedAttachType?: number
  progBtfFd?: number
  attachBtfId?: number
  attachProgFd?: number
  attachBtfObjFd?: number
  funcInfo?: Bytes
  funcInfoRecSize?: number
  lineInfo?: Bytes
  lineInfoRecSize?: number
  fdArray?: Int32Array
  tokenFd?: number
}

export interface BtfLoadAttrs {
  btf: Bytes
  logLevel?: number
  logSize?: number
  tokenFd?: number
}

export interface LoadResult {
  fd: number
  log: string
}

export interface TestRunAttrs {
  data?: Bytes
  ctx?: Bytes
  dataOutSize?: number
  ctxOutSize?: number
  repeat?: number
  flags?: number
  cpu?: number
  batchSize?: number
}

export interface TestRunResult {
  retval: number
  duration: number
  dataOut?: Buffer
  ctxOut?: Buffer
}

/** LINK_CREATE (native/links.cc): at most one attach-type-specific part (targetBtfId with tracingCookie count as one). */
export interface LinkCreateAttrs {
  /** The program; struct_ops links take mapFd instead. */
  progFd?: number
  mapFd?: number
  targetFd?: number
  targetIfindex?: number
  attachType: number
  flags?: number
  /** tracing, lsm, freplace: the attach point's BTF id (with the target program as targetFd for freplace). */
  targetBtfId?: number
  /** tracing links: bpf_get_attach_cookie's value (Linux 6.0+). */
  tracingCookie?: number | bigint
  /** perf_event links: bpf_get_attach_cookie's value (Linux 5.15+). */
  cookie?: number | bigint
  /** iter links: the bytes of union bpf_iter_link_info. */
  iterInfo?: Bytes
  kprobeMulti?: { syms?: string[]; addrs?: BigUint64Array; cookies?: BigUint64Array; flags?: number }
  uprobeMulti?: { path: string; offsets: BigUint64Array; refCtrOffsets?: BigUint64Array; cookies?: BigUint64Array; pid?: number; flags?: number }
  netfilter?: { pf: number; hooknum: number; priority: number; flags?: number }
  /** tcx, netkit and cgroup (6.15+) ordering: before/after a program or link (by fd or id, per flags), and the revision expected. */
  relative?: { fd?: number; id?: number; expectedRevision?: number | bigint }
}

/** PROG_ATTACH / PROG_DETACH (native/links.cc). */
export interface ProgAttachAttrs {
  targetFd?: number
  targetIfindex?: number
  progFd?: number
  attachType: number
  flags?: number
  replaceProgFd?: number
  relativeFd?: number
  relativeId?: number
  expectedRevision?: number | bigint
}

export interface ProgQueryResult {
  progIds: number[]
  /** Link ids parallel to progIds (0 for a program attached without a link); only with withLinks. */
  linkIds: number[]
  attachFlags: number
  revision: bigint
}

/** perf_event_open (native/perf.cc); pid and cpu default to -1 and may not both be -1. */
export interface PerfEventAttrs {
  type: number
  config?: number | bigint
  config1?: number | bigint
  config2?: number | bigint
  /** kprobe_func / uprobe_path: becomes config1. */
  probeName?: string
  /** probe_offset / kprobe_addr: becomes config2. */
  probeOffset?: number | bigint
  samplePeriod?: number | bigint
  sampleFreq?: number | bigint
  sampleType?: number | bigint
  wakeupEvents?: number
  disabled?: boolean
  pid?: number
  cpu?: number
}

export interface MapMeta {
  type: number
  keySize: number
  valueSize: number
  /** Bytes one lookup or update transfers: per-CPU maps hold round_up(valueSize, 8) x possible CPUs. */
  valueBytes: number
  maxEntries: number
}

export interface BatchResult {
  count: number
  done: boolean
}

/** The native surface: one function per kernel call, numbers and buffers only. */
export interface NativeAddon {
  setErrorFactory(f: typeof createNativeError): void
  closeFd(fd: number): void
  dupFd(fd: number): number
  /** Ends the op slots opened from this fd number, and its ownership by this environment (Fd.release). */
  forgetFd(fd: number): void
  /** An Fd takes the number: ends the op slots opened from it, and closes it when this environment ends with it open. */
  adoptFd(fd: number): void
  fdIsOpen(fd: number): boolean
  possibleCpus(): number

  mapCreate(attrs: MapCreateAttrs): number
  mapMeta(fd: number): MapMeta
  mapLookupElem(fd: number, key: Bytes | null, valueOut: Bytes, flags?: number | bigint): boolean
  mapUpdateElem(fd: number, key: Bytes | null, value: Bytes, flags?: number | bigint): void
  mapDeleteElem(fd: number, key: Bytes, flags?: number | bigint): boolean
  mapGetNextKey(fd: number, key: Bytes | null, nextKeyOut: Bytes): boolean
  mapLookupAndDeleteElem(fd: number, key: Bytes | null, valueOut: Bytes, flags?: number | bigint): boolean
  mapFreeze(fd: number): void
  mapLookupBatch(fd: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): BatchResult
  mapLookupAndDeleteBatch(fd: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): BatchResult
  mapUpdateBatch(fd: number, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): number
  mapDeleteBatch(fd: number, keys: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): number
  /**
   * Promise forms of the batches, run off the main thread. They hold a dup of
   * `fd` and native copies of the buffers while in flight (closing the map or
   * reusing the buffers mid-call changes nothing); results are copied into
   * `outBatch`, `keys` and `values` when the promise settles.
   */
  mapLookupBatchAsync(fd: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): Promise<BatchResult>
  mapLookupAndDeleteBatchAsync(fd: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): Promise<BatchResult>
  mapUpdateBatchAsync(fd: number, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): Promise<number>
  mapDeleteBatchAsync(fd: number, keys: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): Promise<number>

  progLoad(attrs: ProgLoadAttrs): Promise<LoadResult>
  progLoadSync(attrs: ProgLoadAttrs): LoadResult
  /** The loads in order on one worker; the first refusal ends the array, as its error (the fds before it are the caller's). */
  progLoadAll(attrs: readonly ProgLoadAttrs[]): Promise<(LoadResult | Error)[]>
  progTestRun(fd: number, attrs: TestRunAttrs): Promise<TestRunResult>
  progTestRunSync(fd: number, attrs: TestRunAttrs): TestRunResult

  objPin(fd: number, path: string): void
  objGet(path: string, fileFlags?: number): number
  objGetInfoByFd(fd: number, out: Bytes): number
  progGetMapIds(fd: number, out: Uint32Array): number
  /**
   * One step of an ID walk: the object after `startId` of `kind` (0
   * programs, 1 maps), opened, its info read into `info` (zeroed first) and,
   * for programs, its map IDs into `mapIds` when nr_map_ids fits; closed
   * again. Its id, or 0 at the end; objects freed meanwhile are skipped.
   */
  objNextInfo(kind: number, startId: number, info: Bytes, mapIds?: Uint32Array): number
  btfGetName(fd: number): string
  progGetNextId(startId: number): number
  mapGetNextId(startId: number): number
  linkGetNextId(startId: number): number
  btfGetNextId(startId: number): number
  progGetFdById(id: number, openFlags?: number): number
  mapGetFdById(id: number, openFlags?: number): number
  linkGetFdById(id: number, openFlags?: number): number
  btfGetFdById(id: number, openFlags?: number, tokenFd?: number): number
  btfLoad(attrs: BtfLoadAttrs): Promise<LoadResult>
  btfLoadSync(attrs: BtfLoadAttrs): LoadResult
  // links and attachments (native/links.cc)
  linkCreate(attrs: LinkCreateAttrs): number
  linkDetach(fd: number): void
  /** Swaps the link's program; with oldProgFd only if that one is attached (BPF_F_REPLACE). */
  linkUpdate(linkFd: number, newProgFd: number, oldProgFd?: number): void
  progAttach(attrs: ProgAttachAttrs): void
  progDetach(attrs: ProgAttachAttrs): void
  progQuery(attrs: { targetFd?: number; targetIfindex?: number; attachType: number; queryFlags?: number; withLinks?: boolean }): ProgQueryResult
  /** RAW_TRACEPOINT_OPEN: raw_tp by name, or a tracing program's own target without one. */
  rawTracepointOpen(progFd: number, name?: string, cookie?: number | bigint): number
  iterCreate(linkFd: number): number
  /**
   * OBJ_GET_INFO_BY_FD with user buffers: each [offset, buffer, lengthOffset,
   * elementSize] points the u64 at offset to buffer and writes its element
   * count at lengthOffset. Returns the info length.
   */
  objGetInfoWithBuffers(fd: number, out: Bytes, pointers: Array<[number, Bytes, number, number]>): number
  // perf events (native/perf.cc)
  perfEventOpen(attrs: PerfEventAttrs): number
  perfEventEnable(fd: number): void
  perfEventDisable(fd: number): void
  perfEventSetBpf(perfFd: number, progFd: number): void
  tokenCreate(bpffsFd: number, flags?: number): number

  /** Maps a BPF_F_MMAPABLE array's values; length from the kernel's sizes. */
  mapMmap(fd: number, writable: boolean): ArrayBuffer
  /** Releases the mapping now and detaches the buffer. Only buffers mapMmap made: anything else is a TypeError and is left as it was. */
  mapUnmap(buffer: ArrayBuffer): void

  ringbufOpen(fd: number): RingbufHandle
  /** Copies whole records into `out`; returns the count, or -(bytes needed) when the next record does not fit. */
  ringbufConsume(ring: RingbufHandle, out: Uint8Array, ends: Uint32Array): number
  ringbufPending(ring: RingbufHandle): number
  ringbufWait(ring: RingbufHandle, onReady: (status: number) => void): void
  ringbufCancel(ring: RingbufHandle): void
  ringbufClose(ring: RingbufHandle): void

  /** BPF_ENABLE_STATS: statistics are collected while the returned fd is open. */
  enableStats(type: number): number

  /** A map's fast-path slot: key and value buffers sized by the kernel, operated on by slot number. */
  /**
   * The slot owns a dup of `fd` and keeps its buffers alive while open; `slot`
   * is a handle that never names a later slot once closed. Ends when closed,
   * or when `fd` is closed with closeFd or forgotten (forgetFd).
   */
  /** The slot, its key and value buffers, and the map's sizes as read from the slot's own dup. */
  mapSlotOpen(fd: number): { slot: number; key: ArrayBuffer; value: ArrayBuffer; meta: MapMeta }
  mapSlotClose(slot: number): void
  mapSlotLookup(slot: number, flags?: number | bigint): boolean
  mapSlotUpdate(slot: number, flags?: number | bigint): void
  mapSlotDelete(slot: number): boolean
  /**
   * Up to `max` GET_NEXT_KEY steps in one call, from the slot's key (from the
   * start when `first`), each from the key before, into `out` back to back
   * (max × keySize bytes); the number written, fewer than `max` only at the
   * end of the map.
   */
  mapSlotNextKeys(slot: number, first: boolean, out: Bytes, max: number): number
  mapSlotLookupAndDelete(slot: number, flags?: number | bigint): boolean
  /**
   * The batches through a slot: its dup and the sizes read when it opened,
   * instead of a dup and OBJ_GET_INFO_BY_FD (plus a readlink) per call.
   * Synchronous only; arguments and checks as mapLookupBatch and the others.
   */
  mapSlotLookupBatch(slot: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): BatchResult
  mapSlotLookupAndDeleteBatch(slot: number, inBatch: Bytes | null, outBatch: Bytes, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): BatchResult
  mapSlotUpdateBatch(slot: number, keys: Bytes, values: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): number
  mapSlotDeleteBatch(slot: number, keys: Bytes, count: number, elemFlags?: number | bigint, flags?: number | bigint): number

  socketAttachProg(socketFd: number, progFd: number): void
  /** false when the socket had no filter. */
  socketDetachProg(socketFd: number): boolean

  /** The program's translated instructions; empty without the privilege to see them. */
  progGetXlatedInsns(fd: number): Uint8Array
  // bpffs delegation mounts (native/mount.cc)
  fsopen(fsName: string): number
  fspick(dirFd: number | undefined, path: string): number
  fsconfigString(fsFd: number, key: string, value: string): void
  fsconfigCreate(fsFd: number): void
  fsmount(fsFd: number, attrFlags?: number): number
  moveMount(mountFd: number, targetPath: string): void
  openDirectory(dirFd: number | undefined, path: string): number
  fdFlags(fd: number): number

  // fd passing (native/fdpass.cc)
  unixSocketpair(): [number, number]
  /** Bytes sent, or -1 when the socket would block. */
  sendWithFds(sockFd: number, data: Bytes, fds?: number[]): number
  /** null when nothing is ready; bytes 0 at end of stream. */
  recvWithFds(sockFd: number, buf: Bytes, maxFds: number): { bytes: number; fds: number[]; truncated: boolean } | null
  fdWait(fd: number, writable: boolean, callback: (status: number, events: number) => void): FdWaitHandle
  fdWaitCancel(handle: FdWaitHandle): void

  // unix socket peers (native/peer.cc)
  /** SO_PEERCRED: fixed at connect(), in our namespaces (pid 0: not visible in ours). TypeError if not AF_UNIX; SyscallError 'getsockopt'. */
  unixPeerCred(sockFd: number): { pid: number; uid: number; gid: number }
  /** SO_PEERPIDFD (Linux 6.5): a pidfd (O_CLOEXEC, >= 3) of the connecting process. TypeError if not AF_UNIX; SyscallError 'getsockopt' (ENOPROTOOPT before 6.5, ENODATA unconnected, ESRCH/EINVAL peer gone). */
  unixPeerPidfd(sockFd: number): number
  /** pidfd_send_signal(pidfd, 0): true until the process is reaped (a zombie counts), false on ESRCH; SyscallError 'pidfd_send_signal' otherwise. */
  pidfdIsAlive(pidfd: number): boolean
  // confined path resolution (native/openat2.cc)
  /**
   * openat2 (Linux 5.6), O_CLOEXEC always; dirFd undefined = AT_FDCWD. flags ⊆ O_PATH|O_DIRECTORY|O_NOFOLLOW (O_RDONLY 0),
   * resolve ⊆ RESOLVE_NO_XDEV|NO_MAGICLINKS|NO_SYMLINKS|BENEATH|IN_ROOT (not BENEATH with IN_ROOT), else RangeError.
   * SyscallError 'openat2' (EXDEV escape, ELOOP symlink, ENOENT, EAGAIN, ENOSYS).
   */
  openat2(dirFd: number | undefined, path: string, flags: number, resolve: number): number

  // tc and netlink (native/netlink.cc)
  /** The interface's index in the calling thread's network namespace; SyscallError 'if_nametoindex' ENODEV when there is none. */
  ifNameToIndex(name: string): number
  /** The interface's name in the calling thread's network namespace; SyscallError 'if_indextoname' ENXIO when there is none. */
  ifIndexToName(ifindex: number): string
  /** Calls fn synchronously with this thread in the network namespace nsFd refers to, and back afterwards (also when fn throws). */
  withNetns<T>(nsFd: number, fn: () => T): T
  /** An fd of a new network namespace holding only lo (ifindex 1, down); the thread stays where it was. */
  netnsCreate(): number
  /** A netkit pair (Linux 6.7, CONFIG_NETKIT) in the calling thread's namespace, both ends down, L3 mode (l2: L2); SyscallError 'RTM_NEWLINK'. */
  netkitCreate(name: string, peerName: string, l2?: boolean): void
  /** Creates the clsact qdisc (NLM_F_EXCL): true when this call made it, false when one was there. */
  tcClsactAdd(ifindex: number): boolean
  /** Removes the clsact qdisc and every filter on it; false when there was none. */
  tcClsactDelete(ifindex: number): boolean
  /**
   * A direct-action bpf filter for every protocol; priority/handle 0 let the kernel pick, the answer says what it picked.
   * With replace, swaps the program of the filter at that priority and handle (both given) instead.
   */
  tcFilterAdd(attrs: { ifindex: number; egress: boolean; priority?: number; handle?: number; progFd: number; name?: string; replace?: boolean }): { priority: number; handle: number }
  /** Deletes the bpf filter at that priority and handle (both non-zero); SyscallError 'RTM_DELTFILTER' ENOENT when absent. */
  tcFilterDelete(attrs: { ifindex: number; egress: boolean; priority: number; handle: number }): void
  /** The filters on clsact's ingress or egress; empty without a clsact qdisc. */
  tcFilterList(attrs: { ifindex: number; egress: boolean }): TcFilterEntry[]

  // perf buffers (native/perfbuf.cc)
  /**
   * Per CPU in `cpus` (distinct, below the map's maxEntries): a
   * PERF_COUNT_SW_BPF_OUTPUT event on that CPU, its ring of `pageCount`
   * (a power of two, up to 65536) data pages mapped, its fd stored at the
   * CPU's index of the perf_event_array map `mapFd`, enabled. All or nothing.
   */
  perfbufOpen(mapFd: number, cpus: number[], pageCount: number, wakeupEvents: number): PerfbufHandle
  /**
   * Copies records of every CPU into `out`; record i is recs[3i] (end offset
   * in out), recs[3i+1] (cpu), recs[3i+2] (lost samples: 0 for a sample, which
   * spans out[end(i-1) .. end(i)]; > 0 for a lost-samples record, no bytes).
   * Returns the count, or -(bytes needed) when the next sample does not fit;
   * throws an Error when a ring holds what is not a record (it is emptied).
   */
  perfbufConsume(pb: PerfbufHandle, out: Uint8Array, recs: Float64Array): number
  /** Bytes written and not yet consumed, headers included, over all CPUs. */
  perfbufPending(pb: PerfbufHandle): number
  perfbufWait(pb: PerfbufHandle, onReady: (status: number) => void): void
  perfbufCancel(pb: PerfbufHandle): void
  /** Deletes the map entries it set, unmaps, closes its fds. Closing twice is a no-op. */
  perfbufClose(pb: PerfbufHandle): void
}

/** An opaque native perf buffer consumer (native/perfbuf.cc). */
export type PerfbufHandle = { readonly __perfbuf: unique symbol }

/** A tc filter as RTM_GETTFILTER describes it (bpf filters fill progId, name, directAction). */
export interface TcFilterEntry {
  priority: number
  handle: number
  /** The ethernet protocol it matches (host order; 3 is ETH_P_ALL). */
  protocol: number
  chain: number
  /** The classifier ('bpf', 'u32', 'flower', ...). */
  kind: string
  progId: number
  name: string
  directAction: boolean
}

/** An opaque pending readiness wait. */
export type FdWaitHandle = { readonly __fdWait: unique symbol }

/** An opaque native ring buffer consumer. */
export type RingbufHandle = { readonly __ringbuf: unique symbol }

const packageRoot = join(__dirname, '..', '..')
const load = createRequire(__filename)('node-gyp-build') as (dir: string) => unknown

// A copy of the addon's exports: Node-API leaves that object in V8's
// dictionary mode (100+ properties set one by one), where every
// `native.fn` is a generic property load (20-50 ns per call on the map and
// ID rows of `npm run bench`); a spread copy has fast properties.
export const native = { ...(load(packageRoot) as NativeAddon) }
native.setErrorFactory(createNativeError)
