// The numbers bpf/guard/guard.h defines, as the guard's user space needs
// them (test/unit/guard-abi.test.ts holds them equal to the header). The
// layouts of keys, values and events come from the object's own BTF.

export const limits = {
  tenants: 64,
  contexts: 64,
  helperWords: 4,
  matches: 1024,
  targets: 65536,
  kfuncs: 16384,
  /** Bytes of JSON a tenant's record holds. */
  recordDoc: 16384,
} as const

export const tenantFlags = { checkPrograms: 1 } as const
export const contextFlags = { anyAttach: 1, targets: 2, members: 4 } as const

/** guard_object */
export const objectKinds = { 1: 'prog', 2: 'map', 3: 'token' } as const

/** guard_refusal, by value. */
export const refusalKinds = {
  1: 'helper',
  2: 'kfunc',
  3: 'module_kfunc',
  4: 'no_context',
  5: 'prog_type',
  6: 'attach_type',
  7: 'map_type',
  8: 'map_count',
  9: 'map_bytes',
  10: 'foreign',
  11: 'no_rules',
  12: 'full',
  13: 'unreadable',
} as const

export type RefusalKind = (typeof refusalKinds)[keyof typeof refusalKinds]

/** Slots of the `stats` per-CPU array (guard_stat). */
export const statSlots = { refused: 0, lost: 1, allowed: 2 } as const
