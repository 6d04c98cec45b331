// CO-RE through the whole load: core.bpf.c relocated against this kernel's
// vmlinux BTF, and against a target BTF made here (kernelBtf as bytes and as
// a path, as libbpf's btf_custom_path), run with BPF_PROG_TEST_RUN. A
// relocation the target cannot satisfy poisons its instruction, and the
// verifier's refusal is reported as the CO-RE relocation it was.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BtfBuilder, BtfReader, CoreError, VerifierError, features } from '../../lib/index.js'
import { fixtureSpec } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

// core.bpf.c's programs are all SEC("syscall"), which BPF_PROG_TEST_RUN runs with a context.
const missing = requireFeature(() => features.haveProgramType('syscall'))

const vmlinux = BtfReader.fromFile()

// The target layouts core.bpf.c's local types are relocated to (the local
// struct core_point is { x, y, z }; here y and x swap places after a pad).
function targetBtf(extra: (b: BtfBuilder, int: number) => void = () => {}): Uint8Array {
  const b = new BtfBuilder()
  const int = b.int('int', 4, { signed: true })
  const uint = b.int('unsigned int', 4)
  b.struct('core_point', [{ name: 'pad', type: int }, { name: 'y', type: int }, { name: 'x', type: int }, { name: 'z', type: int }])
  b.struct('core_flags', [
    { name: 'hi', type: uint, bitOffset: 0, bitSize: 10 }, { name: 'lo', type: uint, bitOffset: 10, bitSize: 3 }, { name: 'mid', type: int, bitOffset: 13, bitSize: 5 },
  ], { size: 4 })
  extra(b, int)
  return b.bytes()
}

// A 64-byte context holding `words` (u32, little-endian) at byte offsets.
function ctx(words: Record<number, number>): Uint8Array {
  const bytes = new Uint8Array(64)
  const v = new DataView(bytes.buffer)
  for (const [at, x] of Object.entries(words)) v.setUint32(Number(at), x >>> 0, true)
  return bytes
}

describe('core.bpf.c against this kernel', () => {
  skipAllIf(missing)
  test('kernel_queries: offsets, sizes, existence, enum values and type ids are the vmlinux ones', async () => {
    using coll = await fixtureSpec('core').load({ programs: ['kernel_queries'] })
    expect((await coll.programs.kernel_queries.testRun()).retval).toBe(1)
    const out = (coll.variables.kernel_out.get() as { v: bigint[] }).v.map(Number)
    const task = vmlinux.type(vmlinux.find('task_struct', 'STRUCT')!)
    const pid = vmlinux.members(task).find((m) => m.name === 'pid')!
    expect(out[0]).toBe(pid.bitOffset / 8)
    expect(out.slice(1, 7)).toEqual([16, 1, 0, 1, 1, 0])
    expect(out[7]).toBe(task.sizeOrType)
    expect(out.slice(8, 12)).toEqual([1, 1, 35, 0])
    expect(out[12]).toBe(task.id)
  })

  test('kernel_tgid reads current->tgid through BPF_CORE_READ: this process', async () => {
    using coll = await fixtureSpec('core').load({ programs: ['kernel_tgid'] })
    expect((await coll.programs.kernel_tgid.testRun()).retval).toBe(process.pid)
  })

  test('a local type vmlinux lacks poisons the load; the verifier error names the relocation and program', async () => {
    const err = await fixtureSpec('core').load({ programs: ['point_sum'] }).catch((e) => e)
    expect(err).toBeInstanceOf(VerifierError)
    expect(err.message).toMatch(/^CO-RE relocation #\d+ in point_sum: .*core_point/)
  })

  test('a poisoned load behind bpf_core_field_exists is dead code: point_guarded loads and returns -1', async () => {
    using coll = await fixtureSpec('core').load({ programs: ['point_guarded'], kernelBtf: targetBtf() })
    // The target has z, so the guarded read is patched: z = 9 at byte 12.
    expect((await coll.programs.point_guarded.testRun({ ctx: ctx({ 12: 9 }) })).retval).toBe(9)
  })
})

describe('core.bpf.c against a target BTF (kernelBtf)', () => {
  skipAllIf(missing)
  test('as bytes: fields moved in the target are read where the target has them', async () => {
    using coll = await fixtureSpec('core').load({ programs: ['point_sum', 'flags_read'], kernelBtf: targetBtf() })
    // x = 5 at byte 8, y = 7 at byte 4: 5 * 1000 + 7.
    expect((await coll.programs.point_sum.testRun({ ctx: ctx({ 8: 5, 4: 7 }) })).retval).toBe(5007)
    // hi:10 | lo:3 | mid:5 (signed): lo 5, mid -3, hi 3 -> lo + mid * 100 + hi * 10000.
    const word = 3 | (5 << 10) | ((-3 & 31) << 13)
    expect((await coll.programs.flags_read.testRun({ ctx: ctx({ 0: word }) })).retval).toBe(5 + -3 * 100 + 3 * 10000)
  })

  test('as a path to raw BTF, as libbpf btf_custom_path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bpfkit-core-'))
    try {
      writeFileSync(join(dir, 'target.btf'), targetBtf())
      using coll = await fixtureSpec('core').load({ programs: ['point_sum'], kernelBtf: join(dir, 'target.btf') })
      expect((await coll.programs.point_sum.testRun({ ctx: ctx({ 8: 2, 4: 3 }) })).retval).toBe(2003)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('candidates that disagree are an error naming them; nothing is left open', async () => {
    const ambiguous = targetBtf((b, int) => { b.struct('core_point___v2', [{ name: 'x', type: int }, { name: 'y', type: int }, { name: 'z', type: int }]) })
    const err = await fixtureSpec('core').load({ programs: ['point_sum'], kernelBtf: ambiguous }).catch((e) => e)
    expect(err).toBeInstanceOf(CoreError)
    expect(err.message).toMatch(/ambiguous.*core_point.*core_point___v2/)
  })

  test('a missing kernelBtf file is an error naming the path', async () => {
    await expect(fixtureSpec('core').load({ programs: ['point_sum'], kernelBtf: '/nonexistent/vmlinux.btf' })).rejects.toThrow(/\/nonexistent\/vmlinux\.btf/)
  })
})
