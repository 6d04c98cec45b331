// The `policy` load option against the real kernel: a program the policy
// refuses never reaches it (no program and no map with its name appears in
// the kernel's ID lists), one it allows loads and runs. And the checker on a
// program already loaded, read from its translated instructions. Fixtures:
// test/fixtures/bpf/policy-net.bpf.c, policy-kfuncs.bpf.c.
import { describe, expect, test } from 'vitest'
import { asm, BpfMap, BpfProgram, Btf, BtfReader, features, ids, Policy, PolicyError, ProgramSpec } from '../../lib/index.js'
import { ProgramPolicyError } from '../../lib/policy/check.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature } from './helpers/requires.js'

// The kfunc tests need syscall programs (5.14) and the kfuncs of 6.2, in this kernel's BTF.
const kfuncsMissing = requireFeature(() => features.haveProgramType('syscall'))
  ?? (['bpf_task_from_pid', 'bpf_task_release', 'bpf_rcu_read_lock', 'bpf_rcu_read_unlock'].every((n) => BtfReader.fromFile().find(n, 'FUNC') !== undefined)
    ? undefined : 'kfuncs bpf_task_from_pid, bpf_rcu_read_lock (Linux 6.2) are not in this kernel\'s BTF')

// Written for any kernel: kfunc names are not checked against this one's BTF (the tests that use them skip without them).
const policy = Policy.from({
  cmds: ['map_create', 'prog_load'], maps: 'any', progs: 'any', attachs: 'any',
  capabilities: {
    base: { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns'] },
    'net.read': { include: ['base'], helpers: ['skb_load_bytes'], maps: ['hash', 'array'] },
    'trace.write': { helpers: ['probe_write_user'] },
    'task.kfuncs': { helpers: ['get_current_pid_tgid'], kfuncs: ['bpf_task_from_pid', 'bpf_task_release'] },
  },
  contexts: [
    { progs: ['socket_filter'], grant: ['net.read'] },
    { progs: ['syscall'], grant: ['task.kfuncs'] },
  ],
}, { kernelBtf: null })

// Other processes may load programs meanwhile: only objects with this test's names count.
const programsNamed = (name: string) => [...ids.programs()].filter((p) => p.name === name).map((p) => p.id)
const mapsNamed = (name: string) => [...ids.maps()].filter((m) => m.name === name).map((m) => m.id)

async function refusal(load: () => Promise<unknown>): Promise<ProgramPolicyError> {
  try {
    await load()
  } catch (e) {
    if (e instanceof ProgramPolicyError) return e
    throw e
  }
  throw new Error('the load was not refused')
}

describe('BpfProgram.load({ policy })', () => {
  const writer = (name: string) => ({
    type: 'socket_filter' as const, name, license: 'GPL', policy,
    insns: [asm.mov64Imm(asm.R1, 0), asm.mov64Imm(asm.R2, 0), asm.mov64Imm(asm.R3, 0), asm.call('probe_write_user'), asm.mov64Imm(asm.R0, 0), asm.exit()],
  })

  test('a refused program is never loaded: no program of its name appears', async () => {
    const before = programsNamed('pc_refused')
    const e = await refusal(() => BpfProgram.load(writer('pc_refused')))
    expect(e).toBeInstanceOf(PolicyError)
    expect(e.code).toBe('EPERM')
    expect(e.violations.map((v) => [v.insn, v.name, v.allowedBy])).toEqual([[3, 'probe_write_user', ['trace.write']]])
    expect(e.message).toMatch(/^policy refuses program 'pc_refused': a use not granted\n  insn 3: helper probe_write_user is not granted to socket_filter; capability sets that allow it: trace.write$/)
    expect(programsNamed('pc_refused')).toEqual(before)
  })

  test('loadSync refuses the same way', () => {
    const before = programsNamed('pc_refused_s')
    expect(() => BpfProgram.loadSync(writer('pc_refused_s'))).toThrow(PolicyError)
    expect(programsNamed('pc_refused_s')).toEqual(before)
  })

  test('an allowed program loads and runs, with a map of a granted type', async () => {
    using map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'pc_allowed_m' })
    const insns = [
      asm.stW(asm.FP, -4, 0), asm.mov64Reg(asm.R2, asm.FP), asm.add64Imm(asm.R2, -4), asm.ldMapFd(asm.R1, map), asm.call('map_lookup_elem'),
      asm.call('ktime_get_ns'), asm.mov64Imm(asm.R0, 7), asm.exit(),
    ]
    expect(policy.check(insns, { type: 'socket_filter' })).toEqual([])
    using prog = await BpfProgram.load({ type: 'socket_filter', name: 'pc_allowed', license: 'GPL', insns, policy })
    expect(programsNamed('pc_allowed')).toContain(prog.id)
    expect((await prog.testRun({ data: new Uint8Array(64) })).retval).toBe(7)
  })

  test('a map of a type no context grants is read from the kernel and refused', async () => {
    using map = BpfMap.create({ type: 'lru_hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'pc_lru' })
    const insns = [asm.ldMapFd(asm.R1, map), asm.mov64Imm(asm.R0, 0), asm.exit()]
    const e = await refusal(() => BpfProgram.load({ type: 'socket_filter', name: 'pc_lru_prog', insns, policy }))
    expect(e.violations.map((v) => [v.insn, v.kind, v.name, v.mapType])).toEqual([[0, 'map', 'pc_lru', 'lru_hash']])
    expect(programsNamed('pc_lru_prog')).toEqual([])
  })

  test('raw bytes: a map fd is read from the kernel for its name and type', () => {
    using map = BpfMap.create({ type: 'lru_hash', keySize: 4, valueSize: 8, maxEntries: 4, name: 'pc_lru_bytes' })
    const bytes = asm.assemble([asm.ldMapValue(asm.R1, { fd: map.fd }), asm.mov64Imm(asm.R0, 0), asm.exit()])
    expect(policy.check(bytes, { type: 'socket_filter' }).map((v) => [v.insn, v.name, v.mapType])).toEqual([[0, 'pc_lru_bytes', 'lru_hash']])
  })

  test('a kfunc call through fd_array is named from the BTF object there', (ctx) => {
    if (kfuncsMissing) ctx.skip(kfuncsMissing)
    const vmlinuxId = [...ids.btfs()].find((b) => b.kernelBtf && b.name === 'vmlinux')!.id
    using btf = Btf.fromId(vmlinuxId)
    const kfunc = BtfReader.fromFile().find('bpf_rcu_read_lock', 'FUNC')!
    const spec = ProgramSpec.from({ type: 'syscall', insns: [asm.callKfunc(kfunc, 1), asm.exit()], fdArray: [btf] })
    expect(policy.check(spec).map((v) => [v.insn, v.kind, v.name])).toEqual([[0, 'kfunc', 'bpf_rcu_read_lock']])
  })

  test('a policy that is not one is a TypeError', async () => {
    await expect(BpfProgram.load({ ...writer('pc_bad'), policy: {} as never })).rejects.toThrow(/policy must be a Policy/)
  })

  test("a CollectionSpec's program with kfunc externs does not load on its own", async () => {
    const spec = fixtureSpec('policy-kfuncs').programs.task_pid
    await expect(BpfProgram.load(spec)).rejects.toThrow(/names kernel symbols not resolved yet \(bpf_task_from_pid, bpf_task_release\): load it through its CollectionSpec's load\(\)/)
  })
})

describe('CollectionSpec.load({ policy })', () => {
  test('one refused program refuses the load before any map is made', async () => {
    const spec = fixtureSpec('policy-net')
    const maps = { bytes: mapsNamed('bytes_seen'), recent: mapsNamed('recent') }
    const e = await refusal(() => spec.load({ policy }))
    expect(e.violations.map((v) => [v.program, v.name, v.mapType, v.source])).toEqual([
      ['lru_counter', 'recent', 'lru_hash', 'policy-net.bpf.c:54: __u64 *n = bpf_map_lookup_elem(&recent, &key);'],
    ])
    expect(mapsNamed('bytes_seen')).toEqual(maps.bytes)
    expect(mapsNamed('recent')).toEqual(maps.recent)
    expect(programsNamed('count_bytes')).toEqual([])
  })

  test('the programs it allows load and run', async () => {
    const spec = fixtureSpec('policy-net')
    await using coll = await spec.load({ policy, programs: ['count_bytes', 'stamp'] })
    expect(await retval(coll.programs.count_bytes)).toBe(1)
    expect(await retval(coll.programs.stamp)).toBe(1)
  })

  test('kfunc programs: the allowed one loads, the other is refused', async (ctx) => {
    if (kfuncsMissing) ctx.skip(kfuncsMissing)
    const spec = fixtureSpec('policy-kfuncs')
    await using coll = await spec.load({ policy, programs: ['task_pid'] })
    expect(await retval(coll.programs.task_pid)).toBe(1)
    const e = await refusal(() => spec.load({ policy }))
    expect(e.violations.map((v) => `${v.program}: ${v.kind} ${v.name}`)).toEqual(['rcu_only: kfunc bpf_rcu_read_lock', 'rcu_only: kfunc bpf_rcu_read_unlock'])
  })
})

describe('checking a loaded program (translated instructions)', () => {
  test('helpers named back from their addresses, maps from their IDs, kfuncs from theirs', async (ctx) => {
    if (kfuncsMissing) ctx.skip(kfuncsMissing)
    const net = await fixtureSpec('policy-net').load({ programs: ['count_bytes'] })
    const kf = await fixtureSpec('policy-kfuncs').load({ programs: ['task_pid'] })
    try {
      expect(policy.check(net.programs.count_bytes)).toEqual([])
      const strict = Policy.from({ capabilities: { maps: { maps: ['array'] } }, contexts: [{ grant: ['maps'] }] })
      const v = strict.check(net.programs.count_bytes)
      // map_lookup_elem and map_update_elem on a hash map call its own operations: named back to the helpers.
      expect(new Set(v.map((x) => `${x.kind} ${x.name}${x.mapType ? ` ${x.mapType}` : ''}`))).toEqual(new Set([
        'helper skb_load_bytes', 'map bytes_seen hash', 'helper map_lookup_elem', 'helper map_update_elem',
      ]))
      expect(v.every((x) => x.insn >= 0 && x.program === 'count_bytes')).toBe(true)
      expect(policy.check(kf.programs.task_pid)).toEqual([])
      expect(strict.check(kf.programs.task_pid).map((x) => `${x.kind} ${x.name}`)).toEqual([
        'helper get_current_pid_tgid', 'kfunc bpf_task_from_pid', 'kfunc bpf_task_release',
      ])
    } finally {
      await net.close()
      await kf.close()
    }
  })
})
