// compileTenant (issue 15): a policy compiled into the guard's tables against
// the host's real kernel BTF (/sys/kernel/btf/vmlinux; read only, nothing is
// loaded or attached): token masks, quota, each context's program and attach
// types, helper bitmap, load-time attach targets resolved to BTF ids,
// struct_ops member indexes, and kfuncs to context masks, cross-checked
// against Policy.grantOf. The BTF ids expected are looked up here by name.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeEach, describe, expect, test } from 'vitest'
import { BtfBuilder } from '../../lib/btf/builder.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { contextFlags, limits, tenantFlags } from '../../lib/guard/abi.js'
import { compileTenant, type CompiledTenant, type GuardKernel } from '../../lib/guard/compile.js'
import { Policy, type PolicyDocument } from '../../lib/policy/index.js'
import { attachTypes, helpers, progTypes } from '../../lib/sys/generated/kernel-enums.js'
import { globPattern } from '../../lib/sys/glob.js'

const VMLINUX = '/sys/kernel/btf/vmlinux'
const haveBtf = existsSync(VMLINUX)
const ALL = (1n << 64n) - 1n
const bit = (n: number) => 1n << BigInt(n)
/** Any number: the compiler only copies it into the targets. */
const VMLINUX_OBJ = 7

const vmlinux = haveBtf ? BtfReader.fromFile(VMLINUX) : undefined
const kernelOf = (modules: GuardKernel['vmlinux'][] = []): GuardKernel => ({ vmlinux: { name: 'vmlinux', objectId: VMLINUX_OBJ, btf: vmlinux! }, modules: () => modules })
const kernel = haveBtf ? kernelOf() : undefined
const policy = (doc: PolicyDocument) => Policy.from(doc, { kernelBtf: vmlinux ?? null })
const compile = (doc: PolicyDocument | Policy, quota = {}) => compileTenant(doc instanceof Policy ? doc : policy(doc), quota, kernel!)
/** Capabilities with one set per name, so contexts can grant them. */
const caps = (sets: PolicyDocument['capabilities'], contexts: PolicyDocument['contexts'], masks: PolicyDocument = { progs: 'any', attachs: 'any' }) => compile({ ...masks, capabilities: sets, contexts })

function funcId(name: string, kind: 'FUNC' | 'STRUCT' | 'TYPEDEF' = 'FUNC'): number {
  const ids = vmlinux!.findAll(name, kind)
  if (ids.length !== 1) throw new Error(`expected one ${kind} ${name} in ${VMLINUX}, found ${ids.length}`)
  return ids[0]
}

/** Helper ids whose bits are set in a context's bitmap. */
function helperIdsOf(words: bigint[]): number[] {
  const out: number[] = []
  for (let i = 0; i < words.length * 64; i++) if ((words[i >> 6] >> BigInt(i & 63)) & 1n) out.push(i)
  return out
}

/** Every name in vmlinux of `kind` whose rest after `prefix` matches `glob`: the ids a glob must resolve to. */
function idsMatching(kind: string, prefix: string, glob: string): number[] {
  const re = globPattern(glob)
  const out: number[] = []
  for (let id = 1; id <= vmlinux!.count; id++) {
    const t = vmlinux!.type(id)
    if (t.kind === kind && t.name.startsWith(prefix) && re.test(t.name.slice(prefix.length))) out.push(id)
  }
  return out
}

const targetsOf = (c: CompiledTenant, index: number) => c.targets.filter((t) => t.index === index).map((t) => t.btfId).sort((a, b) => a - b)

describe('compileTenant against the running kernel BTF', () => {
  beforeEach((ctx) => {
    if (!haveBtf) ctx.skip(`no ${VMLINUX}: the kernel was built without CONFIG_DEBUG_INFO_BTF`)
  })

  describe('token masks and quota', () => {
    test("lists become bits, 'any' all 128, nothing none; no capabilities: no program checks", () => {
      const c = compile({ progs: ['kprobe', 'xdp'], attachs: ['trace_fentry', 'cgroup_inet_ingress'], maps: 'any' })
      expect(c.rules).toEqual({
        flags: 0,
        ncontexts: 0,
        prog_types: bit(progTypes.kprobe) | bit(progTypes.xdp),
        attach_types: [bit(attachTypes.trace_fentry) | bit(attachTypes.cgroup_inet_ingress), 0n],
        map_types: [ALL, ALL],
        max_maps: ALL,
        max_bytes: ALL,
      })
      expect(c.contexts).toEqual([])
      expect(c.targets).toEqual([])
      expect(c.kfuncs.size).toBe(0)
      const none = compile({})
      expect([none.rules.prog_types, none.rules.attach_types, none.rules.map_types]).toEqual([0n, [0n, 0n], [0n, 0n]])
      const any = compile({ progs: 'any', attachs: 'any', maps: ['hash'] })
      expect([any.rules.prog_types, any.rules.attach_types, any.rules.map_types]).toEqual([ALL, [ALL, ALL], [bit(1), 0n]])
    })

    test('quota: given numbers as u64, absent ones unlimited (2^64-1), zero kept', () => {
      expect(compile({}, {}).rules).toMatchObject({ max_maps: ALL, max_bytes: ALL })
      expect(compile({}, { maps: 3, bytes: 4096 }).rules).toMatchObject({ max_maps: 3n, max_bytes: 4096n })
      expect(compile({}, { maps: 0 }).rules).toMatchObject({ max_maps: 0n, max_bytes: ALL })
      expect(compile({}, { bytes: Number.MAX_SAFE_INTEGER }).rules.max_bytes).toBe(BigInt(Number.MAX_SAFE_INTEGER))
      expect(ALL).toBe(18446744073709551615n)
    })

    test('capabilities set checkPrograms, even with no context (then nothing is granted)', () => {
      const c = caps({ s: { helpers: ['ktime_get_ns'] } }, [])
      expect(c.rules.flags).toBe(tenantFlags.checkPrograms)
      expect(c.rules.ncontexts).toBe(0)
      expect(c.contexts).toEqual([])
    })
  })

  describe('contexts', () => {
    test('helper bitmaps: the ids of granted helpers (all four words), no other bit', () => {
      const granted = ['map_lookup_elem', 'ktime_get_ns', 'probe_write_user', 'ringbuf_output', 'loop', 'kptr_xchg'] as const
      const c = caps({ s: { helpers: [...granted] }, t: { helpers: ['trace_printk'] } }, [{ progs: ['kprobe'], grant: ['s'] }, { grant: ['t', 's'] }, { grant: [] }])
      expect(c.rules.ncontexts).toBe(3)
      expect(c.contexts[0].helpers).toHaveLength(limits.helperWords)
      expect(helperIdsOf(c.contexts[0].helpers)).toEqual(granted.map((h) => helpers[h]).sort((a, b) => a - b))
      // One per word at least: ids 1..194 reach word 3.
      expect(c.contexts[0].helpers.map((w) => w !== 0n)).toEqual([true, false, true, true])
      expect(helperIdsOf(c.contexts[1].helpers)).toEqual([...granted.map((h) => helpers[h]), helpers.trace_printk].sort((a, b) => a - b))
      expect(c.contexts[2].helpers).toEqual([0n, 0n, 0n, 0n])
    })

    test('program and attach types: bits when listed; absent progs all bits; absent attachs the anyAttach flag', () => {
      const c = caps({ s: {} }, [
        { progs: ['kprobe', 'tracing'], grant: ['s'] },
        { progs: ['cgroup_skb'], attachs: ['cgroup_inet_egress', 'cgroup_inet_ingress'], grant: ['s'] },
        { grant: ['s'] },
        { progs: [], attachs: [], grant: ['s'] },
      ])
      expect(c.contexts[0]).toMatchObject({ flags: contextFlags.anyAttach, prog_types: bit(progTypes.kprobe) | bit(progTypes.tracing), attach_types: [0n, 0n], members: 0n })
      expect(c.contexts[1]).toMatchObject({ flags: 0, prog_types: bit(progTypes.cgroup_skb), attach_types: [bit(attachTypes.cgroup_inet_egress) | bit(attachTypes.cgroup_inet_ingress), 0n] })
      expect(c.contexts[2]).toMatchObject({ flags: contextFlags.anyAttach, prog_types: ALL })
      // An empty list matches nothing: no bit, and no "any".
      expect(c.contexts[3]).toMatchObject({ flags: 0, prog_types: 0n, attach_types: [0n, 0n] })
      expect(c.targets).toEqual([])
    })

    test("lsm 'file_open' resolves to FUNC bpf_lsm_file_open, in vmlinux's object", () => {
      const c = caps({ s: {} }, [{ progs: ['lsm'], attachTo: ['file_open'], grant: ['s'] }])
      expect(c.contexts[0].flags).toBe(contextFlags.anyAttach | contextFlags.targets)
      expect(c.targets).toEqual([{ index: 0, btfObj: VMLINUX_OBJ, btfId: funcId('bpf_lsm_file_open') }])
    })

    test("tracing 'tcp_v4_connect' resolves to its FUNC; a glob to every function it matches", () => {
      const c = caps({ s: {} }, [
        { progs: ['tracing'], attachs: ['trace_fentry'], attachTo: ['tcp_v4_connect'], grant: ['s'] },
        { progs: ['tracing'], attachTo: ['tcp_v4_*'], grant: ['s'] },
      ])
      expect(c.contexts[0].flags).toBe(contextFlags.targets)
      expect(targetsOf(c, 0)).toEqual([funcId('tcp_v4_connect')])
      const expected = idsMatching('FUNC', '', 'tcp_v4_*')
      expect(expected.length).toBeGreaterThan(1)
      expect(targetsOf(c, 1)).toEqual(expected)
      expect(c.targets.every((t) => t.btfObj === VMLINUX_OBJ)).toBe(true)
    })

    test('tracing targets include raw tracepoints (btf_trace_ typedefs) and iterators (bpf_iter_ functions)', () => {
      const c = caps({ s: {} }, [{ progs: ['tracing'], attachTo: ['sched_switch', 'task'], grant: ['s'] }])
      const expected = [funcId('btf_trace_sched_switch', 'TYPEDEF'), funcId('bpf_iter_task')]
      for (const id of expected) expect(targetsOf(c, 0)).toContain(id)
      expect(targetsOf(c, 0)).toEqual([...idsMatching('FUNC', '', 'sched_switch'), ...idsMatching('FUNC', '', 'task'), ...expected].sort((a, b) => a - b))
    })

    test('targets of a kprobe-only context are chosen at attach time: no targets flag, none listed', () => {
      const c = caps({ s: {} }, [
        { progs: ['kprobe'], attachTo: ['tcp_v4_connect'], grant: ['s'] },
        { progs: ['kprobe', 'lsm'], attachTo: ['file_open', 'tcp_v4_connect'], grant: ['s'] },
      ])
      expect(c.contexts[0].flags).toBe(contextFlags.anyAttach)
      expect(targetsOf(c, 0)).toEqual([])
      // Beside a type with load-time targets, only that type's are resolved (kprobes carry no attach BTF id).
      expect(c.contexts[1].flags).toBe(contextFlags.anyAttach | contextFlags.targets)
      expect(targetsOf(c, 1)).toEqual([funcId('bpf_lsm_file_open')])
    })

    test("'*' means any target: no targets flag, nothing listed", () => {
      const c = caps({ s: {} }, [
        { progs: ['tracing'], attachTo: ['*'], grant: ['s'] },
        { progs: ['lsm'], attachTo: ['file_open', '*'], grant: ['s'] },
      ])
      expect(c.contexts.map((x) => x.flags)).toEqual([contextFlags.anyAttach, contextFlags.anyAttach])
      expect(c.targets).toEqual([])
    })

    test('attachTo narrows a context to the program types that have targets (a socket filter names none)', () => {
      const targetTypes = ['kprobe', 'tracepoint', 'raw_tracepoint', 'raw_tracepoint_writable', 'tracing', 'ext', 'lsm', 'struct_ops'] as const
      const c = caps({ s: {} }, [
        { attachTo: ['file_open'], grant: ['s'] },
        { attachTo: ['*'], grant: ['s'] },
        { progs: ['xdp', 'kprobe', 'socket_filter'], attachTo: ['tcp_v4_connect'], grant: ['s'] },
        { progs: ['xdp'], attachTo: ['*'], grant: ['s'] },
      ])
      expect(c.contexts[0].prog_types).toBe(targetTypes.reduce((m, p) => m | bit(progTypes[p]), 0n))
      expect(c.contexts[1].prog_types).toBe(c.contexts[0].prog_types)
      expect(c.contexts[2].prog_types).toBe(bit(progTypes.kprobe))
      expect(c.contexts[3].prog_types).toBe(0n)
    })

    test('without progs, a target is looked up where every load-time type names targets', () => {
      const c = caps({ s: {} }, [{ attachTo: ['file_open'], grant: ['s'] }])
      expect(c.contexts[0].flags & contextFlags.targets).toBe(contextFlags.targets)
      expect(targetsOf(c, 0)).toEqual([funcId('bpf_lsm_file_open')])
    })

    test("struct_ops: the type's STRUCT is the target; members become their indexes in the type", () => {
      const ops = funcId('tcp_congestion_ops', 'STRUCT')
      const names = vmlinux!.members(vmlinux!.type(ops)).map((m) => m.name)
      const index = (n: string) => {
        expect(names).toContain(n)
        return names.indexOf(n)
      }
      const c = caps({ s: {} }, [
        { progs: ['struct_ops'], attachTo: ['tcp_congestion_ops'], member: ['ssthresh'], grant: ['s'] },
        { progs: ['struct_ops'], attachTo: ['tcp_congestion_ops'], member: ['cong_*', 'init'], grant: ['s'] },
        { progs: ['struct_ops'], attachTo: ['tcp_congestion_ops'], member: ['*'], grant: ['s'] },
        { progs: ['struct_ops'], attachTo: ['tcp_congestion_ops'], member: ['no_such_member'], grant: ['s'] },
      ])
      expect(c.contexts[0]).toMatchObject({ flags: contextFlags.anyAttach | contextFlags.targets | contextFlags.members, members: bit(index('ssthresh')) })
      expect(targetsOf(c, 0)).toEqual([ops])
      expect(c.contexts[1].members).toBe(bit(index('cong_avoid')) | bit(index('cong_control')) | bit(index('init')))
      expect(c.contexts[2].members).toBe(names.reduce((m, _, i) => m | bit(i), 0n))
      // A member no type has: the flag stays, so the context matches no struct_ops program.
      expect(c.contexts[3]).toMatchObject({ flags: contextFlags.anyAttach | contextFlags.targets | contextFlags.members, members: 0n })
    })

    test("struct_ops members without attachTo: looked up in every struct_ops type (bpf_struct_ops_<type>'s data)", () => {
      const ops = funcId('tcp_congestion_ops', 'STRUCT')
      const ssthresh = vmlinux!.members(vmlinux!.type(ops)).findIndex((m) => m.name === 'ssthresh')
      const c = caps({ s: {} }, [{ progs: ['struct_ops'], member: ['ssthresh'], grant: ['s'] }])
      expect(c.contexts[0].flags).toBe(contextFlags.anyAttach | contextFlags.members)
      // Only the struct_ops types' members: bpf_struct_ops_map, _link, _value... are the kernel's own, not ops types.
      let expected = 0n
      for (const id of idsMatching('STRUCT', 'bpf_struct_ops_', '*')) {
        const data = vmlinux!.members(vmlinux!.type(id)).find((m) => m.name === 'data')
        const ops = data && vmlinux!.resolve(data.type)
        if (ops?.kind !== 'STRUCT' || `bpf_struct_ops_${ops.name}` !== vmlinux!.type(id).name) continue
        vmlinux!.members(ops).forEach((m, i) => {
          if (m.name === 'ssthresh' && i < 64) expected |= bit(i)
        })
      }
      expect(expected & bit(ssthresh)).toBe(bit(ssthresh))
      expect(c.contexts[0].members).toBe(expected)
    })

    test('kfuncs: each vmlinux FUNC id maps to the mask of the contexts that grant it', () => {
      const c = caps(
        { k: { kfuncs: ['bpf_task_acquire'] }, r: { include: ['k'], kfuncs: ['bpf_rcu_read_lock'] }, none: { helpers: ['ktime_get_ns'] } },
        [{ progs: ['tracing'], grant: ['k'] }, { progs: ['lsm'], grant: ['none'] }, { grant: ['r'] }],
      )
      expect(new Map([...c.kfuncs].sort(([a], [b]) => a - b))).toEqual(new Map([
        [funcId('bpf_task_acquire'), bit(0) | bit(2)],
        [funcId('bpf_rcu_read_lock'), bit(2)],
      ].sort(([a], [b]) => Number(a) - Number(b)) as [number, bigint][]))
    })
  })

  describe('limits', () => {
    test('at most 64 contexts: 64 compile, 65 are a RangeError naming both numbers', () => {
      const contexts = (n: number) => Array.from({ length: n }, () => ({ progs: ['kprobe' as const], grant: ['s'] }))
      expect(caps({ s: {} }, contexts(64)).contexts).toHaveLength(64)
      expect(() => caps({ s: {} }, contexts(65))).toThrow(RangeError)
      expect(() => caps({ s: {} }, contexts(65))).toThrow('guard: the policy has 65 contexts; the guard holds at most 64 per tenant')
    })

    test('a glob matching too many kernel functions is a RangeError naming the context', () => {
      const everything = idsMatching('FUNC', '', '?*').length
      expect(everything).toBeGreaterThan(16384)
      expect(() => caps({ s: {} }, [{ progs: ['kprobe'], grant: ['s'] }, { progs: ['tracing'], attachTo: ['?*'], grant: ['s'] }])).toThrow(
        /^guard: policy\.contexts\[1\]\.attachTo matches too many kernel functions and types \(\d+ in all\); the guard holds at most 16384 per tenant: name them more narrowly$/,
      )
    })
  })

  describe('struct_ops types as the kernel declares them', () => {
    // A kernel in miniature: one struct_ops type (bpf_struct_ops_<name> { common; data }),
    // and the kernel's own bpf_struct_ops_link beside an unrelated struct link.
    function miniKernel(): BtfReader {
      const b = new BtfBuilder()
      const int = b.int('int', 4, { signed: true })
      const fn = b.ptr(b.funcProto(int, []))
      const common = b.struct('bpf_struct_ops_common_value', [{ name: 'refcnt', type: int }])
      const ops = b.struct('demo_ops', [{ name: 'init', type: fn }, { name: 'run', type: fn }, { name: 'name', type: b.array(b.int('char', 1, { char: true }), 16) }])
      b.struct('bpf_struct_ops_demo_ops', [{ name: 'common', type: common }, { name: 'data', type: ops }])
      const link = b.struct('link', [{ name: 'a', type: int }, { name: 'b', type: int }, { name: 'run', type: int }, { name: 'init', type: int }])
      b.struct('bpf_struct_ops_link', [{ name: 'link', type: link }, { name: 'map', type: b.ptr(int) }])
      b.struct('bpf_struct_ops_value', [{ name: 'common', type: common }, { name: 'data', type: b.array(b.int('char', 1, { char: true }), 0) }])
      return new BtfReader(b.bytes())
    }
    const mini = miniKernel()
    const miniKernelOf = (modules: GuardKernel['vmlinux'][] = []): GuardKernel => ({ vmlinux: { name: 'vmlinux', objectId: 1, btf: mini }, modules: () => modules })
    const contextFor = (context: NonNullable<PolicyDocument['contexts']>[number], k = miniKernelOf()) =>
      compileTenant(Policy.from({ progs: 'any', capabilities: { s: {} }, contexts: [context] }, { kernelBtf: null }), {}, k).contexts[0]

    test("members are indexes in the type bpf_struct_ops_<type>.data names; the kernel's own bpf_struct_ops_link is no type", () => {
      expect(contextFor({ progs: ['struct_ops'], member: ['run'], grant: ['s'] }).members).toBe(bit(1))
      expect(contextFor({ progs: ['struct_ops'], member: ['*'], grant: ['s'] }).members).toBe(bit(0) | bit(1) | bit(2))
      expect(contextFor({ progs: ['struct_ops'], attachTo: ['demo_ops'], member: ['init'], grant: ['s'] }).members).toBe(bit(0))
      // struct link's 'init' (index 3) is no struct_ops member, whichever glob names it.
      expect(contextFor({ progs: ['struct_ops'], attachTo: ['link'], member: ['*'], grant: ['s'] }).members).toBe(0n)
      expect(contextFor({ progs: ['struct_ops'], attachTo: ['*'], member: ['init'], grant: ['s'] }).members).toBe(bit(0))
    })

    test("a module's struct_ops type: its members too", () => {
      const b = new BtfBuilder()
      const int = b.int('int', 4, { signed: true })
      const fn = b.ptr(b.funcProto(int, []))
      const common = b.struct('bpf_struct_ops_common_value', [{ name: 'refcnt', type: int }])
      const ops = b.struct('mod_ops', [{ name: 'a', type: fn }, { name: 'b', type: fn }, { name: 'c', type: fn }, { name: 'd', type: fn }])
      b.struct('bpf_struct_ops_mod_ops', [{ name: 'common', type: common }, { name: 'data', type: ops }])
      const mod = { name: 'demo_mod', objectId: 42, btf: new BtfReader(b.bytes()) }
      expect(contextFor({ progs: ['struct_ops'], attachTo: ['mod_ops'], member: ['d'], grant: ['s'] }, miniKernelOf([mod])).members).toBe(bit(3))
      expect(contextFor({ progs: ['struct_ops'], member: ['d', 'run'], grant: ['s'] }, miniKernelOf([mod])).members).toBe(bit(1) | bit(3))
    })
  })

  describe('modules', () => {
    test("a target in a module's BTF carries the module's object id and its own type id", () => {
      // A module's BTF in miniature; the compiler walks its own ids (firstId..count).
      const b = new BtfBuilder()
      const proto = b.funcProto(0, [])
      b.func('guardtest_module_open', proto, 'global')
      const mod = new BtfReader(b.bytes())
      const modId = mod.find('guardtest_module_open', 'FUNC')!
      const doc: PolicyDocument = { progs: 'any', capabilities: { s: {} }, contexts: [{ progs: ['tracing'], attachTo: ['guardtest_module_*'], grant: ['s'] }] }
      const c = compileTenant(Policy.from(doc, { kernelBtf: null }), {}, kernelOf([{ name: 'guardtest', objectId: 99, btf: mod }]))
      expect(c.targets).toEqual([{ index: 0, btfObj: 99, btfId: modId }])
    })
  })

  describe('against Policy.grantsFor: programs with load-time targets', () => {
    // What the guard's context_matches (guard.bpf.c) decides from the compiled
    // tables, for a program as the kernel holds it at bpf_prog_load.
    interface Loaded { type: number; attach: number; btfObj: number; btfId: number }
    const has = (words: readonly bigint[], n: number) => ((words[n >> 6] ?? 0n) >> BigInt(n & 63)) & 1n
    function guardMatches(c: CompiledTenant, p: Loaded): number[] {
      return c.contexts.flatMap((ctx, i) => {
        if (!has([ctx.prog_types], p.type)) return []
        if (!(ctx.flags & contextFlags.anyAttach) && !has(ctx.attach_types, p.attach)) return []
        if (ctx.flags & contextFlags.members && (p.type !== progTypes.struct_ops || !has([ctx.members], p.attach))) return []
        if (ctx.flags & contextFlags.targets && p.btfId !== 0 && !c.targets.some((t) => t.index === i && t.btfObj === p.btfObj && t.btfId === p.btfId)) return []
        return [i]
      })
    }

    test('the contexts the guard matches are those the policy grants', () => {
      const p = policy({
        progs: 'any',
        attachs: 'any',
        capabilities: { s: {} },
        contexts: [
          { progs: ['lsm'], attachTo: ['file_open'], grant: ['s'] },
          { progs: ['tracing'], attachs: ['trace_fentry'], attachTo: ['tcp_v4_*'], grant: ['s'] },
          { progs: ['struct_ops'], attachTo: ['tcp_congestion_ops'], member: ['ssthresh', 'cong_*'], grant: ['s'] },
          { progs: ['tracing', 'lsm'], grant: ['s'] },
          { progs: ['tracing'], attachTo: ['*'], grant: ['s'] },
          { progs: ['lsm'], attachs: ['lsm_cgroup'], attachTo: ['file_*'], grant: ['s'] },
          { progs: ['tracing'], attachTo: ['sched_switch', 'task'], grant: ['s'] },
          { attachTo: ['*'], grant: ['s'] },
          { attachTo: ['file_open'], grant: ['s'] },
          { progs: ['socket_filter', 'xdp', 'lsm'], attachTo: ['file_open'], grant: ['s'] },
          { progs: ['socket_filter', 'xdp'], grant: ['s'] },
        ],
      })
      const c = compileTenant(p, {}, kernel!)
      const ops = funcId('tcp_congestion_ops', 'STRUCT')
      const member = (n: string) => vmlinux!.members(vmlinux!.type(ops)).findIndex((m) => m.name === n)
      const programs: { type: keyof typeof progTypes; attach: keyof typeof attachTypes | number; attachTo: string; btfId: number; member?: string }[] = [
        { type: 'lsm', attach: 'lsm_mac', attachTo: 'file_open', btfId: funcId('bpf_lsm_file_open') },
        { type: 'lsm', attach: 'lsm_cgroup', attachTo: 'file_open', btfId: funcId('bpf_lsm_file_open') },
        { type: 'lsm', attach: 'lsm_mac', attachTo: 'bpf_prog_load', btfId: funcId('bpf_lsm_bpf_prog_load') },
        { type: 'tracing', attach: 'trace_fentry', attachTo: 'tcp_v4_connect', btfId: funcId('tcp_v4_connect') },
        { type: 'tracing', attach: 'trace_fexit', attachTo: 'tcp_v4_connect', btfId: funcId('tcp_v4_connect') },
        { type: 'tracing', attach: 'trace_fentry', attachTo: 'tcp_connect', btfId: funcId('tcp_connect') },
        { type: 'tracing', attach: 'trace_raw_tp', attachTo: 'sched_switch', btfId: funcId('btf_trace_sched_switch', 'TYPEDEF') },
        { type: 'tracing', attach: 'trace_iter', attachTo: 'task', btfId: funcId('bpf_iter_task') },
        { type: 'struct_ops', attach: member('ssthresh'), attachTo: 'tcp_congestion_ops', member: 'ssthresh', btfId: ops },
        { type: 'struct_ops', attach: member('cong_avoid'), attachTo: 'tcp_congestion_ops', member: 'cong_avoid', btfId: ops },
        { type: 'struct_ops', attach: member('init'), attachTo: 'tcp_congestion_ops', member: 'init', btfId: ops },
        // No target at all: only contexts that name none.
        { type: 'socket_filter', attach: 0, attachTo: '', btfId: 0 },
        { type: 'xdp', attach: 'xdp', attachTo: '', btfId: 0 },
      ]
      for (const prog of programs) {
        const attach = typeof prog.attach === 'number' ? prog.attach : attachTypes[prog.attach]
        const loaded = { type: progTypes[prog.type], attach, btfObj: VMLINUX_OBJ, btfId: prog.btfId }
        // struct_ops programs carry a member index, not an attach type: the policy is asked with the member.
        const target = prog.type === 'struct_ops' ? { type: prog.type, attachTo: prog.attachTo, member: prog.member } : { type: prog.type, expectedAttachType: attach, ...(prog.attachTo ? { attachTo: prog.attachTo } : {}) }
        expect({ prog, contexts: guardMatches(c, loaded) }).toEqual({ prog, contexts: p.grantsFor(target).contexts })
      }
    })
  })

  describe('against Policy.grantOf', () => {
    // The example (shared with the policy tests), as this kernel has it: kfuncs it lacks are not checked.
    const example = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'policy', 'issue-example.json'), 'utf8')) as PolicyDocument
    const doc: PolicyDocument = {
      ...example,
      capabilities: { ...example.capabilities, extra: { helpers: ['ringbuf_output', 'loop', 'kptr_xchg'], kfuncs: ['bpf_rcu_read_lock', 'bpf_task_acquire'] } },
      contexts: [...example.contexts!, { progs: ['tracing'], attachTo: ['tcp_v4_connect'], grant: ['extra', 'base'] }, { grant: [] }],
    }
    const p = Policy.from(doc, { kernelBtf: null })
    let compiled: CompiledTenant | undefined
    const tenant = () => (compiled ??= compileTenant(p, {}, kernel!))

    test('each context: its helper bits are exactly the helpers grantOf([i]) names', () => {
      expect(tenant().contexts).toHaveLength(p.contexts!.length)
      p.contexts!.forEach((_, i) => {
        const names = [...p.grantOf([i]).helpers].map((h) => helpers[h as keyof typeof helpers]).sort((a, b) => a - b)
        expect({ context: i, ids: helperIdsOf(tenant().contexts[i].helpers) }).toEqual({ context: i, ids: names })
      })
    })

    test("each kfunc id's mask: exactly the contexts whose grantOf names it (kfuncs this kernel lacks: none)", () => {
      const expected = new Map<number, bigint>()
      p.contexts!.forEach((_, i) => {
        for (const k of p.grantOf([i]).kfuncs) for (const id of vmlinux!.findAll(k, 'FUNC')) expected.set(id, (expected.get(id) ?? 0n) | bit(i))
      })
      expect(expected.size).toBeGreaterThan(0)
      expect(new Map([...tenant().kfuncs].sort(([a], [b]) => a - b))).toEqual(new Map([...expected].sort(([a], [b]) => a - b)))
    })

    test('masks are the policy\'s own, contexts counted', () => {
      const m = p.masks()
      expect(tenant().rules).toMatchObject({ flags: tenantFlags.checkPrograms, ncontexts: 5, prog_types: m.progs, attach_types: [ALL, ALL], map_types: [m.maps, 0n] })
    })
  })
})

