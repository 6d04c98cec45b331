// The guard's ABI between user space and its BPF programs (issue 15): every
// number lib/guard/abi.ts mirrors equals the one bpf/guard/guard.h defines
// (the header's text is parsed here, names mapped explicitly), and the
// shipped object's BTF has the structs lib/guard reads and writes, with
// exactly the members guard.ts, compile.ts and events.ts use.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { CollectionSpec } from '../../lib/collection/index.js'
import type { BtfReader } from '../../lib/btf/reader.js'
import { codecFromBtf } from '../../lib/map/btf-codec.js'
import { contextFlags, limits, objectKinds, refusalKinds, statSlots, tenantFlags } from '../../lib/guard/abi.js'
import type { ContextRule, TenantRules } from '../../lib/guard/compile.js'
import type { RawGuardEvent } from '../../lib/guard/events.js'
import { guardObjectPath } from '../../lib/guard/guard.js'

const headerPath = join(__dirname, '..', '..', 'bpf', 'guard', 'guard.h')
const header = readFileSync(headerPath, 'utf8')

/** `#define NAME <integer expression>` and every enumerator (implicit values counted on), by name. */
function headerNumbers(text: string): Map<string, number> {
  const out = new Map<string, number>()
  const code = text.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '')
  for (const m of code.matchAll(/^#define\s+(\w+)\s+([0-9()*+<\s-]+)$/gm)) {
    // Only digits, parentheses and * + - << reach here: safe to evaluate.
    out.set(m[1], Number(new Function(`return (${m[2]})`)()))
  }
  for (const m of code.matchAll(/\benum\s+\w+\s*\{([^}]*)\}/g)) {
    let next = 0
    for (const item of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const [, name, value] = /^(\w+)(?:\s*=\s*(\d+))?$/.exec(item) ?? []
      if (name === undefined) throw new Error(`guard.h: cannot read enumerator '${item}'`)
      if (value !== undefined) next = Number(value)
      out.set(name, next++)
    }
  }
  return out
}

const numbers = headerNumbers(header)
const headerValue = (name: string): number => {
  const v = numbers.get(name)
  if (v === undefined) throw new Error(`guard.h defines no ${name}`)
  return v
}

describe('lib/guard/abi.ts mirrors guard.h', () => {
  test('the header parser reads defines, explicit and implicit enumerators', () => {
    expect(headerValue('GUARD_MAX_TENANTS')).toBe(64)
    expect(headerValue('GUARD_EVENTS_BYTES')).toBe(256 * 1024)
    expect(headerValue('GUARD_STAT_ALLOWED')).toBe(2)
    expect(headerValue('GUARD_STATS')).toBe(3)
    expect(headerValue('GUARD_REFUSED_UNREADABLE')).toBe(13)
  })

  test('limits', () => {
    const names: Record<Exclude<keyof typeof limits, 'recordDoc'>, string> = {
      tenants: 'GUARD_MAX_TENANTS',
      contexts: 'GUARD_MAX_CONTEXTS',
      helperWords: 'GUARD_HELPER_WORDS',
      matches: 'GUARD_MAX_MATCHES',
      targets: 'GUARD_MAX_TARGETS',
      kfuncs: 'GUARD_MAX_KFUNCS',
    }
    for (const [abi, h] of Object.entries(names)) expect({ [abi]: limits[abi as keyof typeof names] }).toEqual({ [abi]: headerValue(h) })
    // recordDoc is the size of guard_record.doc, written as a literal in the struct.
    expect(/struct guard_record \{[^}]*char doc\[(\d+)\];/.exec(header)?.[1]).toBe(String(limits.recordDoc))
    // Contexts are bits of a u64 mask; helper words hold helper ids below 256.
    expect(limits.contexts).toBeLessThanOrEqual(64)
    expect(Object.keys(limits).sort()).toEqual([...Object.keys(names), 'recordDoc'].sort())
  })

  test('tenant and context flags', () => {
    expect(tenantFlags).toEqual({ checkPrograms: headerValue('GUARD_TENANT_CHECK_PROGRAMS') })
    expect(contextFlags).toEqual({
      anyAttach: headerValue('GUARD_CTX_ANY_ATTACH'),
      targets: headerValue('GUARD_CTX_TARGETS'),
      members: headerValue('GUARD_CTX_MEMBERS'),
    })
    // Flags are single bits, none shared.
    const bits = Object.values(contextFlags)
    for (const b of bits) expect(b & (b - 1)).toBe(0)
    expect(new Set(bits).size).toBe(bits.length)
  })

  test('object kinds', () => {
    expect(objectKinds).toEqual({
      [headerValue('GUARD_OBJECT_PROG')]: 'prog',
      [headerValue('GUARD_OBJECT_MAP')]: 'map',
      [headerValue('GUARD_OBJECT_TOKEN')]: 'token',
    })
  })

  test('refusal kinds: each of the header, by the same value, and no other', () => {
    const fromHeader = [...numbers].filter(([n]) => n.startsWith('GUARD_REFUSED_'))
    expect(fromHeader.length).toBe(13)
    const expected = Object.fromEntries(fromHeader.map(([n, v]) => [v, n.slice('GUARD_REFUSED_'.length).toLowerCase()]))
    expect(refusalKinds).toEqual(expected)
  })

  test('stat slots, and the stats array has one per slot', () => {
    expect(statSlots).toEqual({
      refused: headerValue('GUARD_STAT_REFUSED'),
      lost: headerValue('GUARD_STAT_LOST'),
      allowed: headerValue('GUARD_STAT_ALLOWED'),
    })
    expect(Object.keys(statSlots).length).toBe(headerValue('GUARD_STATS'))
  })
})

// The member names lib/guard writes and reads. Each list is typed against the
// TypeScript interface it mirrors, so a member added on one side and not the
// other fails to typecheck; `pad` is what guard.ts adds itself.
const tenantRuleKeys = { flags: 1, ncontexts: 1, prog_types: 1, attach_types: 1, map_types: 1, max_maps: 1, max_bytes: 1 } satisfies Record<keyof TenantRules, 1>
const contextRuleKeys = { flags: 1, prog_types: 1, attach_types: 1, members: 1, helpers: 1 } satisfies Record<keyof ContextRule, 1>
const rawEventKeys = {
  time_ns: 1, tenant: 1, kind: 1, object: 1, insn: 1, id: 1, prog_type: 1, attach_type: 1, attach_btf_id: 1,
  pid: 1, contexts: 1, value: 1, limit: 1, used: 1, name: 1, comm: 1,
} satisfies Record<keyof RawGuardEvent, 1>

/** Struct name -> its members as lib/guard uses them: [name, bytes] (arrays: total bytes). */
const structs: Record<string, [string, number][]> = {
  // guard.ts: tenants.set(id, { version, pad: 0, ...compiled.rules })
  guard_tenant: [['version', 4], ['flags', 4], ['ncontexts', 4], ['pad', 4], ['prog_types', 8], ['attach_types', 16], ['map_types', 16], ['max_maps', 8], ['max_bytes', 8]],
  // guard.ts: contexts.set({ tenant, version, index }, { pad: 0, ...rule })
  guard_context_key: [['tenant', 4], ['version', 2], ['index', 2]],
  guard_context: [['flags', 4], ['pad', 4], ['prog_types', 8], ['attach_types', 16], ['members', 8], ['helpers', 8 * limits.helperWords]],
  // guard.ts: targets.set({ tenant, version, index, btf_obj, btf_id }, 1)
  guard_target_key: [['tenant', 4], ['version', 2], ['index', 2], ['btf_obj', 4], ['btf_id', 4]],
  // guard.ts: kfuncs.set({ tenant, version, btf_id }, mask)
  guard_kfunc_key: [['tenant', 4], ['version', 4], ['btf_id', 4]],
  // guard.ts #describe: usage.get(id) as { maps, bytes }
  guard_usage: [['maps', 8], ['bytes', 8]],
  // guard.ts RecordValue
  guard_record: [['name', 64], ['doc_len', 4], ['pad', 4], ['doc', limits.recordDoc]],
  // events.ts RawGuardEvent (+ pad)
  guard_event: [
    ['time_ns', 8], ['tenant', 4], ['kind', 4], ['object', 4], ['insn', 4], ['id', 4], ['prog_type', 4], ['attach_type', 4],
    ['attach_btf_id', 4], ['pid', 4], ['pad', 4], ['contexts', 8], ['value', 8], ['limit', 8], ['used', 8], ['name', 16], ['comm', 16],
  ],
}

function structOf(btf: BtfReader, name: string): number {
  const id = btf.find(name, 'STRUCT')
  if (id === undefined) throw new Error(`the guard object's BTF has no struct ${name}`)
  return id
}

describe("the guard object's BTF", () => {
  const spec = CollectionSpec.fromFile(guardObjectPath)
  const btf = spec.btf!

  test('the object has BTF', () => {
    expect(btf).toBeDefined()
  })

  test('the lists above are the TypeScript interfaces', () => {
    const names = (s: string) => structs[s].map(([n]) => n).sort()
    expect(names('guard_tenant')).toEqual(['pad', 'version', ...Object.keys(tenantRuleKeys)].sort())
    expect(names('guard_context')).toEqual(['pad', ...Object.keys(contextRuleKeys)].sort())
    expect(names('guard_event')).toEqual(['pad', ...Object.keys(rawEventKeys)].sort())
  })

  for (const [name, members] of Object.entries(structs)) {
    test(`struct ${name} has exactly the members lib/guard uses, with their sizes`, () => {
      const id = structOf(btf, name)
      const got = btf.members(btf.type(id)).map((m) => [m.name, btf.sizeof(m.type)])
      expect(got).toEqual(members)
    })
  }

  test('guard_event decodes to a RawGuardEvent: numbers, bigints and byte arrays where events.ts expects them', () => {
    const id = structOf(btf, 'guard_event')
    const codec = codecFromBtf(btf, id)
    const bytes = new Uint8Array(codec.size)
    const view = new DataView(bytes.buffer)
    // insn is signed: -1 means "not about an instruction".
    const insnOffset = btf.members(btf.type(id)).find((m) => m.name === 'insn')!.bitOffset / 8
    view.setInt32(insnOffset, -1, true)
    const raw = codec.decode(view, 0) as Record<string, unknown>
    const kinds = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v instanceof Uint8Array ? 'bytes' : typeof v]))
    expect(kinds).toEqual({
      time_ns: 'bigint', tenant: 'number', kind: 'number', object: 'number', insn: 'number', id: 'number', prog_type: 'number',
      attach_type: 'number', attach_btf_id: 'number', pid: 'number', pad: 'number', contexts: 'bigint', value: 'bigint',
      limit: 'bigint', used: 'bigint', name: 'bytes', comm: 'bytes',
    })
    expect(raw.insn).toBe(-1)
  })

  test("the maps' key and value sizes are those structs'", () => {
    const size = (s: string) => btf.sizeof(structOf(btf, s))
    const expected: Record<string, [number, number]> = {
      tenants: [4, size('guard_tenant')],
      contexts: [size('guard_context_key'), size('guard_context')],
      targets: [size('guard_target_key'), 1],
      kfuncs: [size('guard_kfunc_key'), 8],
      usage: [4, size('guard_usage')],
      records: [4, size('guard_record')],
      by_userns: [4, 4],
      by_cgroup: [8, 4],
      by_bpffs: [4, 4],
      tokens: [8, 4],
    }
    for (const [map, [key, value]] of Object.entries(expected)) {
      const m = spec.maps[map]
      expect({ map, key: m.keySize, value: m.valueSize }).toEqual({ map, key, value })
    }
    expect(spec.maps.events.type).toBe('ringbuf')
    expect(spec.maps.events.maxEntries).toBe(headerValue('GUARD_EVENTS_BYTES'))
    expect(spec.maps.stats.maxEntries).toBe(headerValue('GUARD_STATS'))
    expect(spec.maps.tenants.maxEntries).toBe(limits.tenants)
    expect(spec.maps.targets.maxEntries).toBe(limits.targets)
    expect(spec.maps.kfuncs.maxEntries).toBe(limits.kfuncs)
    expect(spec.maps.by_cgroup.maxEntries).toBe(limits.matches)
  })
})
