// The record the guard keeps per tenant in its `records` map (name, match,
// policy, quota, the version of its rules), so that Guard.open can take a
// guard over after a restart; and the match keys as they are kept there.
import type { PolicyJSON } from '../policy/index.js'
import { cString } from '../sys/c-string.js'
import { limits } from './abi.js'
import type { Quota } from './compile.js'
import type { MatchKeys, TenantMatch } from './match.js'

export interface TenantRecord {
  id: number
  version: number
  match: TenantMatch
  keys: { userns?: number; cgroup?: string; bpffs?: number }
  policy: PolicyJSON
  quota: Quota
}

/** The `records` map's value (struct guard_record). */
export interface RecordValue {
  name: Uint8Array
  doc_len: number
  pad: number
  doc: Uint8Array
}

export function record(name: string, doc: unknown): RecordValue {
  const json = Buffer.from(JSON.stringify(doc, toJson), 'utf8')
  if (json.length > limits.recordDoc) throw new RangeError(`guard.setTenant: the tenant's policy is ${json.length} bytes as JSON; the guard keeps at most ${limits.recordDoc}`)
  const nameBytes = new Uint8Array(64)
  nameBytes.set(Buffer.from(name, 'utf8'))
  const docBytes = new Uint8Array(limits.recordDoc)
  docBytes.set(json)
  return { name: nameBytes, doc_len: json.length, pad: 0, doc: docBytes }
}

// A match may hold a bigint (a cgroup id): JSON keeps it as { bigint: '<decimal>' }.
const toJson = (_k: string, v: unknown) => (typeof v === 'bigint' ? { bigint: v.toString() } : v)
const fromJson = (_k: string, v: unknown) => (v !== null && typeof v === 'object' && Object.keys(v).length === 1 && typeof (v as { bigint?: unknown }).bigint === 'string' ? BigInt((v as { bigint: string }).bigint) : v)

/** A record's name and document. */
export function readRecord(v: RecordValue): { name: string; doc: unknown } {
  return { name: cString(v.name), doc: JSON.parse(docOf(v), fromJson) }
}

const docOf = (v: RecordValue): string => Buffer.from(v.doc.buffer, v.doc.byteOffset, v.doc_len).toString('utf8')

// JSON has no bigint: the cgroup id is kept as a decimal string.
export const storedKeys = (k: MatchKeys): TenantRecord['keys'] => ({ ...k, cgroup: k.cgroup === undefined ? undefined : String(k.cgroup) })
export const parseKeys = (k: TenantRecord['keys']): MatchKeys => ({ ...k, cgroup: k.cgroup === undefined ? undefined : BigInt(k.cgroup) })

export function checkNoOverlap(other: string, stored: TenantRecord['keys'], keys: MatchKeys): void {
  const theirs = parseKeys(stored)
  for (const k of ['userns', 'cgroup', 'bpffs'] as const) {
    if (keys[k] !== undefined && theirs[k] === keys[k]) {
      const what = k === 'bpffs' ? 'token bpffs (device)' : k
      throw new TypeError(`guard.setTenant: tenant '${other}' already matches ${what} ${keys[k]}`)
    }
  }
}
