// Sizes bounded by what the kernel can return (issue 11 #6): testRun output
// sizes over the bound are a RangeError naming the argument and the bound;
// a rejected load with a huge logSize no longer takes a gigabyte, the log
// buffer grows on demand instead. Runs in a child process: before, it
// allocated and zero-filled 4 GiB buffers.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { BpfProgram, asm } from '../../lib/index.js'

const fixture = join(__dirname, '..', 'fixtures', 'native-async', 'limits.cjs')

test('huge testRun output sizes are refused, huge logSize costs only what the log needs', () => {
  const r = spawnSync(process.execPath, [fixture], { encoding: 'utf8', timeout: 120_000 })
  expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' })
  const out = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  for (const load of [out.bigLog, out.bigLogSync]) {
    expect(load).toMatchObject({ name: 'VerifierError', code: 'EINVAL' })
    expect(load.message).toMatch(/last insn is not an exit or jmp/)
  }
  // Before: 1024 MiB (the whole logSize, zero-filled).
  expect(out.logGrowthMiB).toBeLessThan(64)
  expect(out.runs.dataOut).toEqual({ name: 'RangeError', message: 'dataOutSize must be at most 4194304 (the most a test run can return), got 4294967295' })
  expect(out.runs.dataOutSync).toEqual(out.runs.dataOut)
  expect(out.runs.ctxOut).toEqual({ name: 'RangeError', message: 'ctxOutSize must be at most 65535 (the most a test run can return), got 4294967295' })
  expect(out.runs.inBounds).toEqual({ ok: true, keys: ['dataOut', 'duration', 'retval'] })
  expect(out.totalGrowthMiB).toBeLessThan(128)
})

test('a verifier log longer than the first buffer is grown into, whole (guards the growth path)', async () => {
  // 3000 instructions at log level 2 make a log of several MiB: more than
  // the default first buffer, so the load is retried with the size the
  // kernel reports (or a bigger one on kernels before 6.4).
  const insns = [...Array.from({ length: 3000 }, (_, i) => asm.mov64Imm(asm.R0, i)), asm.exit()]
  using p = await BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL', logLevel: 2 })
  const log = p.log
  expect(log.length).toBeGreaterThan(64 * 1024)
  expect(log).toMatch(/processed 3001 insns/)
})

test('logSize outside the kernel limits is a RangeError naming them', async () => {
  await expect(BpfProgram.load({ type: 'socket_filter', insns: [asm.exit()], license: 'GPL', logLevel: 1, logSize: 2 ** 30 }))
    .rejects.toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringMatching(/logSize must be between 128 and 1073741823 \(the kernel's limits for a verifier log\)/) }))
})
