// Feature probes against the running kernel. The library decides by probes
// only; this test holds them to the kernel's version and build options: what
// a kernel this new, built with these options, has must be reported
// supported, and what it cannot have must be a NotSupportedError naming the
// release that added it.
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { release } from 'node:os'
import { gunzipSync } from 'node:zlib'
import { beforeAll, describe, expect, test } from 'vitest'
import * as features from '../../lib/features/index.js'
import { HelperNotSupportedError } from '../../lib/features/helpers.js'
import { cachedProbeCount, clearProbeCache } from '../../lib/features/probe-cache.js'
import { helperVersion, type FeatureVersion } from '../../lib/features/versions.js'
import { BpfError, Fd, NotSupportedError, kernel, native } from '../../lib/sys/index.js'
import { inUserNamespace } from './helpers/raw.js'
import { requireFeature, skipUnless } from './helpers/requires.js'
import { privateBpffs } from './helpers/scratch.js'

const running = release().split(/[.-]/).slice(0, 2).map(Number) as [number, number]
const atLeast = (version: string) => {
  const [a, b] = version.split('.').map(Number)
  return running[0] > a || (running[0] === a && running[1] >= b)
}

// The build options of the running kernel, when it publishes them.
const config: Set<string> | undefined = (() => {
  try {
    const text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8')
    return new Set(text.split('\n').filter((l) => /=[ym]$/.test(l)).map((l) => l.split('=')[0]))
  } catch {
    return undefined
  }
})()

type Expectation = 'supported' | 'missing' | 'unknown'
function expectation(fv: FeatureVersion): Expectation {
  if (!atLeast(fv.version)) return 'missing'
  if (!fv.config) return 'supported'
  if (!config) return 'unknown'
  return fv.config.every((c) => config.has(c)) ? 'supported' : 'missing'
}

type Outcome = 'supported' | NotSupportedError | BpfError
function outcome(probe: () => void): Outcome {
  try {
    probe()
    return 'supported'
  } catch (e) {
    if (e instanceof NotSupportedError || e instanceof BpfError) return e
    throw e
  }
}

// Returns true when the host refused the probe (allowed by hostMayRefuse).
function check(name: string, fv: FeatureVersion | undefined, probe: () => void, hostMayRefuse = false): boolean {
  expect(fv, `${name} has a version entry`).toBeDefined()
  const want = expectation(fv as FeatureVersion)
  const got = outcome(probe)
  // Some hosts refuse trampoline-based programs (fentry, LSM, freplace) to
  // root with EPERM: the probe must then say the probe was refused, never
  // that the kernel lacks the type.
  if (hostMayRefuse && got instanceof BpfError && !(got instanceof NotSupportedError) && got.code === 'EPERM') return true
  // A kernel new enough for a feature that refuses it all the same (this
  // host's trampolines, an LSM list without bpf) says so, with the errno:
  // never that a newer kernel is needed.
  // (A build option it lacks may hide behind the refusal: the refusal comes first.)
  if (got instanceof features.FeatureRefusedError) {
    expect(atLeast(fv!.version), `${name}: refused, yet this kernel is older than the release that added it`).toBe(true)
    expect(got.message).toMatch(/although the kernel is new enough \(Linux [\d.]+\+\)/)
    return true
  }
  if (want === 'supported') {
    expect(got, `${name} on Linux ${running.join('.')}`).toBe('supported')
  } else if (want === 'missing') {
    expect(got).toBeInstanceOf(NotSupportedError)
    expect((got as NotSupportedError).minKernel).toBe(fv?.version)
    expect((got as NotSupportedError).message).toContain(`needs Linux ${fv?.version}`)
    for (const c of fv?.config ?? []) expect((got as NotSupportedError).message).toContain(c)
  } else {
    expect(got === 'supported' || got instanceof NotSupportedError).toBe(true)
  }
  return false
}

const realNames = (table: Record<string, number>) =>
  Object.keys(table).filter((n) => n !== 'unspec' && !n.endsWith('_deprecated'))

beforeAll(() => {
  clearProbeCache()
})

describe('map types', () => {
  test.each(realNames(kernel.mapTypes))('%s', (name) => {
    // Some sandboxed hosts refuse arena maps to root with EPERM (measured on
    // a 6.18 VM whose root lacks CAP_SYS_RESOURCE): the probe must then say
    // it was refused, never that the kernel lacks the type.
    const hostMayRefuse = name === 'arena'
    const refused = check(`map type ${name}`, features.mapTypeVersions[name as keyof typeof features.mapTypeVersions], () => features.haveMapType(name as never), hostMayRefuse)
    // A refused probe is no answer: supports* throws it rather than say false.
    if (refused) return void expect(() => features.supportsMapType(name as never)).toThrow(BpfError)
    // The number answers the same, from the cache.
    expect(features.supportsMapType(kernel.mapTypes[name as keyof typeof kernel.mapTypes])).toBe(features.supportsMapType(name as never))
  })

  test('ring buffers through their own probe; bad names are TypeErrors', () => {
    expect(features.supportsRingbuf()).toBe(atLeast('5.8'))
    expect(() => features.haveMapType('hashmap' as never)).toThrow(TypeError)
    expect(() => features.haveMapType('unspec')).toThrow(TypeError)
    expect(() => features.haveMapType(-1)).toThrow(RangeError)
  })
})

describe('program types', () => {
  test.each(realNames(kernel.progTypes))('%s', (name) => {
    const hostMayRefuse = name === 'lsm' || name === 'ext'
    check(`program type ${name}`, features.progTypeVersions[name as keyof typeof features.progTypeVersions], () => features.haveProgramType(name as never), hostMayRefuse)
  })

  test('a type number the kernel does not know is missing, with no version to name', () => {
    const err = outcome(() => features.haveProgramType(200))
    expect(err).toBeInstanceOf(NotSupportedError)
    expect((err as NotSupportedError).message).toMatch(/program type unknown\(200\) .*needs Linux newer than bpfkit knows/)
  })
})

describe('other features', () => {
  // Every declared feature, so declaring one is all it takes to have it held to the kernel here.
  const probes: Array<[string, () => void, FeatureVersion]> = [
    ...features.declaredFeatures().map((f): [string, () => void, FeatureVersion] => [f.title, () => f.have(), f.version]),
    ...Object.entries(features.btfKindVersions).map(([kind, fv]): [string, () => void, FeatureVersion] =>
      [`BTF kind ${kind}`, () => features.haveBtfKind(kind as features.BtfKindFeature), fv]),
  ]

  test('the declared features include the ones the library and its tests rely on', () => {
    expect(probes.length).toBeGreaterThanOrEqual(15 + Object.keys(features.btfKindVersions).length)
    expect(features.miscVersions).toMatchObject({ bpfToken: { version: '6.9' }, btfByIdToken: { version: '6.18' }, mmapableMaps: { version: '5.5' } })
  })

  test.each(probes)('%s', (name, probe, fv) => void check(name, fv, probe))

  test('the token probe agrees with BPF_TOKEN_CREATE on a real bpffs in the initial user namespace', () => {
    using fs = privateBpffs()
    const dir = openSync(fs.path, 'r')
    try {
      const code = outcome(() => native.closeFd(native.tokenCreate(dir)))
      // 6.9+: EOPNOTSUPP (a token makes no sense in the initial namespace); before: EINVAL (unknown command).
      expect(code instanceof BpfError && code.code).toBe(features.supportsBpfToken() ? 'EOPNOTSUPP' : 'EINVAL')
    } finally {
      closeSync(dir)
    }
  })

  test('token info refuses an fd that is not a token', () => {
    using map = new Fd(native.mapCreate({ mapType: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 1 }), 'map')
    expect(() => features.haveTokenInfo({ fd: map.fd })).toThrow(/not a BPF token/)
  })
})

describe('helpers', () => {
  test('no helper this kernel is new enough for is reported missing from it', () => {
    for (const type of ['socket_filter', 'kprobe', 'xdp', 'sched_cls', 'tracing'] as const) {
      for (const name of realNames(kernel.helpers)) {
        const id = kernel.helpers[name as keyof typeof kernel.helpers]
        const version = helperVersion(id)
        expect(version, `helper ${name} has a version`).toBeDefined()
        const got = outcome(() => features.haveProgramHelper(type, name as never))
        if (got === 'supported') continue
        expect(got, `${type} / ${name}`).toBeInstanceOf(HelperNotSupportedError)
        const e = got as HelperNotSupportedError
        expect(e.reason, `${type} / ${name}`).toBe(atLeast(version as string) ? 'program-type' : 'kernel')
        expect(e.minKernel).toBe(version)
      }
    }
  })

  test('what each program type may call', () => {
    expect(features.supportsProgramHelper('socket_filter', 'map_lookup_elem')).toBe(true)
    expect(features.supportsProgramHelper('socket_filter', 'get_socket_cookie')).toBe(true)
    expect(features.supportsProgramHelper('kprobe', 'get_current_pid_tgid')).toBe(true)
    expect(features.supportsProgramHelper('xdp', 'redirect_map')).toBe(true)
    expect(features.supportsProgramHelper('sched_cls', 'skb_store_bytes')).toBe(true)
    expect(features.supportsProgramHelper('syscall', 'sys_bpf')).toBe(atLeast('5.14'))
    const err = outcome(() => features.haveProgramHelper('socket_filter', 'xdp_adjust_head'))
    expect(err).toBeInstanceOf(HelperNotSupportedError)
    expect(err).toMatchObject({ reason: 'program-type', helper: 'xdp_adjust_head', programType: 'socket_filter', minKernel: '4.10' })
    expect((err as Error).message).toMatch(/helper xdp_adjust_head for program type socket_filter .*needs Linux 4\.10.*not for this program type/)
  })

  test('a helper id past the known list is missing from the kernel', () => {
    const err = outcome(() => features.haveProgramHelper('socket_filter', 212))
    expect(err).toMatchObject({ reason: 'kernel', helper: 'unknown(212)', minKernel: 'newer than bpfkit knows' })
  })

  test('types whose helpers cannot be probed, and bad names, are TypeErrors', () => {
    expect(() => features.haveProgramHelper('ext', 'map_lookup_elem')).toThrow(/replaces/)
    expect(() => features.haveProgramHelper('struct_ops', 'map_lookup_elem')).toThrow(/struct_ops map/)
    expect(() => features.haveProgramHelper('socket_filter', 'no_such_helper' as never)).toThrow(TypeError)
    expect(() => features.haveProgramHelper('socket_filter', 'unspec')).toThrow(TypeError)
    expect(() => features.haveProgramHelper('nope' as never, 'map_lookup_elem')).toThrow(TypeError)
  })
})

describe('caching, fds and privileges', () => {
  const openFds = () => readdirSync('/proc/self/fd').length

  test('every probe closes what it opened', () => {
    clearProbeCache()
    const before = openFds()
    for (const name of realNames(kernel.mapTypes)) outcome(() => features.haveMapType(name as never))
    for (const name of realNames(kernel.progTypes)) outcome(() => features.haveProgramType(name as never))
    for (const f of features.declaredFeatures()) outcome(() => f.have())
    outcome(() => features.haveProgramHelper('xdp', 'ringbuf_output'))
    // Reading the kernel's BTF is the only open, and it is closed too.
    expect(openFds()).toBe(before)
  })

  test('answers are cached: a missing feature is the same error every time', () => {
    clearProbeCache()
    const first = outcome(() => features.haveProgramHelper('socket_filter', 213))
    const count = cachedProbeCount()
    expect(first).toBeInstanceOf(NotSupportedError)
    expect(outcome(() => features.haveProgramHelper('socket_filter', 213))).toBe(first)
    expect(cachedProbeCount()).toBe(count)
    features.haveMapType('hash')
    features.haveMapType('hash')
    expect(cachedProbeCount()).toBe(count + 1)
  })

  test('without privileges a probe is a BpfError, not an answer, and is not cached', () => {
    const r = inUserNamespace('userns-probes') as Record<string, string>
    // Kernels that refuse every bpf() command to unprivileged callers (5.10,
    // with unprivileged BPF disabled) cannot answer the token probe either.
    const { token, ...rest } = r
    expect(rest).toEqual({ first: 'EPERM', again: 'EPERM', boolean: 'EPERM', prog: 'EPERM' })
    if (atLeast('6.9')) expect(token).toBe('supported')
    else expect(['unsupported:EOPNOTSUPP', 'EPERM']).toContain(token)
  })
})

describe('test helpers', () => {
  test('requireFeature gives the probe\'s reason, or nothing; other errors fail', () => {
    expect(requireFeature(() => features.haveMapType('hash'))).toBeUndefined()
    expect(requireFeature(() => features.haveProgramHelper('socket_filter', 214))).toMatch(/needs Linux/)
    expect(() => requireFeature(() => {
      throw new BpfError('map_create', 1)
    })).toThrow(BpfError)
  })

  test('skipUnless lets a supported feature through', (ctx) => {
    skipUnless(ctx, features.haveRingbuf)
    using ring = new Fd(native.mapCreate({ mapType: kernel.mapTypes.ringbuf, keySize: 0, valueSize: 0, maxEntries: 64 * 1024 }), 'map')
    expect(ring.fd).toBeGreaterThan(2)
  })
})
