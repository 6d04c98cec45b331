// Kernel functions called from a clang-built object (kfuncs.bpf.c): the
// loader finds each kfunc by name in kernel BTF and puts its BTF ID in the
// call. An acquire/release pair with RCU locks, dynptr kfuncs in syscall,
// tc and xdp programs, and __weak kfuncs guarded by bpf_ksym_exists (one
// present, one no kernel has). Every kfunc here is in vmlinux: a kfunc from
// a module's BTF needs a module with kfuncs loaded, which the host these
// tests were written on did not have.
import { describe, expect, test } from 'vitest'
import { BpfError, BpfProgram, BtfReader, features } from '../../lib/index.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// There is no feature probe for single kfuncs yet: a kfunc is there when
// kernel BTF has a FUNC of its name (the loader fails the same way without it).
let vmlinux: BtfReader | undefined
function kfuncMissing(name: string, since: string): string | undefined {
  vmlinux ??= BtfReader.fromFile()
  return vmlinux.find(name, 'FUNC') === undefined ? `kfunc ${name} (Linux ${since}) is not in this kernel's BTF` : undefined
}

/**
 * Whether the verifier drops a call to an unresolved weak kfunc (imm 0) in
 * dead code (Linux 6.3): older kernels refuse any kfunc call with BTF ID 0,
 * so a program with a bpf_ksym_exists-guarded missing kfunc cannot load there.
 */
async function weakKfuncsMissing(): Promise<string | undefined> {
  // r0 = 0; if r0 == 0 goto +1; call kfunc #0; exit
  const bytes = new Uint8Array([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x15, 0, 1, 0, 0, 0, 0, 0, 0x85, 0x20, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
  try {
    ;(await BpfProgram.load({ type: 'socket_filter', bytes, license: 'GPL' })).close()
    return undefined
  } catch (e) {
    if (e instanceof BpfError && e.code === 'EINVAL') return 'unresolved __weak kfuncs in dead code (Linux 6.3): the kernel refuses kfunc BTF ID 0'
    throw e
  }
}

describe('kfuncs.bpf.c: the spec', () => {
  test('kfunc calls stay unresolved in the spec: the programs are there with their types', () => {
    const { programs } = fixtureSpec('kfuncs')
    expect(programs.task_lookup).toMatchObject({ type: 'syscall' })
    expect(programs.dynptr_skb).toMatchObject({ type: 'sched_cls', section: 'tc' })
    expect(programs.dynptr_xdp).toMatchObject({ type: 'xdp', expectedAttachType: 'xdp', section: 'xdp' })
  })
})

describe('kfuncs.bpf.c: loaded and run', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')) ?? requireFeature(features.haveKernelBtfIds))

  test('bpf_task_from_pid finds this process (10) and not pid -1 (1), inside bpf_rcu_read_lock', async (ctx) => {
    const why = kfuncMissing('bpf_task_from_pid', '6.2') ?? kfuncMissing('bpf_rcu_read_lock', '6.2')
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load({ programs: ['task_lookup'] })
    expect(await retval(coll.programs.task_lookup)).toBe(11)
  })

  test('bpf_dynptr_size and bpf_dynptr_adjust over a global buffer: 16 * 100 + 6', async (ctx) => {
    const why = kfuncMissing('bpf_dynptr_adjust', '6.4')
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load({ programs: ['dynptr_mem'] })
    expect(await retval(coll.programs.dynptr_mem)).toBe(1606)
  })

  test('bpf_dynptr_from_skb in tc: packet length * 1000 + byte 12 through a slice', async (ctx) => {
    const why = kfuncMissing('bpf_dynptr_from_skb', '6.4')
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load({ programs: ['dynptr_skb'] })
    // 64 bytes 1, 2, 3, ...: 64 * 1000 + 13
    expect(await retval(coll.programs.dynptr_skb)).toBe(64013)
  })

  test('bpf_dynptr_from_xdp in xdp: XDP_PASS when it sees 64 bytes and 13 at byte 12', async (ctx) => {
    const why = kfuncMissing('bpf_dynptr_from_xdp', '6.4')
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load({ programs: ['dynptr_xdp'] })
    expect(await retval(coll.programs.dynptr_xdp)).toBe(2) // XDP_PASS
  })

  test('__weak kfuncs: the present one is called (+20), the missing one is dropped by the verifier (7)', async (ctx) => {
    const why = await weakKfuncsMissing()
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load({ programs: ['weak_kfuncs'] })
    // 7, + 20 when the kernel has bpf_preempt_disable (6.10), never + 1000
    const expected = kfuncMissing('bpf_preempt_disable', '6.10') === undefined ? 27 : 7
    expect(await retval(coll.programs.weak_kfuncs)).toBe(expected)
  })

  test('everything loads at once', async (ctx) => {
    const why = kfuncMissing('bpf_dynptr_from_xdp', '6.4') ?? kfuncMissing('bpf_task_from_pid', '6.2') ?? (await weakKfuncsMissing())
    if (why) ctx.skip(why)
    using coll = await fixtureSpec('kfuncs').load()
    expect(Object.keys(coll.programs).sort()).toEqual(['dynptr_mem', 'dynptr_skb', 'dynptr_xdp', 'task_lookup', 'weak_kfuncs'])
    expect(await retval(coll.programs.task_lookup)).toBe(11)
  })
})
