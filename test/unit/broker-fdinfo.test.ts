// parseFdinfo over the kernel's own texts (test/fixtures/fdinfo, captured on
// 6.18): the id line that decides the kind, tokens without an id, and
// everything that is not a BPF object.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { parseFdinfo } from '../../lib/broker/procfs.js'

const fixture = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'fdinfo', `${name}.txt`), 'utf8')

describe('parseFdinfo', () => {
  test('a map', () => {
    const m = parseFdinfo(fixture('map'))
    expect(m).toMatchObject({ kind: 'map', id: 514719 })
    expect(m?.fields).toMatchObject({ map_type: '1', key_size: '4', value_size: '8', max_entries: '16', map_flags: '0x0', frozen: '0', pos: '0', flags: '02000002' })
  })

  test('a program', () => {
    expect(parseFdinfo(fixture('prog'))).toMatchObject({ kind: 'prog', id: 124159, fields: { prog_type: '8', prog_tag: 'b11459a0e11ca14c', verified_insns: '2' } })
  })

  test('a cgroup link is a link, although it names its program too', () => {
    const l = parseFdinfo(fixture('link-cgroup'))
    expect(l).toMatchObject({ kind: 'link', id: 1928, fields: { link_type: 'cgroup', prog_id: '124159', cgroup_id: '4053', attach_type: '0' } })
  })

  test('BTF', () => {
    expect(parseFdinfo(fixture('btf'))).toMatchObject({ kind: 'btf', id: 47456 })
  })

  test('a token has its masks and no id', () => {
    const t = parseFdinfo(fixture('token'))
    expect(t).toEqual({ kind: 'token', fields: expect.objectContaining({ allowed_cmds: '0x21', allowed_maps: '0x6', allowed_progs: '0x2', allowed_attachs: '0x1' }) })
    expect(t).not.toHaveProperty('id')
  })

  test('an eventfd and a regular file are not BPF objects', () => {
    expect(parseFdinfo(fixture('eventfd'))).toBeUndefined()
    expect(parseFdinfo(fixture('file'))).toBeUndefined()
    expect(parseFdinfo('')).toBeUndefined()
  })

  test('an id that is not a decimal u32 is not trusted', () => {
    const map = fixture('map')
    expect(parseFdinfo(map.replace('map_id:\t514719', 'map_id:\t0x10'))).toBeUndefined()
    expect(parseFdinfo(map.replace('map_id:\t514719', 'map_id:\t0'))).toBeUndefined()
    expect(parseFdinfo(map.replace('map_id:\t514719', 'map_id:\t4294967296'))).toBeUndefined()
    expect(parseFdinfo(map.replace('map_id:\t514719', 'map_id:\t-1'))).toBeUndefined()
    expect(parseFdinfo(map.replace('map_id:\t514719', 'map_id:\t4294967295'))).toMatchObject({ kind: 'map', id: 4294967295 })
  })

  test('fields are a plain record of every line, values trimmed', () => {
    const f = parseFdinfo('pos:\t0\n__proto__:\tx\nmap_id:\t7\n  \neventfd-count:      3\n')!.fields
    expect(Object.keys(f)).toEqual(['pos', '__proto__', 'map_id', 'eventfd-count'])
    expect(f['eventfd-count']).toBe('3')
    expect(Object.getPrototypeOf(f)).toBe(Object.prototype)
    expect(f.__proto__).toBe('x')
  })
})
