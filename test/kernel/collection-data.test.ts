// Global data of a clang-built object (data.bpf.c): variables in .data,
// .rodata, .bss, .data.custom and .rodata.custom, arrays and structs read at
// offsets, and a string literal. The spec's variables are set before load;
// the collection's are live (the program and user space see the same
// bytes through mmap), and .rodata is frozen once loaded.
import { describe, expect, test } from 'vitest'
import { features } from '../../lib/index.js'
import { fixtureSpec, retval } from './helpers/collection.js'
import { requireFeature, skipAllIf } from './helpers/requires.js'

describe('data.bpf.c: the spec', () => {
  test('one map per data section, .rodata ones read-only to programs', () => {
    const { maps } = fixtureSpec('data')
    for (const section of ['.data', '.rodata', '.bss', '.data.custom', '.rodata.custom']) {
      expect(maps[section], section).toMatchObject({ type: 'array', keySize: 4, maxEntries: 1 })
    }
    // .data: counter (8) + table (16) + origin (8)
    expect(maps['.data'].valueSize).toBe(32)
    // .bss: hits (4) + last (8)
    expect(maps['.bss'].valueSize).toBe(12)
  })

  test('variables carry their section and initial value, typed from BTF', () => {
    const { variables } = fixtureSpec('data')
    expect(variables.counter).toMatchObject({ section: '.data', readonly: false })
    expect(variables.counter.get()).toBe(40n)
    expect(variables.table.get()).toEqual([1, 2, 3, 4])
    expect(variables.origin.get()).toEqual({ x: -3, y: 7 })
    expect(variables.scale).toMatchObject({ section: '.rodata', readonly: true })
    expect(variables.scale.get()).toBe(3)
    expect(variables.cfg.get()).toEqual({ scale: 2, offset: 5, enabled: 0 })
    expect(variables.limits.get()).toEqual([10, 20, 30])
    expect(variables.hits).toMatchObject({ section: '.bss' })
    expect(variables.hits.get()).toBe(0)
    expect(variables.last.get()).toEqual({ x: 0, y: 0 })
    expect(variables.custom_data).toMatchObject({ section: '.data.custom' })
    expect(variables.custom_data.get()).toBe(11)
    expect(variables.custom_ro).toMatchObject({ section: '.rodata.custom', readonly: true })
    expect(variables.custom_ro.get()).toBe(13)
  })
})

describe('data.bpf.c: loaded and run', () => {
  skipAllIf(requireFeature(() => features.haveProgramType('syscall')))

  test('.data: counter + table[2] + origin.y, and the increment is visible to user space', async () => {
    using coll = await fixtureSpec('data').load()
    // 40 + 3 + 7
    expect(await retval(coll.programs.read_data)).toBe(50)
    expect(coll.variables.counter.get()).toBe(41n)
    expect(await retval(coll.programs.read_data)).toBe(51)
    expect(coll.variables.counter.get()).toBe(42n)
  })

  test('.data set from user space after load is what the program reads next', async () => {
    using coll = await fixtureSpec('data').load()
    coll.variables.counter.set(100n)
    coll.variables.table.set([0, 0, 20, 0])
    coll.variables.origin.set({ x: 1, y: -2 })
    // 100 + 20 - 2
    expect(await retval(coll.programs.read_data)).toBe(118)
    expect(coll.variables.counter.get()).toBe(101n)
  })

  test('.data set on the spec before load is the initial value', async () => {
    const spec = fixtureSpec('data')
    spec.variables.counter.set(1000n)
    using coll = await spec.load()
    // 1000 + 3 + 7
    expect(await retval(coll.programs.read_data)).toBe(1010)
  })

  test('.rodata defaults: scale * 1000 + limits[1] * 10 + cfg.scale * cfg.offset', async () => {
    using coll = await fixtureSpec('data').load()
    // 3 * 1000 + 20 * 10 + 2 * 5
    expect(await retval(coll.programs.read_rodata)).toBe(3210)
  })

  test('.rodata set before load: the verifier sees the new values, the enabled branch included', async () => {
    const spec = fixtureSpec('data')
    spec.variables.scale.set(1)
    spec.variables.limits.set([10, 50, 30])
    spec.variables.cfg.set({ scale: 4, offset: 6, enabled: 1 })
    using coll = await spec.load()
    // 1 * 1000 + 50 * 10 + 4 * 6 + 100000
    expect(await retval(coll.programs.read_rodata)).toBe(101524)
    expect(coll.variables.cfg.get()).toEqual({ scale: 4, offset: 6, enabled: 1 })
  })

  test('.rodata is read-only after load: set() throws and the value stays', async () => {
    using coll = await fixtureSpec('data').load()
    expect(coll.variables.scale.readonly).toBe(true)
    expect(() => coll.variables.scale.set(9)).toThrow()
    expect(coll.variables.scale.get()).toBe(3)
    expect(await retval(coll.programs.read_rodata)).toBe(3210)
    expect(coll.variables.custom_ro.readonly).toBe(true)
    expect(() => coll.variables.custom_ro.set(1)).toThrow()
  })

  test('setting a spec variable after load changes nothing already loaded', async () => {
    const spec = fixtureSpec('data')
    using coll = await spec.load()
    spec.variables.scale.set(5)
    expect(await retval(coll.programs.read_rodata)).toBe(3210)
    // ...but the next load takes it: 5 * 1000 + 20 * 10 + 2 * 5
    using again = await spec.load({ programs: ['read_rodata'] })
    expect(await retval(again.programs.read_rodata)).toBe(5210)
  })

  test('.bss starts zeroed and the program writes a struct user space reads', async () => {
    using coll = await fixtureSpec('data').load()
    // hits = 1: 1 * 10 + (origin.x < 0)
    expect(await retval(coll.programs.write_bss)).toBe(11)
    expect(coll.variables.hits.get()).toBe(1)
    expect(coll.variables.last.get()).toEqual({ x: 1, y: -1 })
    expect(await retval(coll.programs.write_bss)).toBe(21)
    expect(coll.variables.last.get()).toEqual({ x: 2, y: -2 })
    coll.variables.hits.set(40)
    expect(await retval(coll.programs.write_bss)).toBe(411)
  })

  test('.data.custom and .rodata.custom are maps of their own: 11 * 100 + 13', async () => {
    using coll = await fixtureSpec('data').load()
    expect(await retval(coll.programs.read_custom)).toBe(1113)
    coll.variables.custom_data.set(2)
    expect(await retval(coll.programs.read_custom)).toBe(213)
    expect(coll.maps['.data.custom'].id).not.toBe(coll.maps['.data'].id)
  })

  test('a string literal from .rodata.str1.1: "bpfkit-0"[1] * 1000 + [5]', async () => {
    using coll = await fixtureSpec('data').load({ programs: ['read_string'] })
    // 'p' * 1000 + 't'
    expect(await retval(coll.programs.read_string)).toBe(112 * 1000 + 116)
  })

  test('the data maps are the ones the programs use', async () => {
    using coll = await fixtureSpec('data').load()
    // counter, table and origin are all in .data
    expect(coll.programs.read_data.info().mapIds).toEqual([coll.maps['.data'].id])
    expect(new Set(coll.programs.write_bss.info().mapIds).has(coll.maps['.bss'].id)).toBe(true)
    expect(new Set(coll.programs.read_custom.info().mapIds)).toEqual(new Set([coll.maps['.data.custom'].id, coll.maps['.rodata.custom'].id]))
  })
})
