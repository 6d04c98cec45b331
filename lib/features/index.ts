// features: what the running kernel supports, decided by probes that make the
// real call (create a tiny map, load a trivial program) and read the errno,
// never by the kernel's version string. Each `have*` returns when the feature
// is there and throws a NotSupportedError naming the Linux release (and build
// options) that added it when it is not; a refused probe (EPERM without
// CAP_BPF or a token) is a BpfError, not an answer. Each `supports*` twin
// answers true/false and throws only those other errors. Answers are cached
// per process; every fd a probe opens is closed before it returns. Probes use
// the process-wide default token when one is set (setDefaultToken).
//
// Single features are declared once each (declareFeature: misc.ts, insns.ts)
// and exported from here by `export *`; families keyed by a kernel enum (map
// types, program types, helpers, BTF kinds) take the member as an argument.
import type { HelperName, MapTypeName, ProgTypeName } from '../sys/index.js'
import { haveProgramHelper } from './helpers.js'
import { haveMapType, haveRingbuf } from './map-types.js'
import { asBoolean } from './probe-cache.js'
import { haveProgramType } from './prog-types.js'

export * from './misc.js'
export * from './insns.js'
export * from './btf-kinds.js'
export * from './links.js'
export * from './attach-net.js'
export * from './attach-trace.js'
export * from './attach-uprobe.js'
export * from './attach-tracing.js'
export * from './attach-sockets.js'
export { declaredFeatures, miscVersions } from './declare.js'
export type { Feature } from './declare.js'
export { haveMapType, haveRingbuf } from './map-types.js'
export { haveProgramType } from './prog-types.js'
export { haveProgramHelper, HelperNotSupportedError } from './helpers.js'
export { btfKindVersions, mapTypeVersions, progTypeVersions, helperVersion } from './versions.js'
export type { FeatureVersion } from './versions.js'

export const supportsMapType = (type: MapTypeName | number): boolean => asBoolean(() => haveMapType(type))
export const supportsProgramType = (type: ProgTypeName | number): boolean => asBoolean(() => haveProgramType(type))
export const supportsProgramHelper = (progType: ProgTypeName | number, helper: HelperName | number): boolean =>
  asBoolean(() => haveProgramHelper(progType, helper))
export const supportsRingbuf = (): boolean => asBoolean(haveRingbuf)
export { featureReport, attachFeatureNames } from './report.js'
export type { FeatureReport, FeatureReportOptions, ProbeAnswer } from './report.js'
