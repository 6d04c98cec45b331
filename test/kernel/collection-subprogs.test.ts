// Subprograms linked from clang-built objects (subprogs.bpf.c,
// subprogs-other.bpf.c): static and global functions, call chains, one
// subprogram in two programs, callbacks through bpf_loop and
// bpf_for_each_map_elem, and calls into sections other than .text. Every
// program returns what its C code computes, so a wrong call offset or a
// missing subprogram shows as a wrong number, not only as a verifier error.
import { describe, expect, test } from 'vitest'
import { CollectionSpec, features, kernel } from '../../lib/index.js'
import { fixture, fixtureSpec, retval } from './helpers/collection.js'
import { skipAllIf, requireFeature, skipUnless } from './helpers/requires.js'

const SLEEPABLE = kernel.progLoadFlags.BPF_F_SLEEPABLE

describe('subprogs.bpf.c: the spec', () => {
  test('programs are the entry functions, by C name; subprograms are not programs', () => {
    const spec = fixtureSpec('subprogs')
    expect(Object.keys(spec.programs).sort()).toEqual([
      'global_call', 'loop_callback', 'map_callback', 'nested_calls', 'shares_static', 'static_call',
    ])
    for (const sub of ['add_scaled', 'global_mul', 'chain', 'add_index', 'add_value']) expect(spec.programs[sub]).toBeUndefined()
  })

  test('each program has the type, section and flags its section name gives', () => {
    const { programs } = fixtureSpec('subprogs')
    expect(programs.static_call).toMatchObject({ type: 'sched_cls', section: 'tc', autoload: true, license: 'GPL' })
    expect(programs.global_call).toMatchObject({ type: 'socket_filter', section: 'socket' })
    expect(programs.nested_calls).toMatchObject({ type: 'syscall', section: 'syscall' })
    // SEC("syscall") programs are sleepable.
    expect(programs.nested_calls.flags & SLEEPABLE).toBe(SLEEPABLE)
    expect(programs.static_call.flags & SLEEPABLE).toBe(0)
  })

  test('func_info names every function linked into a program, the entry first', () => {
    const spec = fixtureSpec('subprogs')
    const names = (prog: string) => spec.programs[prog].funcInfo!.map((f) => spec.btf!.type(f.typeId).name)
    // nested_calls -> add_scaled, chain -> global_mul
    expect(names('nested_calls')[0]).toBe('nested_calls')
    expect(names('nested_calls').slice(1).sort()).toEqual(['add_scaled', 'chain', 'global_mul'])
    expect(names('static_call')).toEqual(['static_call', 'add_scaled'])
    // Each program gets its own copy of the shared subprogram.
    expect(names('shares_static')).toEqual(['shares_static', 'add_scaled'])
    expect(names('loop_callback')).toEqual(['loop_callback', 'add_index'])
  })

  test('insn offsets in func_info are ascending and start at 0', () => {
    const spec = fixtureSpec('subprogs')
    for (const p of Object.values(spec.programs)) {
      const offs = p.funcInfo!.map((f) => f.insnOff)
      expect(offs[0]).toBe(0)
      expect([...offs].sort((a, b) => a - b)).toEqual(offs)
    }
  })
})

describe('subprogs.bpf.c: loaded and run', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test.each([
    // (3 + 4) * 5 through the static add_scaled
    ['static_call', 35],
    // the same add_scaled from a second program: (1 + 2) * 10 + 1
    ['shares_static', 31],
    // the global global_mul(6, 7), verified on its own
    ['global_call', 42],
    // chain(add_scaled(2, 3, 2)) + 100 = (10 * 3 + 1) + 100, a static calling a global
    ['nested_calls', 131],
  ])('%s returns %i', async (name, expected) => {
    using coll = await fixtureSpec('subprogs').load({ programs: [name] })
    expect(await retval(coll.programs[name])).toBe(expected)
  })

  test('bpf_loop calls the static callback 10 times: sum 45, last index 9, 10 iterations', async (ctx) => {
    skipUnless(ctx, () => features.haveProgramHelper('syscall', 'loop'))
    using coll = await fixtureSpec('subprogs').load({ programs: ['loop_callback'] })
    expect(await retval(coll.programs.loop_callback)).toBe(45 * 1000 + 9 * 100 + 10)
  })

  test('bpf_for_each_map_elem walks the map user space filled', async (ctx) => {
    skipUnless(ctx, () => features.haveProgramHelper('syscall', 'for_each_map_elem'))
    using coll = await fixtureSpec('subprogs').load({ programs: ['map_callback'] })
    // An empty (zeroed) array: no sum, 4 elements visited.
    expect(await retval(coll.programs.map_callback)).toBe(4)
    // numbers is typed from BTF: u32 keys, u64 values.
    for (const k of [0, 1, 2, 3]) coll.maps.numbers.set(k, BigInt(k + 1))
    // sum of numbers[k] * (k + 1) = 1 + 4 + 9 + 16 = 30; * 10 + 4
    expect(await retval(coll.programs.map_callback)).toBe(304)
  })

  test('all six programs load together and keep their own results', async () => {
    using coll = await fixtureSpec('subprogs').load()
    expect(Object.keys(coll.programs).sort()).toEqual([
      'global_call', 'loop_callback', 'map_callback', 'nested_calls', 'shares_static', 'static_call',
    ])
    expect(await retval(coll.programs.static_call)).toBe(35)
    expect(await retval(coll.programs.shares_static)).toBe(31)
    expect(await retval(coll.programs.nested_calls)).toBe(131)
    // Loaded with the object's BTF (func and line info), under its C name.
    expect(coll.programs.nested_calls.info()).toMatchObject({ name: 'nested_calls', type: 'syscall' })
    expect(coll.programs.nested_calls.info().btfId).toBeGreaterThan(0)
  })
})

describe('subprogs-other.bpf.c: calls into sections other than .text', () => {
  // libbpf refuses these objects ("bad call relo against ... in section");
  // cilium/ebpf links them, and so does bpfkit.
  skipAllIf(requireFeature(() => features.haveProgramType('sched_cls')))

  test('functions in the non-program section "other" are no programs', () => {
    const spec = CollectionSpec.fromFile(fixture('subprogs-other.bpf.o'))
    expect(spec.programs.static_other).toBeUndefined()
    expect(spec.programs.caller).toMatchObject({ type: 'sched_cls', section: 'tc' })
    expect(spec.programs.callee).toMatchObject({ type: 'sched_cls', section: 'tc' })
  })

  test("a program calls another program's entry function and functions in 'other'", async () => {
    using coll = await CollectionSpec.fromFile(fixture('subprogs-other.bpf.o')).load()
    // callee(skb) * 100 + static_other(8) * 10 + global_other(1) = 5 * 100 + 7 * 10 + 3
    expect(await retval(coll.programs.caller)).toBe(573)
    // callee is also a program of its own.
    expect(await retval(coll.programs.callee)).toBe(5)
  })
})
