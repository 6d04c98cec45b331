// featureReport's grouping and `bpfkit feature probe`'s text, without the
// kernel: the attach group names only declared features, and each kind of
// answer prints as bpftool words it, with the release or the reason.
import { describe, expect, test } from 'vitest'
import { attachFeatureNames, declaredFeatures, type FeatureReport } from '../../lib/features/index.js'
import { describeAnswer, formatReport } from '../../lib/cli/feature.js'

describe('featureReport', () => {
  test('the attach families are declared features (a renamed one would fall silently into "other")', () => {
    const declared = new Set(declaredFeatures().map((f) => f.name))
    for (const name of attachFeatureNames) expect(declared.has(name), name).toBe(true)
  })
})

describe('bpfkit feature probe text', () => {
  test('available, missing with release and options, refused with why, unknown with the error', () => {
    expect(describeAnswer({ name: 'hash', supported: true })).toBe('is available')
    expect(describeAnswer({ name: 'arena', supported: false, since: '6.9', config: ['CONFIG_MMU'] })).toBe('is NOT available (needs Linux 6.9 and CONFIG_MMU)')
    expect(describeAnswer({ name: 'kprobes', supported: false, since: '4.17', reason: 'no kprobe code' })).toBe('is NOT available (needs Linux 4.17; no kprobe code)')
    expect(describeAnswer({ name: 'trampolines', supported: false, reason: 'the kernel refuses trampoline programs (EPERM)' })).toBe('is NOT available (the kernel refuses trampoline programs (EPERM))')
    expect(describeAnswer({ name: 'lsm', supported: null, error: 'prog_load: EPERM' })).toBe('is unknown (the probe failed: prog_load: EPERM)')
  })

  test('grouped as bpftool prints it; helpers with their bpf_ prefix', () => {
    const report: FeatureReport = {
      kernel: '5.10.0',
      mapTypes: [{ name: 'hash', supported: true }],
      programTypes: [{ name: 'xdp', supported: true }, { name: 'netfilter', supported: false, since: '6.4' }],
      helpers: { xdp: ['map_lookup_elem'] },
      helpersNotProbed: { netfilter: 'the program type is missing' },
      missingHelpers: [{ name: 'cgrp_storage_get', supported: false, since: '6.2' }],
      attach: [{ name: 'tcx', title: 'tcx links', supported: false, since: '6.6' }],
      token: [],
      other: [],
    }
    expect(formatReport(report)).toEqual([
      'kernel 5.10.0', '',
      'Scanning eBPF program types...', 'eBPF program_type xdp is available', 'eBPF program_type netfilter is NOT available (needs Linux 6.4)', '',
      'Scanning eBPF map types...', 'eBPF map_type hash is available', '',
      'Scanning eBPF helper functions...', 'eBPF helpers supported for program type xdp:', '\t- bpf_map_lookup_elem',
      'eBPF helpers for program type netfilter not probed: the program type is missing',
      'eBPF helpers this kernel lacks:', '\t- bpf_cgrp_storage_get (needs Linux 6.2)', '',
      'Scanning attach families...', 'tcx: tcx links is NOT available (needs Linux 6.6)', '',
      'Scanning token features...', '',
      'Scanning other features...',
    ])
  })
})
