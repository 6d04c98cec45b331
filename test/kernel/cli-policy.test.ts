// `bpfkit policy`: check an object against a policy file, list what this
// kernel offers. Through main(), as the command line runs it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { main } from '../../lib/cli/main.js'

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-policy-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const object = join(__dirname, '..', 'fixtures', 'bpf', 'policy-net.bpf.o')
const policyFile = join(dir, 'net.json')
writeFileSync(policyFile, JSON.stringify({
  cmds: ['map_create', 'prog_load'], maps: 'any', progs: 'any', attachs: 'any',
  capabilities: {
    base: { helpers: ['map_lookup_elem', 'map_update_elem', 'ktime_get_ns'] },
    'net.read': { include: ['base'], helpers: ['skb_load_bytes'], maps: ['hash', 'array'] },
    'net.lru': { include: ['net.read'], maps: ['lru_hash'] },
  },
  contexts: [{ progs: ['socket_filter'], grant: ['net.read'] }],
}))

async function run(...argv: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = []
  const write = process.stdout.write
  process.stdout.write = ((s: string) => { out.push(...String(s).split('\n').filter(Boolean)); return true }) as typeof process.stdout.write
  try {
    return { code: await main(argv), out }
  } finally {
    process.stdout.write = write
  }
}

describe('bpfkit policy', () => {
  test('check: each program allowed or its violations with C lines; exit 1 when any', async () => {
    const r = await run('policy', 'check', object, '--policy', policyFile)
    expect(r.code).toBe(1)
    expect(r.out).toContain('count_bytes: allowed')
    expect(r.out).toContain('lru_counter: 1 violation')
    expect(r.out).toContain('  insn 4 (policy-net.bpf.c:54): map recent of type lru_hash is not granted to socket_filter; capability sets that allow it: net.lru')
    expect(r.out.at(-1)).toBe('policy-net.bpf.o: 1 violation')
  })

  test('check --json: the violations by program', async () => {
    const r = await run('policy', 'check', object, '--policy', policyFile, '--json')
    const found = JSON.parse(r.out.join('\n'))
    expect(found.count_bytes).toEqual([])
    expect(found.lru_counter).toMatchObject([{ insn: 4, kind: 'map', name: 'recent', mapType: 'lru_hash', allowedBy: ['net.lru'] }])
  })

  test('helpers and kfuncs: what this kernel offers, and what a program type may call', async () => {
    const all = await run('policy', 'helpers', '--json')
    const helpers = JSON.parse(all.out.join('')) as string[]
    expect(helpers).toEqual(expect.arrayContaining(['map_lookup_elem', 'probe_write_user', 'skb_load_bytes']))
    const socket = JSON.parse((await run('policy', 'helpers', '--prog-type', 'socket_filter', '--json')).out.join('')) as string[]
    expect(socket).toContain('skb_load_bytes')
    expect(socket).not.toContain('probe_write_user')
    const kfuncs = JSON.parse((await run('policy', 'kfuncs', '--json')).out.join('')) as string[]
    // Kernels tag kfuncs in BTF (bpf_kfunc) since 6.8 or so; before, the list is empty.
    if (kfuncs.length > 0) {
      expect(kfuncs).toContain('bpf_dynptr_from_skb')
      const tc = JSON.parse((await run('policy', 'kfuncs', '--prog-type', 'sched_cls', '--json')).out.join('')) as string[]
      expect(tc).toContain('bpf_dynptr_from_skb')
      expect(tc.length).toBeLessThan(kfuncs.length)
    }
  })

  test('usage errors exit 2', async () => {
    const err = process.stderr.write
    process.stderr.write = (() => true) as typeof process.stderr.write
    try {
      expect((await run('policy', 'check', object)).code).toBe(2)
      expect((await run('policy', 'frobnicate')).code).toBe(2)
      expect((await run('policy', 'helpers', '--prog-type', 'no_such_type')).code).toBe(2)
    } finally {
      process.stderr.write = err
    }
  })
})
