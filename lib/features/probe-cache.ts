// Probe results are facts about the running kernel, so each probe runs once
// per process. Only conclusive answers are kept: "supported", or a
// NotSupportedError. Anything else (EPERM without privileges, a token's
// PolicyError, ENOMEM) says nothing about the kernel and is thrown again on
// the next call instead of being remembered.
import { BpfError, NotSupportedError } from '../sys/errors.js'
import { enumName, enumValue, type EnumTable } from '../sys/names.js'
import type { FeatureVersion } from './versions.js'

const results = new Map<string, NotSupportedError | null>()

/** Runs `probe` once for `key`; later calls answer from the cache. */
export function cachedProbe(key: string, probe: () => void): void {
  const known = results.get(key)
  if (known === null) return
  if (known !== undefined) throw known
  try {
    probe()
    results.set(key, null)
  } catch (e) {
    if (e instanceof NotSupportedError) results.set(key, e)
    throw e
  }
}

/** The boolean twin of a probe: false when not supported, other errors thrown. */
export function asBoolean(probe: () => void): boolean {
  try {
    probe()
    return true
  } catch (e) {
    if (e instanceof NotSupportedError) return false
    throw e
  }
}

/** Forgets every cached result (for tests that need a probe to run again). */
export function clearProbeCache(): void {
  results.clear()
}

/** How many probes have a cached answer. */
export function cachedProbeCount(): number {
  return results.size
}

export function notSupported(feature: string, fv: FeatureVersion | undefined, detail?: string): NotSupportedError {
  const parts = [fv?.config ? `and a kernel built with ${fv.config.join(', ')}` : undefined, detail].filter(Boolean)
  return new NotSupportedError(feature, fv?.version ?? 'newer than bpfkit knows', parts.length > 0 ? parts.join('; ') : undefined)
}

/**
 * A member of a probed family (map types, program types, helpers) by name or
 * number, with its name for messages. `unspec` (0) names no member. Errors:
 * TypeError for an unknown name or unspec, RangeError for a bad number.
 */
export function familyMember(table: EnumTable, what: string, value: string | number): { n: number; name: string } {
  const n = enumValue(table, what, value)
  if (n === table.unspec) throw new TypeError(`${what} unspec is not a ${what}`)
  return { n, name: enumName(table, n) }
}

/** The error code of a BpfError ('EINVAL'), or undefined for any other error. */
export function bpfCode(e: unknown): string | undefined {
  return e instanceof BpfError ? e.code : undefined
}

/** An fd number no process can have open: fdget() on it fails with EBADF. */
export const IMPOSSIBLE_FD = 0x7fffffff
