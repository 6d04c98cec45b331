// `bpfkit map dump` of a big map in a real terminal (a tmux server of the
// test's own): the count of entries read shows on stderr while the batches
// come in, and is erased when the dump is done; stdout, redirected to a
// file, holds the entries and nothing else.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { BpfMap } from '../../lib/index.js'
import { cliPath } from './helpers/cli-binary.js'
import { SLOW } from './helpers/top.js'

const tmuxMissing = spawnSync('tmux', ['-V'], { stdio: 'ignore' }).error ? 'tmux not installed' : undefined
const dir = mkdtempSync(join(tmpdir(), 'bpfkit-map-progress-'))
const sock = join(dir, 'tmux.sock')
afterAll(() => {
  // Our own server only (its own socket).
  if (!tmuxMissing) spawnSync('tmux', ['-S', sock, 'kill-server'], { stdio: 'ignore' })
  rmSync(dir, { recursive: true, force: true })
})

describe('bpfkit map dump in a terminal', () => {
  test('a big map\'s dump shows its progress on the terminal, never in stdout', async (ctx) => {
    if (tmuxMissing) ctx.skip(tmuxMissing)
    // A million entries: the batch reads take about a second here (longer
    // under emulation), well past the 300 ms a progress line waits.
    const n = 1_000_000
    using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: n, name: 'cm_progress' })
    const keys = new Uint8Array(4 * n)
    const view = new DataView(keys.buffer)
    for (let i = 0; i < n; i++) view.setUint32(4 * i, i, true)
    m.updateBatchBytes(keys, new Uint8Array(8 * n))
    const out = join(dir, 'dump.txt')
    const status = join(dir, 'status')
    const command = `'${process.execPath}' '${cliPath}' map dump ${m.id} > '${out}'; echo $? > '${status}'`
    const tmux = (...args: string[]) => execFileSync('tmux', ['-S', sock, ...args], { encoding: 'utf8' })
    tmux('-f', '/dev/null', 'new-session', '-d', '-s', 'dump', '-x', '100', '-y', '10', command)
    tmux('set-option', '-t', 'dump', 'remain-on-exit', 'on')
    let seen = ''
    const deadline = Date.now() + 60_000 * SLOW
    while (!existsSync(status) || !readFileSync(status, 'utf8').endsWith('\n')) {
      if (Date.now() > deadline) throw new Error(`the dump did not end; screen:\n${tmux('capture-pane', '-p', '-t', 'dump')}`)
      const screen = tmux('capture-pane', '-p', '-t', 'dump')
      if (screen.includes('dumping map')) seen = screen
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(readFileSync(status, 'utf8')).toBe('0\n')
    expect(seen).toMatch(new RegExp(`dumping map ${m.id} \\(cm_progress\\): \\d+ of ${n}`))
    // Erased when done, and never written to stdout.
    expect(tmux('capture-pane', '-p', '-t', 'dump')).not.toContain('dumping map')
    const text = readFileSync(out, 'utf8')
    expect(text).not.toContain('dumping')
    expect(text.endsWith(`Found ${n} elements\n`)).toBe(true)
  }, 90_000 * SLOW)
})
