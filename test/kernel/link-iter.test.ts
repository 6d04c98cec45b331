// Iterator links on programs from test/fixtures/bpf/attach-iter.bpf.c: the
// task walk finds this process's threads, the bpf_map and bpf_prog walks
// find the test's own objects by ID, the map element walk prints a map the
// test filled. Output is read as chunks, whole, and through a bpffs pin.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import * as features from '../../lib/features/index.js'
import { attachIter, openIterator, readIterator, readIteratorPin } from '../../lib/link/iter.js'
import { BpfMap, BpfProgram, type Collection } from '../../lib/index.js'
import { links } from '../../lib/sys/ids.js'
import { bpftool } from './helpers/bpftool.js'
import { fixtureSpec } from './helpers/collection.js'
import { fdTable, opened } from './helpers/fds.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'
import { privateBpffs } from './helpers/scratch.js'

async function load(programs: string[]): Promise<Collection> {
  const spec = fixtureSpec('attach-iter')
  spec.variables.target_tgid.set(process.pid)
  return spec.load({ programs })
}

const lines = (text: string) => text.split('\n').filter((l) => l !== '')
const ownThreads = () => readdirSync('/proc/self/task').map(Number)
const linksOf = (progId: number) => [...links()].filter((l) => l.progId === progId)

describe('iterators', () => {
  skipAllIf(requireFeature(features.haveIterators))

  test('task: this process\'s threads, read whole and as chunks; info and bpftool name the target', async (ctx) => {
    using coll = await load(['dump_task'])
    const prog = coll.programs.dump_task
    using link = attachIter(prog)
    const whole = lines(await readIterator(link))
    const threads = ownThreads()
    expect(whole.length).toBeGreaterThanOrEqual(2)
    for (const l of whole) {
      const [tgid, pid] = l.split(' ').map(Number)
      expect(tgid).toBe(process.pid)
      expect(threads).toContain(pid)
    }
    expect(whole).toContain(`${process.pid} ${process.pid}`)
    const chunks: Buffer[] = []
    for await (const c of openIterator(link)) chunks.push(c)
    expect(chunks.length).toBeGreaterThan(0)
    expect(lines(Buffer.concat(chunks).toString()).sort()).toEqual(lines(await readIterator(link)).sort())
    const info = link.info()
    expect(info).toMatchObject({ type: 'iter', progId: prog.id, iterTarget: 'task' })
    expect(bpftool(ctx).json('link', 'show', 'id', String(info.id))).toMatchObject({ id: info.id, type: 'iter', prog_id: prog.id, target_name: 'task' })
  })

  test('task with a tid parameter (6.1+ honours it): only that thread', async () => {
    using coll = await load(['dump_task'])
    using link = attachIter(coll.programs.dump_task, { task: { tid: process.pid } })
    const out = lines(await readIterator(link))
    // Kernels before 6.1 take no task parameter and walk every task.
    if (link.info().iterTask?.tid === process.pid) expect(out).toEqual([`${process.pid} ${process.pid}`])
    else expect(out).toContain(`${process.pid} ${process.pid}`)
  })

  test('bpf_map and bpf_prog: the test\'s own map and programs, by ID', async () => {
    using coll = await load(['dump_map', 'dump_prog'])
    using mine = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'iter_mine' })
    using maps = attachIter(coll.programs.dump_map)
    using progs = attachIter(coll.programs.dump_prog)
    const mapLines = lines(await readIterator(maps))
    expect(mapLines).toContain(`map ${mine.id}`)
    expect(mapLines).toContain(`map ${coll.maps.elems.id}`)
    const progLines = lines(await readIterator(progs))
    expect(progLines).toContain(`prog ${coll.programs.dump_prog.id}`)
    expect(progLines).toContain(`prog ${coll.programs.dump_map.id}`)
    expect(maps.info().iterTarget).toBe('bpf_map')
    expect(progs.info().iterTarget).toBe('bpf_prog')
  })

  test('bpf_map_elem over a map the test filled; info names the map', async (ctx) => {
    const why = requireFeature(() => features.haveIterTarget('bpf_map_elem'))
    if (why) ctx.skip(why)
    using coll = await load(['dump_elem'])
    const elems = coll.maps.elems
    for (const [k, v] of [[1, 10n], [2, 20n], [3, 30n]] as const) elems.set(k, v)
    using link = attachIter(coll.programs.dump_elem, { map: elems })
    expect(lines(await readIterator(link)).sort()).toEqual(['1=10', '2=20', '3=30'])
    expect(link.info()).toMatchObject({ iterTarget: 'bpf_map_elem', mapId: elems.id })
    elems.delete(2)
    expect(lines(await readIterator(link)).sort()).toEqual(['1=10', '3=30'])
  })

  test('a pinned iterator is read through its pin (as cat does), a fresh walk each time', async () => {
    using fs = privateBpffs()
    using coll = await load(['dump_map'])
    const path = join(fs.path, 'maps')
    {
      using link = attachIter(coll.programs.dump_map)
      link.pin(path)
    }
    using extra = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, name: 'iter_pin' })
    expect(lines(await readIteratorPin(path))).toContain(`map ${extra.id}`)
    const cat = spawnSync('cat', [path], { encoding: 'utf8' })
    expect(cat.status).toBe(0)
    expect(lines(cat.stdout)).toContain(`map ${extra.id}`)
    const { BpfLink } = await import('../../lib/link/link.js')
    using back = BpfLink.fromPin(path)
    expect(back.info().iterTarget).toBe('bpf_map')
    back.unpin()
    back.close()
    // The pin's reference goes when bpffs frees the inode, after an RCU grace period.
    for (let i = 0; i < 100 && linksOf(coll.programs.dump_map.id).length > 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(linksOf(coll.programs.dump_map.id)).toEqual([])
    await expect(readIteratorPin(path)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  test('update swaps the program of an iterator link (5.9+)', async () => {
    using a = await load(['dump_task'])
    using b = await load(['dump_task'])
    using link = attachIter(a.programs.dump_task)
    link.update(b.programs.dump_task)
    expect(link.info().progId).toBe(b.programs.dump_task.id)
    expect(lines(await readIterator(link))).toContain(`${process.pid} ${process.pid}`)
  })

  test('a reader closed early, or twice, ends its walk and frees its fd', async () => {
    using coll = await load(['dump_map'])
    using link = attachIter(coll.programs.dump_map)
    const fds = fdTable()
    const reader = openIterator(link)
    for await (const chunk of reader) {
      expect(chunk.length).toBeGreaterThan(0)
      break
    }
    expect(reader.closed).toBe(true)
    reader.close()
    await expect(reader.read()).resolves.toBeUndefined()
    const r2 = openIterator(link)
    const pending = r2.read()
    r2.close() // during the read: the fd goes once it returns
    await pending
    expect(r2.closed).toBe(true)
    expect(opened(fds, fdTable())).toEqual([])
  })

  test('bad input: not an iterator program, bad parameters, a closed or non-iterator link; nothing left attached or open', async () => {
    const withElem = features.supportsIterTarget('bpf_map_elem')
    using coll = await load(withElem ? ['dump_task', 'dump_elem'] : ['dump_task'])
    const tracing = fixtureSpec('attach-tracing')
    tracing.variables.target_tgid.set(process.pid)
    using other = await tracing.load({ programs: ['on_sys_enter', 'on_btf_sys_enter'] })
    const fds = fdTable()
    expect(() => attachIter(other.programs.on_sys_enter)).toThrow(/not an iterator program/)
    // A tracing program that knows nothing of its section: the kernel refuses it.
    using tpBtf = BpfProgram.fromId(other.programs.on_btf_sys_enter.id)
    expect(() => attachIter(tpBtf)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/not an iterator program/) }))
    expect(() => attachIter(coll.programs.dump_task, { map: coll.maps.elems, task: { tid: 1 } })).toThrow(/exclusive/)
    expect(() => attachIter(coll.programs.dump_task, { task: { tid: 1, pid: 1 } })).toThrow(/exactly one of tid, pid and pidFd/)
    expect(() => attachIter(coll.programs.dump_task, { task: { tid: -3 } })).toThrow(/positive integer/)
    expect(() => attachIter(coll.programs.dump_task, { order: 'self_only' })).toThrow(/give cgroup too/)
    expect(() => attachIter(coll.programs.dump_task, { cgroup: '/sys/fs/cgroup', order: 'sideways' as never })).toThrow(/order must be one of/)
    expect(() => attachIter(coll.programs.dump_task, { mapp: 1 } as never)).toThrow(/unknown option 'mapp'/)
    if (withElem) {
      // A map element walk needs its map; a program that does not know its section gets the kernel's EBADF (map fd 0).
      expect(() => attachIter(coll.programs.dump_elem)).toThrow(/a bpf_map_elem iterator walks one map: give options.map/)
      using anonymous = BpfProgram.fromId(coll.programs.dump_elem.id)
      expect(() => attachIter(anonymous)).toThrow(expect.objectContaining({ code: 'EBADF' }))
      expect(() => attachIter(coll.programs.dump_task, { map: coll.maps.elems })).toThrow(/options.map is for map iterators/)
      expect(linksOf(coll.programs.dump_elem.id)).toEqual([])
    }
    const { attachRawTracepoint } = await import('../../lib/link/tracing.js')
    using raw = attachRawTracepoint(other.programs.on_sys_enter, 'sys_enter')
    expect(() => openIterator(raw)).toThrow(/not an iterator link/)
    const link = attachIter(coll.programs.dump_task)
    link.close()
    expect(() => openIterator(link)).toThrow(/already closed/)
    expect(() => openIterator({} as never)).toThrow(TypeError)
    expect(() => features.haveIterTarget('no_such' as never)).toThrow(TypeError)
    expect(linksOf(coll.programs.dump_task.id)).toEqual([])
    expect(linksOf(tpBtf.id)).toEqual([])
    raw.close()
    expect(opened(fds, fdTable()).filter((e) => !/anon_inode:bpf-prog/.test(e))).toEqual([])
  })

  test('per-target probes: the targets this suite uses are there on every kernel it runs on', () => {
    for (const t of ['task', 'bpf_map', 'task_file'] as const) expect(features.supportsIterTarget(t)).toBe(true)
    expect(features.supportsIterTarget('bpf_prog')).toBe(true)
  })
})
