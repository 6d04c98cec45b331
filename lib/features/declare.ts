// A feature is declared once: its name, what it is called in messages, the
// Linux release (and build options) that added it, and the probe that decides.
// From that one declaration come the `have*` function (returns, or throws a
// NotSupportedError naming the release), its `supports*` boolean twin, the
// cached answer, its entry in `miscVersions`, and a row in the kernel test
// that holds every declared probe to the running kernel's version. Adding a
// feature is one `declareFeature` call. (The model is cilium/ebpf's
// NewFeatureTest; families keyed by an enum, such as map and program types,
// keep their own version tables in versions.ts.)
import type { NotSupportedError } from '../sys/errors.js'
import { asBoolean, cachedProbe, notSupported } from './probe-cache.js'
import type { FeatureVersion } from './versions.js'

export interface FeatureDeclaration<Args extends unknown[]> {
  /** What the feature is, in messages: 'mmapable array maps (BPF_F_MMAPABLE)'. */
  readonly title: string
  /** The first Linux release with the feature, e.g. '5.5'. */
  readonly since: string
  /** Kernel build options it also needs, e.g. ['CONFIG_DEBUG_INFO_BTF']. */
  readonly config?: readonly string[]
  /**
   * Argument checks that must run even when the answer is cached (a
   * TypeError for a bad argument is not a fact about the kernel).
   */
  readonly checkArgs?: (...args: Args) => void
  /**
   * Returns when the kernel has the feature; throws `missing(detail?)` when it
   * lacks it. Any other error (EPERM: the probe was refused) is thrown as is
   * and not cached. Everything the probe opens it closes.
   */
  readonly probe: (missing: (detail?: string) => NotSupportedError, ...args: Args) => void
}

export interface Feature<Args extends unknown[] = []> {
  /** The key in `miscVersions` and the cache: 'mmapableMaps'. */
  readonly name: string
  readonly title: string
  readonly version: FeatureVersion
  /** Returns when supported; NotSupportedError when not; BpfError when the probe is refused. Cached. */
  readonly have: (...args: Args) => void
  /** true / false; throws only what is not an answer (EPERM, TypeError). */
  readonly supports: (...args: Args) => boolean
}

const declared = new Map<string, Feature<never[]>>()

/** Every declared feature's release, by name; filled as features are declared. */
export const miscVersions: Record<string, FeatureVersion> = {}

/** Declares feature `name` (unique); see FeatureDeclaration. */
export function declareFeature<Args extends unknown[] = []>(name: string, decl: FeatureDeclaration<Args>): Feature<Args> {
  if (declared.has(name)) throw new Error(`feature ${name} is declared twice`)
  const version: FeatureVersion = decl.config ? { version: decl.since, config: decl.config } : { version: decl.since }
  const missing = (detail?: string) => notSupported(decl.title, version, detail)
  const have = (...args: Args): void => {
    decl.checkArgs?.(...args)
    cachedProbe(name, () => decl.probe(missing, ...args))
  }
  const feature: Feature<Args> = Object.freeze({ name, title: decl.title, version, have, supports: (...args: Args) => asBoolean(() => have(...args)) })
  declared.set(name, feature as unknown as Feature<never[]>)
  miscVersions[name] = version
  return feature
}

/** Every feature declared with declareFeature, in declaration order (the families are apart). */
export function declaredFeatures(): readonly Feature<never[]>[] {
  return [...declared.values()]
}
