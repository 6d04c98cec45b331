// The static program checker: every helper, kfunc and map a program uses
// (program-view.ts reads them, in every subprogram and callback, reachable
// or not) against what the policy's contexts grant the program. A program
// matches contexts by what it says of itself (type, expected attach type,
// attach target, struct_ops members), or by the context the caller gives.
// A policy without capabilities checks nothing, as before they existed.
import type { AttachTypeName, ProgTypeName } from '../sys/generated/kernel-enums.js'
import { PolicyError } from '../sys/errors.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { Grant, ProgramTarget } from './capabilities.js'
import { programView, type CheckedProgram, type ProgramUse } from './program-view.js'

export type { CheckedProgram } from './program-view.js'

/**
 * What to match the program as, over what it says of itself (a ProgramSpec
 * from an object knows its type, attach target and struct_ops members; raw
 * instructions know nothing and need at least `type`); `name` names it in messages.
 */
export interface CheckContext extends Partial<ProgramTarget> {
  name?: string
}

/** One use of a helper, kfunc or map that no matching context grants. */
export interface Violation {
  /** Program name when known. */
  program: string | undefined
  /** Instruction index in the (linked) program, in slots as the verifier counts; -1 for a map known only from a loaded program's map IDs. */
  insn: number
  /** 'file.bpf.c:12: return bpf_probe_write_user(...)' from BTF line info, when the program has it. */
  source: string | undefined
  kind: 'helper' | 'kfunc' | 'map'
  /** Helper name (without 'bpf_'), kfunc name, or map name. */
  name: string
  /** For kind 'map': its type ('lru_hash'). */
  mapType?: string
  /** Indexes in policy.contexts of the contexts that matched (empty: none did, so nothing was granted). */
  context: number[]
  /** Capability sets that would allow it: policy.setsAllowing(kind, name or map type). */
  allowedBy: string[]
  /** One line: "insn 12 (x.bpf.c:7): helper probe_write_user is not granted to kprobe/tcp_connect; capability sets that allow it: trace.write". */
  message: string
}

/** The PolicyError `assert` throws, with every violation. */
export class ProgramPolicyError extends PolicyError {
  readonly violations: readonly Violation[]
  constructor(requested: string, message: string, violations: readonly Violation[]) {
    super('capabilities', requested, message)
    this.violations = Object.freeze([...violations])
  }
}

const contextKeys = ['type', 'expectedAttachType', 'attachTo', 'member', 'name'] as const

/**
 * Every use in `program` of a helper, kfunc or map the contexts matching it
 * do not grant; [] when the policy has no capabilities. Errors: TypeError for
 * a program or context of the wrong shape, or raw instructions without
 * `context.type`; Error when a loaded program's instructions are withheld
 * (no CAP_SYS_ADMIN/CAP_PERFMON).
 */
/** What the checker asks of a policy (Policy has it; named here so policy.ts can import this file without a circle). */
export interface CapabilityPolicy {
  readonly hasCapabilities: boolean
  grantsFor(target: ProgramTarget): Grant
  setsAllowing(kind: 'helper' | 'kfunc' | 'map', name: string): string[]
}

export function checkProgram(policy: CapabilityPolicy, program: CheckedProgram, context?: CheckContext): Violation[] {
  if (context !== undefined) {
    if (context === null || typeof context !== 'object') throw new TypeError(`policy check: context must be an object like { type, attachTo, member }, got ${describeValue(context)}`)
    checkOptions('policy check: context', context, contextKeys, { noun: 'key' })
    for (const k of ['attachTo', 'member', 'name'] as const) {
      if (context[k] !== undefined && typeof context[k] !== 'string') throw new TypeError(`policy check: context.${k} must be a string, got ${describeValue(context[k])}`)
    }
  }
  if (!policy.hasCapabilities) return []
  const view = programView(program)
  const type = context?.type ?? view.type
  if (type === undefined) throw new TypeError('policy check: instructions alone do not say their program type: give context.type')
  const base = {
    type: type as ProgTypeName | number,
    ...defined('expectedAttachType', (context?.expectedAttachType ?? view.expectedAttachType) as AttachTypeName | number | undefined),
    ...defined('attachTo', context?.attachTo ?? view.attachTo),
  }
  // A struct_ops program is matched as each member it fills (attach target:
  // the ops struct), and must be allowed in every one.
  const slots: { attachTo?: string; member?: string }[] = context?.member !== undefined
    ? [{ member: context.member }]
    : view.structOps?.length ? view.structOps.map((s) => ({ ...(context?.attachTo === undefined ? { attachTo: s.type } : {}), member: s.member })) : [{}]
  const grants = slots.map((slot) => {
    const target = { ...base, ...defined('attachTo', slot.attachTo), ...defined('member', slot.member) }
    return { target, grant: policy.grantsFor(target) }
  })
  const name = context?.name ?? view.name
  const out: Violation[] = []
  for (const use of view.uses) {
    const key = use.kind === 'map' ? use.mapType ?? 'unknown' : use.name
    const failed = grants.find(({ grant }) => !partOf(grant, use.kind).has(key))
    if (!failed) continue
    const allowedBy = policy.setsAllowing(use.kind, key)
    const source = use.insn < 0 ? undefined : view.sourceOf(use.insn)
    out.push({
      program: name,
      insn: use.insn,
      source,
      kind: use.kind,
      name: use.name,
      ...(use.kind === 'map' ? { mapType: key } : {}),
      context: [...failed.grant.contexts],
      allowedBy,
      message: messageOf(use, key, source, describeTarget(failed.target), failed.grant.contexts.length === 0, allowedBy),
    })
  }
  return out
}

/** Throws a ProgramPolicyError (a PolicyError, rule 'capabilities') listing every violation `checkProgram` finds. */
export function assertProgram(policy: CapabilityPolicy, program: CheckedProgram, context?: CheckContext): void {
  const violations = checkProgram(policy, program, context)
  if (violations.length === 0) return
  const first = violations[0]
  const what = first.program === undefined ? 'the program' : `program '${first.program}'`
  const shown = violations.slice(0, MAX_LISTED).map((v) => `  ${v.message}`)
  if (violations.length > MAX_LISTED) shown.push(`  (${violations.length - MAX_LISTED} more)`)
  const count = violations.length === 1 ? 'a use' : `${violations.length} uses`
  throw new ProgramPolicyError(`${first.kind} ${first.name}`, `policy refuses ${what}: ${count} not granted\n${shown.join('\n')}`, violations)
}

const MAX_LISTED = 20

function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V }
}

function partOf(grant: { helpers: ReadonlySet<string>; kfuncs: ReadonlySet<string>; maps: ReadonlySet<string> }, kind: ProgramUse['kind']): ReadonlySet<string> {
  return kind === 'helper' ? grant.helpers : kind === 'kfunc' ? grant.kfuncs : grant.maps
}

function describeTarget(t: { type: string | number; expectedAttachType?: string | number; attachTo?: string; member?: string }): string {
  let s = String(t.type)
  if (t.expectedAttachType !== undefined) s += ` (${t.expectedAttachType})`
  if (t.attachTo !== undefined) s += `/${t.attachTo}`
  if (t.member !== undefined) s += ` member ${t.member}`
  return s
}

function messageOf(use: ProgramUse, key: string, source: string | undefined, target: string, noContext: boolean, allowedBy: string[]): string {
  const where = use.insn < 0 ? 'map IDs' : `insn ${use.insn}${source ? ` (${source.slice(0, source.indexOf(': ') < 0 ? undefined : source.indexOf(': '))})` : ''}`
  const what = use.kind === 'map' ? `map ${use.name} of type ${key}` : `${use.kind} ${use.name}`
  const why = noContext ? ' (no policy context matches it)' : ''
  const sets = allowedBy.length ? `capability sets that allow it: ${allowedBy.join(', ')}` : 'no capability set allows it'
  return `${where}: ${what} is not granted to ${target}${why}; ${sets}`
}
