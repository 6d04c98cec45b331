// `bpfkit policy`: check a clang-built object against a capability policy,
// and list what the running kernel offers to write one.
//   policy check <obj.o> --policy <p.json> [--json]   violations per program; exit 1 when there are any
//   policy helpers [--prog-type T] [--json]          helpers of this kernel (those type T may call)
//   policy kfuncs [--prog-type T] [--json]           kfuncs of this kernel (those type T may call)
import { basename } from 'node:path'
import { BtfReader } from '../btf/reader.js'
import { CollectionSpec } from '../collection/spec.js'
import { supportsProgramHelper } from '../features/index.js'
import { Policy } from '../policy/policy.js'
import type { Violation } from '../policy/check.js'
import { BpfProgram } from '../prog/program.js'
import { VerifierError, enumValue, findEnumName, kernel, type ProgTypeName } from '../sys/index.js'
import { parseCommand, subcommand, UsageError } from './args.js'

export const policyUsage = `usage: bpfkit policy check OBJ.o --policy P.json [--json]
       bpfkit policy helpers|kfuncs [--prog-type T] [--json]
  check: each program of a clang-built object against a capability policy (exit 1 on violations)
  helpers, kfuncs: what this kernel offers (those program type T may call), to write a policy`

const json = { json: { type: 'boolean' } } as const

/** Runs `bpfkit policy <sub> ...`; returns the exit status. */
export function runPolicy(args: readonly string[], out: (s: string) => void): number {
  const sub = subcommand('policy', args[0], ['check', 'helpers', 'kfuncs'] as const, policyUsage)
  const name = `policy ${sub}`
  if (sub === 'check') {
    const { values, positionals: [object] } = parseCommand({ name, usage: policyUsage, options: { ...json, policy: { type: 'string' } }, positionals: [1, 1], names: ['OBJ.o'] }, args.slice(1))
    if (values.policy === undefined) throw new UsageError('policy check: --policy <file.json> is required', policyUsage)
    return check(object, values.policy, values.json === true, out)
  }
  const { values } = parseCommand({ name, usage: policyUsage, options: { ...json, 'prog-type': { type: 'string' } } }, args.slice(1))
  return list(values['prog-type'], values.json === true, sub === 'helpers' ? helpers : kfuncs, out)
}

function check(object: string, policyFile: string, json: boolean, out: (s: string) => void): number {
  const found = checkPrograms(CollectionSpec.fromFile(object), Policy.fromFile(policyFile))
  if (json) out(JSON.stringify(found, null, 2))
  else for (const line of formatViolations(found, basename(object))) out(line)
  return Object.values(found).some((v) => v.length > 0) ? 1 : 0
}

/** Each program of `spec` (or those named) checked against `policy`: its violations, by program name. */
export function checkPrograms(spec: CollectionSpec, policy: Policy, names: readonly string[] = Object.keys(spec.programs)): Record<string, Violation[]> {
  const programs = spec.programs as Record<string, CollectionSpec['programs'][string]>
  return Object.fromEntries(names.map((name) => [name, policy.check(programs[name], { name })]))
}

/** `policy check`'s text: each program allowed or its violations, then the object's total. */
export function formatViolations(found: Record<string, Violation[]>, object: string): string[] {
  const lines: string[] = []
  const plural = (n: number) => `${n} violation${n === 1 ? '' : 's'}`
  for (const [name, violations] of Object.entries(found)) {
    lines.push(`${name}: ${violations.length === 0 ? 'allowed' : plural(violations.length)}`)
    for (const v of violations) lines.push(`  ${v.message}`)
  }
  const total = Object.values(found).reduce((n, v) => n + v.length, 0)
  lines.push(`${object}: ${total === 0 ? 'every program is allowed' : plural(total)}`)
  return lines
}

function list(progTypeName: string | undefined, json: boolean, names: (progType: number | undefined) => string[], out: (s: string) => void): number {
  let progType: number | undefined
  try {
    progType = progTypeName === undefined ? undefined : enumValue(kernel.progTypes, 'program type', progTypeName as ProgTypeName)
  } catch (e) {
    throw new UsageError((e as Error).message, policyUsage)
  }
  const found = names(progType)
  out(json ? JSON.stringify(found) : found.join('\n'))
  return 0
}

// The helpers of this kernel, from its BTF's enum bpf_func_id; with a
// program type, those the type may call (a feature probe each).
function helpers(progType: number | undefined): string[] {
  const btf = BtfReader.fromFile()
  const id = btf.find('bpf_func_id', 'ENUM')
  if (id === undefined) throw new Error('this kernel\'s BTF has no enum bpf_func_id')
  const all = btf.enumValues(btf.type(id)).filter((e) => e.value > 0n && e.name.startsWith('BPF_FUNC_') && e.name !== 'BPF_FUNC_MAX_ID')
    .map((e) => ({ name: e.name.slice('BPF_FUNC_'.length), id: Number(e.value) }))
  return all.filter((h) => progType === undefined || supportsProgramHelper(progType, h.id)).map((h) => h.name)
}

// The kfuncs of this kernel: the FUNCs its BTF tags bpf_kfunc. With a
// program type, those the verifier lets that type call: it refuses a kfunc
// not registered for the type ("calling kernel function X is not allowed")
// before looking at any argument.
function kfuncs(progType: number | undefined): string[] {
  const btf = BtfReader.fromFile()
  const names: { name: string; id: number }[] = []
  for (const t of btf.types()) {
    if (t.kind === 'DECL_TAG' && t.name === 'bpf_kfunc') {
      const f = btf.type(t.sizeOrType)
      if (f.kind === 'FUNC') names.push({ name: f.name, id: f.id })
    }
  }
  names.sort((x, y) => (x.name < y.name ? -1 : 1))
  if (progType === undefined) return names.map((k) => k.name)
  return names.filter((k) => mayCallKfunc(progType, k.id)).map((k) => k.name)
}

// Types whose loads need an attach target (or a struct_ops map): a bare
// probe program fails before the verifier reaches the kfunc call.
const needsTarget = new Set(['tracing', 'lsm', 'struct_ops', 'ext'].map((n) => enumValue(kernel.progTypes, 'program type', n as ProgTypeName)))

function mayCallKfunc(progType: number, btfId: number): boolean {
  if (needsTarget.has(progType)) throw new UsageError(`policy kfuncs: --prog-type ${findEnumName(kernel.progTypes, progType) ?? progType} loads only for an attach target, so it cannot be probed this way; list without --prog-type`)
  const call = new Uint8Array(16 + 16)
  const v = new DataView(call.buffer)
  call[0] = 0x85 // call
  call[1] = 2 << 4 // BPF_PSEUDO_KFUNC_CALL
  v.setInt32(4, btfId, true)
  call[8] = 0xb7 // r0 = 0
  call[16] = 0x95 // exit
  try {
    // Syscall programs load only sleepable.
    const flags = progType === kernel.progTypes.syscall ? (['sleepable'] as const) : []
    BpfProgram.loadSync({ type: progType, bytes: call.subarray(0, 24), license: 'GPL', logLevel: 1, flags }).close()
    return true
  } catch (e) {
    if (!(e instanceof VerifierError)) throw new UsageError(`policy kfuncs: cannot probe program type ${progType} this way (${(e as Error).message.split('\n')[0]}); list without --prog-type`)
    // The verifier refuses a kfunc the type may not call (or that needs more,
    // such as a device-bound XDP program) when it first looks at the
    // program; a refusal at the call itself is about the probe's arguments.
    return e.log.some((l) => /^0: \(85\) call/.test(l))
  }
}
