// describeEvent (issue 15): the guard's raw refusal records (shaped as the
// ring gives them, struct guard_event) told in the words of a PolicyError,
// one test per refusal kind with the exact message, the fields each kind
// fills, tenants no longer registered ('#id'), and kfunc ids named from a
// BtfReader (the running kernel's and one built here).
import { existsSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { refusalKinds } from '../../lib/guard/abi.js'
import { describeEvent, type GuardEvent, type RawGuardEvent } from '../../lib/guard/events.js'
import { attachTypes, helpers, mapTypes, progTypes } from '../../lib/sys/generated/kernel-enums.js'

const kind = Object.fromEntries(Object.entries(refusalKinds).map(([v, k]) => [k, Number(v)])) as Record<string, number>
const PROG = 1
const MAP = 2
const TOKEN = 3

/** A NUL-padded char[16], as the kernel fills one. */
function chars(s: string, size = 16): Uint8Array {
  const b = new Uint8Array(size)
  b.set(Buffer.from(s, 'latin1').subarray(0, size))
  return b
}

function raw(fields: Partial<RawGuardEvent>): RawGuardEvent {
  return {
    time_ns: 123456789n, tenant: 3, kind: 0, object: PROG, insn: -1, id: 0, prog_type: 0, attach_type: 0, attach_btf_id: 0,
    pid: 4242, contexts: 0n, value: 0n, limit: 0n, used: 0n, name: chars('probe'), comm: chars('loader'),
    ...fields,
  }
}

const tenants = new Map([[3, 'web'], [4, 'db']])
const tenantName = (id: number) => tenants.get(id)

// A BTF with one kfunc at a known id, and an INT that is no function.
function miniVmlinux(): { btf: BtfReader; kfunc: number; notFunc: number } {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const kfunc = b.func('bpf_task_acquire', b.funcProto(int, []), 'global')
  return { btf: new BtfReader(b.bytes()), kfunc, notFunc: int }
}
const mini = miniVmlinux()

const describeRaw = (fields: Partial<RawGuardEvent>, vmlinux: BtfReader | undefined = mini.btf): GuardEvent => describeEvent(raw(fields), tenantName, vmlinux)

describe('describeEvent: program refusals', () => {
  test('helper: name, insn and the contexts that matched', () => {
    const e = describeRaw({ kind: kind.helper, prog_type: progTypes.kprobe, insn: 12, id: helpers.probe_write_user, contexts: 0b101n })
    expect(e).toEqual({
      time: 123456789n, tenant: 'web', tenantId: 3, kind: 'helper', object: 'prog', name: 'probe', pid: 4242, comm: 'loader',
      insn: 12, helper: 'probe_write_user', progType: 'kprobe', contexts: [0, 2],
      message: "guard refused prog 'probe' of tenant 'web': helper probe_write_user at insn 12 is not granted in context kprobe",
    })
  })

  test('helper with an attach type: the context names it; a helper id this build does not know stays a number', () => {
    const e = describeRaw({ kind: kind.helper, prog_type: progTypes.tracing, attach_type: attachTypes.trace_fentry, insn: 3, id: 4000, contexts: 1n << 63n })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': helper 4000 at insn 3 is not granted in context tracing (trace_fentry)")
    expect([e.helper, e.attachType, e.contexts]).toEqual(['4000', 'trace_fentry', [63]])
  })

  test('kfunc: named from the vmlinux BTF given', () => {
    const e = describeRaw({ kind: kind.kfunc, prog_type: progTypes.lsm, attach_type: attachTypes.lsm_mac, insn: 7, id: mini.kfunc, contexts: 2n })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': kfunc bpf_task_acquire at insn 7 is not granted in context lsm (lsm_mac)")
    expect([e.kfunc, e.insn, e.contexts, e.progType, e.attachType]).toEqual(['bpf_task_acquire', 7, [1], 'lsm', 'lsm_mac'])
  })

  test("kfunc: '#id' when the id is no function, past the BTF's end, or there is no BTF", () => {
    for (const [id, btf] of [[mini.notFunc, mini.btf], [mini.btf.count + 1, mini.btf], [0, mini.btf], [mini.kfunc, undefined]] as const) {
      const e = describeEvent(raw({ kind: kind.kfunc, prog_type: progTypes.kprobe, insn: 1, id }), tenantName, btf)
      expect({ id, kfunc: e.kfunc, message: e.message }).toEqual({ id, kfunc: `#${id}`, message: `guard refused prog 'probe' of tenant 'web': kfunc #${id} at insn 1 is not granted in context kprobe` })
    }
  })

  test("kfunc: the running kernel's BTF names its own kfuncs", (ctx) => {
    if (!existsSync('/sys/kernel/btf/vmlinux')) return ctx.skip('no /sys/kernel/btf/vmlinux (kernel without CONFIG_DEBUG_INFO_BTF)')
    const vmlinux = BtfReader.fromFile()
    const id = vmlinux.find('bpf_task_acquire', 'FUNC')
    if (id === undefined) return ctx.skip('this kernel has no kfunc bpf_task_acquire')
    const e = describeRaw({ kind: kind.kfunc, prog_type: progTypes.tracing, attach_type: attachTypes.trace_fentry, insn: 40, id, contexts: 1n }, vmlinux)
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': kfunc bpf_task_acquire at insn 40 is not granted in context tracing (trace_fentry)")
  })

  test("module_kfunc: the module's BTF id, never looked up in vmlinux's", () => {
    const e = describeRaw({ kind: kind.module_kfunc, prog_type: progTypes.kprobe, insn: 3, id: mini.kfunc, contexts: 1n })
    expect(e.message).toBe(`guard refused prog 'probe' of tenant 'web': kfunc #${mini.kfunc} of a module's BTF at insn 3: the guard grants only vmlinux's kfuncs`)
    expect([e.kfunc, e.insn, e.contexts]).toEqual([`#${mini.kfunc}`, 3, [0]])
  })

  test('no_context', () => {
    const e = describeRaw({ kind: kind.no_context, prog_type: progTypes.lsm, attach_type: attachTypes.lsm_mac })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': no policy context matches program type lsm (lsm_mac)")
    expect([e.insn, e.contexts, e.helper]).toEqual([undefined, undefined, undefined])
  })

  test('prog_type', () => {
    const e = describeRaw({ kind: kind.prog_type, prog_type: progTypes.xdp })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': program type xdp is not delegated")
    expect(e.progType).toBe('xdp')
  })

  test('attach_type: named even where the context would not show it', () => {
    const e = describeRaw({ kind: kind.attach_type, prog_type: progTypes.cgroup_skb, attach_type: attachTypes.cgroup_inet_egress })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': attach type cgroup_inet_egress is not delegated")
    expect(e.attachType).toBe('cgroup_inet_egress')
    const zero = describeRaw({ kind: kind.attach_type, prog_type: progTypes.socket_filter, attach_type: 0 })
    expect(zero.message).toBe("guard refused prog 'probe' of tenant 'web': attach type cgroup_inet_ingress is not delegated")
  })

  test('unreadable: the instruction', () => {
    const e = describeRaw({ kind: kind.unreadable, prog_type: progTypes.socket_filter, insn: 5 })
    expect(e.message).toBe("guard refused prog 'probe' of tenant 'web': instruction 5 could not be read")
    expect(e.insn).toBe(5)
  })

  test('no_rules', () => {
    expect(describeRaw({ kind: kind.no_rules, prog_type: progTypes.kprobe }).message).toBe("guard refused prog 'probe' of tenant 'web': the tenant is being replaced or removed")
  })
})

describe('describeEvent: the context a program is told in', () => {
  const contextOf = (prog_type: number, attach_type: number) => {
    const e = describeRaw({ kind: kind.no_context, prog_type, attach_type })
    return [e.message.slice(e.message.indexOf('program type ') + 'program type '.length), e.attachType]
  }

  test('attach type 0 is no attach type, except to cgroup_skb (cgroup_inet_ingress)', () => {
    expect(contextOf(progTypes.xdp, 0)).toEqual(['xdp', undefined])
    expect(contextOf(progTypes.syscall, 0)).toEqual(['syscall', undefined])
    expect(contextOf(progTypes.sk_skb, 0)).toEqual(['sk_skb', undefined])
    expect(contextOf(progTypes.kprobe, 0)).toEqual(['kprobe', undefined])
    expect(contextOf(progTypes.cgroup_skb, 0)).toEqual(['cgroup_skb (cgroup_inet_ingress)', 'cgroup_inet_ingress'])
  })

  test('any other attach type is shown, whatever the program type', () => {
    expect(contextOf(progTypes.xdp, attachTypes.xdp)).toEqual(['xdp (xdp)', 'xdp'])
    expect(contextOf(progTypes.kprobe, attachTypes.trace_kprobe_multi)).toEqual(['kprobe (trace_kprobe_multi)', 'trace_kprobe_multi'])
    expect(contextOf(progTypes.cgroup_skb, attachTypes.cgroup_inet_egress)).toEqual(['cgroup_skb (cgroup_inet_egress)', 'cgroup_inet_egress'])
  })

  test('numbers this build does not know stay numbers', () => {
    expect(contextOf(200, 0)).toEqual(['200', undefined])
    expect(contextOf(progTypes.tracing, 250)).toEqual(['tracing (250)', '250'])
  })
})

describe('describeEvent: map refusals', () => {
  const map = (fields: Partial<RawGuardEvent>) => describeRaw({ object: MAP, name: chars('counts'), id: mapTypes.ringbuf, ...fields })

  test('map_type', () => {
    const e = map({ kind: kind.map_type, value: 4096n })
    expect(e.message).toBe("guard refused map 'counts' of tenant 'web': map type ringbuf is not delegated")
    expect([e.object, e.mapType, e.progType, e.attachType]).toEqual(['map', 'ringbuf', undefined, undefined])
  })

  test('map_count: the quota and what is held', () => {
    const e = map({ kind: kind.map_count, id: mapTypes.hash, limit: 4n, used: 4n, value: 64n })
    expect(e.message).toBe("guard refused map 'counts' of tenant 'web': its quota of 4 maps is reached")
    expect([e.mapType, e.limit, e.used, e.bytes]).toEqual(['hash', 4n, 4n, undefined])
  })

  test('map_bytes: the bytes asked for, the quota and what is held', () => {
    const e = map({ kind: kind.map_bytes, id: mapTypes.hash, value: 4096n, limit: 10000n, used: 8000n })
    expect(e.message).toBe("guard refused map 'counts' of tenant 'web': 4096 bytes more would pass its quota of 10000 bytes (it holds 8000)")
    expect([e.mapType, e.bytes, e.limit, e.used]).toEqual(['hash', 4096n, 10000n, 8000n])
  })

  test('full and no_rules: the map type too', () => {
    const full = map({ kind: kind.full })
    expect([full.message, full.mapType]).toEqual(["guard refused map 'counts' of tenant 'web': the guard's tables are full", 'ringbuf'])
    const noRules = map({ kind: kind.no_rules, id: mapTypes.array })
    expect([noRules.message, noRules.mapType]).toEqual(["guard refused map 'counts' of tenant 'web': the tenant is being replaced or removed", 'array'])
  })
})

describe('describeEvent: foreign objects and tokens', () => {
  test("foreign: the asking tenant, the object, and its owner's name", () => {
    const e = describeRaw({ kind: kind.foreign, object: MAP, name: chars('secrets'), id: 4 })
    expect(e.message).toBe("guard refused tenant 'web' map 'secrets': it belongs to tenant 'db'")
    expect([e.owner, e.tenant, e.mapType]).toEqual(['db', 'web', undefined])
    // The bpf_prog hook knows the program's owner, not its types (the record's are 0).
    const p = describeRaw({ kind: kind.foreign, object: PROG, name: chars('xdp_pass'), id: 4 })
    expect(p.message).toBe("guard refused tenant 'web' prog 'xdp_pass': it belongs to tenant 'db'")
    expect([p.owner, p.progType, p.attachType]).toEqual(['db', undefined, undefined])
  })

  test("foreign: an owner no longer registered is '#id'", () => {
    const e = describeRaw({ kind: kind.foreign, object: MAP, name: chars('secrets'), id: 9 })
    expect(e.message).toBe("guard refused tenant 'web' map 'secrets': it belongs to tenant '#9'")
    expect(e.owner).toBe('#9')
  })

  test('a token: full tables', () => {
    const e = describeRaw({ kind: kind.full, object: TOKEN, name: chars('') })
    expect(e.message).toBe("guard refused a token of tenant 'web': the guard's tables are full")
    expect([e.object, e.name]).toEqual(['token', ''])
  })
})

describe('describeEvent: what every event carries', () => {
  test("a tenant no longer registered: '' as its name, '#id' in the message", () => {
    const e = describeEvent(raw({ kind: kind.prog_type, tenant: 17, prog_type: progTypes.xdp }), tenantName, undefined)
    expect([e.tenant, e.tenantId]).toEqual(['', 17])
    expect(e.message).toBe("guard refused prog 'probe' of tenant '#17': program type xdp is not delegated")
  })

  test('names: up to 16 bytes, read to the first NUL (the kernel may leave no NUL in a full one)', () => {
    const full = describeRaw({ kind: kind.prog_type, name: chars('sixteen_chars_xx'), comm: chars('a\0junk') })
    expect([full.name, full.comm]).toEqual(['sixteen_chars_xx', 'a'])
    // A view into a bigger buffer, as a ring record decodes: only its own bytes.
    const big = new Uint8Array(64).fill(0x41)
    big.set(chars('abc'), 16)
    expect(describeRaw({ kind: kind.prog_type, name: big.subarray(16, 32) }).name).toBe('abc')
    expect(describeRaw({ kind: kind.prog_type, name: big.subarray(40, 56) }).name).toBe('A'.repeat(16))
  })

  test('every refusal kind of abi.ts gets a message of its own, none the fallback', () => {
    for (const [value, name] of Object.entries(refusalKinds)) {
      const e = describeRaw({ kind: Number(value), object: name.startsWith('map') ? MAP : PROG, prog_type: progTypes.kprobe })
      expect({ name, kind: e.kind, fallback: e.message.includes(`refusal ${value}`) }).toEqual({ name, kind: name, fallback: false })
    }
  })

  test("an unknown kind: 'unknown', the number in the message; an unknown object kind reads as a prog", () => {
    const e = describeRaw({ kind: 99, object: 77, prog_type: progTypes.kprobe })
    expect([e.kind, e.object, e.message]).toEqual(['unknown', 'prog', "guard refused prog 'probe' of tenant 'web': refusal 99"])
  })
})
