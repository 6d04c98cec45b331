// `bpfkit feature probe [--json]`: what the running kernel has, as bpftool
// feature probe groups it (program types, map types, helpers per program
// type) plus attach families, token features and the other features bpfkit
// probes; each missing one with the release that added it. One library call
// (features.featureReport); this file only prints it.
import { featureReport, type FeatureReport, type ProbeAnswer } from '../features/report.js'
import { parseCommand, subcommand, toJson, type Out } from './args.js'
import { Progress } from './progress.js'

export const featureUsage = `usage: bpfkit feature probe [--json]
  every map type, program type, helper per program type, attach family and token feature
  this kernel has; each missing one with the Linux release (and build options) that added it
  (needs root; about a second: a few thousand tiny program loads)`

/** Why an item is missing, or unknown: '(needs Linux 5.8 and CONFIG_X; detail)'. */
export function describeAnswer(a: ProbeAnswer): string {
  if (a.supported === true) return 'is available'
  if (a.supported === null) return `is unknown (the probe failed: ${a.error})`
  const needs = a.since === undefined ? undefined : `needs Linux ${a.since}${a.config?.length ? ` and ${a.config.join(', ')}` : ''}`
  return `is NOT available (${[needs, a.reason].filter(Boolean).join('; ')})`
}

/** The report as text, grouped as bpftool feature probe prints it. */
export function formatReport(r: FeatureReport): string[] {
  const lines = [`kernel ${r.kernel}`, '', 'Scanning eBPF program types...']
  for (const t of r.programTypes) lines.push(`eBPF program_type ${t.name} ${describeAnswer(t)}`)
  lines.push('', 'Scanning eBPF map types...')
  for (const m of r.mapTypes) lines.push(`eBPF map_type ${m.name} ${describeAnswer(m)}`)
  lines.push('', 'Scanning eBPF helper functions...')
  for (const [type, names] of Object.entries(r.helpers)) {
    lines.push(`eBPF helpers supported for program type ${type}:`)
    for (const h of names) lines.push(`\t- bpf_${h}`)
  }
  for (const [type, why] of Object.entries(r.helpersNotProbed)) lines.push(`eBPF helpers for program type ${type} not probed: ${why}`)
  if (r.missingHelpers.length > 0) {
    lines.push('eBPF helpers this kernel lacks:')
    for (const h of r.missingHelpers) lines.push(`\t- bpf_${h.name} (needs Linux ${h.since})`)
  }
  const group = (title: string, answers: readonly ProbeAnswer[]) => {
    lines.push('', `Scanning ${title}...`)
    for (const a of answers) lines.push(`${a.name}: ${a.title ?? a.name} ${describeAnswer(a)}`)
  }
  group('attach families', r.attach)
  group('token features', r.token)
  group('other features', r.other)
  return lines
}

export function runFeature(args: readonly string[], out: Out): number {
  subcommand('feature', args[0], ['probe'] as const, featureUsage)
  const { values } = parseCommand({ name: 'feature probe', usage: featureUsage, options: { json: { type: 'boolean' } } }, args.slice(1))
  let progress: Progress | undefined
  let report: FeatureReport
  try {
    report = featureReport({ onProbe: (_done, total) => (progress ??= new Progress('probing', total)).tick() })
  } finally {
    progress?.done()
  }
  // Refused everywhere (no CAP_BPF, no token): one error, not a report of unknowns.
  const refused = report.mapTypes.every((a) => a.supported === null) && report.programTypes.every((a) => a.supported === null)
  if (refused) throw new Error(`feature probe: every probe was refused, so nothing can be told about this kernel (run as root): ${report.mapTypes[0]?.error}`)
  if (values.json) out(toJson(report))
  else for (const line of formatReport(report)) out(line)
  return 0
}
