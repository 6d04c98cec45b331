// features: what the running kernel supports, decided by probes that make the
// real call (create a tiny map, load a trivial program) and read the errno,
// never by the kernel's version string. Each `have*` returns when the feature
// is there and throws a NotSupportedError naming the Linux release (and build
// options) that added it when it is not; a refused probe (EPERM without
// CAP_BPF or a token) is a BpfError, not an answer. Each `supports*` twin
// answers true/false and throws only those other errors. Answers are cached
// per process; every fd a probe opens is closed before it returns. Probes use
// the process-wide default token when one is set (setDefaultToken).
import type { HelperName, MapTypeName, ProgTypeName, TokenLike } from '../sys/index.js'
import { haveProgramHelper } from './helpers.js'
import { haveMapType, haveRingbuf } from './map-types.js'
import {
  haveAtomics, haveBatchOps, haveBoundedLoops, haveBpfToken, haveBtf, haveIsaV4, haveLargePrograms, haveLinkCreate, haveLoadAcquire, haveMayGoto,
  haveMmapableMaps, haveTokenInfo, haveBtfKind, haveKernelBtfIds, haveHashLookupAndDelete, type BtfKindFeature,
} from './misc.js'
import { asBoolean } from './probe-cache.js'
import { haveProgramType } from './prog-types.js'

export { haveMapType, haveRingbuf } from './map-types.js'
export { haveProgramType } from './prog-types.js'
export { haveProgramHelper, HelperNotSupportedError } from './helpers.js'
export {
  haveAtomics, haveBatchOps, haveBoundedLoops, haveBpfToken, haveBtf, haveIsaV4, haveLargePrograms, haveLinkCreate, haveLoadAcquire, haveMayGoto,
  haveMmapableMaps, haveTokenInfo, haveBtfKind, haveKernelBtfIds, haveHashLookupAndDelete,
} from './misc.js'
export type { BtfKindFeature } from './misc.js'
export { btfKindVersions } from './versions.js'
export { mapTypeVersions, progTypeVersions, miscVersions, helperVersion } from './versions.js'
export type { FeatureVersion } from './versions.js'

export const supportsMapType = (type: MapTypeName | number): boolean => asBoolean(() => haveMapType(type))
export const supportsProgramType = (type: ProgTypeName | number): boolean => asBoolean(() => haveProgramType(type))
export const supportsProgramHelper = (progType: ProgTypeName | number, helper: HelperName | number): boolean =>
  asBoolean(() => haveProgramHelper(progType, helper))
export const supportsRingbuf = (): boolean => asBoolean(haveRingbuf)
export const supportsBpfToken = (): boolean => asBoolean(haveBpfToken)
export const supportsTokenInfo = (token?: TokenLike): boolean => asBoolean(() => haveTokenInfo(token))
export const supportsMmapableMaps = (): boolean => asBoolean(haveMmapableMaps)
export const supportsBatchOps = (): boolean => asBoolean(haveBatchOps)
export const supportsBoundedLoops = (): boolean => asBoolean(haveBoundedLoops)
export const supportsLargePrograms = (): boolean => asBoolean(haveLargePrograms)
export const supportsLinkCreate = (): boolean => asBoolean(haveLinkCreate)
export const supportsBtf = (): boolean => asBoolean(haveBtf)
export const supportsAtomics = (): boolean => asBoolean(haveAtomics)
export const supportsIsaV4 = (): boolean => asBoolean(haveIsaV4)
export const supportsMayGoto = (): boolean => asBoolean(haveMayGoto)
export const supportsLoadAcquire = (): boolean => asBoolean(haveLoadAcquire)
export const supportsBtfKind = (kind: BtfKindFeature): boolean => asBoolean(() => haveBtfKind(kind))
export const supportsKernelBtfIds = (): boolean => asBoolean(haveKernelBtfIds)
export const supportsHashLookupAndDelete = (): boolean => asBoolean(haveHashLookupAndDelete)
