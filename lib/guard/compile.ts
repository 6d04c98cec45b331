// A tenant's policy, compiled into the tables the guard's programs read:
// the tenant's masks and quota, one entry per context (program and attach
// types as bitmaps, helper bitmap, struct_ops member indexes), the BTF ids
// of the load-time attach targets each context allows, and for each kfunc
// the contexts that grant it. Everything is resolved here, against the
// running kernel's BTF, so the kernel side only tests bits and looks up ids.
import type { Policy } from '../policy/index.js'
import { attachSpaces } from '../policy/kernel-names.js'
import type { BtfReader, BtfTypeRecord } from '../btf/reader.js'
import { attachTypes, helpers, progTypes } from '../sys/generated/kernel-enums.js'
import type { ProgTypeName } from '../sys/generated/kernel-enums.js'
import { globPattern } from '../sys/glob.js'
import { contextFlags, limits, tenantFlags } from './abi.js'

/** A kernel BTF the guard resolves names in, with its BTF object id. */
export interface GuardBtf {
  name: string
  objectId: number
  btf: BtfReader
}

/** The running kernel as the compiler sees it: vmlinux first, then modules (read on demand). */
export interface GuardKernel {
  vmlinux: GuardBtf
  modules(): readonly GuardBtf[]
}

export interface Quota {
  /** Maps the tenant may hold at once. */
  maps?: number
  /** Their bytes at most: the sum of (key size + value size) × max entries. */
  bytes?: number
}

export interface TenantRules {
  flags: number
  ncontexts: number
  prog_types: bigint
  attach_types: [bigint, bigint]
  map_types: [bigint, bigint]
  max_maps: bigint
  max_bytes: bigint
}

export interface ContextRule {
  flags: number
  prog_types: bigint
  attach_types: [bigint, bigint]
  members: bigint
  helpers: bigint[]
}

export interface CompiledTenant {
  rules: TenantRules
  contexts: ContextRule[]
  /** Load-time attach targets: context index, BTF object id, type id. */
  targets: { index: number; btfObj: number; btfId: number }[]
  /** kfunc BTF id (vmlinux) -> mask of the contexts that grant it. */
  kfuncs: Map<number, bigint>
}

const ALL = (1n << 64n) - 1n
const UNLIMITED = ALL
/** Program types that name their attach target when loaded (aux->attach_btf_id). */
const loadTimeTargets: readonly ProgTypeName[] = ['tracing', 'lsm', 'struct_ops']
/**
 * Program types whose programs name an attach target (libbpf sections
 * 'kprobe/f', 'tp/a/b', 'fentry/f', 'freplace/f', 'lsm/h', 'struct_ops/t'...).
 * As Policy.grantsFor has it, a program without a target matches no context
 * that names targets: a context with attachTo matches no other program type.
 */
const targetTypes: readonly ProgTypeName[] = ['kprobe', 'tracepoint', 'raw_tracepoint', 'raw_tracepoint_writable', 'tracing', 'ext', 'lsm', 'struct_ops']
const targetTypesMask = targetTypes.reduce((m, p) => m | (1n << BigInt(progTypes[p])), 0n)
/** A tenant's targets at most: each is a hash entry in the kernel. */
const MAX_TENANT_TARGETS = 16384

const bit = (n: number): bigint => 1n << BigInt(n)
const words = (mask: bigint): [bigint, bigint] => [mask & ALL, mask === ALL ? ALL : 0n]

export function compileTenant(policy: Policy, quota: Quota, kernel: GuardKernel): CompiledTenant {
  const masks = policy.masks()
  const contexts = policy.contexts ?? []
  if (contexts.length > limits.contexts) throw new RangeError(`guard: the policy has ${contexts.length} contexts; the guard holds at most ${limits.contexts} per tenant`)
  const rules: TenantRules = {
    flags: policy.hasCapabilities ? tenantFlags.checkPrograms : 0,
    ncontexts: contexts.length,
    prog_types: masks.progs,
    attach_types: words(masks.attachs),
    map_types: words(masks.maps),
    max_maps: quota.maps === undefined ? UNLIMITED : BigInt(quota.maps),
    max_bytes: quota.bytes === undefined ? UNLIMITED : BigInt(quota.bytes),
  }
  const out: CompiledTenant = { rules, contexts: [], targets: [], kfuncs: new Map() }
  contexts.forEach((c, index) => {
    const grant = policy.grantOf([index])
    const helperWords = Array.from({ length: limits.helperWords }, () => 0n)
    for (const name of grant.helpers) {
      const id = helpers[name as keyof typeof helpers]
      // A helper past the bitmap can never be granted: the kernel side refuses it.
      if (id < limits.helperWords * 64) helperWords[id >> 6] |= bit(id & 63)
    }
    let flags = 0
    const rule: ContextRule = {
      flags: 0,
      prog_types: (c.progs === undefined ? ALL : c.progs.reduce((m, p) => m | bit(progTypes[p]), 0n)) & (c.attachTo === undefined ? ALL : targetTypesMask),
      attach_types: [0n, 0n],
      members: 0n,
      helpers: helperWords,
    }
    if (c.attachs === undefined) flags |= contextFlags.anyAttach
    else for (const a of c.attachs) rule.attach_types[attachTypes[a] >> 6] |= bit(attachTypes[a] & 63)
    if (c.attachTo !== undefined && !c.attachTo.includes('*')) {
      const found = targetIds(kernel, c.progs, c.attachTo)
      if (found !== undefined) {
        flags |= contextFlags.targets
        for (const t of found) out.targets.push({ index, ...t })
        if (out.targets.length > MAX_TENANT_TARGETS) {
          throw new RangeError(`guard: policy.contexts[${index}].attachTo matches too many kernel functions and types (${out.targets.length} in all); the guard holds at most ${MAX_TENANT_TARGETS} per tenant: name them more narrowly`)
        }
      }
    }
    if (c.member !== undefined) {
      flags |= contextFlags.members
      rule.members = memberIndexes(kernel, c.attachTo, c.member)
    }
    rule.flags = flags
    out.contexts.push(rule)
    for (const name of grant.kfuncs) {
      for (const id of kernel.vmlinux.btf.findAll(name, 'FUNC')) out.kfuncs.set(id, (out.kfuncs.get(id) ?? 0n) | bit(index))
    }
  })
  return out
}

/**
 * The BTF ids of the load-time targets the globs name, for the context's
 * program types that have such targets; undefined when none of them does
 * (a kprobe or tracepoint context: its target is chosen at attach time).
 */
function targetIds(kernel: GuardKernel, progs: readonly ProgTypeName[] | undefined, globs: readonly string[]): { btfObj: number; btfId: number }[] | undefined {
  const types = progs === undefined ? loadTimeTargets : progs.filter((p) => loadTimeTargets.includes(p))
  if (types.length === 0) return undefined
  const spaces = attachSpaces(types)!
  const patterns = globs.map((g) => globPattern(g.replace(/\+.*$/, '')))
  const out: { btfObj: number; btfId: number }[] = []
  for (const k of [kernel.vmlinux, ...kernel.modules()]) {
    for (const t of namedTypes(k.btf)) {
      const named = spaces.some((s) => t.kind === s.kind && t.name.startsWith(s.prefix) && patterns.some((p) => p.test(t.name.slice(s.prefix.length))))
      if (named) out.push({ btfObj: k.objectId, btfId: t.id })
    }
  }
  return out
}

// The kinds attach targets and struct_ops types are (kernel-names.ts's spaces).
const TARGET_KINDS = new Set(['FUNC', 'TYPEDEF', 'STRUCT'])
const namedCache = new WeakMap<BtfReader, readonly { id: number; kind: string; name: string }[]>()

/** A BTF's own named functions, typedefs and structs: read once per BTF, then scanned by every context. */
function namedTypes(btf: BtfReader): readonly { id: number; kind: string; name: string }[] {
  let list = namedCache.get(btf)
  if (list === undefined) {
    const found: { id: number; kind: string; name: string }[] = []
    for (let id = btf.firstId; id <= btf.count; id++) {
      const t = btf.type(id)
      if (t.name !== '' && TARGET_KINDS.has(t.kind)) found.push({ id, kind: t.kind, name: t.name })
    }
    namedCache.set(btf, (list = found))
  }
  return list
}

/**
 * struct_ops members are told apart at load only by their index (the
 * program's expected attach type): the indexes of members named by the
 * globs in the struct_ops types `attachTo` names (every struct_ops type of
 * vmlinux and the modules when it names none).
 */
function memberIndexes(kernel: GuardKernel, attachTo: readonly string[] | undefined, members: readonly string[]): bigint {
  const typeGlobs = (attachTo ?? ['*']).map(globPattern)
  const memberGlobs = members.map(globPattern)
  let mask = 0n
  for (const { btf } of [kernel.vmlinux, ...kernel.modules()]) {
    for (const { id, kind, name } of namedTypes(btf)) {
      if (kind !== 'STRUCT' || !name.startsWith('bpf_struct_ops_')) continue
      const ops = structOpsType(btf, id)
      if (ops === undefined || !typeGlobs.some((g) => g.test(ops.name))) continue
      btf.members(ops).forEach((m, i) => {
        if (i < 64 && memberGlobs.some((g) => g.test(m.name))) mask |= bit(i)
      })
    }
  }
  return mask
}

/**
 * The struct_ops type whose value type `id` is: the kernel declares one
 * `struct bpf_struct_ops_<name> { common; struct <name> data; }` per type
 * (libbpf finds it so too). Its own bpf_struct_ops_map, _link, _value...
 * share the prefix and are not.
 */
function structOpsType(btf: BtfReader, id: number): BtfTypeRecord | undefined {
  const t = btf.type(id)
  if (t.kind !== 'STRUCT' || !t.name.startsWith('bpf_struct_ops_')) return undefined
  const data = btf.members(t).find((m) => m.name === 'data')
  if (data === undefined) return undefined
  const ops = btf.resolve(data.type)
  return ops.kind === 'STRUCT' && `bpf_struct_ops_${ops.name}` === t.name ? ops : undefined
}
