// `bpfkit feature probe`, through the real binary: every member of each
// family reported, missing ones with a release, answers that agree with what
// the kernel does when asked directly, and with `bpftool feature probe` where
// both know the item (differences explained below).
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import type { FeatureReport, ProbeAnswer } from '../../lib/features/index.js'
import { BpfProgram } from '../../lib/prog/program.js'
import { BpfError, Fd, VerifierError, kernel, native } from '../../lib/sys/index.js'
import { bpftool } from './helpers/bpftool.js'
import { repoRoot } from './helpers/raw.js'

const cli = join(repoRoot, 'dist/cli/main.js')
const bpfkit = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
const members = (table: Record<string, number>) => Object.keys(table).filter((k) => k !== 'unspec')
const byName = (answers: ProbeAnswer[]) => new Map(answers.map((a) => [a.name, a]))

// Program types that load only for an attach target (a BTF id, a struct_ops
// map): each tool's probe picks its own target, so their answers may differ.
const needTarget = new Set(['tracing', 'ext', 'lsm', 'struct_ops'])
// Helpers bpftool leaves out unless asked for `full`: they write to the kernel log.
const bpftoolSkips = new Set(['bpf_trace_printk', 'bpf_trace_vprintk', 'bpf_probe_write_user'])

let report: FeatureReport
beforeAll(() => {
  const r = bpfkit('feature', 'probe', '--json')
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  report = JSON.parse(r.stdout)
}, 600_000)

describe('bpfkit feature probe', () => {
  test('every map type, program type and declared feature is there; each missing one names its release', () => {
    expect(report.mapTypes.map((m) => m.name)).toEqual(members(kernel.mapTypes))
    expect(report.programTypes.map((p) => p.name)).toEqual(members(kernel.progTypes))
    for (const a of [...report.mapTypes, ...report.programTypes, ...report.attach, ...report.token, ...report.other, ...report.missingHelpers]) {
      if (a.supported === false) expect(a.since ?? a.reason, a.name).toMatch(/./)
      if (a.since !== undefined) expect(a.since, a.name).toMatch(/^\d+\.\d+$/)
      if (a.supported === null) expect(a.error, a.name).toMatch(/./)
    }
    expect(report.attach.map((a) => a.name)).toEqual(expect.arrayContaining(['tcx', 'xdpLink', 'uprobes', 'iter/task']))
    expect(report.token.map((a) => a.name)).toContain('bpfToken')
    // Every program type is either probed for helpers or says why not.
    for (const t of report.programTypes) expect(report.helpers[t.name] !== undefined || report.helpersNotProbed[t.name] !== undefined, t.name).toBe(true)
    expect(report.helpers.socket_filter).toEqual(expect.arrayContaining(['map_lookup_elem', 'ktime_get_ns']))
  })

  test('answers agree with the kernel asked directly', () => {
    const maps = byName(report.mapTypes)
    // A ring buffer map created here: the report must say the same.
    let ringbuf: boolean
    try {
      new Fd(native.mapCreate({ mapType: kernel.mapTypes.ringbuf, keySize: 0, valueSize: 0, maxEntries: 4096 }), 'map').close()
      ringbuf = true
    } catch (e) {
      if (!(e instanceof BpfError) || e.code !== 'EINVAL') throw e
      ringbuf = false
    }
    expect(maps.get('ringbuf')!.supported).toBe(ringbuf)
    expect(maps.get('hash')!.supported).toBe(true)
    // A helper socket filters may not call (bpf_xdp_adjust_head is XDP's) is not listed, one they may is.
    expect(report.helpers.socket_filter).not.toContain('xdp_adjust_head')
    expect(verifierSays('socket_filter', 'xdp_adjust_head')).toMatch(/cannot use helper|unknown func/)
    expect(verifierSays('socket_filter', 'get_prandom_u32')).toBe('loaded')
    expect(report.helpers.socket_filter).toContain('get_prandom_u32')
  })

  test('text: grouped as bpftool prints it, missing ones with their release', () => {
    const r = bpfkit('feature', 'probe')
    expect(r.status).toBe(0)
    const sections = r.stdout.split('\n').filter((l) => l.startsWith('Scanning'))
    expect(sections).toEqual(['Scanning eBPF program types...', 'Scanning eBPF map types...', 'Scanning eBPF helper functions...',
      'Scanning attach families...', 'Scanning token features...', 'Scanning other features...'])
    expect(r.stdout).toContain('eBPF program_type socket_filter is available\n')
    expect(r.stdout).toContain('eBPF helpers supported for program type socket_filter:\n\t- bpf_map_lookup_elem\n')
    for (const m of report.mapTypes.filter((a) => a.supported === false && a.since !== undefined)) {
      expect(r.stdout).toContain(`eBPF map_type ${m.name} is NOT available (needs Linux ${m.since}`)
    }
  }, 600_000)

  test('without privileges: one error, exit 1, not a report of unknowns', (ctx) => {
    if (readFileSync('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').trim() === '0') ctx.skip('unprivileged BPF is enabled here (kernel.unprivileged_bpf_disabled=0): a user gets real answers')
    // nobody, with only CAP_DAC_READ_SEARCH (to read the checkout wherever it is; see cli-demo.test.ts).
    const nobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps', '+dac_read_search', '--ambient-caps', '+dac_read_search']
    const r = spawnSync('setpriv', [...nobody, '--', process.execPath, cli, 'feature', 'probe', '--json'], { encoding: 'utf8' })
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(/^bpfkit: feature probe: every probe was refused, so nothing can be told about this kernel \(run as root\): map_create: EPERM/)
    expect(r.status).toBe(1)
  })

  test('usage: feature alone, another word or an extra argument exit 2; --help exits 0', () => {
    for (const args of [['feature'], ['feature', 'list'], ['feature', 'probe', 'kernel'], ['feature', 'probe', '--full']]) {
      const r = bpfkit(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toContain('usage: bpfkit feature probe [--json]')
    }
    const help = bpfkit('feature', '--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toContain('usage: bpfkit feature probe [--json]')
  })
})

// What the verifier says to `call helper; r0 = 0; exit` as program type `type`.
function verifierSays(type: 'socket_filter' | 'xdp' | 'sched_cls', helper: string): string {
  const id = kernel.helpers[helper as keyof typeof kernel.helpers]
  try {
    BpfProgram.loadSync({ type, bytes: asm.assemble([asm.call(id), asm.mov64Imm(asm.R0, 0), asm.exit()]), license: 'GPL', logLevel: 1 }).close()
    return 'loaded'
  } catch (e) {
    if (!(e instanceof VerifierError)) throw e
    return e.log.join('\n')
  }
}

describe('bpftool agrees', () => {
  test('map and program types: the same answer where both tools answer', (ctx) => {
    const tool = bpftool(ctx).json('feature', 'probe')
    const compare = (ours: ProbeAnswer[], theirs: Record<string, boolean>, suffix: string) => {
      const mine = byName(ours)
      let compared = 0
      for (const [key, has] of Object.entries(theirs)) {
        const a = mine.get(key.slice('have_'.length, -suffix.length))
        // A type this bpfkit does not know, or whose probe was refused here (the report says why).
        if (a === undefined || a.supported === null) continue
        if (suffix === '_prog_type' && needTarget.has(a.name)) continue
        expect(a.supported, key).toBe(has)
        compared++
      }
      expect(compared).toBeGreaterThan(20)
    }
    compare(report.mapTypes, tool.map_types, '_map_type')
    compare(report.programTypes, tool.program_types, '_prog_type')
  })

  test('helpers per program type: ours within bpftool\'s; each one only bpftool lists is one the verifier refuses to that type', (ctx) => {
    const tool = bpftool(ctx).json('feature', 'probe')
    const known = new Set(Object.values(tool.helpers as Record<string, string[]>).flat())
    for (const [type, names] of Object.entries(report.helpers)) {
      const theirs: string[] | undefined = tool.helpers[`${type}_available_helpers`]
      if (theirs === undefined || needTarget.has(type)) continue
      const ours = new Set(names.map((h) => `bpf_${h}`))
      // Ours within bpftool's, but for the helpers it skips and those newer than it knows.
      for (const h of ours) if (known.has(h) && !bpftoolSkips.has(h)) expect(theirs, `${type}: ${h}`).toContain(h)
      // libbpf before 1.2 reads only "invalid func" and "unknown func" as
      // absence; newer kernels (6.2+) say "program of this type cannot use
      // helper", which it counts as support. Each helper it lists beyond ours
      // must be refused so by the verifier (checked on a few per type).
      if (type === 'socket_filter' || type === 'xdp' || type === 'sched_cls') {
        for (const h of theirs.filter((x) => !ours.has(x)).slice(0, 3)) {
          expect(verifierSays(type, h.slice('bpf_'.length)), `${type}: ${h}`).toMatch(/cannot use helper|unknown func/)
        }
      }
    }
  })
})
