// Typed delegation policies (bpffs delegate_* options, BPF token contents).
export { Policy } from './policy.js'
export type { DelegationPolicy, PolicyLike, PolicyMasks, PolicyKind, PolicySet } from './policy.js'
export { readMountinfo, bpffsMountEntry } from './mount-options.js'
export type { MountinfoEntry } from './mount-options.js'
