import { describe, expect, test } from 'vitest'
import { attachTypes, commands, helpers, mapTypes, progTypes } from '../../lib/sys/generated/kernel-enums.js'
import { enumName, enumValue } from '../../lib/sys/names.js'
import { checkOptions } from '../../lib/sys/options.js'

describe('generated kernel enums', () => {
  test('carry the kernel names without prefix, as bpffs delegate_* spells them', () => {
    expect(commands.map_create).toBe(0)
    expect(commands.token_create).toBe(36)
    expect(mapTypes.hash).toBe(1)
    expect(mapTypes.ringbuf).toBe(27)
    expect(progTypes.socket_filter).toBe(1)
    expect(attachTypes.cgroup_inet_ingress).toBe(0)
    expect(helpers.map_lookup_elem).toBe(1)
    expect(Object.keys(mapTypes)).not.toContain('unspec_max')
  })
})

describe('enumValue / enumName', () => {
  test('resolve names and accept numbers', () => {
    expect(enumValue(mapTypes, 'map type', 'array')).toBe(2)
    expect(enumValue(mapTypes, 'map type', 2)).toBe(2)
    expect(enumName(mapTypes, 2)).toBe('array')
    expect(enumName(mapTypes, 99999)).toBe('unknown(99999)')
  })

  test('refuse unknown names and bad numbers clearly', () => {
    expect(() => enumValue(mapTypes, 'map type', 'hsh')).toThrow(/unknown map type 'hsh' \(known: unspec, hash, array/)
    expect(() => enumValue(mapTypes, 'map type', 'toString')).toThrow(TypeError)
    expect(() => enumValue(mapTypes, 'map type', -1)).toThrow(RangeError)
    expect(() => enumValue(mapTypes, 'map type', 1.5)).toThrow(RangeError)
  })
})

test('checkOptions refuses unknown keys', () => {
  expect(() => checkOptions('X.create', { tokne: 1 }, ['token'])).toThrow("X.create: unknown option 'tokne' (known: token)")
  expect(() => checkOptions('X.create', { token: 1 }, ['token'])).not.toThrow()
})
