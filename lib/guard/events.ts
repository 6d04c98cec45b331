// The guard's refusals, as its programs put them on the `events` ring: the
// raw record decoded (layout from the object's BTF, struct guard_event) and
// told in the words of a PolicyError.
import type { BtfReader } from '../btf/reader.js'
import { attachTypes, helpers, mapTypes, progTypes } from '../sys/generated/kernel-enums.js'
import { cString } from '../sys/c-string.js'
import { findEnumName } from '../sys/names.js'
import { objectKinds, refusalKinds, type RefusalKind } from './abi.js'

export interface GuardEvent {
  /** CLOCK_BOOTTIME, nanoseconds. */
  time: bigint
  /** The tenant's name ('' when it is no longer registered), and its number. */
  tenant: string
  tenantId: number
  kind: RefusalKind
  object: 'prog' | 'map' | 'token'
  /** The program's or map's name as the request gave it. */
  name: string
  pid: number
  comm: string
  /** Instruction index, for helper and kfunc refusals. */
  insn?: number
  helper?: string
  /** kfunc name (from vmlinux's BTF) or, for a module's kfunc, '#<btf id>'. */
  kfunc?: string
  progType?: string
  attachType?: string
  mapType?: string
  /** Indexes in the tenant's policy.contexts that matched the program. */
  contexts?: number[]
  /** Bytes the map asked for; the quota and what the tenant held before. */
  bytes?: bigint
  limit?: bigint
  used?: bigint
  /** The tenant that owns the object (foreign). */
  owner?: string
  message: string
}

export interface RawGuardEvent {
  time_ns: bigint
  tenant: number
  kind: number
  object: number
  insn: number
  id: number
  prog_type: number
  attach_type: number
  attach_btf_id: number
  pid: number
  contexts: bigint
  value: bigint
  limit: bigint
  used: bigint
  name: Uint8Array
  comm: Uint8Array
}

const enumName = (table: Parameters<typeof findEnumName>[0], v: number): string => findEnumName(table, v) ?? String(v)

// expected_attach_type 0 is cgroup_inet_ingress only to cgroup_skb programs;
// to the others it is "none" (the kernel has refused a 0 where one is
// required before the hook runs). Any other value is what the kernel saw,
// kprobe's trace_kprobe_multi as much as tracing's trace_fentry.
const hasAttachType = (progType: string, attachType: number): boolean => attachType !== 0 || progType === 'cgroup_skb'

export function describeEvent(raw: RawGuardEvent, tenantName: (id: number) => string | undefined, vmlinux: BtfReader | undefined): GuardEvent {
  const kind = (refusalKinds as Record<number, RefusalKind>)[raw.kind] ?? ('unknown' as RefusalKind)
  const object = (objectKinds as Record<number, 'prog' | 'map' | 'token'>)[raw.object] ?? 'prog'
  const tenant = tenantName(raw.tenant) ?? ''
  const e: GuardEvent = { time: raw.time_ns, tenant, tenantId: raw.tenant, kind, object, name: cString(raw.name, 'latin1'), pid: raw.pid, comm: cString(raw.comm, 'latin1'), message: '' }
  const who = `tenant '${tenant || `#${raw.tenant}`}'`
  const head = object === 'token' ? `guard refused a token of ${who}` : kind === 'foreign' ? `guard refused ${who} ${object} '${e.name}'` : `guard refused ${object} '${e.name}' of ${who}`
  let why: string
  // bpf_prog_load's refusals carry the program's types; bpf_prog's (foreign) none.
  if (object === 'prog' && kind !== 'foreign') {
    e.progType = enumName(progTypes, raw.prog_type)
    if (hasAttachType(e.progType, raw.attach_type)) e.attachType = enumName(attachTypes, raw.attach_type)
  }
  // bpf_map_create's refusals all carry the map type in id; a foreign map's id is its owner.
  if (object === 'map' && kind !== 'foreign') e.mapType = enumName(mapTypes, raw.id)
  const context = `${e.progType}${e.attachType ? ` (${e.attachType})` : ''}`
  const contexts: number[] = []
  for (let i = 0; i < 64; i++) if ((raw.contexts >> BigInt(i)) & 1n) contexts.push(i)
  // A refused call: where it is, and what the program matched.
  if (kind === 'helper' || kind === 'kfunc' || kind === 'module_kfunc') {
    e.insn = raw.insn
    e.contexts = contexts
  }
  switch (kind) {
    case 'helper':
      e.helper = enumName(helpers, raw.id)
      why = `helper ${e.helper} at insn ${raw.insn} is not granted in context ${context}`
      break
    case 'kfunc':
      e.kfunc = kfuncName(vmlinux, raw.id)
      why = `kfunc ${e.kfunc} at insn ${raw.insn} is not granted in context ${context}`
      break
    case 'module_kfunc':
      e.kfunc = `#${raw.id}`
      why = `kfunc #${raw.id} of a module's BTF at insn ${raw.insn}: the guard grants only vmlinux's kfuncs`
      break
    case 'no_context':
      why = `no policy context matches program type ${context}`
      break
    case 'prog_type':
      why = `program type ${e.progType} is not delegated`
      break
    case 'attach_type':
      e.attachType = enumName(attachTypes, raw.attach_type)
      why = `attach type ${e.attachType} is not delegated`
      break
    case 'map_type':
      why = `map type ${e.mapType} is not delegated`
      break
    case 'map_count':
      e.limit = raw.limit
      e.used = raw.used
      why = `its quota of ${raw.limit} maps is reached`
      break
    case 'map_bytes':
      e.bytes = raw.value
      e.limit = raw.limit
      e.used = raw.used
      why = `${raw.value} bytes more would pass its quota of ${raw.limit} bytes (it holds ${raw.used})`
      break
    case 'foreign':
      e.owner = tenantName(raw.id) ?? `#${raw.id}`
      why = `it belongs to tenant '${e.owner}'`
      break
    case 'no_rules':
      why = 'the tenant is being replaced or removed'
      break
    case 'full':
      why = "the guard's tables are full"
      break
    case 'unreadable':
      e.insn = raw.insn
      why = `instruction ${raw.insn} could not be read`
      break
    default:
      why = `refusal ${raw.kind}`
  }
  e.message = `${head}: ${why}`
  return e
}

function kfuncName(vmlinux: BtfReader | undefined, id: number): string {
  try {
    const t = vmlinux?.type(id)
    if (t?.kind === 'FUNC') return t.name
  } catch {
    // not an id of this BTF
  }
  return `#${id}`
}
