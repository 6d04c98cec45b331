// The version table behind NotSupportedError messages, the error shapes, and
// the probe cache's rules; no kernel needed.
import { describe, expect, test } from 'vitest'
import { HelperNotSupportedError } from '../../lib/features/helpers.js'
import { asBoolean, cachedProbe, clearProbeCache, notSupported } from '../../lib/features/probe-cache.js'
import { helperVersion, mapTypeVersions, progTypeVersions } from '../../lib/features/versions.js'
import { declaredFeatures, miscVersions } from '../../lib/features/index.js'
import { declareFeature } from '../../lib/features/declare.js'
import { enumName } from '../../lib/sys/names.js'
import { BpfError, NotSupportedError, PolicyError, kernel } from '../../lib/sys/index.js'

const cmp = (a: string, b: string) => {
  const [x, y] = [a.split('.').map(Number), b.split('.').map(Number)]
  return x[0] - y[0] || x[1] - y[1]
}

describe('version table', () => {
  test('every map and program type the kernel enums name has a release', () => {
    for (const name of Object.keys(kernel.mapTypes)) {
      if (name === 'unspec' || name.endsWith('_deprecated')) continue
      expect(mapTypeVersions[name as keyof typeof mapTypeVersions], name).toBeDefined()
    }
    for (const name of Object.keys(kernel.progTypes)) {
      if (name === 'unspec') continue
      expect(progTypeVersions[name as keyof typeof progTypeVersions], name).toBeDefined()
    }
  })

  test('known releases', () => {
    expect(mapTypeVersions.ringbuf).toEqual({ version: '5.8' })
    expect(mapTypeVersions.bloom_filter).toEqual({ version: '5.16' })
    expect(mapTypeVersions.arena?.version).toBe('6.9')
    expect(mapTypeVersions.xskmap).toEqual({ version: '4.18', config: ['CONFIG_XDP_SOCKETS'] })
    expect(progTypeVersions.netfilter?.version).toBe('6.4')
    expect(progTypeVersions.syscall?.version).toBe('5.14')
    expect(miscVersions).toMatchObject({
      mmapableMaps: { version: '5.5' }, batchOps: { version: '5.6' }, linkCreate: { version: '5.7' },
      bpfToken: { version: '6.9' }, tokenInfo: { version: '6.17' }, boundedLoops: { version: '5.3' },
    })
  })

  test('map and program type releases follow the order the kernel numbered them', () => {
    // Enum values are appended as types are merged, so a later number never
    // came in an earlier release (cgroup_storage, 19, and its neighbours included).
    for (const [table, versions] of [[kernel.mapTypes, mapTypeVersions], [kernel.progTypes, progTypeVersions]] as const) {
      const byNumber = Object.entries(versions as Record<string, { version: string }>)
        .map(([name, fv]) => [(table as Record<string, number>)[name], fv.version] as const)
        .sort((a, b) => a[0] - b[0])
      for (let i = 1; i < byNumber.length; i++) {
        expect(cmp(byNumber[i][1], byNumber[i - 1][1]), `type ${byNumber[i][0]}`).toBeGreaterThanOrEqual(0)
      }
    }
  })

  test('helpers: known releases, never decreasing with the id, none past the list', () => {
    const h = kernel.helpers
    expect(helperVersion(h.map_lookup_elem)).toBe('3.19')
    expect(helperVersion(h.probe_read)).toBe('4.1')
    expect(helperVersion(h.tail_call)).toBe('4.2')
    expect(helperVersion(h.skb_load_bytes)).toBe('4.5')
    expect(helperVersion(h.xdp_adjust_head)).toBe('4.10')
    expect(helperVersion(h.get_current_cgroup_id)).toBe('4.18')
    expect(helperVersion(h.spin_lock)).toBe('5.1')
    expect(helperVersion(h.probe_read_kernel)).toBe('5.5')
    expect(helperVersion(h.ringbuf_output)).toBe('5.8')
    expect(helperVersion(h.check_mtu)).toBe('5.12')
    expect(helperVersion(h.for_each_map_elem)).toBe('5.13')
    expect(helperVersion(h.sys_bpf)).toBe('5.14')
    expect(helperVersion(h.timer_init)).toBe('5.15')
    expect(helperVersion(h.loop)).toBe('5.17')
    expect(helperVersion(h.kptr_xchg)).toBe('5.19')
    expect(helperVersion(h.tcp_raw_gen_syncookie_ipv4)).toBe('6.0')
    expect(helperVersion(h.user_ringbuf_drain)).toBe('6.1')
    expect(helperVersion(h.cgrp_storage_delete)).toBe('6.2')
    expect(helperVersion(0)).toBeUndefined()
    expect(helperVersion(Math.max(...Object.values(h)) + 1)).toBeUndefined()
    expect(helperVersion(1.5)).toBeUndefined()
    let last = '3.19'
    for (const id of Object.values(h).filter((x) => x > 0).sort((a, b) => a - b)) {
      const v = helperVersion(id) as string
      expect(cmp(v, last), `helper ${id}`).toBeGreaterThanOrEqual(0)
      last = v
    }
  })

  test('aliases are named by their plain name', () => {
    expect(enumName(kernel.mapTypes, kernel.mapTypes.cgroup_storage)).toBe('cgroup_storage')
    expect(enumName(kernel.progTypes, kernel.progTypes.xdp)).toBe('xdp')
    expect(enumName(kernel.mapTypes, 99)).toBe('unknown(99)')
  })
})

describe('declared features', () => {
  test('each declaration gives have, supports, its release in miscVersions and its cached answer', () => {
    clearProbeCache()
    let runs = 0
    const f = declareFeature<[n: number]>('unitTestFeature', {
      title: 'a unit test feature',
      since: '9.1',
      config: ['CONFIG_UNIT'],
      checkArgs(n) {
        if (typeof n !== 'number') throw new TypeError('n must be a number')
      },
      probe(missing, n) {
        runs++
        if (n > 0) throw missing('the detail')
      },
    })
    expect(miscVersions.unitTestFeature).toEqual({ version: '9.1', config: ['CONFIG_UNIT'] })
    expect(declaredFeatures()).toContain(f)
    expect(() => f.have(1)).toThrow('a unit test feature is not supported by this kernel (needs Linux 9.1; and a kernel built with CONFIG_UNIT; the detail)')
    expect(f.supports(1)).toBe(false)
    expect(runs).toBe(1)
    // Argument checks run before the cache answers.
    expect(() => f.have('x' as never)).toThrow(TypeError)
    expect(() => declareFeature('unitTestFeature', { title: 't', since: '1.0', probe() {} })).toThrow(/declared twice/)
    clearProbeCache()
  })

  test('every declared feature is in miscVersions under its name, with a release', () => {
    const names = declaredFeatures().map((f) => f.name)
    expect(names).toEqual(expect.arrayContaining(['btf', 'bpfToken', 'tokenInfo', 'mmapableMaps', 'batchOps', 'linkCreate', 'isaV4', 'btfByIdToken']))
    for (const f of declaredFeatures()) {
      expect(miscVersions[f.name]).toBe(f.version)
      expect(f.version.version).toMatch(/^\d+\.\d+$/)
    }
  })
})

describe('NotSupportedError', () => {
  test('names the feature, the release and the build options', () => {
    const e = notSupported('map type xskmap', mapTypeVersions.xskmap)
    expect(e).toBeInstanceOf(NotSupportedError)
    expect(e).toMatchObject({ feature: 'map type xskmap', minKernel: '4.18', code: 'EOPNOTSUPP', name: 'NotSupportedError' })
    expect(e.message).toBe('map type xskmap is not supported by this kernel (needs Linux 4.18; and a kernel built with CONFIG_XDP_SOCKETS)')
    expect(notSupported('x', { version: '5.8' }).message).toBe('x is not supported by this kernel (needs Linux 5.8)')
    expect(notSupported('y', undefined, 'why').message).toBe('y is not supported by this kernel (needs Linux newer than bpfkit knows; why)')
  })

  test('helper errors say whether the kernel or the program type is the reason', () => {
    const k = new HelperNotSupportedError('loop', 'xdp', 'kernel', '5.17')
    expect(k).toBeInstanceOf(NotSupportedError)
    expect(k).toMatchObject({ helper: 'loop', programType: 'xdp', reason: 'kernel', minKernel: '5.17', name: 'HelperNotSupportedError' })
    expect(k.message).toMatch(/no such helper/)
    expect(new HelperNotSupportedError('loop', 'xdp', 'program-type', '5.17').message).toMatch(/not for this program type/)
  })
})

describe('probe cache', () => {
  test('a probe runs once; "supported" and "not supported" are remembered', () => {
    clearProbeCache()
    let runs = 0
    const ok = () => cachedProbe('unit:ok', () => void runs++)
    ok()
    ok()
    expect(runs).toBe(1)
    const missing = notSupported('thing', { version: '9.9' })
    const no = () => cachedProbe('unit:no', () => {
      runs++
      throw missing
    })
    expect(no).toThrow(missing)
    expect(no).toThrow(missing)
    expect(runs).toBe(2)
  })

  test('refusals are not answers: they are thrown again and the probe reruns', () => {
    clearProbeCache()
    let runs = 0
    const errors = [new BpfError('map_create', 1), new PolicyError('maps', 'hash', 'token does not delegate map type hash')]
    for (const err of errors) {
      const p = () => cachedProbe(`unit:${err.name}`, () => {
        runs++
        throw err
      })
      expect(p).toThrow(err)
      expect(p).toThrow(err)
    }
    expect(runs).toBe(4)
    clearProbeCache()
  })

  test('boolean twins: false only for NotSupportedError', () => {
    expect(asBoolean(() => undefined)).toBe(true)
    expect(asBoolean(() => {
      throw notSupported('x', { version: '1.0' })
    })).toBe(false)
    expect(() => asBoolean(() => {
      throw new BpfError('prog_load', 1)
    })).toThrow(BpfError)
  })
})
