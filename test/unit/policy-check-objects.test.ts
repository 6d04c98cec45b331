// The capability checker over fixture objects, read without loading: a
// policy with inheritance and contexts refuses exactly the violating
// programs, each violation naming the instruction, the C line, what is used
// and the capability sets that would allow it. Fixtures:
// test/fixtures/bpf/policy-*.bpf.c.
import { describe, expect, test } from 'vitest'
import { join } from 'node:path'
import { CollectionSpec } from '../../lib/collection/spec.js'
import { Policy } from '../../lib/policy/policy.js'
import type { Violation } from '../../lib/policy/check.js'

const fixture = (name: string) => CollectionSpec.fromFile(join(__dirname, '../fixtures/bpf', `policy-${name}.bpf.o`))

// Kfuncs and attach targets are checked against this kernel's BTF.
const policy = Policy.from({
  cmds: ['map_create', 'prog_load'], maps: 'any', progs: 'any', attachs: 'any',
  capabilities: {
    base: { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns'] },
    'net.read': { include: ['base'], helpers: ['skb_load_bytes'], maps: ['hash', 'array'] },
    'trace.read': { include: ['base'], helpers: ['probe_read_kernel', 'get_current_pid_tgid', 'ringbuf_output', 'loop'], maps: ['ringbuf'] },
    'trace.write': { include: ['trace.read'], helpers: ['probe_write_user'] },
    'task.kfuncs': { helpers: ['get_current_pid_tgid'], kfuncs: ['bpf_task_from_pid', 'bpf_task_release'] },
  },
  contexts: [
    { progs: ['socket_filter'], grant: ['net.read'] },
    { progs: ['kprobe'], attachTo: ['tcp_*', 'do_unlinkat'], grant: ['trace.read'] },
    { progs: ['syscall'], grant: ['task.kfuncs'] },
  ],
})

// This host has no sched_ext: its kfuncs and ops struct are checked against
// the BTF of the object that uses them, as a sched_ext kernel's would have them.
const scxPolicy = Policy.from({
  capabilities: {
    'scx.enqueue': { kfuncs: ['scx_bpf_dsq_insert'] },
    'scx.dispatch': { kfuncs: ['scx_bpf_dsq_move_to_local'] },
    'scx.release': { kfuncs: ['scx_bpf_reenqueue_local'] },
  },
  contexts: [
    { progs: ['struct_ops'], member: ['enqueue'], grant: ['scx.enqueue'] },
    { progs: ['struct_ops'], attachTo: ['sched_ext_ops'], member: ['dispatch', 'cpu_release'], grant: ['scx.dispatch'] },
  ],
}, { kernelBtf: join(__dirname, '../fixtures/bpf/policy-struct-ops.bpf.o') })

const brief = (v: Violation[]) => v.map((x) => ({ insn: x.insn, kind: x.kind, name: x.name, ...(x.mapType ? { mapType: x.mapType } : {}), context: x.context, allowedBy: x.allowedBy }))

describe('socket filters (policy-net)', () => {
  const spec = fixture('net')

  test('helpers and maps net.read grants pass, a subprogram\'s helper included', () => {
    expect(policy.check(spec.programs.count_bytes)).toEqual([])
    expect(policy.check(spec.programs.stamp)).toEqual([])
  })

  test('an lru_hash map is refused, named by map and type, with its C line', () => {
    const v = policy.check(spec.programs.lru_counter)
    expect(brief(v)).toEqual([{ insn: 4, kind: 'map', name: 'recent', mapType: 'lru_hash', context: [0], allowedBy: [] }])
    expect(v[0].program).toBe('lru_counter')
    expect(v[0].source).toBe('policy-net.bpf.c:54: __u64 *n = bpf_map_lookup_elem(&recent, &key);')
    expect(v[0].message).toBe('insn 4 (policy-net.bpf.c:54): map recent of type lru_hash is not granted to socket_filter; no capability set allows it')
  })
})

describe('kprobes (policy-trace)', () => {
  const spec = fixture('trace')

  test('tcp_connect matches tcp_*: its helpers and ring buffer are granted', () => {
    expect(policy.check(spec.programs.on_connect)).toEqual([])
  })

  test('a bpf_loop callback is read too: its probe_write_user is refused, and trace.write would allow it', () => {
    const v = policy.check(spec.programs.on_unlink)
    expect(brief(v)).toEqual([{ insn: 17, kind: 'helper', name: 'probe_write_user', context: [1], allowedBy: ['trace.write'] }])
    expect(v[0].source).toBe('policy-trace.bpf.c:29: bpf_probe_write_user(data, &index, sizeof(index));')
    expect(v[0].message).toBe('insn 17 (policy-trace.bpf.c:29): helper probe_write_user is not granted to kprobe/do_unlinkat; capability sets that allow it: trace.write')
  })

  test('another attach target matches no context: nothing is granted', () => {
    const v = policy.check(spec.programs.on_connect, { attachTo: 'vfs_read' })
    expect(v.map((x) => x.name)).toEqual(['probe_read_kernel', 'get_current_pid_tgid', 'events', 'ringbuf_output'])
    expect(v.every((x) => x.context.length === 0 && / \(no policy context matches it\);/.test(x.message))).toBe(true)
  })
})

describe('kfuncs (policy-kfuncs)', () => {
  const spec = fixture('kfuncs')

  test('kfunc calls are named from the object before load', () => {
    expect(spec.programs.task_pid.externs?.map((e) => e.name)).toEqual(['bpf_task_from_pid', 'bpf_task_release'])
    expect(policy.check(spec.programs.task_pid)).toEqual([])
  })

  test('kfuncs no set grants are refused one by one', () => {
    expect(brief(policy.check(spec.programs.rcu_only))).toEqual([
      { insn: 0, kind: 'kfunc', name: 'bpf_rcu_read_lock', context: [2], allowedBy: [] },
      { insn: 1, kind: 'kfunc', name: 'bpf_rcu_read_unlock', context: [2], allowedBy: [] },
    ])
  })
})

describe('struct_ops callbacks (policy-struct-ops), checked without loading', () => {
  const spec = fixture('struct-ops')

  test('each callback knows the member it fills', () => {
    expect(spec.programs.policy_dispatch.structOps).toEqual([{ type: 'sched_ext_ops', member: 'dispatch' }])
    expect(spec.programs.policy_cpu_release.structOps).toEqual([{ type: 'sched_ext_ops', member: 'cpu_release' }])
    expect(spec.programs.policy_enqueue.structOps).toEqual([{ type: 'sched_ext_ops', member: 'enqueue' }])
  })

  test('members get different sets: dispatch may move to local, cpu_release may not reenqueue', () => {
    expect(scxPolicy.check(spec.programs.policy_enqueue)).toEqual([])
    expect(scxPolicy.check(spec.programs.policy_dispatch)).toEqual([])
    const v = scxPolicy.check(spec.programs.policy_cpu_release)
    expect(brief(v)).toEqual([{ insn: 0, kind: 'kfunc', name: 'scx_bpf_reenqueue_local', context: [1], allowedBy: ['scx.release'] }])
    expect(v[0].message).toBe('insn 0 (policy-struct-ops.bpf.c:40): kfunc scx_bpf_reenqueue_local is not granted to struct_ops/sched_ext_ops member cpu_release; capability sets that allow it: scx.release')
  })

  test('a context given by the caller overrides the member', () => {
    expect(scxPolicy.check(spec.programs.policy_cpu_release, { member: 'enqueue' }).map((x) => x.context)).toEqual([[0]])
  })

  test('the enqueue kfunc is not granted to dispatch', () => {
    expect(scxPolicy.check(spec.programs.policy_enqueue, { member: 'dispatch' }).map((x) => [x.name, x.allowedBy])).toEqual([['scx_bpf_dsq_insert', ['scx.enqueue']]])
  })
})

describe('a fixture set', () => {
  test('the policy refuses exactly the violating programs', () => {
    const refused: string[] = []
    for (const name of ['net', 'trace', 'kfuncs', 'struct-ops']) {
      const rules = name === 'struct-ops' ? scxPolicy : policy
      for (const [program, p] of Object.entries(fixture(name).programs)) if (rules.check(p).length) refused.push(program)
    }
    expect(refused.sort()).toEqual(['lru_counter', 'on_unlink', 'policy_cpu_release', 'rcu_only'])
  })
})
