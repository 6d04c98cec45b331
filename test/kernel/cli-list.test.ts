// `bpfkit list` and bpftool see the objects bpfkit made, by the names it gave them.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { Fd, kernel, mapInfoByFd, native, progInfoByFd } from '../../lib/sys/index.js'
import { repoRoot, returnImm } from './helpers/raw.js'
import * as features from '../../lib/features/index.js'
import { bpftool } from './helpers/bpftool.js'

const cli = join(repoRoot, 'dist/cli/main.js')

function bpfkitList(...args: string[]) {
  return spawnSync(process.execPath, [cli, 'list', ...args], { encoding: 'utf8' })
}

describe('bpfkit list', () => {
  test('--json lists this test\'s map and program with their names and sizes', () => {
    using m = new Fd(native.mapCreate({ mapType: kernel.mapTypes.hash, keySize: 4, valueSize: 8, maxEntries: 7, name: 'cli_map' }), 'map')
    using p = new Fd(native.progLoadSync({ progType: kernel.progTypes.socket_filter, insns: returnImm(0), license: 'GPL', name: 'cli_prog' }).fd, 'prog')
    const mapId = mapInfoByFd(m.fd).id
    const prog = progInfoByFd(p.fd)
    const maps = JSON.parse(bpfkitList('maps', '--json').stdout)
    expect(maps).toContainEqual(expect.objectContaining({ id: mapId, name: 'cli_map', type: 'hash', keySize: 4, valueSize: 8, maxEntries: 7 }))
    const all = JSON.parse(bpfkitList('--json').stdout)
    expect(all.progs).toContainEqual(expect.objectContaining({ id: prog.id, name: 'cli_prog', type: 'socket_filter', tag: prog.tag }))
    // The kernel's BTF is listed from 5.11 on (before, it has no ID).
    if (features.supportsKernelBtfIds()) expect(all.btf).toContainEqual(expect.objectContaining({ name: 'vmlinux', kernelBtf: true }))
    const text = bpfkitList('progs').stdout
    expect(text).toContain(`${prog.id}: socket_filter  name cli_prog  tag ${prog.tag}`)
  })

  test('bad arguments exit 2 with usage', () => {
    const r = bpfkitList('nope')
    expect(r.status).toBe(2)
    expect(r.stderr).toMatch(/list: expected one of progs\|maps\|links\|btf/)
    expect(spawnSync(process.execPath, [cli, 'frobnicate']).status).toBe(2)
  })
})

describe('bpftool agrees', () => {
  test('bpftool shows the map and program with the names bpfkit gave them', (ctx) => {
    const tool = bpftool(ctx)
    using m = new Fd(native.mapCreate({ mapType: kernel.mapTypes.array, keySize: 4, valueSize: 4, maxEntries: 3, name: 'tool_map' }), 'map')
    using p = new Fd(native.progLoadSync({ progType: kernel.progTypes.socket_filter, insns: returnImm(0), license: 'GPL', name: 'tool_prog' }).fd, 'prog')
    const mi = mapInfoByFd(m.fd)
    const pi = progInfoByFd(p.fd)
    const map = tool.json('map', 'show', 'id', String(mi.id))
    expect(map).toMatchObject({ id: mi.id, name: 'tool_map', type: 'array', bytes_key: 4, bytes_value: 4, max_entries: 3 })
    const prog = tool.json('prog', 'show', 'id', String(pi.id))
    expect(prog).toMatchObject({ id: pi.id, name: 'tool_prog', type: 'socket_filter', tag: pi.tag })
  })
})
