// The four things a bpffs delegation mount (and so a BPF token) delegates,
// each a 64-bit mask indexed by a kernel enum: bpf() commands, map types,
// program types and attach types. Names are the kernel's, lower case and
// without prefix, as the delegate_* mount options spell them.
import { attachTypes, commands, mapTypes, progTypes } from '../sys/generated/kernel-enums.js'
import type { EnumTable } from '../sys/names.js'
// Name <-> number conversion is lib/sys/names.ts (findEnumValue with ignoreCase,
// findEnumName with kernelOrder); this file only says which table each kind uses.

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
