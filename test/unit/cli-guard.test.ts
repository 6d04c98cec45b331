// `bpfkit guard`: its arguments, its usage errors (exit 2) and its other
// errors (exit 1), through main() as the command line runs it. The guard
// itself is started in test/kernel/cli-guard.test.ts.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { defaultGuardPin, parseGuardArgs } from '../../lib/cli/guard.js'
import { UsageError } from '../../lib/cli/args.js'
import { runCli } from '../kernel/helpers/cli.js'

const dir = mkdtempSync(join(tmpdir(), 'bpfkit-cli-guard-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const policyFile = join(dir, 'tenant.json')
writeFileSync(policyFile, JSON.stringify({ cmds: ['map_create', 'prog_load'], maps: ['hash'], progs: ['socket_filter'], attachs: 'any' }))
// No guard is pinned here (nor is it a bpffs): opening fails before any bpf() call.
const noGuard = join(dir, 'no-guard')

const run = runCli

describe('parseGuardArgs', () => {
  test('start, stop, status and events: the default pin, --pin in both spellings, --json', () => {
    expect(parseGuardArgs(['start'])).toEqual({ cmd: 'start', pinPath: '/sys/fs/bpf/bpfkit-guard' })
    expect(defaultGuardPin).toBe('/sys/fs/bpf/bpfkit-guard')
    expect(parseGuardArgs(['stop', '--pin', '/sys/fs/bpf/g'])).toEqual({ cmd: 'stop', pinPath: '/sys/fs/bpf/g' })
    expect(parseGuardArgs(['status', '--pin=/sys/fs/bpf/g', '--json'])).toEqual({ cmd: 'status', pinPath: '/sys/fs/bpf/g', json: true })
    expect(parseGuardArgs(['events'])).toEqual({ cmd: 'events', pinPath: defaultGuardPin, json: false })
  })

  test('tenant set: numbers are an inode or a cgroup id, anything else a path; quotas; matches combine', () => {
    expect(parseGuardArgs(['tenant', 'set', 'web', '--policy', 'p.json', '--userns', '4026532001'])).toEqual({
      cmd: 'tenant set', pinPath: defaultGuardPin, name: 'web', policy: 'p.json', match: { userns: 4026532001 }, quota: {}, json: false,
    })
    const all = parseGuardArgs(['tenant', 'set', '--userns=/proc/42/ns/user', '--cgroup', '/sys/fs/cgroup/web', '--token', '/run/web/bpf',
      'web', '--policy=p.json', '--max-maps', '16', '--max-bytes=1048576', '--pin', '/sys/fs/bpf/g', '--json'])
    expect(all).toEqual({
      cmd: 'tenant set', pinPath: '/sys/fs/bpf/g', name: 'web', policy: 'p.json', json: true,
      match: { userns: '/proc/42/ns/user', cgroup: '/sys/fs/cgroup/web', token: '/run/web/bpf' }, quota: { maps: 16, bytes: 1048576 },
    })
    // cgroup ids are 64-bit: a number while exact, a bigint beyond 2^53.
    expect(parseGuardArgs(['tenant', 'set', 'a', '--policy', 'p', '--cgroup', '9007199254740991'])).toMatchObject({ match: { cgroup: 9007199254740991 } })
    expect(parseGuardArgs(['tenant', 'set', 'a', '--policy', 'p', '--cgroup', '18446744073709551615'])).toMatchObject({ match: { cgroup: 18446744073709551615n } })
    expect(parseGuardArgs(['tenant', 'set', 'a', '--policy', 'p', '--token', '/x', '--max-maps', '0'])).toMatchObject({ quota: { maps: 0 } })
    expect(parseGuardArgs(['tenant', 'remove', 'web'])).toEqual({ cmd: 'tenant remove', pinPath: defaultGuardPin, name: 'web' })
  })

  const bad: [string[], RegExp][] = [
    [[], /guard: expected start\|stop\|status\|events\|tenant, got nothing/],
    [['restart'], /got 'restart'/],
    [['start', 'now'], /guard start: unexpected argument now/],
    [['start', '--json'], /guard start: unknown option '--json' \(it takes --pin\)/],
    [['start', '--pin'], /guard start: --pin needs a value/],
    [['start', '--pin='], /--pin needs a value/],
    [['status', '--pin', '--json'], /guard status: --pin needs a value/],
    [['status', '--pin', '/a', '--pin', '/b'], /--pin given twice/],
    [['status', '--json=yes'], /--json takes no value/],
    [['events', '-f'], /guard events: unknown option '-f'/],
    [['stop', '--max-maps', '3'], /guard stop: unknown option '--max-maps'/],
    [['tenant'], /guard tenant: expected set\|remove, got nothing/],
    [['tenant', 'add', 'web'], /got 'add'/],
    [['tenant', 'set', '--policy', 'p', '--userns', '1'], /guard tenant set: expected NAME, missing NAME/],
    [['tenant', 'set', 'a', 'b', '--policy', 'p', '--userns', '1'], /guard tenant set: unexpected argument b/],
    [['tenant', 'set', 'web', '--userns', '1'], /--policy <file.json> is required/],
    [['tenant', 'set', 'web', '--policy', 'p'], /name the tenant's requests with --userns, --cgroup or --token/],
    [['tenant', 'set', 'web', '--policy', 'p', '--userns', '1', '--userns', '2'], /--userns given twice/],
    [['tenant', 'set', 'web', '--policy', 'p', '--userns', '0'], /--userns 0 is not an inode number/],
    [['tenant', 'set', 'web', '--policy', 'p', '--userns', '4294967296'], /--userns 4294967296 is not an inode number/],
    [['tenant', 'set', 'web', '--policy', 'p', '--cgroup', '18446744073709551616'], /--cgroup 18446744073709551616 is not a cgroup id/],
    [['tenant', 'set', 'web', '--policy', 'p', '--token', '/x', '--max-maps', '-1'], /--max-maps must be a non-negative integer, got '-1'/],
    [['tenant', 'set', 'web', '--policy', '--token', '/x'], /guard tenant set: --policy needs a value/],
    [['tenant', 'set', 'web', '--policy', 'p', '--token', '/x', '--max-maps=-1'], /--max-maps must be a non-negative integer, got '-1'/],
    [['tenant', 'set', 'web', '--policy', 'p', '--token', '/x', '--max-bytes', '1.5'], /--max-bytes must be a non-negative integer, got '1.5'/],
    [['tenant', 'set', 'web', '--policy', 'p', '--token', '/x', '--max-bytes', '1e6'], /got '1e6'/],
    [['tenant', 'set', 'web', '--policy', 'p', '--token', '/x', '--max-bytes', '9007199254740992'], /got '9007199254740992'/],
    [['tenant', 'remove'], /guard tenant remove: expected NAME, missing NAME/],
    [['tenant', 'remove', 'web', '--policy', 'p'], /guard tenant remove: unknown option '--policy'/],
  ]
  test.each(bad)('%j is a usage error', (args, message) => {
    expect(() => parseGuardArgs(args)).toThrow(UsageError)
    expect(() => parseGuardArgs(args)).toThrow(message)
  })
})

describe('bpfkit guard through main', () => {
  test('bad arguments: exit 2, the reason and the usage text on stderr, nothing on stdout', async () => {
    for (const argv of [['guard'], ['guard', 'tenant', 'set', 'web', '--policy', policyFile], ['guard', 'status', '--bogus']]) {
      const r = await run(...argv)
      expect(r.code, argv.join(' ')).toBe(2)
      expect(r.out).toBe('')
      expect(r.err).toMatch(/^bpfkit: guard/)
      expect(r.err).toContain('guard tenant set NAME --policy <p.json> (--userns P|INODE | --cgroup P|ID | --token BPFFS)...')
    }
    expect((await run('help')).out).toContain('guard status|events [--pin DIR] [--json]')
  })

  test('no guard pinned at --pin: exit 1 naming the directory and what is missing', async () => {
    for (const argv of [['status'], ['events', '--json'], ['stop'], ['tenant', 'remove', 'web'], ['tenant', 'set', 'web', '--policy', policyFile, '--userns', '1']]) {
      const r = await run('guard', ...argv, '--pin', noGuard)
      expect(r.code, argv.join(' ')).toBe(1)
      expect(r.err).toMatch(new RegExp(`^bpfkit: Guard.open: no guard is pinned at ${noGuard} \\(missing records, `))
      expect(r.out).toBe('')
    }
    expect(existsSync(noGuard)).toBe(false)
  })

  test('tenant set reads the policy first: a missing or malformed file is exit 1 with its own error', async () => {
    const missing = await run('guard', 'tenant', 'set', 'web', '--policy', join(dir, 'none.json'), '--userns', '1', '--pin', noGuard)
    expect(missing.code).toBe(1)
    expect(missing.err).toMatch(/ENOENT.*none\.json/)
    const malformed = join(dir, 'bad.json')
    writeFileSync(malformed, JSON.stringify({ cmds: ['map_create'], maps: ['no_such_map_type'] }))
    const bad = await run('guard', 'tenant', 'set', 'web', '--policy', malformed, '--userns', '1', '--pin', noGuard)
    expect(bad.code).toBe(1)
    expect(bad.err).toContain('no_such_map_type')
  })
})
