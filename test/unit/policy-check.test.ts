// The capability checker over assembled programs: helper calls, kfunc calls
// by BTF id, map references, subprograms and dead code, contexts by type,
// attach target and member, and the errors of check/assert. No kernel
// objects: the kfunc ids come from this kernel's BTF file, and maps are
// MapReferences with their type, as a CollectionSpec makes them.
import { describe, expect, test } from 'vitest'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { asm } from '../../lib/asm/index.js'
import { BtfReader } from '../../lib/btf/reader.js'
import { CollectionSpec, MapReference } from '../../lib/collection/spec.js'
import { BpfProgram } from '../../lib/prog/program.js'
import { ProgramSpec } from '../../lib/prog/spec.js'
import { Policy } from '../../lib/policy/policy.js'
import { checkProgram, assertProgram, ProgramPolicyError } from '../../lib/policy/check.js'
import { PolicyError } from '../../lib/sys/errors.js'

const policy = Policy.from({
  cmds: ['map_create', 'prog_load'], maps: ['hash', 'ringbuf'], progs: ['socket_filter', 'kprobe'], attachs: 'any',
  capabilities: {
    base: { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns'] },
    'net.read': { include: ['base'], helpers: ['skb_load_bytes'], maps: ['hash', 'array'] },
    'trace.read': { include: ['base'], helpers: ['probe_read_kernel', 'get_current_pid_tgid'], kfuncs: ['bpf_task_acquire', 'bpf_task_release'], maps: ['ringbuf'] },
    'trace.write': { include: ['trace.read'], helpers: ['probe_write_user'] },
  },
  contexts: [
    { progs: ['socket_filter'], grant: ['net.read'] },
    { progs: ['kprobe'], attachTo: ['tcp_*'], grant: ['trace.read'] },
  ],
})

const hashMap = new MapReference('counts', 'hash')
const lruMap = new MapReference('recent', 'lru_hash')

// r1 = map; r2 = fp - 4; call map_lookup_elem; ...
const lookup = (map: MapReference) => [
  asm.stW(asm.FP, -4, 0), asm.mov64Reg(asm.R2, asm.FP), asm.add64Imm(asm.R2, -4), asm.ldMapFd(asm.R1, map), asm.call('map_lookup_elem'),
]

describe('helpers and maps', () => {
  test('a socket filter using only what net.read grants has no violations', () => {
    const insns = [...lookup(hashMap), asm.call('skb_load_bytes'), asm.call('ktime_get_ns'), asm.mov64Imm(asm.R0, 0), asm.exit()]
    expect(checkProgram(policy, insns, { type: 'socket_filter' })).toEqual([])
  })

  test('each use that is not granted is one violation, with its instruction index in slots', () => {
    const insns = [
      ...lookup(lruMap), // ld_imm64 at slot 3 (two slots), call at 5
      asm.call('probe_write_user'), // slot 6
      asm.call('probe_write_user'), // slot 7
      asm.mov64Imm(asm.R0, 0), asm.exit(),
    ]
    const v = checkProgram(policy, insns, { type: 'socket_filter', name: 'filter' })
    expect(v.map((x) => [x.insn, x.kind, x.name, x.mapType])).toEqual([
      [3, 'map', 'recent', 'lru_hash'],
      [6, 'helper', 'probe_write_user', undefined],
      [7, 'helper', 'probe_write_user', undefined],
    ])
    expect(v[1]).toMatchObject({ program: 'filter', source: undefined, context: [0], allowedBy: ['trace.write'] })
    expect(v[1].message).toBe('insn 6: helper probe_write_user is not granted to socket_filter; capability sets that allow it: trace.write')
    expect(v[0].message).toBe('insn 3: map recent of type lru_hash is not granted to socket_filter; no capability set allows it')
  })

  test('legacy packet loads (LD_ABS, LD_IND) are skb_load_bytes to a policy', () => {
    const insns = [asm.ldAbs('b', 12), asm.ldInd('w', asm.R1, 0), asm.mov64Imm(asm.R0, 0), asm.exit()]
    expect(checkProgram(policy, insns, { type: 'socket_filter' })).toEqual([])
    const v = checkProgram(policy, insns, { type: 'kprobe', attachTo: 'tcp_connect' })
    expect(v.map((x) => [x.insn, x.kind, x.name])).toEqual([[0, 'helper', 'skb_load_bytes'], [1, 'helper', 'skb_load_bytes']])
  })

  test('sets that include a set allow what it allows', () => {
    const v = checkProgram(policy, [asm.call('skb_load_bytes'), asm.exit()], { type: 'kprobe', attachTo: 'tcp_connect' })
    expect(v).toHaveLength(1)
    expect(v[0].allowedBy).toEqual(['net.read'])
    // ktime_get_ns is in base: net.read, trace.read and trace.write all include it.
    expect(policy.setsAllowing('helper', 'ktime_get_ns').sort()).toEqual(['base', 'net.read', 'trace.read', 'trace.write'])
  })

  test('dead code and subprograms count: every instruction is read', () => {
    const insns = [
      asm.callLocal('sub'), asm.ja('out'),
      asm.call('probe_write_user'), // never reached
      asm.label('out'), asm.mov64Imm(asm.R0, 0), asm.exit(),
      asm.label('sub'), asm.call('get_current_pid_tgid'), asm.exit(),
    ]
    const v = checkProgram(policy, insns, { type: 'socket_filter' })
    expect(v.map((x) => `${x.insn}:${x.name}`)).toEqual(['2:probe_write_user', '5:get_current_pid_tgid'])
  })

  test('the attach target picks the context: tcp_* grants trace.read, another function nothing', () => {
    const insns = [asm.call('probe_read_kernel'), asm.exit()]
    expect(checkProgram(policy, insns, { type: 'kprobe', attachTo: 'tcp_v4_connect' })).toEqual([])
    const v = checkProgram(policy, insns, { type: 'kprobe', attachTo: 'do_unlinkat' })
    expect(v).toHaveLength(1)
    expect(v[0].context).toEqual([])
    expect(v[0].message).toBe('insn 0: helper probe_read_kernel is not granted to kprobe/do_unlinkat (no policy context matches it); capability sets that allow it: trace.read, trace.write')
  })

  test('raw bytes read as instructions; an unknown helper id is named by number and never granted', () => {
    const bytes = asm.assemble([asm.call('ktime_get_ns'), { ...asm.call('ktime_get_ns'), imm: 99999 }, asm.exit()])
    const v = checkProgram(policy, bytes, { type: 'socket_filter' })
    expect(v.map((x) => x.name)).toEqual(['#99999'])
  })

  test('map fds in raw bytes that are not maps, and fd_array indexes, are named but of no known type', () => {
    const notAMap = { ...asm.ldImm64(asm.R1, 1), src: 1 } // fd 1: stdout
    const byIndex = { ...asm.ldImm64(asm.R1, 2), src: 5 }
    const v = checkProgram(policy, asm.assemble([notAMap, byIndex, asm.exit()]), { type: 'socket_filter' })
    expect(v.map((x) => [x.insn, x.name, x.mapType, x.allowedBy])).toEqual([[0, 'fd 1', 'unknown', []], [2, 'fd_array[2]', 'unknown', []]])
  })

  test('a ProgramSpec says its own type; the context given overrides it', () => {
    const spec = ProgramSpec.from({ type: 'socket_filter', insns: [asm.call('probe_read_kernel'), asm.exit()], name: 'reader' })
    expect(checkProgram(policy, spec).map((x) => x.program)).toEqual(['reader'])
    expect(checkProgram(policy, spec, { type: 'kprobe', attachTo: 'tcp_close' })).toEqual([])
  })
})

const vmlinux = '/sys/kernel/btf/vmlinux'
describe.skipIf(!existsSync(vmlinux))('kfuncs by BTF id', () => {
  // skipIf: a kernel without BTF (CONFIG_DEBUG_INFO_BTF) has no kfunc ids to name.
  const btf = existsSync(vmlinux) ? BtfReader.fromFile(vmlinux) : undefined
  const id = (name: string) => btf!.find(name, 'FUNC')!

  test('a kfunc call is named from vmlinux BTF and checked against kfuncs', () => {
    const insns = [asm.callKfunc(id('bpf_task_acquire')), asm.callKfunc(id('bpf_obj_new_impl')), asm.exit()]
    expect(checkProgram(policy, insns, { type: 'kprobe', attachTo: 'tcp_connect' }).map((x) => [x.insn, x.kind, x.name, x.allowedBy])).toEqual([
      [1, 'kfunc', 'bpf_obj_new_impl', []],
    ])
  })

  test('a module BTF index without fd_array cannot be named: reported by id', () => {
    const v = checkProgram(policy, [asm.callKfunc(id('bpf_task_acquire'), 1), asm.exit()], { type: 'kprobe', attachTo: 'tcp_connect' })
    expect(v.map((x) => x.name)).toEqual([`#${id('bpf_task_acquire')} (fd_array[1])`])
  })
})

describe('assert', () => {
  test('throws a PolicyError (rule capabilities) listing every violation', () => {
    const insns = [asm.call('probe_write_user'), ...lookup(lruMap), asm.exit()]
    let err: unknown
    try {
      assertProgram(policy, insns, { type: 'socket_filter', name: 'filter' })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(PolicyError)
    expect(err).toBeInstanceOf(ProgramPolicyError)
    const e = err as ProgramPolicyError
    expect(e.rule).toBe('capabilities')
    expect(e.code).toBe('EPERM')
    expect(e.requested).toBe('helper probe_write_user')
    expect(e.violations).toHaveLength(2)
    expect(e.message).toBe([
      "policy refuses program 'filter': 2 uses not granted",
      '  insn 0: helper probe_write_user is not granted to socket_filter; capability sets that allow it: trace.write',
      '  insn 4: map recent of type lru_hash is not granted to socket_filter; no capability set allows it',
    ].join('\n'))
  })

  test('the Policy methods delegate: check, assert, assertProgram', () => {
    const spec = ProgramSpec.from({ type: 'socket_filter', insns: [asm.call('probe_write_user'), asm.exit()] })
    expect(policy.check(spec)).toHaveLength(1)
    expect(() => policy.assert(spec)).toThrow(/helper probe_write_user is not granted/)
    expect(() => policy.assertProgram(spec)).toThrow(PolicyError)
    expect(() => policy.assertProgram(ProgramSpec.from({ type: 'socket_filter', insns: [asm.call('skb_load_bytes'), asm.exit()] }))).not.toThrow()
  })

  test('a long list is cut after 20 lines', () => {
    const insns = [...Array.from({ length: 25 }, () => asm.call('probe_write_user')), asm.exit()]
    expect(() => assertProgram(policy, insns, { type: 'socket_filter' })).toThrow(/policy refuses the program: 25 uses not granted\n(.*\n){20}  \(5 more\)$/)
  })
})

describe('a policy without capabilities', () => {
  test('checks nothing, as before capabilities existed', () => {
    const plain = Policy.from({ progs: ['socket_filter'] })
    expect(plain.hasCapabilities).toBe(false)
    expect(checkProgram(plain, [asm.call('probe_write_user'), asm.exit()], { type: 'socket_filter' })).toEqual([])
  })

  test('capabilities without contexts grant nothing', () => {
    const p = Policy.from({ capabilities: { base: { helpers: ['ktime_get_ns'] } } })
    const v = checkProgram(p, [asm.call('ktime_get_ns'), asm.exit()], { type: 'xdp' })
    expect(v.map((x) => [x.name, x.context, x.allowedBy])).toEqual([['ktime_get_ns', [], ['base']]])
  })
})

describe('errors', () => {
  test('instructions without a program type', () => {
    expect(() => checkProgram(policy, [asm.exit()])).toThrow(/give context.type/)
  })

  test('something that is not a program', () => {
    expect(() => checkProgram(policy, { insns: [] } as never, { type: 'xdp' })).toThrow(TypeError)
    expect(() => checkProgram(policy, [{ nope: 1 }] as never, { type: 'xdp' })).toThrow(/instruction 0: not an instruction/)
  })

  test('a context with an unknown key or a wrong type', () => {
    expect(() => checkProgram(policy, [asm.exit()], { type: 'xdp', attach: 'x' } as never)).toThrow(/unknown key 'attach'/)
    expect(() => checkProgram(policy, [asm.exit()], { type: 'xdp', member: 3 } as never)).toThrow(/context.member must be a string/)
    expect(() => checkProgram(policy, [asm.exit()], 'xdp' as never)).toThrow(/context must be an object/)
    expect(() => checkProgram(policy, [asm.exit()], { type: 'no_such_type' as never })).toThrow(TypeError)
  })
})

describe('the policy load options, before any syscall', () => {
  const writer = { type: 'socket_filter' as const, insns: [asm.call('probe_write_user'), asm.exit()] }

  test('ProgramSpec takes policy, externs and structOps, and checks them', () => {
    const spec = ProgramSpec.from({ ...writer, policy, externs: [{ insn: 0, name: 'bpf_x', call: true }], structOps: [{ type: 'sched_ext_ops', member: 'dispatch' }] })
    expect(spec.policy).toBe(policy)
    expect(spec.externs).toEqual([{ insn: 0, name: 'bpf_x', call: true }])
    expect(Object.isFrozen(spec.externs![0])).toBe(true)
    expect(spec.structOps).toEqual([{ type: 'sched_ext_ops', member: 'dispatch' }])
    expect(() => ProgramSpec.from({ ...writer, policy: {} as never })).toThrow(/policy must be a Policy \(an object with assertProgram\(spec\)\), got/)
    expect(() => ProgramSpec.from({ ...writer, policy: null as never })).toThrow(/policy must be a Policy/)
    expect(() => ProgramSpec.from({ ...writer, externs: {} as never })).toThrow(/externs must be an array/)
    expect(() => ProgramSpec.from({ ...writer, externs: [{ insn: -1, name: 'x', call: true }] })).toThrow(/externs\[0\].insn must be an integer/)
    expect(() => ProgramSpec.from({ ...writer, externs: [{ name: 'x', call: true } as never] })).toThrow(/externs\[0\] has no insn/)
    expect(() => ProgramSpec.from({ ...writer, externs: [{ insn: 0, name: '', call: true }] })).toThrow(/externs\[0\].name must be a symbol name/)
    expect(() => ProgramSpec.from({ ...writer, externs: [{ insn: 0, name: 'x', call: 1 as never }] })).toThrow(/externs\[0\].call must be a boolean/)
    expect(() => ProgramSpec.from({ ...writer, structOps: [{ type: 'x' } as never] })).toThrow(/structOps must be an array of \{ type, member \}/)
  })

  test('BpfProgram.load and loadSync refuse before the kernel is asked', async () => {
    await expect(BpfProgram.load({ ...writer, policy })).rejects.toBeInstanceOf(ProgramPolicyError)
    expect(() => BpfProgram.loadSync({ ...writer, policy })).toThrow(ProgramPolicyError)
    // Any ProgramPolicy will do: it sees the spec as given.
    const seen: ProgramSpec[] = []
    const refuseAll = { assertProgram(s: ProgramSpec) { seen.push(s); throw new PolicyError('test', 'all', 'refused') } }
    expect(() => BpfProgram.loadSync({ ...writer, name: 'seen', policy: refuseAll })).toThrow('refused')
    expect(seen.map((s) => s.name)).toEqual(['seen'])
  })

  test('CollectionSpec.load checks every selected program first, and the option itself', async () => {
    const spec = CollectionSpec.fromFile(join(__dirname, '../fixtures/bpf/policy-net.bpf.o'))
    await expect(spec.load({ policy: { nope: 1 } as never })).rejects.toThrow(/CollectionSpec.load: policy must be a Policy/)
    const seen: string[] = []
    const refuseLast = { assertProgram(s: ProgramSpec) { seen.push(s.name!); if (seen.length === 3) throw new PolicyError('test', s.name!, `refused ${s.name}`) } }
    await expect(spec.load({ policy: refuseLast })).rejects.toThrow('refused lru_counter')
    expect(seen).toEqual(['count_bytes', 'stamp', 'lru_counter'])
    await expect(spec.load({ policy })).rejects.toThrow(/policy refuses program 'lru_counter': a use not granted\n  insn 4 \(policy-net.bpf.c:54\): map recent of type lru_hash/)
  })
})

describe('what the kernel binds, not what a program says of itself', () => {
  test('a program whose own target is a pattern matches no attachTo context', () => {
    const v = checkProgram(policy, [asm.call('probe_read_kernel'), asm.exit()], { type: 'kprobe', attachTo: 'tcp_*' })
    expect(v.map((x) => [x.name, x.context])).toEqual([['probe_read_kernel', []]])
  })

  test('a tracing spec is matched by its attach_btf_id, whatever its attachTo label says', (ctx) => {
    if (!existsSync('/sys/kernel/btf/vmlinux')) ctx.skip('no kernel BTF at /sys/kernel/btf/vmlinux to look tcp_close up in')
    const vmlinux = BtfReader.fromFile()
    const close = vmlinux.find('tcp_close', 'FUNC')!
    const traced = Policy.from({
      capabilities: { t: { helpers: ['get_current_pid_tgid'] } },
      contexts: [{ progs: ['tracing'], attachTo: ['tcp_connect'], grant: ['t'] }],
    })
    const spec = (attachBtfId: number) => ProgramSpec.from({
      type: 'tracing', expectedAttachType: 'trace_fentry', attachBtfId, attachTo: 'tcp_connect',
      insns: [asm.call('get_current_pid_tgid'), asm.mov64Imm(asm.R0, 0), asm.exit()],
    })
    expect(checkProgram(traced, spec(vmlinux.find('tcp_connect', 'FUNC')!))).toEqual([])
    expect(checkProgram(traced, spec(close)).map((x) => x.name)).toEqual(['get_current_pid_tgid'])
  })
})
