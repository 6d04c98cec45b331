// `bpfkit delegate`, through the real binary: the command finds its token as
// libbpf would and uses it within the policy, bpfkit exits with the command's
// status, and bad command lines or policies stop before anything runs.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import type { TokenFromEnvReport } from '../fixtures/tenant/token-from-env.js'
import { repoRoot } from './helpers/raw.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { tenantFixture, userNamespacesMissing } from './helpers/tenant.js'

const cli = join(repoRoot, 'dist/cli/main.js')
const bpfkit = (...args: string[]) => spawnSync(process.execPath, [cli, 'delegate', ...args], { encoding: 'utf8', timeout: 60_000 })

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-delegate-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const policy = join(dir, 'array-maps.json')
writeFileSync(policy, JSON.stringify({ cmds: ['map_create'], maps: ['array'] }))

describe('bpfkit delegate', () => {
  skipAllIf(requireFeature(features.haveBpfToken) ?? userNamespacesMissing())

  test('the command finds its token at LIBBPF_BPF_TOKEN_PATH and may do what the policy delegates, no more', () => {
    const r = bpfkit('--policy', policy, '--', process.execPath, tenantFixture('token-from-env'))
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    // It made an array map with the token (and read back 42); a hash map, which the policy does not delegate, was refused.
    const report = JSON.parse(r.stdout) as TokenFromEnvReport
    expect(report).toMatchObject({ env: '/sys/fs/bpf', uid: 0, value: '42' })
    expect(report.mount.maps).toEqual(['array'])
    expect(report.refused).toMatch(/^token does not delegate map type 'hash'/)
  })

  test('bpfkit exits with the command\'s status; its options after -- are its own; --mount-at moves the bpffs', () => {
    expect(bpfkit('--policy', policy, '--', 'sh', '-c', 'exit 7').status).toBe(7)
    const r = bpfkit('--policy', policy, '--mount-at', '/mnt', '--', 'sh', '-c', 'echo "$LIBBPF_BPF_TOKEN_PATH $(id -u)"; grep " /mnt bpf " /proc/self/mounts', '--help')
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^\/mnt 0\n.* \/mnt bpf .*delegate_cmds=map_create,delegate_maps=array/)
    // A signal that ends the command: 128 + its number, as a shell reports it.
    expect(bpfkit('--policy', policy, '--', 'sh', '-c', 'kill -TERM $$').status).toBe(128 + 15)
    const missing = bpfkit('--policy', policy, '--', '/no/such/program')
    expect(missing.status).toBe(127)
    expect(missing.stderr).toMatch(/cannot run \/no\/such\/program/)
  })
})

describe('bpfkit delegate: refused before anything runs', () => {
  test('usage errors exit 2 with delegate\'s usage; --help exits 0', () => {
    const bad: [string[], RegExp][] = [
      [['--', 'true'], /delegate: --policy P\.json is required/],
      [['--policy', policy], /delegate: expected CMD, missing CMD/],
      [['--policy', policy, 'ls', '-l'], /delegate: unknown option '-l'/],
      [['--policy', policy, '--mode', '999', '--', 'true'], /--mode must be octal permission bits/],
      [['--policy'], /--policy needs a value/],
    ]
    for (const [args, message] of bad) {
      const r = bpfkit(...args)
      expect(r.status, args.join(' ')).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stderr).toContain('usage: bpfkit delegate --policy P.json')
    }
    const help = bpfkit('--help')
    expect(help.status).toBe(0)
    expect(help.stdout).toContain('put CMD after --')
  })

  test('a policy that does not read is exit 1 and the command never runs', () => {
    const marker = join(dir, 'ran')
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, JSON.stringify({ cmds: ['map_create'], maps: ['no_such_map_type'] }))
    for (const file of [bad, join(dir, 'none.json')]) {
      const r = bpfkit('--policy', file, '--', 'touch', marker)
      expect(r.status).toBe(1)
      expect(r.stderr).toMatch(/no_such_map_type|ENOENT/)
    }
    expect(spawnSync('test', ['-e', marker]).status).toBe(1)
  })
})
