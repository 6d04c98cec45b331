// The guard: the kernel enforces capability policies for tenants (BPF LSM).
export { Guard, guardObjectPath } from './guard.js'
export type { GuardStartOptions, GuardStats, GuardTenant, TenantOptions } from './guard.js'
export type { GuardEvent } from './events.js'
export type { TenantMatch } from './match.js'
export type { Quota } from './compile.js'
export type { RefusalKind } from './abi.js'
