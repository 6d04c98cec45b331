// bpfkit: the Linux bpf() syscall for Node.js.
export {
  SyscallError, BpfError, VerifierError, PolicyError, NotSupportedError, Fd, kernel,
  setDefaultToken, defaultToken,
} from './sys/index.js'
export type {
  ProgramInfo, MapInfo, LinkInfo, BtfInfo, TokenLike, TokenRequest,
  AttachTypeName, CommandName, HelperName, LinkTypeName, MapTypeName, ProgTypeName,
} from './sys/index.js'
export { Btf } from './btf/btf.js'
export type { BtfLoadOptions } from './btf/btf.js'
export * as ids from './sys/ids.js'
export { BpfMap } from './map/map.js'
export type { MapOpenOptions } from './map/map.js'
export { MapSpec } from './map/spec.js'
export type { MapCreateOptions, MapSpecOptions, MapBtfRef, InnerMapTemplate, ValueOf } from './map/spec.js'
export type { UpdateFlag } from './map/kinds.js'
export type { BatchLookupOptions } from './map/batch.js'
export type { FdRef } from './map/values.js'
export { mapFlags } from './map/kinds.js'
export type { MapFlagName } from './map/kinds.js'
export { codecFor } from './map/codec.js'
export { MappedArray } from './map/mmap.js'
export { RingBuffer } from './map/ringbuf.js'
export { PerfBuffer } from './map/perf-buffer.js'
export type { PerfBufferOptions, PerfRecord, PerfRecordsOptions } from './map/perf-buffer.js'
export type { RecordsOptions } from './map/ringbuf.js'
export type { TypeDesc, Decoded, Codec } from './map/codec.js'
export { asm } from './asm/index.js'
export type { Insn, Item, Label, MapRef, Reg } from './asm/index.js'
export { BpfProgram, enableStats } from './prog/program.js'
export type { TestRunOptions } from './prog/program.js'
export { ProgramSpec } from './prog/spec.js'
export type { ProgramLoadOptions, ProgramSpecOptions } from './prog/spec.js'
export { progFlags } from './prog/flags.js'
export type { ProgFlagName } from './prog/flags.js'
export * from './link/index.js'
export * as features from './features/index.js'
export { BtfBuilder, BtfKind } from './btf/builder.js'
export type { BtfMember, BtfParam, BtfSecInfo, BtfKindName, FuncLinkage, VarLinkage } from './btf/builder.js'
export { BtfReader } from './btf/reader.js'
export type { BtfTypeRecord } from './btf/reader.js'
export { btfToC } from './btf/c-dump.js'
export type { CDumpOptions } from './btf/c-dump.js'
export { btfForMap, addTypeDesc } from './map/btf.js'
export type { MapBtf } from './map/btf.js'
// Clang-built ELF objects: CollectionSpec.fromFile(...).load().
export { CollectionSpec, MapReference, Collection, CollectionLinks, Variable, VariableSpec, ElfError, ExternError, CoreError, programForSection, sectionConventions } from './collection/index.js'
export type { CollectionLoadOptions, AttachTargets, InterfaceTarget, SectionProgram, CollectionShape, AnyCollectionShape } from './collection/index.js'
export type { FuncInfo, LineInfo } from './prog/spec.js'
// The guard: kernel-enforced policies for tenants (BPF LSM).
export { Guard, guardObjectPath } from './guard/index.js'
export type { GuardEvent, GuardStartOptions, GuardStats, GuardTenant, Quota, RefusalKind, TenantMatch, TenantOptions } from './guard/index.js'
// BPF delegation (tokens, bpffs delegation mounts, fd passing) and typed policies.
export { Policy } from './policy/index.js'
export type { DelegationPolicy, PolicyLike, PolicyMasks, PolicyKind, PolicySet, MountinfoEntry } from './policy/index.js'
// Capability policies: what a program may use, checked before load.
export { ProgramPolicyError } from './policy/check.js'
export type { Violation, CheckContext } from './policy/check.js'
export type { ProgramPolicy, ProgramExtern, StructOpsMember } from './prog/spec.js'
export {
  BpfToken, delegate, openBpffsContext, attachMount, openMountRoot,
  serveDelegation, requestDelegation, spawnDelegated, delegationFailedStatus, DelegationRefusedError,
} from './delegation/index.js'
export type {
  TokenInfo, DelegateOptions, ServeOptions, RequestOptions, Delegation, SpawnDelegatedOptions, DelegatedProcess,
} from './delegation/index.js'
// Unix sockets that carry fds (SCM_RIGHTS), for delegation and the broker.
export { FdSocket, ProtocolError, peerCredentials, peerPidfd, pidfdIsAlive } from './ipc/index.js'
export type { Message, ReceiveOptions, SendOptions, PeerCredentials } from './ipc/index.js'
// The tenant broker: per-tenant views of BPF objects, and its client.
export { startBroker, Broker, BrokerClient, BrokerError } from './broker/index.js'
export type {
  BrokerOptions, BrokerStats, BrokerErrorCode, BrokerConfig, TenantConfig as BrokerTenantConfig, Quota as BrokerQuota,
  ObjectView as BrokerObjectView, Kind as BrokerObjectKind, Origin as BrokerObjectOrigin,
} from './broker/index.js'
