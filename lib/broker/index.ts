// The tenant broker: a daemon that loads, lists and pins BPF objects for
// tenants, each seeing only its own (the BPF namespace, in user space), and
// the client tenants use to talk to it.
export { startBroker, Broker, checkInitialNamespaces } from './server.js'
export type { BrokerOptions, BrokerStats } from './server.js'
export { BrokerClient } from './client.js'
export { BrokerError, brokerError, toErrorReply, fromErrorReply } from './errors.js'
export type { BrokerErrorCode, WireViolation } from './errors.js'
export { protocol, defaultLimits } from './protocol.js'
export type { Kind, Origin, ObjectView, Request, RequestType, Reply } from './protocol.js'
export { resolveConfig, loadConfig } from './config.js'
export type { BrokerConfig, TenantConfig, ResolvedConfig, ResolvedTenant, Quota } from './config.js'
