// Every probe at once, as `bpfkit feature probe` (and bpftool feature probe)
// shows it: map types, program types, the helpers each program type may
// call, attach families, token features and the other declared features.
// Each answer comes from the cached probes of this package, so a second
// report in the same process costs nothing; each missing item carries the
// release (and build options) that added it.
import { release } from 'node:os'
import { NotSupportedError } from '../sys/errors.js'
import { helpers, mapTypes, progTypes } from '../sys/generated/kernel-enums.js'
import { declaredFeatures } from './declare.js'
import { FeatureRefusedError, haveIterTarget, iterTargetVersions, type IterTarget } from './attach-tracing.js'
import { haveProgramHelper, HelperNotSupportedError } from './helpers.js'
import { haveMapType } from './map-types.js'
import { haveProgramType, loadsCleanly } from './prog-types.js'
import { helperVersion, mapTypeVersions, progTypeVersions, type FeatureVersion } from './versions.js'

export interface ProbeAnswer {
  /** The kernel's name ('hash', 'socket_filter') or the feature's ('tcx'). */
  name: string
  /** What it is, for declared features: 'tcx links (BPF_LINK_CREATE on tcx)'. */
  title?: string
  /** true, false, or null when the probe itself was refused or failed (then `error` says why). */
  supported: boolean | null
  /** Missing: the first Linux release with it. */
  since?: string
  /** Missing: the kernel build options it also needs. */
  config?: readonly string[]
  /** Missing: why, in the probe's words, when it says more than the release (alone when the kernel is new enough but refuses it). */
  reason?: string
  /** Unknown: the error the probe met (EPERM from an LSM, no kernel BTF...). */
  error?: string
}

export interface FeatureReport {
  /** The running kernel's release string, as uname gives it: shown, never decided by. */
  kernel: string
  mapTypes: ProbeAnswer[]
  programTypes: ProbeAnswer[]
  /** Per program type whose helpers could be probed: the helpers it may call, by the kernel's name. */
  helpers: Record<string, string[]>
  /** Program types whose helpers were not probed, and why. */
  helpersNotProbed: Record<string, string>
  /** Helpers the kernel lacks altogether, each with the release that added it. */
  missingHelpers: ProbeAnswer[]
  attach: ProbeAnswer[]
  token: ProbeAnswer[]
  other: ProbeAnswer[]
}

export interface FeatureReportOptions {
  /** Called after each probe, e.g. for a progress line: `done` of `total` probes. */
  onProbe?: (done: number, total: number) => void
}

// Declared features that tell how programs attach (link families, probes,
// hooks); bpfkit's own names.
const attachFeatures = new Set([
  'linkCreate', 'perfLink', 'xdpLink', 'tcx', 'netkit', 'tcClassic', 'netnsLinks', 'skLookup', 'sockmapLinks', 'netfilterLinks',
  'kprobes', 'kprobeMulti', 'tracepoints', 'perfEventPrograms', 'bpfCookie', 'rawTracepointLinks', 'rawTracepointCookie',
  'tracingLinks', 'tracingCookie', 'trampolines', 'bpfLsm', 'guardHooks', 'modifyReturn', 'iterators', 'uprobes', 'uprobeMulti',
])
/** The declared features `featureReport` files under attach families (the rest: token features, named so, and other). */
export const attachFeatureNames: ReadonlySet<string> = attachFeatures

// Program types whose helper probe cannot be written as one call: struct_ops
// programs need a struct_ops map, extensions take the helpers of the program they replace.
const helpersUnprobeable: Record<string, string> = {
  struct_ops: 'struct_ops programs load only with a struct_ops map',
  ext: 'an extension calls the helpers of the program it replaces',
}

// One probe's answer: supported, missing (with its release), or unknown.
function answer(name: string, probe: () => void, version?: FeatureVersion, title?: string): ProbeAnswer {
  const a: ProbeAnswer = title === undefined ? { name, supported: true } : { name, title, supported: true }
  try {
    probe()
  } catch (e) {
    if (e instanceof FeatureRefusedError) {
      // New enough, yet refused to this process (an LSM, a locked-down host): no release to upgrade to.
      a.supported = false
      a.reason = e.message.replace(/^.* is not available: /, '')
    } else if (e instanceof NotSupportedError) {
      a.supported = false
      a.since = e.minKernel
      if (version?.config) a.config = version.config
      // The message's detail, less the build options (`config` has them).
      const detail = /\(needs Linux [^;)]*; (.*)\)$/.exec(e.message)?.[1]
      const reason = detail?.split('; ').filter((p) => !p.startsWith('and a kernel built with')).join('; ')
      if (reason) a.reason = reason
    } else {
      a.supported = null
      a.error = (e as Error).message
    }
  }
  return a
}

const members = (table: Record<string, number>) => Object.keys(table).filter((k) => k !== 'unspec')

/**
 * Probes everything this package can probe (a few thousand program loads for
 * the helpers; about a second on a 6.x host). Probes refused (EPERM: no
 * privileges, an LSM) are reported as unknown with the error, never as missing.
 * Needs CAP_BPF (root) or a default token.
 */
export function featureReport(options: FeatureReportOptions = {}): FeatureReport {
  const mapNames = members(mapTypes)
  const progNames = members(progTypes)
  const helperNames = members(helpers)
  const declared = declaredFeatures()
  const iterTargets = Object.keys(iterTargetVersions) as IterTarget[]
  const total = mapNames.length + progNames.length * (1 + helperNames.length) + declared.length + iterTargets.length
  let done = 0
  const tick = (n = 1) => {
    done += n
    options.onProbe?.(done, total)
  }
  const counted = (a: ProbeAnswer) => {
    tick()
    return a
  }

  const report: FeatureReport = {
    kernel: release(),
    mapTypes: mapNames.map((n) => counted(answer(n, () => haveMapType(n as never), mapTypeVersions[n as keyof typeof mapTypeVersions]))),
    programTypes: progNames.map((n) => counted(answer(n, () => haveProgramType(n as never), progTypeVersions[n as keyof typeof progTypeVersions]))),
    helpers: {},
    helpersNotProbed: {},
    missingHelpers: [],
    attach: [],
    token: [],
    other: [],
  }

  const missing = new Map<string, ProbeAnswer>()
  for (const t of report.programTypes) {
    const why = t.supported === true
      ? helpersUnprobeable[t.name] ?? (loadsCleanly(progTypes[t.name as keyof typeof progTypes]) ? undefined : 'even a program that calls no helper is refused')
      : t.supported === false ? 'the program type is missing' : `the program type's probe failed: ${t.error}`
    if (why !== undefined) {
      report.helpersNotProbed[t.name] = why
      tick(helperNames.length)
      continue
    }
    const allowed: string[] = []
    for (const h of helperNames) {
      try {
        haveProgramHelper(t.name as never, h as never)
        allowed.push(h)
      } catch (e) {
        if (e instanceof HelperNotSupportedError) {
          if (e.reason === 'kernel' && !missing.has(h)) missing.set(h, { name: h, supported: false, since: helperVersion(helpers[h as keyof typeof helpers]) ?? e.minKernel })
        } else if (!(e instanceof NotSupportedError)) {
          report.helpersNotProbed[t.name] = (e as Error).message
          break
        }
      } finally {
        tick()
      }
    }
    if (report.helpersNotProbed[t.name] === undefined) report.helpers[t.name] = allowed
  }
  report.missingHelpers = [...missing.values()].sort((a, b) => helpers[a.name as keyof typeof helpers] - helpers[b.name as keyof typeof helpers])

  for (const f of declared) {
    const a = counted(answer(f.name, () => f.have(), f.version, f.title))
    if (attachFeatures.has(f.name)) report.attach.push(a)
    else if (/token/i.test(f.name)) report.token.push(a)
    else report.other.push(a)
  }
  for (const target of iterTargets) {
    report.attach.push(counted(answer(`iter/${target}`, () => haveIterTarget(target), { version: iterTargetVersions[target] }, `${target} iterators`)))
  }
  return report
}
