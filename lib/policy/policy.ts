// Typed delegation policies: what a bpffs delegation mount, and every token
// made from it, lets a tenant do. The kernel checks a token only when it is
// used and then, when the token does not cover the request, silently ignores
// it and answers EPERM. A Policy says beforehand, and by name, what is missing.
import { readFileSync } from 'node:fs'
import { PolicyError } from '../sys/errors.js'
import { checkOptions, describeValue } from '../sys/options.js'
import type { AttachTypeName, CommandName, MapTypeName, ProgTypeName } from '../sys/generated/kernel-enums.js'
import type { TokenRequest } from '../sys/token.js'
import { closestEnumName, findEnumName, findEnumValue } from '../sys/names.js'
import { ALL, kindNames, kinds, knownMask, type PolicyKind, type PolicyMasks } from './kinds.js'

// As bpffs prints and parses delegate_* names: the kernel's first name, any case.
const nameOfValue = (kind: PolicyKind, value: number) => findEnumName(kinds[kind].table, value, { kernelOrder: true })
const valueOfName = (kind: PolicyKind, name: string) => findEnumValue(kinds[kind].table, name, { ignoreCase: true })
import { bpffsMountEntry, fdinfoMasks, mountOptionMasks } from './mount-options.js'
import {
  CapabilityRules, type CapabilityDocument, type CapabilityKind, type CapabilityOptions, type CapabilitySet, type Grant, type PolicyContext, type ProgramTarget,
} from './capabilities.js'
import { assertProgram, checkProgram, type CheckContext, type CheckedProgram, type Violation } from './check.js'
import type { ProgramSpec } from '../prog/spec.js'

export type { PolicyKind, PolicyMasks }

/** `'any'`, or a list of the kernel's names (numbers, the enum values, are accepted too). */
export type PolicySet<Name extends string> = 'any' | readonly (Name | number)[]

/**
 * What a delegation grants: bpf() commands, map types, program types and
 * attach types. Each is `'any'` or a list; a missing kind delegates nothing.
 */
export interface DelegationPolicy {
  cmds: PolicySet<CommandName>
  maps: PolicySet<MapTypeName>
  progs: PolicySet<ProgTypeName>
  attachs: PolicySet<AttachTypeName>
}

/**
 * A policy as written (and as JSON holds it): the token masks, and the
 * optional capability sets and contexts. `$schema` (for editors) is ignored.
 */
export interface PolicyDocument extends Partial<DelegationPolicy>, CapabilityDocument {
  $schema?: string
}

/** What `toJSON` gives: the four masks always, capabilities and contexts when the policy has them. */
export interface PolicyJSON extends DelegationPolicy {
  capabilities?: Record<string, CapabilitySet>
  contexts?: PolicyContext[]
}

export type PolicyLike = Policy | PolicyDocument

const documentKeys: readonly string[] = [...kindNames, 'capabilities', 'contexts', '$schema']

const maxBit = 63

/**
 * An immutable, validated delegation policy. Build one with `Policy.from`,
 * or read one back from mount options, /proc/self/mountinfo or a token.
 */
export class Policy implements DelegationPolicy {
  readonly cmds: PolicySet<CommandName>
  readonly maps: PolicySet<MapTypeName>
  readonly progs: PolicySet<ProgTypeName>
  readonly attachs: PolicySet<AttachTypeName>
  /** Capability sets by name (includes unresolved), when the policy has any: see `grantsFor`. */
  readonly capabilities: Readonly<Record<string, CapabilitySet>> | undefined
  /** Contexts in order (Grant.contexts and Violation.context index them), when the policy has any. */
  readonly contexts: readonly PolicyContext[] | undefined
  readonly #masks: PolicyMasks
  readonly #rules: CapabilityRules | undefined

  private constructor(masks: PolicyMasks, rules?: CapabilityRules) {
    this.#masks = { ...masks }
    this.#rules = rules
    this.cmds = itemsOf('cmds', masks.cmds) as PolicySet<CommandName>
    this.maps = itemsOf('maps', masks.maps) as PolicySet<MapTypeName>
    this.progs = itemsOf('progs', masks.progs) as PolicySet<ProgTypeName>
    this.attachs = itemsOf('attachs', masks.attachs) as PolicySet<AttachTypeName>
    this.capabilities = rules?.capabilities
    this.contexts = rules?.contexts
    Object.freeze(this)
  }

  /**
   * Validates a policy. Errors: TypeError for an unknown key, a value that is
   * neither 'any' nor a list, or an unknown name (with the closest known
   * one); RangeError for a number outside 0..63 (the masks have 64 bits).
   * Names of types and commands match case-insensitively, as the kernel's do.
   *
   * `capabilities` and `contexts` (see capabilities.ts) are checked too:
   * TypeError for an unknown helper, map type, program or attach type,
   * capability set, an include cycle, and, when the kernel's BTF is there
   * (`options.kernelBtf`, by default /sys/kernel/btf/vmlinux), a kfunc or an
   * attach target it does not have; each names the closest known name.
   * A policy without them means what it meant before: token masks only.
   */
  static from(policy: PolicyLike, options: CapabilityOptions = {}): Policy {
    checkOptions('Policy.from', options, ['kernelBtf'])
    const btf = options.kernelBtf
    if (btf !== undefined && btf !== null && typeof btf !== 'object' && typeof btf !== 'string') {
      throw new TypeError(`Policy.from: option 'kernelBtf' must be a BtfReader, BTF bytes, a path or null, got ${describeValue(btf)}`)
    }
    if (policy instanceof Policy) return policy
    if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
      throw new TypeError(`policy must be an object like { cmds, maps, progs, attachs }, got ${describeValue(policy)}`)
    }
    // A document of token masks only is told the keys it was always told; one
    // with capabilities or contexts, every key.
    const full = Object.hasOwn(policy, 'capabilities') || Object.hasOwn(policy, 'contexts')
    const known = full ? documentKeys : Object.hasOwn(policy, '$schema') ? [...kindNames, '$schema'] : kindNames
    checkOptions('policy', policy, known, { noun: 'key', types: { $schema: 'string' } })
    const masks = { cmds: 0n, maps: 0n, progs: 0n, attachs: 0n }
    for (const kind of kindNames) masks[kind] = maskOfSet(kind, (policy as Record<string, unknown>)[kind])
    return new Policy(masks, CapabilityRules.parse(policy, options))
  }

  /**
   * A policy from a JSON file (a PolicyDocument; policy.schema.json in this
   * package describes it for editors). Errors: those of readFileSync
   * (ENOENT...), SyntaxError for text that is not JSON, and those of
   * `Policy.from`, each naming the file.
   */
  static fromFile(path: string, options: CapabilityOptions = {}): Policy {
    if (typeof path !== 'string') throw new TypeError(`Policy.fromFile: path must be a string, got ${describeValue(path)}`)
    checkOptions('Policy.fromFile', options, ['kernelBtf'])
    const text = readFileSync(path, 'utf8')
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch (e) {
      throw new SyntaxError(`${path}: not JSON: ${(e as Error).message}`)
    }
    try {
      return Policy.from(doc as PolicyDocument, options)
    } catch (e) {
      if (e instanceof TypeError) throw new TypeError(`${path}: ${e.message}`)
      if (e instanceof RangeError) throw new RangeError(`${path}: ${e.message}`)
      throw e
    }
  }

  /** A policy from the kernel's masks (bpf_token_info). */
  static fromMasks(masks: Partial<PolicyMasks>): Policy {
    checkOptions('Policy.fromMasks: masks', masks, kindNames, { required: true, noun: 'key' })
    const m = { cmds: 0n, maps: 0n, progs: 0n, attachs: 0n }
    for (const kind of kindNames) {
      const v = masks[kind] ?? 0n
      if (typeof v !== 'bigint' || v < 0n || v > ALL) throw new RangeError(`masks.${kind} must be a 64-bit unsigned bigint`)
      m[kind] = v
    }
    return new Policy(m)
  }

  /**
   * A policy from bpffs mount options ("rw,delegate_cmds=map_create:prog_load"
   * or ['delegate_maps=hash', ...]), read as the kernel reads them: within one
   * value names add bits and a number replaces the mask; entries add up.
   * Errors: TypeError for an unknown name or a bad number.
   */
  static fromMountOptions(options: string | readonly string[]): Policy {
    return Policy.fromMasks(mountOptionMasks(options))
  }

  /**
   * The policy of the bpffs mounted at `mountPoint` (default /sys/fs/bpf) as
   * /proc/self/mountinfo shows it (or the mountinfo text given).
   * Errors: Error when no bpffs is mounted there.
   */
  static fromMountinfo(mountPoint = '/sys/fs/bpf', mountinfo?: string): Policy {
    return Policy.fromMountOptions(bpffsMountEntry(mountPoint, mountinfo).superOptions)
  }

  /** The policy in a token's fdinfo text (allowed_* lines; every kernel with tokens). */
  static fromFdinfo(text: string): Policy {
    return Policy.fromMasks(fdinfoMasks(text))
  }

  /** Delegates nothing. */
  static none(): Policy {
    return new Policy({ cmds: 0n, maps: 0n, progs: 0n, attachs: 0n })
  }

  /** Delegates everything (delegate_*=any). */
  static any(): Policy {
    return new Policy({ cmds: ALL, maps: ALL, progs: ALL, attachs: ALL })
  }

  /** The kernel's masks: `any` is all 64 bits set, as the kernel stores it. */
  masks(): PolicyMasks {
    return { ...this.#masks }
  }

  /**
   * True when the policy has capabilities or contexts: programs are then
   * checked for the helpers, kfuncs and map types they use. False: a policy
   * of token masks only, which says nothing about what is inside programs.
   */
  get hasCapabilities(): boolean {
    return this.#rules !== undefined
  }

  /**
   * What a program matching `target` may use: the union of the capability
   * sets (with what they include) of every context that matches it; nothing
   * when no context matches, or the policy has no capabilities (see
   * `hasCapabilities`). Errors: TypeError for a target of the wrong shape or
   * an unknown program or attach type.
   */
  grantsFor(target: ProgramTarget): Grant {
    if (this.#rules) return this.#rules.grantsFor(target)
    // Validated all the same, so that a bad target is an error whatever the policy.
    return CapabilityRules.none.grantsFor(target)
  }

  /**
   * What the contexts at `indexes` of `contexts` grant together (the union
   * of their capability sets, with what those include), whatever programs
   * they match: how the guard compiles each context. Errors: RangeError for
   * an index that is not a context's.
   */
  grantOf(indexes: readonly number[]): Grant {
    return (this.#rules ?? CapabilityRules.none).grantOf(indexes)
  }

  /**
   * The capability sets (with what they include) that have `name`, a helper
   * ('skb_load_bytes'), a kfunc or a map type ('hash'), in the order the
   * policy lists them: what a refusal suggests. Errors: TypeError for a
   * kind other than 'helper', 'kfunc', 'map'.
   */
  setsAllowing(kind: CapabilityKind, name: string): string[] {
    return (this.#rules ?? CapabilityRules.none).setsAllowing(kind, name)
  }

  /** True when nothing at all is delegated (BPF_TOKEN_CREATE then fails with ENOENT). */
  get empty(): boolean {
    return kindNames.every((k) => this.#masks[k] === 0n)
  }

  /** Whether `kind` delegates the value `item` (a name or number). */
  has(kind: PolicyKind, item: string | number): boolean {
    checkKind('has', kind)
    const bit = bitOf(kind, item, `${kind}`)
    return (this.#masks[kind] & (1n << BigInt(bit))) !== 0n
  }

  /**
   * Why the kernel would ignore a token with this policy for `request`, as a
   * PolicyError naming the missing command, map type, program type or attach
   * type; undefined when the policy covers it. Mirrors the kernel: a program
   * load asks for its program type and its expected attach type, which is 0
   * ('cgroup_inet_ingress') when none is given, except for cgroup_sock and
   * sk_reuseport programs, whose attach type the kernel fills in first.
   */
  explain(request: TokenRequest, subject = 'token'): PolicyError | undefined {
    // `subject` is who refuses, as the message names it: 'token' or 'policy'.
    if (request === null || typeof request !== 'object') throw new TypeError(`explain: request must be an object like { cmd, mapType }, got ${describeValue(request)}`)
    if (typeof subject !== 'string') throw new TypeError(`explain: subject must be a string, got ${describeValue(subject)}`)
    checkOptions('explain: request', request, ['cmd', 'mapType', 'progType', 'attachType'], { noun: 'key' })
    const cmd = valueOrThrow('cmds', request.cmd, 'request.cmd')
    if (!this.bit('cmds', cmd)) return this.refusal('cmds', cmd, subject)
    if (request.mapType !== undefined) {
      const t = valueOrThrow('maps', request.mapType, 'request.mapType')
      if (!this.bit('maps', t)) return this.refusal('maps', t, subject)
    }
    if (request.progType !== undefined) {
      const t = valueOrThrow('progs', request.progType, 'request.progType')
      if (!this.bit('progs', t)) return this.refusal('progs', t, subject)
      const given = request.attachType === undefined ? 0 : valueOrThrow('attachs', request.attachType, 'request.attachType')
      const attach = given === 0 ? defaultAttachType(t) : given
      if (!this.bit('attachs', attach)) {
        const note = given === 0 && attach === 0
          ? ` (a program loaded without an expected attach type asks for attach type 0, '${nameOfValue('attachs', 0)}')`
          : ''
        return this.refusal('attachs', attach, subject, note)
      }
    } else if (request.attachType !== undefined) {
      const t = valueOrThrow('attachs', request.attachType, 'request.attachType')
      if (!this.bit('attachs', t)) return this.refusal('attachs', t, subject)
    }
    return undefined
  }

  /** Throws the PolicyError from `explain`, if any. */
  check(request: TokenRequest, subject?: string): void
  /**
   * Every use of a helper, kfunc or map in `program` that the contexts
   * matching it (`context`, or what the program says of itself) do not
   * grant; [] for a policy without capabilities. See check.ts.
   */
  check(program: CheckedProgram, context?: CheckContext): Violation[]
  check(what: TokenRequest | CheckedProgram, second?: string | CheckContext): void | Violation[] {
    // A token request is a plain object ({ cmd, ... }); a program is an
    // instruction array or bytes, a ProgramSpec or a BpfProgram.
    if (isProgram(what)) return checkProgram(this, what, second as CheckContext | undefined)
    const e = this.explain(what as TokenRequest, second === undefined ? 'token' : (second as string))
    if (e) throw e
  }

  /** Throws a PolicyError (rule 'capabilities') listing every violation `check` finds. */
  assert(program: CheckedProgram, context?: CheckContext): void {
    assertProgram(this, program, context)
  }

  /** For `BpfProgram.load({ policy })` and `spec.load({ policy })`: `assert` on a spec, before any syscall. */
  assertProgram(spec: ProgramSpec): void {
    assertProgram(this, spec)
  }

  allows(request: TokenRequest): boolean {
    return this.explain(request) === undefined
  }

  /**
   * Whether everything `other` delegates, this delegates too. Capabilities
   * are compared conservatively: a policy without them allows any program
   * content; one with them includes another only when that one has the same
   * capability sets and contexts.
   */
  includes(other: PolicyLike): boolean {
    const o = Policy.from(other)
    if (this.#rules && !(o.#rules && this.#rules.equals(o.#rules))) return false
    return kindNames.every((k) => (o.#masks[k] & ~this.#masks[k]) === 0n)
  }

  /**
   * What both delegate; the capabilities of whichever has them. Errors:
   * TypeError when both have different capabilities (no policy document
   * can say their intersection in general).
   */
  intersect(other: PolicyLike): Policy {
    const o = Policy.from(other)
    if (this.#rules && o.#rules && !this.#rules.equals(o.#rules)) {
      throw new TypeError('intersect: both policies have capabilities, and different ones; intersect the token masks of one with the other (Policy.from({ ...a.toJSON(), capabilities: undefined, contexts: undefined }))')
    }
    const m = this.masks()
    for (const k of kindNames) m[k] &= o.#masks[k]
    return new Policy(m, this.#rules ?? o.#rules)
  }

  /**
   * This policy's token masks with `other`'s capability sets and contexts
   * (none when it has none). For a manager granting a tenant's smaller masks
   * under its own capabilities: `offered.includes(wanted.withCapabilitiesOf(offered))`.
   */
  withCapabilitiesOf(other: PolicyLike): Policy {
    return new Policy(this.masks(), Policy.from(other).#rules)
  }

  /** The same masks, and the same capability sets and contexts (or neither has any). */
  equals(other: PolicyLike): boolean {
    const o = Policy.from(other)
    if ((this.#rules === undefined) !== (o.#rules === undefined)) return false
    if (this.#rules && o.#rules && !this.#rules.equals(o.#rules)) return false
    return kindNames.every((k) => normalized(k, o.#masks[k]) === normalized(k, this.#masks[k]))
  }

  /**
   * bpffs mount options, one `key=value` per entry, names joined by ':' as
   * the kernel prints them. Each entry adds to the mask; kinds that delegate
   * nothing are left out. A value this build has no name for travels in its
   * own entry as a hex mask, because inside one value a number replaces the
   * mask built so far instead of adding to it.
   */
  toMountOptions(): string[] {
    const out: string[] = []
    for (const kind of kindNames) {
      const mask = this.#masks[kind]
      if (mask === 0n) continue
      const { option } = kinds[kind]
      if (isAny(kind, mask)) {
        out.push(`${option}=any`)
        continue
      }
      const names: string[] = []
      let unnamed = 0n
      for (let bit = 0; bit <= maxBit; bit++) {
        if ((mask & (1n << BigInt(bit))) === 0n) continue
        const name = nameOfValue(kind, bit)
        if (name === undefined) unnamed |= 1n << BigInt(bit)
        else names.push(name)
      }
      if (names.length > 0) out.push(`${option}=${names.join(':')}`)
      if (unnamed !== 0n) out.push(`${option}=0x${unnamed.toString(16)}`)
    }
    return out
  }

  /** The mount options joined by commas, as `mount -o` takes them. */
  toString(): string {
    return this.toMountOptions().join(',') || '(nothing delegated)'
  }

  /** The policy document; `Policy.from(p.toJSON())` equals `p`. Capabilities and contexts only when the policy has them. */
  toJSON(): PolicyJSON {
    const masks = { cmds: this.cmds, maps: this.maps, progs: this.progs, attachs: this.attachs }
    return this.#rules ? { ...masks, ...this.#rules.toJSON() } : masks
  }

  /** One line per kind, for people: "map types: hash, array"; then the capability sets and contexts, if any. */
  describe(): string[] {
    const lines = kindNames.map((k) => `${kinds[k].plural}: ${listText(this[k])}`)
    if (this.#rules) {
      for (const [name, set] of Object.entries(this.#rules.capabilities)) lines.push(`capability set ${name}: ${setText(set)}`)
      this.#rules.contexts.forEach((c, i) => lines.push(`context ${i}: ${contextText(c)} -> ${c.grant.join(', ') || 'nothing'}`))
    }
    return lines
  }

  private bit(kind: PolicyKind, value: number): boolean {
    return (this.#masks[kind] & (1n << BigInt(value))) !== 0n
  }

  private refusal(kind: PolicyKind, value: number, subject: string, note = ''): PolicyError {
    const { noun, plural, option } = kinds[kind]
    const name = nameOfValue(kind, value) ?? String(value)
    const granted = this[kind]
    const has = granted === 'any' || granted.length > 0 ? `it delegates ${plural}: ${listText(granted)}` : `it delegates no ${plural}`
    return new PolicyError(option, name, `${subject} does not delegate ${noun} '${name}'${note}; ${has}`)
  }
}


function isProgram(v: unknown): v is CheckedProgram {
  if (Array.isArray(v) || v instanceof Uint8Array) return true
  if (v === null || typeof v !== 'object') return false
  const proto = Object.getPrototypeOf(v)
  return proto !== Object.prototype && proto !== null
}

function setText(set: CapabilitySet): string {
  const parts: string[] = []
  if (set.include?.length) parts.push(`includes ${set.include.join(', ')}`)
  if (set.helpers?.length) parts.push(`helpers ${set.helpers.join(', ')}`)
  if (set.kfuncs?.length) parts.push(`kfuncs ${set.kfuncs.join(', ')}`)
  if (set.maps?.length) parts.push(`map types ${set.maps.join(', ')}`)
  return parts.join('; ') || 'nothing'
}

function contextText(c: PolicyContext): string {
  const parts: string[] = []
  if (c.progs) parts.push(`program types ${c.progs.join(', ') || '(none)'}`)
  if (c.attachs) parts.push(`attach types ${c.attachs.join(', ') || '(none)'}`)
  if (c.attachTo) parts.push(`attached to ${c.attachTo.join(', ') || '(none)'}`)
  if (c.member) parts.push(`members ${c.member.join(', ') || '(none)'}`)
  return parts.join(', ') || 'every program'
}

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? 'an' : 'a'
}

function listText(set: PolicySet<string>): string {
  if (set === 'any') return 'any'
  return set.length === 0 ? 'none' : set.join(', ')
}

// The kernel stores `any` as all bits; it prints a mask covering every value
// it knows as "any" too.
function isAny(kind: PolicyKind, mask: bigint): boolean {
  const known = knownMask(kind)
  return mask === ALL || (mask & known) === known
}

function normalized(kind: PolicyKind, mask: bigint): bigint {
  return isAny(kind, mask) ? ALL : mask
}

function itemsOf(kind: PolicyKind, mask: bigint): PolicySet<string> {
  if (isAny(kind, mask)) return 'any'
  const items: (string | number)[] = []
  for (let bit = 0; bit <= maxBit; bit++) {
    if ((mask & (1n << BigInt(bit))) !== 0n) items.push(nameOfValue(kind, bit) ?? bit)
  }
  return Object.freeze(items)
}

function maskOfSet(kind: PolicyKind, set: unknown): bigint {
  const where = `policy.${kind}`
  if (set === undefined) return 0n
  if (set === 'any') return ALL
  if (!Array.isArray(set)) {
    throw new TypeError(`${where} must be 'any' or a list of ${kinds[kind].plural}, got ${describeValue(set)}`)
  }
  let mask = 0n
  set.forEach((item, i) => {
    mask |= 1n << BigInt(bitOf(kind, item, `${where}[${i}]`))
  })
  return mask
}

function checkKind(where: string, kind: unknown): asserts kind is PolicyKind {
  if (typeof kind !== 'string' || !(kindNames as readonly string[]).includes(kind)) {
    throw new TypeError(`${where}: kind must be one of ${kindNames.join(', ')}, got ${describeValue(kind)}`)
  }
}

function bitOf(kind: PolicyKind, item: unknown, where: string): number {
  const { noun } = kinds[kind]
  if (typeof item === 'number') {
    if (!Number.isInteger(item) || item < 0 || item > maxBit) {
      throw new RangeError(`${where}: ${item} is out of range for ${kinds[kind].plural} (0..${maxBit}: delegation masks have 64 bits)`)
    }
    return item
  }
  if (typeof item !== 'string') throw new TypeError(`${where}: ${article(noun)} ${noun} must be a name or a number, got ${describeValue(item)}`)
  if (item === 'any') throw new TypeError(`${where}: 'any' stands alone (${where.replace(/\[\d+\]$/, '')}: 'any'), not inside a list`)
  const v = valueOfName(kind, item)
  if (v === undefined) {
    const hint = closestEnumName(kinds[kind].table, item)
    throw new TypeError(`${where}: unknown ${noun} '${item}'${hint ? ` (did you mean '${hint}'?)` : ''}`)
  }
  if (v > maxBit) throw new RangeError(`${where}: ${noun} '${item}' (${v}) cannot be delegated: delegation masks have 64 bits`)
  return v
}

function valueOrThrow(kind: PolicyKind, item: string | number, where: string): number {
  return bitOf(kind, item, where)
}

// bpf_prog_load_fixup_attach_type(): the kernel gives these program types an
// attach type before it asks the token.
function defaultAttachType(progType: number): number {
  const name = nameOfValue('progs', progType)
  if (name === 'cgroup_sock') return valueOfName('attachs', 'cgroup_inet_sock_create') ?? 0
  if (name === 'sk_reuseport') return valueOfName('attachs', 'sk_reuseport_select') ?? 0
  return 0
}
