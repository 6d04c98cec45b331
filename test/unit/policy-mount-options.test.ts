// Policies to and from the places the kernel shows them: bpffs mount
// options, mountinfo lines and token fdinfo.
import { describe, expect, test } from 'vitest'
import { Policy, readMountinfo } from '../../lib/policy/index.js'
import { mapTypes } from '../../lib/sys/generated/kernel-enums.js'

const ALL = (1n << 64n) - 1n

describe('to mount options', () => {
  test('names joined by colons, kinds with nothing left out', () => {
    const p = Policy.from({ cmds: ['prog_load', 'map_create'], maps: ['array', 'hash'], attachs: 'any' })
    expect(p.toMountOptions()).toEqual(['delegate_cmds=map_create:prog_load', 'delegate_maps=hash:array', 'delegate_attachs=any'])
    expect(String(p)).toBe('delegate_cmds=map_create:prog_load,delegate_maps=hash:array,delegate_attachs=any')
  })

  test('numbers with names are written as names', () => {
    expect(Policy.from({ maps: [mapTypes.ringbuf] }).toMountOptions()).toEqual(['delegate_maps=ringbuf'])
  })

  test('unnamed values travel in their own entry, so they add instead of replacing', () => {
    const p = Policy.from({ maps: ['hash', 63] })
    const opts = p.toMountOptions()
    expect(opts).toEqual(['delegate_maps=hash', 'delegate_maps=0x8000000000000000'])
    expect(Policy.fromMountOptions(opts).equals(p)).toBe(true)
  })
})

describe('from mount options, as the kernel parses them', () => {
  test('a mountinfo super options string', () => {
    const p = Policy.fromMountOptions('rw,relatime,mode=700,delegate_cmds=map_create:prog_load,delegate_maps=hash,delegate_progs=any')
    expect(p.toJSON()).toEqual({ cmds: ['map_create', 'prog_load'], maps: ['hash'], progs: 'any', attachs: [] })
  })

  test('case does not matter; repeated options add up', () => {
    const p = Policy.fromMountOptions(['delegate_maps=HASH', 'delegate_maps=Array'])
    expect(p.maps).toEqual(['hash', 'array'])
  })

  test('inside one value a number replaces the mask so far, names after it add', () => {
    expect(Policy.fromMountOptions('delegate_maps=hash:0x4').masks().maps).toBe(4n)
    expect(Policy.fromMountOptions('delegate_maps=0x4:hash').masks().maps).toBe(4n | 2n)
    expect(Policy.fromMountOptions('delegate_maps=010').masks().maps).toBe(8n) // octal, as kstrtou64(.., 0)
    expect(Policy.fromMountOptions('delegate_maps=6').masks().maps).toBe(6n) // a mask, not a type
    expect(Policy.fromMountOptions('delegate_cmds=any').masks().cmds).toBe(ALL)
  })

  test('unknown names and bad numbers name the entry', () => {
    expect(() => Policy.fromMountOptions('delegate_maps=hash:nope')).toThrow(new TypeError("delegate_maps: 'nope' is neither a known map type nor a number"))
    expect(() => Policy.fromMountOptions('delegate_maps=0x')).toThrow(TypeError)
    expect(() => Policy.fromMountOptions('delegate_maps=09')).toThrow(TypeError)
    expect(() => Policy.fromMountOptions('delegate_maps')).toThrow('mount option delegate_maps needs a value')
    expect(() => Policy.fromMountOptions('delegate_maps=0x10000000000000000')).toThrow(TypeError)
  })

  test('other options are ignored', () => {
    expect(Policy.fromMountOptions('rw,nosuid,uid=0').empty).toBe(true)
  })
})

describe('mountinfo', () => {
  const text = [
    '22 27 0:21 / /proc rw,relatime - proc proc rw',
    '40 22 0:30 / /sys/fs/bpf rw,relatime - bpf bpf rw,mode=700',
    '63 40 0:39 / /sys/fs/bpf rw,relatime - bpf none rw,delegate_cmds=map_create,delegate_maps=hash:array',
    '70 22 0:40 / /tmp/with\\040space rw - bpf bpf rw,delegate_progs=xdp',
    '71 22 0:41 / /mnt/t rw - tmpfs tmpfs rw',
  ].join('\n')

  test('the top mount at a mount point counts', () => {
    expect(Policy.fromMountinfo('/sys/fs/bpf', text).toJSON()).toEqual({ cmds: ['map_create'], maps: ['hash', 'array'], progs: [], attachs: [] })
  })

  test('escaped mount points', () => {
    expect(readMountinfo(text)[3].mountPoint).toBe('/tmp/with space')
    expect(Policy.fromMountinfo('/tmp/with space', text).progs).toEqual(['xdp'])
  })

  test('nothing or something else mounted there is an error', () => {
    expect(() => Policy.fromMountinfo('/nowhere', text)).toThrow('no filesystem is mounted at /nowhere')
    expect(() => Policy.fromMountinfo('/mnt/t', text)).toThrow('/mnt/t is a tmpfs mount, not bpffs')
  })
})

describe('token fdinfo', () => {
  test('allowed_* lines, hex or any', () => {
    const text = 'pos:\t0\nflags:\t02000002\nmnt_id:\t63\nino:\t68643\nallowed_cmds:\t0x21\nallowed_maps:\t0x6\nallowed_progs:\t0x2\nallowed_attachs:\tany\n'
    const p = Policy.fromFdinfo(text)
    expect(p.toJSON()).toEqual({ cmds: ['map_create', 'prog_load'], maps: ['hash', 'array'], progs: ['socket_filter'], attachs: 'any' })
    expect(p.masks().attachs).toBe(ALL)
  })

  test('an fd that is not a token is an error', () => {
    expect(() => Policy.fromFdinfo('pos:\t0\nflags:\t02\n')).toThrow('fdinfo has no allowed_cmds line: not a BPF token')
  })
})
