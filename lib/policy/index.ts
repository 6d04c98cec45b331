// Typed delegation policies (bpffs delegate_* options, BPF token contents),
// and capability sets and contexts for what programs may use inside them.
export { Policy } from './policy.js'
export type { DelegationPolicy, PolicyDocument, PolicyJSON, PolicyLike, PolicyMasks, PolicyKind, PolicySet } from './policy.js'
export type {
  CapabilityDocument, CapabilityKind, CapabilityOptions, CapabilitySet, CapabilitySetInput, Grant, KernelBtfSource,
  PolicyContext, PolicyContextInput, ProgramTarget,
} from './capabilities.js'
export { ProgramPolicyError } from './check.js'
export type { CheckContext, CheckedProgram, Violation } from './check.js'
export { readMountinfo, bpffsMountEntry } from './mount-options.js'
export type { MountinfoEntry } from './mount-options.js'
