// Capability sets and contexts in a Policy (issue 13): validation with the
// closest known name, include and cycles, context matching and the union of
// grants, setsAllowing, JSON round trip, fromFile, and what a policy without
// them keeps meaning. Kfuncs and attach targets are checked against a small
// BTF built here (the same code reads the running kernel's; see the last block).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { Policy, type PolicyDocument } from '../../lib/policy/index.js'
import { jsInternal, walkArguments, wrongValues } from './walk-arguments.js'

// A kernel's BTF in miniature: kfuncs (two tagged as the kernel tags them),
// functions, an LSM hook, a raw tracepoint, an iterator, a struct_ops type.
function miniKernel(): BtfReader {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const proto = b.funcProto(int, [])
  for (const name of ['bpf_task_acquire', 'bpf_task_release']) b.declTag('bpf_kfunc', b.func(name, proto, 'global'))
  for (const name of ['scx_bpf_dsq_move_to_local', 'tcp_connect', 'tcp_sendmsg', 'udp_sendmsg', 'bpf_lsm_file_open', 'bpf_iter_task']) b.func(name, proto, 'global')
  b.typedef('btf_trace_sched_switch', b.ptr(proto))
  b.struct('sched_ext_ops', [])
  return new BtfReader(b.bytes())
}
const kernelBtf = miniKernel()

// The example (test/fixtures/policy/issue-example.json, shared with the other policy tests).
const example = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'policy', 'issue-example.json'), 'utf8')) as PolicyDocument & Required<Pick<PolicyDocument, 'capabilities' | 'contexts'>>

const from = (doc: PolicyDocument) => Policy.from(doc, { kernelBtf })
const withCaps = (capabilities: PolicyDocument['capabilities'], contexts: PolicyDocument['contexts'] = []) => from({ capabilities, contexts })
const sorted = (s: ReadonlySet<string>) => [...s].sort()
const base = ['ktime_get_ns', 'map_lookup_elem', 'map_update_elem']

describe('the policy document', () => {
  test("the issue's example is kept as written, canonical and frozen", () => {
    const p = from(example)
    expect(p.hasCapabilities).toBe(true)
    expect(p.capabilities).toEqual(example.capabilities)
    expect(p.contexts).toEqual(example.contexts)
    expect(Object.isFrozen(p.capabilities)).toBe(true)
    expect(Object.isFrozen(p.capabilities!.base.helpers)).toBe(true)
    expect(Object.isFrozen(p.contexts![1])).toBe(true)
  })

  test('names become canonical: bpf_ prefix and ids for helpers, numbers and case for types; duplicates go', () => {
    const p = withCaps(
      { s: { helpers: ['bpf_map_lookup_elem', 5, 'map_lookup_elem'], maps: [1, 'ARRAY' as never] } },
      [{ progs: [1, 'XDP' as never], attachs: [2, 'CGROUP_INET_INGRESS' as never], grant: ['s'] }],
    )
    expect(p.capabilities).toEqual({ s: { helpers: ['map_lookup_elem', 'ktime_get_ns'], maps: ['hash', 'array'] } })
    expect(p.contexts).toEqual([{ progs: ['socket_filter', 'xdp'], attachs: ['cgroup_inet_sock_create', 'cgroup_inet_ingress'], grant: ['s'] }])
  })

  test('a policy without capabilities means what it meant: masks only, toJSON unchanged, nothing granted', () => {
    const p = Policy.from({ cmds: ['prog_load'], progs: ['xdp'] })
    expect(p.hasCapabilities).toBe(false)
    expect(p.capabilities).toBeUndefined()
    expect(p.contexts).toBeUndefined()
    expect(p.toJSON()).toEqual({ cmds: ['prog_load'], maps: [], progs: ['xdp'], attachs: [] })
    expect(Object.keys(p.toJSON())).toEqual(['cmds', 'maps', 'progs', 'attachs'])
    expect(p.grantsFor({ type: 'xdp' })).toEqual({ contexts: [], helpers: new Set(), kfuncs: new Set(), maps: new Set() })
    expect(p.setsAllowing('helper', 'map_lookup_elem')).toEqual([])
    expect(p.describe()).toEqual(['commands: prog_load', 'map types: none', 'program types: xdp', 'attach types: none'])
  })

  test('empty capabilities still count: the policy then grants programs nothing', () => {
    const p = from({ progs: ['xdp'], capabilities: {} })
    expect(p.hasCapabilities).toBe(true)
    expect(p.toJSON()).toEqual({ cmds: [], maps: [], progs: ['xdp'], attachs: [], capabilities: {}, contexts: [] })
    expect(p.grantsFor({ type: 'xdp' }).contexts).toEqual([])
  })

  test('JSON round trip: toJSON, JSON text and back give an equal policy', () => {
    const p = from(example)
    const json = p.toJSON()
    expect(json.capabilities).toEqual(example.capabilities)
    expect(json.contexts).toEqual(example.contexts)
    const back = from(JSON.parse(JSON.stringify(p)))
    expect(back.equals(p)).toBe(true)
    expect(JSON.stringify(back)).toBe(JSON.stringify(p))
    // The order of names inside lists does not make policies different.
    const shuffled = from({ ...example, capabilities: { ...example.capabilities, base: { helpers: ['ktime_get_ns', 'map_update_elem', 'map_lookup_elem'] } } })
    expect(shuffled.equals(p)).toBe(true)
    expect(from({ ...example, contexts: example.contexts.slice(1) }).equals(p)).toBe(false)
    expect(Policy.from({ cmds: ['map_create', 'prog_load'], maps: ['hash', 'ringbuf'], progs: ['socket_filter', 'kprobe'], attachs: 'any' }).equals(p)).toBe(false)
  })

  test('describe lists sets and contexts after the masks', () => {
    expect(from(example).describe().slice(4)).toEqual([
      'capability set base: helpers map_lookup_elem, map_update_elem, ktime_get_ns',
      'capability set net.read: includes base; helpers skb_load_bytes; map types hash, array',
      'capability set trace.read: includes base; helpers probe_read_kernel, get_current_pid_tgid; kfuncs bpf_task_acquire, bpf_task_release; map types ringbuf',
      'capability set scx.dispatch: includes base; kfuncs scx_bpf_dsq_move_to_local',
      'context 0: program types socket_filter -> net.read',
      'context 1: program types kprobe, attached to tcp_* -> trace.read',
      'context 2: program types struct_ops, members dispatch -> scx.dispatch',
    ])
  })
})

describe('grantsFor: contexts matched, union of what they grant', () => {
  const p = from(example)

  test('each context of the example, with what its sets include', () => {
    const net = p.grantsFor({ type: 'socket_filter' })
    expect(net.contexts).toEqual([0])
    expect(sorted(net.helpers)).toEqual([...base, 'skb_load_bytes'].sort())
    expect(sorted(net.maps)).toEqual(['array', 'hash'])
    expect(sorted(net.kfuncs)).toEqual([])

    const trace = p.grantsFor({ type: 'kprobe', attachTo: 'tcp_connect' })
    expect(trace.contexts).toEqual([1])
    expect(sorted(trace.helpers)).toEqual([...base, 'get_current_pid_tgid', 'probe_read_kernel'].sort())
    expect(sorted(trace.kfuncs)).toEqual(['bpf_task_acquire', 'bpf_task_release'])
    expect(sorted(trace.maps)).toEqual(['ringbuf'])

    const dispatch = p.grantsFor({ type: 'struct_ops', member: 'dispatch', attachTo: 'sched_ext_ops' })
    expect(dispatch.contexts).toEqual([2])
    expect(sorted(dispatch.kfuncs)).toEqual(['scx_bpf_dsq_move_to_local'])
    expect(sorted(dispatch.helpers)).toEqual(base)
  })

  test('no matching context grants nothing: other type, other target, no target, other member', () => {
    const nothing = { contexts: [], helpers: new Set(), kfuncs: new Set(), maps: new Set() }
    expect(p.grantsFor({ type: 'xdp' })).toEqual(nothing)
    expect(p.grantsFor({ type: 'kprobe', attachTo: 'udp_sendmsg' })).toEqual(nothing)
    expect(p.grantsFor({ type: 'kprobe' })).toEqual(nothing)
    expect(p.grantsFor({ type: 'struct_ops', member: 'cpu_release' })).toEqual(nothing)
    expect(p.grantsFor({ type: 'struct_ops' })).toEqual(nothing)
  })

  test('every matching context adds its sets; indexes in policy order', () => {
    const q = withCaps(
      { a: { helpers: ['ktime_get_ns'] }, b: { helpers: ['trace_printk'], maps: ['array'] }, c: { maps: ['hash'] } },
      [
        { progs: ['kprobe'], grant: ['a'] },
        { attachTo: ['tcp_?onnect'], grant: ['b'] },
        { progs: ['xdp'], grant: ['c'] },
        { grant: ['c'] }, // every program
      ],
    )
    const g = q.grantsFor({ type: 'kprobe', attachTo: 'tcp_connect' })
    expect(g.contexts).toEqual([0, 1, 3])
    expect(sorted(g.helpers)).toEqual(['ktime_get_ns', 'trace_printk'])
    expect(sorted(g.maps)).toEqual(['array', 'hash'])
    expect(q.grantsFor({ type: 'kprobe', attachTo: 'tcp_sendmsg' }).contexts).toEqual([0, 3])
    expect(q.grantsFor({ type: 6 }).contexts).toEqual([2, 3]) // xdp by number
  })

  test('expected attach types: a program without one matches no context that lists them', () => {
    const q = withCaps({ s: { helpers: ['ktime_get_ns'] } }, [{ progs: ['cgroup_skb'], attachs: ['cgroup_inet_egress'], grant: ['s'] }])
    expect(q.grantsFor({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_egress' }).contexts).toEqual([0])
    expect(q.grantsFor({ type: 'cgroup_skb', expectedAttachType: 1 }).contexts).toEqual([0])
    expect(q.grantsFor({ type: 'cgroup_skb', expectedAttachType: 'cgroup_inet_ingress' }).contexts).toEqual([])
    expect(q.grantsFor({ type: 'cgroup_skb' }).contexts).toEqual([])
  })

  test('globs: * any run, ? one character, everything else literal', () => {
    // Made-up targets: not checked against BTF here.
    const q = Policy.from({ capabilities: { s: {} }, contexts: [{ attachTo: ['tcp_*', 'a.b', 'x?y'], member: ['*'], grant: ['s'] }] }, { kernelBtf: null })
    const hit = (attachTo: string) => q.grantsFor({ type: 'struct_ops', attachTo, member: 'm' }).contexts.length === 1
    expect([hit('tcp_'), hit('tcp_connect'), hit('a.b'), hit('xzy')]).toEqual([true, true, true, true])
    expect([hit('atcp_x'), hit('aXb'), hit('xy'), hit('xzzy')]).toEqual([false, false, false, false])
  })

  test('a bad target is a TypeError naming what and the closest name', () => {
    expect(() => p.grantsFor(null as never)).toThrow(/grantsFor: target must be an object like \{ type, expectedAttachType, attachTo, member \}, got null/)
    expect(() => p.grantsFor({} as never)).toThrow(new TypeError('grantsFor: target.type (the program type) is missing'))
    expect(() => p.grantsFor({ type: 'sokcet_filter' as never })).toThrow(new TypeError("grantsFor: target.type: unknown program type 'sokcet_filter' (did you mean 'socket_filter'?)"))
    expect(() => p.grantsFor({ type: 'xdp', expectedAttachType: 'xpd' as never })).toThrow(new TypeError("grantsFor: target.expectedAttachType: unknown attach type 'xpd' (did you mean 'xdp'?)"))
    expect(() => p.grantsFor({ type: 'xdp', target: 'x' } as never)).toThrow(/grantsFor: target: unknown key 'target'/)
    expect(() => p.grantsFor({ type: 'xdp', attachTo: 1 } as never)).toThrow(/key 'attachTo' must be a string, got number 1/)
    expect(() => Policy.none().grantsFor({ type: 'nope' as never })).toThrow(TypeError)
  })
})

describe('setsAllowing', () => {
  const p = from(example)
  test('the sets, after include, in policy order', () => {
    expect(p.setsAllowing('helper', 'map_lookup_elem')).toEqual(['base', 'net.read', 'trace.read', 'scx.dispatch'])
    expect(p.setsAllowing('helper', 'skb_load_bytes')).toEqual(['net.read'])
    expect(p.setsAllowing('helper', 'bpf_skb_load_bytes')).toEqual(['net.read'])
    expect(p.setsAllowing('helper', 'probe_write_user')).toEqual([])
    expect(p.setsAllowing('kfunc', 'bpf_task_acquire')).toEqual(['trace.read'])
    expect(p.setsAllowing('kfunc', 'bpf_obj_new_impl')).toEqual([])
    expect(p.setsAllowing('map', 'ringbuf')).toEqual(['trace.read'])
    expect(p.setsAllowing('map', 'HASH')).toEqual(['net.read'])
    expect(p.setsAllowing('map', 'lru_hash')).toEqual([])
  })
  test('bad arguments', () => {
    expect(() => p.setsAllowing('helpers' as never, 'x')).toThrow(new TypeError("setsAllowing: kind must be 'helper', 'kfunc' or 'map', got 'helpers'"))
    expect(() => p.setsAllowing('helper', 1 as never)).toThrow(new TypeError('setsAllowing: name must be a string, got number 1'))
  })
})

describe('errors name the place and the closest known name', () => {
  const bad = (doc: PolicyDocument) => () => from(doc)
  test('helpers, map types, program and attach types', () => {
    expect(bad({ capabilities: { s: { helpers: ['map_lookup_elm'] } } })).toThrow(new TypeError("policy.capabilities['s'].helpers[0]: unknown helper 'map_lookup_elm' (did you mean 'map_lookup_elem'?)"))
    expect(bad({ capabilities: { s: { helpers: ['bpf_ktime_get_nss'] } } })).toThrow(new TypeError("policy.capabilities['s'].helpers[0]: unknown helper 'bpf_ktime_get_nss' (did you mean 'ktime_get_ns'?)"))
    expect(bad({ capabilities: { s: { helpers: ['unspec'] } } })).toThrow(/unknown helper 'unspec'/)
    expect(bad({ capabilities: { s: { helpers: [0] } } })).toThrow(new RangeError("policy.capabilities['s'].helpers[0]: 0 is not a helper id this build knows"))
    expect(bad({ capabilities: { s: { maps: ['lru_hsh' as never] } } })).toThrow(new TypeError("policy.capabilities['s'].maps[0]: unknown map type 'lru_hsh' (did you mean 'lru_hash'?)"))
    expect(bad({ capabilities: { s: { maps: [999] } } })).toThrow(new RangeError("policy.capabilities['s'].maps[0]: map type 999 is not one this build knows"))
    expect(bad({ capabilities: { s: {} }, contexts: [{ progs: ['kprobes' as never], grant: ['s'] }] })).toThrow(new TypeError("policy.contexts[0].progs[0]: unknown program type 'kprobes' (did you mean 'kprobe'?)"))
    expect(bad({ capabilities: { s: {} }, contexts: [{ attachs: ['cgroup_inet_egres' as never], grant: ['s'] }] })).toThrow(new TypeError("policy.contexts[0].attachs[0]: unknown attach type 'cgroup_inet_egres' (did you mean 'cgroup_inet_egress'?)"))
  })

  test('capability sets: unknown in include and grant, itself, cycles', () => {
    expect(bad({ capabilities: { base: {}, net: { include: ['bsae'] } } })).toThrow(new TypeError("policy.capabilities['net'].include[0]: unknown capability set 'bsae' (did you mean 'base'?)"))
    expect(bad({ capabilities: { base: {} }, contexts: [{ grant: ['bas'] }] })).toThrow(new TypeError("policy.contexts[0].grant[0]: unknown capability set 'bas' (did you mean 'base'?)"))
    expect(bad({ contexts: [{ grant: ['base'] }] })).toThrow(new TypeError("policy.contexts[0].grant[0]: unknown capability set 'base' (policy.capabilities defines none)"))
    expect(bad({ capabilities: { a: { include: ['a'] } } })).toThrow(new TypeError("policy.capabilities['a'].include[0]: capability set 'a' includes itself"))
    expect(bad({ capabilities: { a: { include: ['b'] }, b: { include: ['c'] }, c: { include: ['a'] } } }))
      .toThrow(new TypeError('policy.capabilities: capability sets include each other in a cycle: a -> b -> c -> a'))
    // A diamond is no cycle.
    const d = from({ capabilities: { top: { include: ['l', 'r'] }, l: { include: ['base'] }, r: { include: ['base'] }, base: { helpers: ['ktime_get_ns'] } }, contexts: [{ grant: ['top'] }] })
    expect(sorted(d.grantsFor({ type: 'xdp' }).helpers)).toEqual(['ktime_get_ns'])
    expect(d.setsAllowing('helper', 'ktime_get_ns')).toEqual(['top', 'l', 'r', 'base'])
  })

  test('shapes: unknown keys, lists, names, a missing grant, members without struct_ops', () => {
    expect(bad({ capabilities: [] as never })).toThrow(new TypeError('policy.capabilities must be an object of capability sets by name, got an array'))
    expect(bad({ capabilities: { s: { helper: ['x'] } as never } })).toThrow(new TypeError("policy.capabilities['s']: unknown key 'helper' (known: include, helpers, kfuncs, maps)"))
    expect(bad({ capabilities: { s: null as never } })).toThrow(/policy.capabilities\['s'\] must be an object like \{ include, helpers, kfuncs, maps \}, got null/)
    expect(bad({ capabilities: { s: { helpers: 'ktime_get_ns' as never } } })).toThrow(new TypeError("policy.capabilities['s'].helpers must be a list of helper names, got 'ktime_get_ns'"))
    expect(bad({ capabilities: { 'a b': {} } })).toThrow(/capability set name 'a b' must be letters, digits and/)
    expect(bad({ capabilities: { s: {} }, contexts: {} as never })).toThrow(/policy.contexts must be a list of contexts/)
    expect(bad({ capabilities: { s: {} }, contexts: [{ progs: ['xdp'] } as never] })).toThrow(new TypeError('policy.contexts[0]: grant is missing (the capability sets this context grants)'))
    expect(bad({ capabilities: { s: {} }, contexts: [{ grant: ['s'], prog: [] } as never] })).toThrow(new TypeError("policy.contexts[0]: unknown key 'prog' (known: progs, attachs, attachTo, member, grant)"))
    expect(bad({ capabilities: { s: {} }, contexts: [{ progs: ['kprobe'], member: ['dispatch'], grant: ['s'] }] }))
      .toThrow(new TypeError('policy.contexts[0].member: only struct_ops programs have callback members, and policy.contexts[0].progs does not list struct_ops'))
    expect(bad({ capabilities: { s: {} }, contexts: [{ attachTo: ['tcp connect'], grant: ['s'] }] })).toThrow(/policy.contexts\[0\].attachTo\[0\]: 'tcp connect' is not a name or glob/)
    expect(bad({ capabilities: { s: { kfuncs: ['bpf-task'] } } })).toThrow(new TypeError("policy.capabilities['s'].kfuncs[0]: kfunc 'bpf-task' is not a C identifier"))
    // A masks-only document is told the keys it always was; one with capabilities, all of them.
    expect(() => Policy.from({ map: [] } as never)).toThrow(new TypeError("policy: unknown key 'map' (known: cmds, maps, progs, attachs)"))
    expect(bad({ capabilities: {}, context: [] } as never)).toThrow(new TypeError("policy: unknown key 'context' (known: cmds, maps, progs, attachs, capabilities, contexts, $schema)"))
    expect(bad({ $schema: 1 } as never)).toThrow(/policy: key '\$schema' must be a string, got number 1/)
    expect(() => Policy.from({}, { btf: null } as never)).toThrow(/Policy.from: unknown option 'btf'/)
    expect(() => Policy.from({ capabilities: {} }, { kernelBtf: 5 } as never)).toThrow(new TypeError("Policy.from: option 'kernelBtf' must be a BtfReader, BTF bytes, a path or null, got number 5"))
  })
})

describe('kfuncs and attach targets, against kernel BTF', () => {
  test('a kfunc the BTF lacks is an error with the closest kfunc (from the bpf_kfunc tags)', () => {
    expect(() => from({ capabilities: { s: { kfuncs: ['bpf_task_acquir'] } } }))
      .toThrow(new TypeError("policy.capabilities['s'].kfuncs[0]: unknown kfunc 'bpf_task_acquir': no such function in the given kernel BTF (did you mean 'bpf_task_acquire'?)"))
    // Not tagged as a kfunc, so never suggested as one, though it is a function.
    expect(() => from({ capabilities: { s: { kfuncs: ['tcp_connec'] } } })).toThrow(/unknown kfunc 'tcp_connec': no such function in the given kernel BTF$/)
    // kernelBtf null: not checked (a policy for another kernel).
    expect(Policy.from({ capabilities: { s: { kfuncs: ['bpf_task_acquir'] } } }, { kernelBtf: null }).capabilities).toEqual({ s: { kfuncs: ['bpf_task_acquir'] } })
  })

  test('attach targets: literal names and globs must name something of the program type', () => {
    const ctx = (progs: readonly string[] | undefined, attachTo: string[]) =>
      () => from({ capabilities: { s: {} }, contexts: [{ ...(progs ? { progs: progs as never } : {}), attachTo, grant: ['s'] }] })
    for (const [progs, target] of [
      [['kprobe'], 'tcp_connect'], [['kprobe'], 'tcp_*'], [['kprobe'], 'tcp_connect+0x10'], [['tracing'], 'sched_switch'], [['tracing'], 'task'],
      [['lsm'], 'file_open'], [['lsm'], 'file_*'], [['raw_tracepoint'], 'sched_switch'], [['struct_ops'], 'sched_ext_ops'], [undefined, 'file_open'],
      // Not in BTF: uprobes, tracepoint categories, program types attaching elsewhere.
      [['kprobe'], '/usr/bin/bash:readline'], [['tracepoint'], 'syscalls/sys_enter_*'], [['cgroup_skb'], 'nothing_like_it'], [['kprobe', 'perf_event'], 'nothing'],
    ] as const) expect(ctx(progs, [target])).not.toThrow()
    expect(ctx(['kprobe'], ['tcp_conect'])).toThrow(new TypeError("policy.contexts[0].attachTo[0]: no kernel function named 'tcp_conect' in the given kernel BTF (did you mean 'tcp_connect'?)"))
    expect(ctx(['kprobe'], ['tcpx_*'])).toThrow(new TypeError("policy.contexts[0].attachTo[0]: no kernel function matches 'tcpx_*' in the given kernel BTF"))
    expect(ctx(['lsm'], ['tcp_connect'])).toThrow(/no LSM hook named 'tcp_connect'/)
    expect(ctx(['tracing'], ['file_opn'])).toThrow(/no kernel function or raw tracepoint or iterator named 'file_opn'/)
    expect(ctx(undefined, ['sched_ext_opz'])).toThrow(/no kernel function or LSM hook or raw tracepoint or iterator or struct_ops type named 'sched_ext_opz' in the given kernel BTF \(did you mean 'sched_ext_ops'\?\)/)
    expect(Policy.from({ capabilities: { s: {} }, contexts: [{ attachTo: ['tcp_conect'], grant: ['s'] }] }, { kernelBtf: null }).contexts![0].attachTo).toEqual(['tcp_conect'])
  })

  test('a bad kernelBtf is named', () => {
    expect(() => Policy.from({ capabilities: { s: { kfuncs: ['x'] } } }, { kernelBtf: {} as never })).toThrow(new TypeError('kernelBtf must be a BtfReader, BTF bytes, a path or null, got an object'))
  })

  const vmlinux = '/sys/kernel/btf/vmlinux'
  test.skipIf(!existsSync(vmlinux))(`the running kernel's BTF by default (skipped when ${vmlinux} is missing)`, () => {
    // bpf_task_acquire is a kfunc from Linux 6.2; every kernel with tokens (6.9) has it.
    const p = Policy.from({ capabilities: { s: { kfuncs: ['bpf_task_acquire'] } }, contexts: [{ progs: ['kprobe'], attachTo: ['tcp_*'], grant: ['s'] }] })
    expect(p.grantsFor({ type: 'kprobe', attachTo: 'tcp_v4_connect' }).kfuncs).toEqual(new Set(['bpf_task_acquire']))
    expect(() => Policy.from({ capabilities: { s: { kfuncs: ['bpf_task_acquir'] } } }))
      .toThrow(new TypeError("policy.capabilities['s'].kfuncs[0]: unknown kfunc 'bpf_task_acquir': no such function in the running kernel's BTF (/sys/kernel/btf/vmlinux and modules) (did you mean 'bpf_task_acquire'?)"))
  })
})

describe('includes, intersect and equals with capabilities', () => {
  const masks = { cmds: 'any', maps: 'any', progs: 'any', attachs: 'any' } as const
  const caps = from({ ...masks, capabilities: example.capabilities, contexts: example.contexts })
  const plain = Policy.from(masks)

  test('a policy with capabilities includes only policies with the same ones; one without, any', () => {
    expect(plain.includes(caps)).toBe(true)
    expect(caps.includes(plain)).toBe(false) // plain allows any program content
    expect(caps.includes(from({ cmds: ['prog_load'], capabilities: example.capabilities, contexts: example.contexts }))).toBe(true)
    expect(caps.includes(from({ cmds: ['prog_load'], capabilities: example.capabilities, contexts: example.contexts.slice(0, 1) }))).toBe(false)
  })

  test('intersect keeps the capabilities of whichever has them, and refuses two different ones', () => {
    const i = plain.intersect(from({ cmds: ['prog_load'], capabilities: example.capabilities, contexts: example.contexts }))
    expect(i.cmds).toEqual(['prog_load'])
    expect(i.capabilities).toEqual(example.capabilities)
    expect(caps.intersect({ progs: ['kprobe'] }).contexts).toEqual(example.contexts)
    expect(() => caps.intersect(from({ capabilities: {} }))).toThrow(/intersect: both policies have capabilities, and different ones/)
  })

  test("withCapabilitiesOf: one policy's masks under another's capabilities", () => {
    const wanted = Policy.from({ cmds: ['prog_load'], progs: ['kprobe'] })
    const granted = wanted.withCapabilitiesOf(caps)
    expect(granted.cmds).toEqual(['prog_load'])
    expect(granted.contexts).toEqual(example.contexts)
    expect(caps.includes(granted)).toBe(true)
    expect(caps.includes(wanted)).toBe(false)
    expect(caps.withCapabilitiesOf(plain).equals(plain)).toBe(true)
  })

  test('equals needs the same capabilities, or none on both sides', () => {
    expect(caps.equals(plain)).toBe(false)
    expect(plain.equals(caps)).toBe(false)
    expect(caps.equals(from(caps.toJSON()))).toBe(true)
  })
})

describe('Policy.fromFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bpfkit-policy-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const write = (name: string, text: string) => {
    const path = join(dir, name)
    writeFileSync(path, text)
    return path
  }

  test('reads a policy document, $schema and all', () => {
    const path = write('p.json', JSON.stringify({ $schema: 'bpfkit/policy.schema.json', ...example }, null, 2))
    const p = Policy.fromFile(path, { kernelBtf })
    expect(p.equals(from(example))).toBe(true)
    expect(p.toJSON()).not.toHaveProperty('$schema')
    expect(Policy.fromFile(write('masks.json', '{"cmds":"any"}')).toJSON()).toEqual({ cmds: 'any', maps: [], progs: [], attachs: [] })
  })

  test('errors name the file', () => {
    expect(() => Policy.fromFile(join(dir, 'missing.json'))).toThrow(expect.objectContaining({ code: 'ENOENT' }))
    const notJson = write('bad.json', '{ cmds: any }')
    expect(() => Policy.fromFile(notJson)).toThrow(SyntaxError)
    expect(() => Policy.fromFile(notJson)).toThrow(new RegExp(`^${notJson}: not JSON: `))
    const typo = write('typo.json', JSON.stringify({ capabilities: { s: { helpers: ['ktime_get_nz'] } } }))
    expect(() => Policy.fromFile(typo)).toThrow(new TypeError(`${typo}: policy.capabilities['s'].helpers[0]: unknown helper 'ktime_get_nz' (did you mean 'ktime_get_ns'?)`))
    const range = write('range.json', JSON.stringify({ maps: [64] }))
    expect(() => Policy.fromFile(range)).toThrow(RangeError)
    expect(() => Policy.fromFile(5 as never)).toThrow(new TypeError('Policy.fromFile: path must be a string, got number 5'))
    expect(() => Policy.fromFile(typo, { x: 1 } as never)).toThrow(/Policy.fromFile: unknown option 'x'/)
  })
})

describe('check keeps its token meaning; programs go to the checker', () => {
  test('a plain object is a token request, instructions are a program', () => {
    const p = from(example)
    expect(() => p.check({ cmd: 'btf_load' })).toThrow(/token does not delegate command 'btf_load'/)
    expect(() => p.check({ cmd: 'btf_load' }, 'policy')).toThrow(/^policy does not delegate command 'btf_load'/)
    expect(p.check([], { type: 'xdp' })).toEqual([])
    expect(p.check(new Uint8Array(0), { type: 'xdp' })).toEqual([])
    expect(() => p.assert([], { type: 'xdp' })).not.toThrow()
  })
})

describe('bad arguments are named, never JavaScript internals', () => {
  // Every value anywhere in the example document, replaced by each wrong value in turn.
  function* mutations(value: unknown, path: string[] = []): Generator<{ path: string; doc: unknown }> {
    for (const bad of wrongValues) yield { path: path.join('.'), doc: bad }
    if (value === null || typeof value !== 'object') return
    for (const [k, v] of Object.entries(value)) {
      for (const m of mutations(v, [...path, k])) {
        yield { path: m.path, doc: Array.isArray(value) ? Object.assign([...value], { [k]: m.doc }) : { ...value, [k]: m.doc } }
      }
    }
  }

  test('Policy.from on the example with any part replaced', () => {
    let refused = 0
    for (const { path, doc } of mutations(example)) {
      try {
        from(doc as PolicyDocument)
      } catch (e) {
        refused++
        expect([TypeError, RangeError], path).toContain((e as Error).constructor)
        expect((e as Error).message, path).not.toMatch(jsInternal)
      }
    }
    expect(refused).toBeGreaterThan(100)
  })

  test('the new entry points', () => {
    const p = from(example)
    const calls: Array<[string, (...a: unknown[]) => unknown, unknown[]]> = [
      ['Policy.from', (a, b) => Policy.from(a as never, b as never), [example, { kernelBtf }]],
      ['Policy.fromFile', (a, b) => Policy.fromFile(a as never, b as never), ['/nonexistent/policy.json', {}]],
      ['grantsFor', (a) => p.grantsFor(a as never), [{ type: 'kprobe', attachTo: 'tcp_connect' }]],
      ['setsAllowing', (a, b) => p.setsAllowing(a as never, b as never), ['helper', 'ktime_get_ns']],
      ['withCapabilitiesOf', (a) => p.withCapabilitiesOf(a as never), [{ cmds: 'any' }]],
    ]
    for (const [name, call, valid] of calls) {
      for (const e of walkArguments(name, call, valid)) expect([TypeError, RangeError, Error], name).toContain(e.constructor)
    }
  })
})
