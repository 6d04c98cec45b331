// The Linux release that added each member of the probed families (map
// types, program types, helpers, BTF kinds), for the message of a
// NotSupportedError. Single features declare their release with their probe
// (declareFeature in declare.ts). Probes decide support; these tables only say what to
// upgrade to. `config` names the kernel options the feature is built under
// when a stock kernel of that version may lack it.
//
// Sources: the kernel's git history (the commits that added each enum value),
// cross-checked with cilium/ebpf's features package and bcc's
// docs/kernel-versions.md.
import { helpers, type MapTypeName, type ProgTypeName } from '../sys/generated/kernel-enums.js'

export interface FeatureVersion {
  /** First Linux release with the feature, e.g. '5.8'. */
  version: string
  /** Kernel config options it also needs, e.g. ['CONFIG_BPF_LSM']. */
  config?: readonly string[]
}

const v = (version: string, ...config: string[]): FeatureVersion => (config.length > 0 ? { version, config } : { version })

/** Map types, keyed by the kernel's name. */
export const mapTypeVersions: Readonly<Partial<Record<MapTypeName, FeatureVersion>>> = {
  hash: v('3.19'),
  array: v('3.19'),
  prog_array: v('4.2'),
  perf_event_array: v('4.3'),
  percpu_hash: v('4.6'),
  percpu_array: v('4.6'),
  stack_trace: v('4.6', 'CONFIG_PERF_EVENTS'),
  cgroup_array: v('4.8', 'CONFIG_CGROUPS'),
  lru_hash: v('4.10'),
  lru_percpu_hash: v('4.10'),
  lpm_trie: v('4.11'),
  array_of_maps: v('4.12'),
  hash_of_maps: v('4.12'),
  devmap: v('4.14', 'CONFIG_NET'),
  sockmap: v('4.14', 'CONFIG_NET'),
  cpumap: v('4.15', 'CONFIG_NET'),
  xskmap: v('4.18', 'CONFIG_XDP_SOCKETS'),
  sockhash: v('4.18', 'CONFIG_NET'),
  cgroup_storage: v('4.19', 'CONFIG_CGROUP_BPF'),
  reuseport_sockarray: v('4.19', 'CONFIG_INET'),
  percpu_cgroup_storage: v('4.20', 'CONFIG_CGROUP_BPF'),
  queue: v('4.20'),
  stack: v('4.20'),
  sk_storage: v('5.2', 'CONFIG_NET'),
  devmap_hash: v('5.4', 'CONFIG_NET'),
  struct_ops: v('5.6', 'CONFIG_BPF_JIT'),
  ringbuf: v('5.8'),
  inode_storage: v('5.10', 'CONFIG_BPF_LSM'),
  task_storage: v('5.11'),
  bloom_filter: v('5.16'),
  user_ringbuf: v('6.1'),
  cgrp_storage: v('6.2', 'CONFIG_CGROUPS'),
  arena: v('6.9', 'CONFIG_MMU'),
}

/** Program types, keyed by the kernel's name. */
export const progTypeVersions: Readonly<Partial<Record<ProgTypeName, FeatureVersion>>> = {
  socket_filter: v('3.19', 'CONFIG_NET'),
  kprobe: v('4.1', 'CONFIG_BPF_EVENTS'),
  sched_cls: v('4.1', 'CONFIG_NET'),
  sched_act: v('4.1', 'CONFIG_NET'),
  tracepoint: v('4.7', 'CONFIG_BPF_EVENTS'),
  xdp: v('4.8', 'CONFIG_NET'),
  perf_event: v('4.9', 'CONFIG_BPF_EVENTS'),
  cgroup_skb: v('4.10', 'CONFIG_CGROUP_BPF'),
  cgroup_sock: v('4.10', 'CONFIG_CGROUP_BPF'),
  lwt_in: v('4.10', 'CONFIG_NET'),
  lwt_out: v('4.10', 'CONFIG_NET'),
  lwt_xmit: v('4.10', 'CONFIG_NET'),
  sock_ops: v('4.13', 'CONFIG_NET'),
  sk_skb: v('4.14', 'CONFIG_NET'),
  cgroup_device: v('4.15', 'CONFIG_CGROUP_BPF'),
  sk_msg: v('4.17', 'CONFIG_NET'),
  raw_tracepoint: v('4.17', 'CONFIG_BPF_EVENTS'),
  cgroup_sock_addr: v('4.17', 'CONFIG_CGROUP_BPF'),
  lwt_seg6local: v('4.18', 'CONFIG_NET'),
  lirc_mode2: v('4.18', 'CONFIG_BPF_LIRC_MODE2'),
  sk_reuseport: v('4.19', 'CONFIG_INET'),
  flow_dissector: v('4.20', 'CONFIG_NET'),
  cgroup_sysctl: v('5.2', 'CONFIG_CGROUP_BPF'),
  raw_tracepoint_writable: v('5.2', 'CONFIG_BPF_EVENTS'),
  cgroup_sockopt: v('5.3', 'CONFIG_CGROUP_BPF'),
  tracing: v('5.5', 'CONFIG_BPF_EVENTS', 'CONFIG_BPF_JIT', 'CONFIG_DEBUG_INFO_BTF'),
  struct_ops: v('5.6', 'CONFIG_BPF_JIT'),
  ext: v('5.6', 'CONFIG_BPF_JIT'),
  lsm: v('5.7', 'CONFIG_BPF_LSM', 'CONFIG_BPF_JIT', 'CONFIG_DEBUG_INFO_BTF'),
  sk_lookup: v('5.9', 'CONFIG_INET'),
  syscall: v('5.14'),
  netfilter: v('6.4', 'CONFIG_NETFILTER_BPF_LINK'),
}

// Helper ids are handed out in merge order, so each release added one
// contiguous run of ids: [first id of the run, release]. (The helper list was
// frozen after 6.2; new kernel functions are kfuncs.)
const helperRuns: ReadonlyArray<readonly [number, string]> = [
  [1, '3.19'], [4, '4.1'], [12, '4.2'], [17, '4.3'], [23, '4.4'], [26, '4.5'], [27, '4.6'],
  [31, '4.8'], [37, '4.9'], [42, '4.10'], [45, '4.11'], [46, '4.12'], [48, '4.13'],
  [51, '4.14'], [54, '4.15'], [58, '4.16'], [60, '4.17'], [65, '4.18'], [81, '4.19'],
  [84, '4.20'], [91, '5.0'], [93, '5.1'], [99, '5.2'], [109, '5.3'], [111, '5.5'],
  [117, '5.6'], [119, '5.7'], [125, '5.8'], [136, '5.9'], [142, '5.10'], [156, '5.11'],
  [163, '5.12'], [164, '5.13'], [166, '5.14'], [169, '5.15'], [176, '5.16'], [180, '5.17'],
  [186, '5.18'], [194, '5.19'], [204, '6.0'], [208, '6.1'], [210, '6.2'],
]
const lastKnownHelper = Math.max(...Object.values(helpers))

/** The release that added helper `id`; undefined for ids past the known list. */
export function helperVersion(id: number): string | undefined {
  if (!Number.isInteger(id) || id < 1 || id > lastKnownHelper) return undefined
  let found = helperRuns[0][1]
  for (const [first, version] of helperRuns) {
    if (first > id) break
    found = version
  }
  return found
}

/** BTF kinds newer than BTF itself (4.18), keyed by bpfkit's kind name. */
export const btfKindVersions = {
  func: v('5.0'),
  func_proto: v('5.0'),
  var: v('5.2'),
  datasec: v('5.2'),
  float: v('5.13'),
  decl_tag: v('5.16'),
  type_tag: v('5.17'),
  // Signed enums (kind_flag on ENUM) came with ENUM64.
  enum64: v('6.0'),
} as const satisfies Record<string, FeatureVersion>

/**
 * BTF features that are not a kind of their own, keyed as BtfSupport
 * (lib/btf/sanitize.ts) names them. Sources: global FUNC linkage, commit
 * 51c39bb1d5d1 (5.6); '?' in DATASEC names, bd70a8fb7ca4 (6.9); kind_flag on
 * DECL_TAG and TYPE_TAG marking an __attribute__, Ihor Solodrai's series of
 * 2025-01-30 (6.15; the kernel refused the flag on tags before it); the
 * header's layout section, Alan Maguire's series of 2026-03-26 (7.1).
 */
export const btfFeatureVersions = {
  funcGlobal: v('5.6'),
  qmarkDatasec: v('6.9'),
  declTagKindFlag: v('6.15'),
  typeTagKindFlag: v('6.15'),
  layout: v('7.1'),
} as const satisfies Record<string, FeatureVersion>
