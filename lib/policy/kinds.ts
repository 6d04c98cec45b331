// The four things a bpffs delegation mount (and so a BPF token) delegates,
// each a 64-bit mask indexed by a kernel enum: bpf() commands, map types,
// program types and attach types. Names are the kernel's, lower case and
// without prefix, as the delegate_* mount options spell them.
import { attachTypes, commands, mapTypes, progTypes } from '../sys/generated/kernel-enums.js'
import type { EnumTable } from '../sys/names.js'

export type PolicyKind = 'cmds' | 'maps' | 'progs' | 'attachs'

export interface KindInfo {
  readonly kind: PolicyKind
  readonly table: EnumTable
  /** The bpffs mount option: delegate_cmds, ... */
  readonly option: string
  /** The bpf_token_info field and fdinfo line: allowed_cmds, ... */
  readonly allowed: string
  /** What one item is called in messages. */
  readonly noun: string
  readonly plural: string
}

export const kinds: Readonly<Record<PolicyKind, KindInfo>> = {
  cmds: { kind: 'cmds', table: commands, option: 'delegate_cmds', allowed: 'allowed_cmds', noun: 'command', plural: 'commands' },
  maps: { kind: 'maps', table: mapTypes, option: 'delegate_maps', allowed: 'allowed_maps', noun: 'map type', plural: 'map types' },
  progs: { kind: 'progs', table: progTypes, option: 'delegate_progs', allowed: 'allowed_progs', noun: 'program type', plural: 'program types' },
  attachs: { kind: 'attachs', table: attachTypes, option: 'delegate_attachs', allowed: 'allowed_attachs', noun: 'attach type', plural: 'attach types' },
}

/** The four 64-bit masks, as the kernel keeps them (bpf_token_info, bpffs mount options). */
export interface PolicyMasks {
  cmds: bigint
  maps: bigint
  progs: bigint
  attachs: bigint
}

export const kindNames: readonly PolicyKind[] = ['cmds', 'maps', 'progs', 'attachs']

/** Every bit set: what the kernel stores for `any`. */
export const ALL = (1n << 64n) - 1n

/** The bits for every value this build knows (the kernel prints such a mask as "any"). */
export function knownMask(kind: PolicyKind): bigint {
  let m = 0n
  for (const v of Object.values(kinds[kind].table)) m |= 1n << BigInt(v)
  return m
}

// Lower-case name -> value, aliases included (prog_run = prog_test_run).
const byLowerName = new Map<PolicyKind, Map<string, number>>()
export function valueOfName(kind: PolicyKind, name: string): number | undefined {
  let m = byLowerName.get(kind)
  if (!m) {
    m = new Map(Object.entries(kinds[kind].table).map(([k, v]) => [k.toLowerCase(), v]))
    byLowerName.set(kind, m)
  }
  return m.get(name.toLowerCase())
}

// Value -> the kernel's first name for it, as bpffs prints it.
const byValue = new Map<PolicyKind, Map<number, string>>()
export function nameOfValue(kind: PolicyKind, value: number): string | undefined {
  let m = byValue.get(kind)
  if (!m) {
    m = new Map()
    for (const [k, v] of Object.entries(kinds[kind].table)) if (!m.has(v)) m.set(v, k)
    byValue.set(kind, m)
  }
  return m.get(value)
}

/** The closest known name, for "did you mean" hints; undefined when nothing is close. */
export function closestName(kind: PolicyKind, name: string): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1
  for (const candidate of Object.keys(kinds[kind].table)) {
    const d = editDistance(name.toLowerCase(), candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]
}
