// `bpfkit --broker SOCK top` and `dump` as a tenant, through the real binary:
// the child connects to the tenant's relay socket (helpers/broker.ts), so
// the broker sees it as that tenant. top shows only the tenant's programs,
// and statistics are on through the broker (enable_stats) exactly while it
// runs; a tenant whose policy does not list enable_stats is refused. dump
// prints a map (read through get_fd) and a program's instructions
// (prog_xlated) as the host's `map dump` and `prog dump --xlated` do.
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { asm } from '../../lib/asm/index.js'
import { havePeerPidfd } from '../../lib/features/index.js'
import type { PolicyDocument } from '../../lib/policy/index.js'
import { BpfProgram } from '../../lib/prog/program.js'
import { bpftool } from './helpers/bpftool.js'
import { startTestBroker, testPolicy, type TestBroker } from './helpers/broker.js'
import { fixture } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { userNamespacesMissing } from './helpers/tenant.js'
import { cli, keepRunning, rowOf, runBinary, SLOW } from './helpers/top.js'

const why = requireFeature(havePeerPidfd) ?? userNamespacesMissing()

const withStats = { ...(testPolicy as PolicyDocument), cmds: [...(testPolicy as { cmds: string[] }).cmds, 'enable_stats'] } as PolicyDocument
const insns = [asm.mov64Imm(asm.R0, 0), asm.exit()]

describe('bpfkit --broker: top and dump as a tenant', () => {
  skipAllIf(why)
  let tb: TestBroker
  let A: string
  let B: string

  beforeAll(async () => {
    if (why) return
    tb = await startTestBroker({ tenants: [{ name: 'a', policy: withStats }, 'b'] })
    A = tb.tenant('a').socketPath
    B = tb.tenant('b').socketPath
  }, 60_000 * SLOW)

  afterAll(async () => {
    await tb?.close()
  })

  /** Polls the broker's count of connections holding statistics on until it is `n`. */
  async function statsEnabledBecomes(n: number): Promise<void> {
    for (let i = 0; i < 300 * SLOW && tb.broker.stats().statsEnabled !== n; i++) await sleep(50)
    expect(tb.broker.stats().statsEnabled).toBe(n)
  }

  test('top: the tenant\'s programs only, statistics on through the broker while it runs; a tenant without enable_stats is refused', async () => {
    using client = await tb.tenant('a').client()
    using mine = await client.loadProgram({ type: 'socket_filter', name: 'a_busy', insns, license: 'GPL' })
    using host = await BpfProgram.load({ type: 'socket_filter', name: 'host_busy', insns, license: 'GPL' })
    const stopMine = keepRunning(mine)
    const stopHost = keepRunning(host)
    try {
      await statsEnabledBecomes(0)
      const running = runBinary(['--broker', A, 'top', '--json', '--count', '2', '--interval', '0.5'])
      // While it runs, the broker holds statistics on for its connection.
      await statsEnabledBecomes(1)
      const r = await running
      expect(r.err).toBe('')
      expect(r.code).toBe(0)
      const samples = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as { programs: { id: number; name: string; runsPerSec: number }[] })
      expect(samples).toHaveLength(2)
      const own = new Set((await client.list({ kinds: ['prog'] })).map((v) => v.id))
      for (const s of samples) {
        expect(s.programs.every((p) => own.has(p.id))).toBe(true)
        expect(s.programs.map((p) => p.id)).not.toContain(host.id)
        expect(s.programs.find((p) => p.id === mine.id)).toMatchObject({ name: 'a_busy' })
      }
      expect(samples.some((s) => s.programs.find((p) => p.id === mine.id)!.runsPerSec > 0)).toBe(true)
      // Its connection closed: released.
      await statsEnabledBecomes(0)

      const text = await runBinary(['--broker', A, 'top', '--once', '--interval', '0.5'])
      expect(text.err).toBe('')
      expect(text.out).toMatch(/^bpfkit top \(tenant a\): \d+ progs? /)
      expect(rowOf(text.out, mine.id)).toMatchObject({ type: 'socket_filter', name: 'a_busy' })
      expect(rowOf(text.out, host.id)).toBeUndefined()
    } finally {
      await stopMine()
      await stopHost()
    }

    const refused = await runBinary(['--broker', B, 'top', '--once'])
    expect(refused.code).toBe(1)
    expect(refused.out).toBe('')
    expect(refused.err).toMatch(/^bpfkit: broker refused top: EPERM \(delegate_cmds\): policy does not delegate command .enable_stats./)
    expect(tb.broker.stats().statsEnabled).toBe(0)
  }, 90_000 * SLOW)

  test('statistics are released when the tenant\'s top is killed (SIGKILL: no goodbye, the connection just closes)', async () => {
    const child = spawn(process.execPath, [cli, '--broker', A, 'top', '--json', '--interval', '0.2'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise((resolve) => child.once('close', resolve))
    try {
      await statsEnabledBecomes(1)
    } finally {
      child.kill('SIGKILL')
      await exited
    }
    await statsEnabledBecomes(0)
  }, 60_000 * SLOW)

  test('dump prog: the tenant\'s program\'s instructions as the host prints them; another tenant\'s is not in view', async (ctx) => {
    using client = await tb.tenant('a').client()
    using prog = await client.loadProgram({ type: 'socket_filter', name: 'a_dump', insns: [asm.mov64Imm(asm.R0, 7), asm.add64Imm(asm.R0, 1), asm.exit()], license: 'GPL' })
    const viaBroker = await runBinary(['--broker', A, 'dump', 'prog', String(prog.id)])
    expect(viaBroker.err).toBe('')
    expect(viaBroker.code).toBe(0)
    expect(viaBroker.out).toBe('   0: (b7) r0 = 7\n   1: (07) r0 += 1\n   2: (95) exit\n')
    const host = await runBinary(['prog', 'dump', String(prog.id), '--xlated'])
    expect(viaBroker.out).toBe(host.out)
    // The host's words work through the broker too, and a name in the tenant's view.
    expect((await runBinary(['--broker', A, 'prog', 'dump', String(prog.id)])).out).toBe(host.out)
    expect((await runBinary(['--broker', A, 'dump', 'prog', 'a_dump'])).out).toBe(host.out)
    const unnamed = await runBinary(['--broker', B, 'show', 'prog', 'a_dump'])
    expect(unnamed.code).toBe(1)
    expect(unnamed.err).toBe("bpfkit: no prog named 'a_dump' in your view\n")
    const listed = await runBinary(['--broker', A, 'prog', 'list', '--json'])
    expect(listed.out).toBe((await runBinary(['--broker', A, 'list', 'progs', '--json'])).out)
    expect(listed.out).toContain(`"id": ${prog.id}`)
    const rows = JSON.parse((await runBinary(['--broker', A, 'dump', 'prog', String(prog.id), '--json'])).out) as { pc: number; code: number }[]
    expect(rows.map((r) => r.code)).toEqual([0xb7, 0x07, 0x95])

    const other = await runBinary(['--broker', B, 'dump', 'prog', String(prog.id)])
    expect(other.code).toBe(1)
    expect(other.err).toBe(`bpfkit: broker refused dump: ENOENT: no prog ${prog.id} in your view\n`)

    const tool = bpftool(ctx).json('prog', 'dump', 'xlated', 'id', String(prog.id)) as unknown[]
    expect(rows).toHaveLength(tool.length)
  }, 60_000 * SLOW)

  test('dump prog: a program the tenant only holds (the host\'s fd, passed to its task) is in view, its instructions are not', async () => {
    using host = await BpfProgram.load({ type: 'socket_filter', name: 'host_secret', insns, license: 'GPL' })
    await tb.tenant('a').hold([host.fd])
    using client = await tb.tenant('a').client()
    expect((await client.show('prog', host.id)).origin).toBe('held')
    await expect(client.xlated(host.id)).rejects.toMatchObject({ code: 'EPERM', rule: 'origin' })
    const r = await runBinary(['--broker', A, 'dump', 'prog', String(host.id)])
    expect(r.code).toBe(1)
    expect(r.out).toBe('')
  })

  test('dump map: entries through the map\'s BTF, as the host\'s map dump prints them (and bpftool reads them)', async (ctx) => {
    const loaded = await runBinary(['--broker', A, 'load', fixture('counter.bpf.o'), '--json'])
    expect(loaded.err).toBe('')
    const { maps } = JSON.parse(loaded.out) as { maps: Record<string, number> }
    const mapId = maps.counts
    using client = await tb.tenant('a').client()
    using map = await client.open('map', mapId)
    map.update(new Uint8Array([0, 0, 0, 0]), new Uint8Array([42, 0, 0, 0, 0, 0, 0, 0]))

    const text = await runBinary(['--broker', A, 'dump', 'map', String(mapId)])
    expect(text.err).toBe('')
    expect(text.code).toBe(0)
    expect(text.out).toBe((await runBinary(['map', 'dump', String(mapId)])).out)
    expect(text.out).toMatch(/42/)
    expect((await runBinary(['--broker', A, 'map', 'dump', String(mapId)])).out).toBe(text.out)
    expect((await runBinary(['--broker', A, 'map', 'show', String(mapId)])).out).toBe((await runBinary(['--broker', A, 'show', 'map', String(mapId)])).out)
    const json = JSON.parse((await runBinary(['--broker', A, 'dump', 'map', String(mapId), '--json'])).out) as { key: string[]; value: string[] }[]
    expect(json).toEqual(JSON.parse((await runBinary(['map', 'dump', String(mapId), '--json'])).out))

    const other = await runBinary(['--broker', B, 'dump', 'map', String(mapId)])
    expect(other.code).toBe(1)
    expect(other.err).toContain(`ENOENT: no map ${mapId} in your view`)

    const tool = bpftool(ctx).json('map', 'dump', 'id', String(mapId)) as { key: string[]; value: string[] }[]
    expect(json.map((e) => [e.key, e.value])).toEqual(tool.map((e) => [e.key, e.value]))
  }, 60_000 * SLOW)

  test('usage: dump takes map or prog and an ID; top\'s own options', async () => {
    for (const args of [['dump', 'link', '1'], ['dump', 'map'], ['dump', 'map', '1x'], ['dump', 'map', '1', '--xlated'], ['top', '--interval', '0']]) {
      const r = await runBinary(['--broker', A, ...args])
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.err).toMatch(/usage: bpfkit (--broker SOCK dump|\[--broker SOCK\] top)/)
    }
  })
})
