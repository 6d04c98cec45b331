// Capability sets and contexts: what a program may use inside it (helpers,
// kfuncs, map types), finer than a token's program types. The kernel's "BPF
// internal capabilities" proposal wanted this and was never merged; here a
// policy says it, the checker (check.ts) reads programs against it, and the
// broker and guard enforce it.
//
// A capability set names helpers, kfuncs and map types and includes other
// sets; a context matches programs (type, expected attach type, attach target
// glob, struct_ops member) and grants sets. A program gets the union of what
// every matching context grants; no matching context grants nothing.
import { attachTypes, helpers, mapTypes, progTypes } from '../sys/generated/kernel-enums.js'
import type { AttachTypeName, HelperName, MapTypeName, ProgTypeName } from '../sys/generated/kernel-enums.js'
import { closestEnumName, findEnumName, findEnumValue, type EnumTable } from '../sys/names.js'
import { checkOptions, describeValue } from '../sys/options.js'
import { closestOf, kernelNames, type KernelBtfSource, type KernelNames } from './kernel-names.js'
import { globPattern } from '../sys/glob.js'

/** A capability set as written: every part optional. */
export interface CapabilitySetInput {
  /** Other sets whose helpers, kfuncs and map types this one has too. */
  include?: readonly string[]
  /** Helper names as the kernel's enum bpf_func_id spells them without `BPF_FUNC_` ('map_lookup_elem'; 'bpf_' prefix accepted), or ids. */
  helpers?: readonly (HelperName | number | string)[]
  /** Kfunc names as in the kernel's BTF ('bpf_task_acquire'). */
  kfuncs?: readonly string[]
  /** Map types a program may reference ('hash'), or their numbers. */
  maps?: readonly (MapTypeName | number)[]
}

/** A capability set as a Policy keeps it: names canonical, only the parts given. */
export interface CapabilitySet {
  readonly include?: readonly string[]
  readonly helpers?: readonly HelperName[]
  readonly kfuncs?: readonly string[]
  readonly maps?: readonly MapTypeName[]
}

/** A context as written. A part left out matches every program; an empty list matches none. */
export interface PolicyContextInput {
  /** Program types. */
  progs?: readonly (ProgTypeName | number)[]
  /** Expected attach types (a program loaded without one matches no context that lists these). */
  attachs?: readonly (AttachTypeName | number)[]
  /** Attach targets (kernel function, tracepoint, LSM hook, struct_ops type...), as globs: `*` any run, `?` one character. */
  attachTo?: readonly string[]
  /** struct_ops callback members ('dispatch'), as globs. */
  member?: readonly string[]
  /** The capability sets this context grants. */
  grant: readonly string[]
}

/** A context as a Policy keeps it: names canonical, only the parts given. */
export interface PolicyContext {
  readonly progs?: readonly ProgTypeName[]
  readonly attachs?: readonly AttachTypeName[]
  readonly attachTo?: readonly string[]
  readonly member?: readonly string[]
  readonly grant: readonly string[]
}

/** The parts of a policy document beside the token masks. */
export interface CapabilityDocument {
  capabilities?: Readonly<Record<string, CapabilitySetInput>>
  contexts?: readonly PolicyContextInput[]
}

/** What a context matches on. */
export interface ProgramTarget {
  /** Program type. */
  type: ProgTypeName | number
  /** Expected attach type, when the program has one. */
  expectedAttachType?: AttachTypeName | number
  /**
   * Attach target as the section name after its prefix says it: a kernel
   * function (kprobe, fentry), an LSM hook ('file_open'), a tracepoint
   * ('sched_switch', 'sched/sched_switch'), an iterator ('task'), a struct_ops type.
   */
  attachTo?: string
  /** struct_ops callback member ('dispatch'). */
  member?: string
}

/** What a program matching `contexts` may use. */
export interface Grant {
  /** Indexes (in policy.contexts) of the contexts that matched. */
  contexts: number[]
  /** Helper names without 'bpf_' ('map_lookup_elem'). */
  helpers: ReadonlySet<string>
  /** BTF names ('bpf_task_acquire'). */
  kfuncs: ReadonlySet<string>
  /** Kernel map type names ('hash'). */
  maps: ReadonlySet<string>
}

export type { KernelBtfSource }

export type CapabilityKind = 'helper' | 'kfunc' | 'map'

export type Kernel = () => KernelNames | undefined

export interface CapabilityOptions {
  /**
   * The BTF kfuncs and attach targets are checked against: by default the
   * running kernel's (/sys/kernel/btf/vmlinux and its modules), not checked
   * when that file does not exist; a BtfReader, raw BTF bytes or a path for
   * another kernel's; null to not check them.
   */
  kernelBtf?: KernelBtfSource | null
}

const setKeys = ['include', 'helpers', 'kfuncs', 'maps'] as const
const contextKeys = ['progs', 'attachs', 'attachTo', 'member', 'grant'] as const
/** Set names: printable, no spaces, so messages and CLI output stay unambiguous. */
const SET_NAME = /^[A-Za-z0-9_.:/-]+$/
/** Kfunc names are C identifiers. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/
/** Globs: identifiers and what attach targets hold (tracepoint 'a/b', kprobe 'f+0x10', uprobe paths), and * ?. */
const GLOB = /^[A-Za-z0-9_.:/+*?@$-]+$/

interface Effective {
  helpers: Set<string>
  kfuncs: Set<string>
  maps: Set<string>
}

interface Matcher {
  progs?: Set<number>
  attachs?: Set<number>
  attachTo?: RegExp[]
  member?: RegExp[]
}

/**
 * The validated capability part of a policy. Errors (from `parse`): TypeError
 * for an unknown key, a value of the wrong shape, an unknown helper, map
 * type, program type, attach type, kfunc or capability set (naming the
 * closest known one), an include cycle (naming it), or an attach target
 * glob no kernel function, tracepoint, LSM hook, iterator or struct_ops type
 * matches; RangeError for a number out of range.
 */
export class CapabilityRules {
  readonly capabilities: Readonly<Record<string, CapabilitySet>>
  readonly contexts: readonly PolicyContext[]
  readonly #effective: ReadonlyMap<string, Effective>
  readonly #matchers: readonly Matcher[]

  private constructor(capabilities: Record<string, CapabilitySet>, contexts: PolicyContext[]) {
    this.capabilities = Object.freeze(capabilities)
    this.contexts = Object.freeze(contexts)
    this.#effective = effectiveSets(capabilities)
    this.#matchers = contexts.map(matcherOf)
    Object.freeze(this)
  }

  /** Rules with no sets and no contexts: they grant nothing. */
  static readonly none: CapabilityRules = new CapabilityRules({}, [])

  /** Undefined when the document has neither part: the policy then means what it meant before capabilities. */
  static parse(doc: CapabilityDocument, options: CapabilityOptions = {}): CapabilityRules | undefined {
    if (doc.capabilities === undefined && doc.contexts === undefined) return undefined
    checkOptions('Policy.from', options, ['kernelBtf'])
    // The kernel's BTF is opened only when a kfunc or an attach target needs it.
    let opened: { names: KernelNames | undefined } | undefined
    const kernel: Kernel = () => (opened ??= { names: options.kernelBtf === null ? undefined : kernelNames(options.kernelBtf) }).names
    const capabilities = parseCapabilities(doc.capabilities, kernel)
    const contexts = parseContexts(doc.contexts, capabilities, kernel)
    return new CapabilityRules(capabilities, contexts)
  }

  grantsFor(target: ProgramTarget): Grant {
    const t = targetOf(target)
    return this.#union(this.#matchers.flatMap((m, i) => (matches(m, t) ? [i] : [])))
  }

  /** What the contexts at `indexes` (in `contexts`) grant together, whatever they match. */
  grantOf(indexes: readonly number[]): Grant {
    for (const i of indexes) {
      if (!Number.isInteger(i) || i < 0 || i >= this.contexts.length) throw new RangeError(`grantOf: no context ${describeValue(i)} (the policy has ${this.contexts.length})`)
    }
    return this.#union(indexes)
  }

  #union(contexts: readonly number[]): Grant {
    const helpers = new Set<string>()
    const kfuncs = new Set<string>()
    const maps = new Set<string>()
    for (const i of contexts) {
      for (const name of this.contexts[i].grant) {
        const e = this.#effective.get(name)!
        for (const h of e.helpers) helpers.add(h)
        for (const k of e.kfuncs) kfuncs.add(k)
        for (const m of e.maps) maps.add(m)
      }
    }
    return { contexts: [...contexts], helpers, kfuncs, maps }
  }

  setsAllowing(kind: CapabilityKind, name: string): string[] {
    if (kind !== 'helper' && kind !== 'kfunc' && kind !== 'map') {
      throw new TypeError(`setsAllowing: kind must be 'helper', 'kfunc' or 'map', got ${describeValue(kind)}`)
    }
    if (typeof name !== 'string') throw new TypeError(`setsAllowing: name must be a string, got ${describeValue(name)}`)
    const key = kind === 'helper' ? helperName(name) ?? name : kind === 'map' ? mapTypeName(name) ?? name : name
    const part = kind === 'helper' ? 'helpers' : kind === 'kfunc' ? 'kfuncs' : 'maps'
    const out: string[] = []
    for (const set of Object.keys(this.capabilities)) if (this.#effective.get(set)![part].has(key)) out.push(set)
    return out
  }

  toJSON(): { capabilities: Record<string, CapabilitySet>; contexts: PolicyContext[] } {
    return { capabilities: { ...this.capabilities }, contexts: [...this.contexts] }
  }

  /** The same sets and contexts, whatever the order of names inside lists and of sets. */
  equals(other: CapabilityRules): boolean {
    return canonical(this) === canonical(other)
  }
}

function canonical(rules: CapabilityRules): string {
  const sorted = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Array.isArray(v) ? [...v].sort() : v]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  const sets = Object.keys(rules.capabilities).sort().map((k) => [k, sorted(rules.capabilities[k])])
  return JSON.stringify([sets, rules.contexts.map(sorted)])
}

function parseCapabilities(input: unknown, kernel: Kernel): Record<string, CapabilitySet> {
  const where = 'policy.capabilities'
  if (input === undefined) return {}
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError(`${where} must be an object of capability sets by name, got ${describeValue(input)}`)
  }
  const out: Record<string, CapabilitySet> = Object.create(null)
  const names = Object.keys(input)
  for (const name of names) {
    if (!SET_NAME.test(name)) throw new TypeError(`${where}: capability set name '${name}' must be letters, digits and _ . : / - (no spaces)`)
    // Object.prototype's own names would vanish from, or shadow in, the sets' record and its JSON.
    if (name in Object.prototype) throw new TypeError(`${where}: capability set name '${name}' is reserved (a name of every JavaScript object)`)
  }
  for (const name of names) {
    const at = `${where}['${name}']`
    const raw = (input as Record<string, unknown>)[name]
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new TypeError(`${at} must be an object like { include, helpers, kfuncs, maps }, got ${describeValue(raw)}`)
    }
    checkOptions(at, raw, setKeys, { noun: 'key' })
    const r = raw as CapabilitySetInput
    const set: { -readonly [K in keyof CapabilitySet]: CapabilitySet[K] } = {}
    if (r.include !== undefined) {
      set.include = listOf(`${at}.include`, r.include, 'capability set', (item, w) => {
        if (typeof item !== 'string') throw new TypeError(`${w}: a capability set name must be a string, got ${describeValue(item)}`)
        if (!Object.hasOwn(input, item)) throw new TypeError(`${w}: unknown capability set '${item}'${hint(closestOf(names, item))}`)
        if (item === name) throw new TypeError(`${w}: capability set '${name}' includes itself`)
        return item
      })
    }
    if (r.helpers !== undefined) set.helpers = listOf(`${at}.helpers`, r.helpers, 'helper', helperOrThrow) as HelperName[]
    if (r.kfuncs !== undefined) set.kfuncs = listOf(`${at}.kfuncs`, r.kfuncs, 'kfunc', (item, w) => kfuncOrThrow(item, w, kernel))
    if (r.maps !== undefined) set.maps = listOf(`${at}.maps`, r.maps, 'map type', (item, w) => enumItem(mapTypes, 'map type', item, w)) as MapTypeName[]
    out[name] = Object.freeze(set)
  }
  checkCycles(out)
  return out
}

function parseContexts(input: unknown, capabilities: Record<string, CapabilitySet>, kernel: Kernel): PolicyContext[] {
  const where = 'policy.contexts'
  if (input === undefined) return []
  if (!Array.isArray(input)) throw new TypeError(`${where} must be a list of contexts like { progs, grant }, got ${describeValue(input)}`)
  const sets = Object.keys(capabilities)
  return input.map((raw: unknown, i) => {
    const at = `${where}[${i}]`
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new TypeError(`${at} must be an object like { progs, attachs, attachTo, member, grant }, got ${describeValue(raw)}`)
    }
    checkOptions(at, raw, contextKeys, { noun: 'key' })
    const r = raw as PolicyContextInput
    if (r.grant === undefined) throw new TypeError(`${at}: grant is missing (the capability sets this context grants)`)
    const grant = listOf(`${at}.grant`, r.grant, 'capability set', (item, w) => {
      if (typeof item !== 'string') throw new TypeError(`${w}: a capability set name must be a string, got ${describeValue(item)}`)
      if (!Object.hasOwn(capabilities, item)) {
        throw new TypeError(`${w}: unknown capability set '${item}'${hint(closestOf(sets, item))}${sets.length === 0 ? ' (policy.capabilities defines none)' : ''}`)
      }
      return item
    })
    // What it matches first, then what it grants: the order people read it in.
    const m: { -readonly [K in keyof PolicyContext]?: PolicyContext[K] } = {}
    if (r.progs !== undefined) m.progs = listOf(`${at}.progs`, r.progs, 'program type', (item, w) => enumItem(progTypes, 'program type', item, w)) as ProgTypeName[]
    if (r.attachs !== undefined) m.attachs = listOf(`${at}.attachs`, r.attachs, 'attach type', (item, w) => enumItem(attachTypes, 'attach type', item, w)) as AttachTypeName[]
    if (r.attachTo !== undefined) m.attachTo = listOf(`${at}.attachTo`, r.attachTo, 'attach target', globOrThrow)
    if (r.member !== undefined) {
      m.member = listOf(`${at}.member`, r.member, 'struct_ops member', globOrThrow)
      if (m.progs !== undefined && !m.progs.includes('struct_ops')) {
        throw new TypeError(`${at}.member: only struct_ops programs have callback members, and ${at}.progs does not list struct_ops`)
      }
    }
    m.attachTo?.forEach((pattern, j) => kernel()?.checkAttachTarget(pattern, m.progs, `${at}.attachTo[${j}]`))
    const c: PolicyContext = { ...m, grant }
    return Object.freeze(c)
  })
}

// A list of items each checked (and made canonical) by `item`; duplicates dropped.
function listOf<T>(where: string, list: unknown, noun: string, item: (v: unknown, where: string) => T): T[] {
  if (!Array.isArray(list)) throw new TypeError(`${where} must be a list of ${noun} names, got ${describeValue(list)}`)
  const out: T[] = []
  list.forEach((v, i) => {
    const c = item(v, `${where}[${i}]`)
    if (!out.includes(c)) out.push(c)
  })
  return Object.freeze(out) as T[]
}

function enumItem(table: EnumTable, noun: string, item: unknown, where: string): string {
  if (typeof item === 'number') {
    if (!Number.isInteger(item) || item < 0) throw new RangeError(`${where}: ${noun} ${item} must be a non-negative integer`)
    const name = findEnumName(table, item)
    if (name === undefined) throw new RangeError(`${where}: ${noun} ${item} is not one this build knows`)
    return name
  }
  if (typeof item !== 'string') throw new TypeError(`${where}: ${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun} must be a name or a number, got ${describeValue(item)}`)
  const v = findEnumValue(table, item, { ignoreCase: true })
  if (v === undefined) throw new TypeError(`${where}: unknown ${noun} '${item}'${hint(closestEnumName(table, item))}`)
  return findEnumName(table, v)!
}

function helperName(name: string): HelperName | undefined {
  if (name !== 'unspec' && Object.hasOwn(helpers, name)) return name as HelperName
  if (name.startsWith('bpf_') && Object.hasOwn(helpers, name.slice(4))) return name.slice(4) as HelperName
  return undefined
}

function mapTypeName(name: string): string | undefined {
  const v = findEnumValue(mapTypes, name, { ignoreCase: true })
  return v === undefined ? undefined : findEnumName(mapTypes, v)
}

function helperOrThrow(item: unknown, where: string): HelperName {
  if (typeof item === 'number') {
    const name = Number.isInteger(item) && item > 0 ? findEnumName(helpers, item) : undefined
    if (name === undefined) throw new RangeError(`${where}: ${item} is not a helper id this build knows`)
    return name as HelperName
  }
  if (typeof item !== 'string') throw new TypeError(`${where}: a helper must be a name or an id, got ${describeValue(item)}`)
  const name = helperName(item)
  if (name === undefined) throw new TypeError(`${where}: unknown helper '${item}'${hint(closestEnumName(helpers, item.replace(/^bpf_/, '')))}`)
  return name
}

function kfuncOrThrow(item: unknown, where: string, kernel: Kernel): string {
  if (typeof item !== 'string') throw new TypeError(`${where}: a kfunc must be a name, got ${describeValue(item)}`)
  if (!IDENTIFIER.test(item)) throw new TypeError(`${where}: kfunc '${item}' is not a C identifier`)
  const names = kernel()
  if (names !== undefined && !names.hasFunction(item)) {
    throw new TypeError(`${where}: unknown kfunc '${item}': no such function in ${names.source}${hint(names.closestKfunc(item))}`)
  }
  return item
}

function globOrThrow(item: unknown, where: string): string {
  if (typeof item !== 'string') throw new TypeError(`${where} must be a string (a name or a glob), got ${describeValue(item)}`)
  if (!GLOB.test(item)) throw new TypeError(`${where}: '${item}' is not a name or glob (letters, digits, _ . : / + @ $ - and the wildcards * ?)`)
  return item
}

function checkCycles(sets: Record<string, CapabilitySet>): void {
  const done = new Set<string>()
  const visit = (name: string, path: string[]) => {
    if (done.has(name)) return
    const at = path.indexOf(name)
    if (at >= 0) {
      const cycle = [...path.slice(at), name].join(' -> ')
      throw new TypeError(`policy.capabilities: capability sets include each other in a cycle: ${cycle}`)
    }
    for (const inc of sets[name].include ?? []) visit(inc, [...path, name])
    done.add(name)
  }
  for (const name of Object.keys(sets)) visit(name, [])
}

function effectiveSets(sets: Record<string, CapabilitySet>): Map<string, Effective> {
  const out = new Map<string, Effective>()
  const resolve = (name: string): Effective => {
    const had = out.get(name)
    if (had) return had
    const s = sets[name]
    const e: Effective = { helpers: new Set(s.helpers), kfuncs: new Set(s.kfuncs), maps: new Set(s.maps) }
    for (const inc of s.include ?? []) {
      const i = resolve(inc)
      for (const h of i.helpers) e.helpers.add(h)
      for (const k of i.kfuncs) e.kfuncs.add(k)
      for (const m of i.maps) e.maps.add(m)
    }
    out.set(name, e)
    return e
  }
  for (const name of Object.keys(sets)) resolve(name)
  return out
}

function matcherOf(c: PolicyContext): Matcher {
  return {
    progs: c.progs && new Set(c.progs.map((n) => progTypes[n])),
    attachs: c.attachs && new Set(c.attachs.map((n) => attachTypes[n])),
    attachTo: c.attachTo?.map(globPattern),
    member: c.member?.map(globPattern),
  }
}

interface Target {
  type: number
  attach: number | undefined
  attachTo: string | undefined
  member: string | undefined
}

function targetOf(target: ProgramTarget): Target {
  if (target === null || typeof target !== 'object' || Array.isArray(target)) {
    throw new TypeError(`grantsFor: target must be an object like { type, expectedAttachType, attachTo, member }, got ${describeValue(target)}`)
  }
  checkOptions('grantsFor: target', target, ['type', 'expectedAttachType', 'attachTo', 'member'], { noun: 'key', types: { attachTo: 'string', member: 'string' } })
  if (target.type === undefined) throw new TypeError('grantsFor: target.type (the program type) is missing')
  const value = (table: EnumTable, noun: string, v: unknown, where: string) => {
    const name = enumItem(table, noun, v, where)
    return table[name]
  }
  return {
    type: value(progTypes, 'program type', target.type, 'grantsFor: target.type'),
    attach: target.expectedAttachType === undefined ? undefined : value(attachTypes, 'attach type', target.expectedAttachType, 'grantsFor: target.expectedAttachType'),
    attachTo: target.attachTo,
    member: target.member,
  }
}

function matches(m: Matcher, t: Target): boolean {
  if (m.progs && !m.progs.has(t.type)) return false
  if (m.attachs && (t.attach === undefined || !m.attachs.has(t.attach))) return false
  // A program whose own target is a pattern (kprobe.multi/tcp_*) may reach more than any glob here says: no match.
  if (m.attachTo && (t.attachTo === undefined || /[*?]/.test(t.attachTo) || !m.attachTo.some((g) => g.test(t.attachTo!)))) return false
  if (m.member && (t.member === undefined || !m.member.some((g) => g.test(t.member!)))) return false
  return true
}

function hint(name: string | undefined): string {
  return name === undefined ? '' : ` (did you mean '${name}'?)`
}
