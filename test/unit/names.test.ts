import { describe, expect, test } from 'vitest'
import { attachTypes, commands, helpers, mapTypes, progTypes } from '../../lib/sys/generated/kernel-enums.js'
import { closestEnumName, enumName, enumValue, findEnumName, findEnumValue } from '../../lib/sys/names.js'
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

  test('aliases: the plain name, or the kernel\'s first one as bpffs prints masks', () => {
    expect(enumName(mapTypes, mapTypes.cgroup_storage)).toBe('cgroup_storage')
    expect(findEnumName(mapTypes, mapTypes.cgroup_storage, { kernelOrder: true })).toBe('cgroup_storage_deprecated')
    expect(findEnumName(mapTypes, 99999)).toBeUndefined()
    expect(enumName(commands, commands.prog_run)).toBe('prog_test_run')
  })

  test('case-insensitive lookup, as the kernel parses delegate_* options', () => {
    expect(findEnumValue(mapTypes, 'HASH')).toBeUndefined()
    expect(findEnumValue(mapTypes, 'HASH', { ignoreCase: true })).toBe(1)
    expect(findEnumValue(commands, 'Prog_Run', { ignoreCase: true })).toBe(commands.prog_test_run)
    expect(findEnumValue(mapTypes, 'toString', { ignoreCase: true })).toBeUndefined()
    expect(closestEnumName(mapTypes, 'rignbuf')).toBe('ringbuf')
    expect(closestEnumName(mapTypes, 'qqqqqqqqqq')).toBeUndefined()
  })

  test('refuse unknown names and bad numbers clearly', () => {
    expect(() => enumValue(mapTypes, 'map type', 'hsh')).toThrow(/unknown map type 'hsh' \(did you mean 'hash'\?\) \(known: unspec, hash, array/)
    expect(() => enumValue(mapTypes, 'map type', 'zzzzzzzz')).toThrow(/unknown map type 'zzzzzzzz' \(known: unspec/)
    expect(() => enumValue(mapTypes, 'map type', null as never)).toThrow(new TypeError('map type must be a name or a number, got null'))
    expect(() => enumValue(mapTypes, 'map type', 'toString')).toThrow(TypeError)
    expect(() => enumValue(mapTypes, 'map type', -1)).toThrow(RangeError)
    expect(() => enumValue(mapTypes, 'map type', 1.5)).toThrow(RangeError)
  })
})

test('checkOptions refuses unknown keys', () => {
  expect(() => checkOptions('X.create', { tokne: 1 }, ['token'])).toThrow("X.create: unknown option 'tokne' (known: token)")
  expect(() => checkOptions('X.create', { token: 1 }, ['token'])).not.toThrow()
})

test('checkOptions: required objects, value types and the noun', () => {
  expect(() => checkOptions('X.go', undefined, ['a'], { required: true })).toThrow(new TypeError('X.go: options must be an object with a, got undefined'))
  expect(() => checkOptions('X.go', null as never, ['a'])).toThrow(new TypeError('X.go: options must be an object, got null'))
  expect(() => checkOptions('X.go', [] as never, ['a'])).toThrow(/got an array/)
  expect(() => checkOptions('X.go', { a: 1 }, ['a'], { types: { a: 'string' } })).toThrow(new TypeError("X.go: option 'a' must be a string, got number 1"))
  expect(() => checkOptions('X.go', { a: null }, ['a'], { types: { a: 'object' } })).toThrow(/option 'a' must be an object, got null/)
  expect(() => checkOptions('X.go', { a: 'x' }, ['a'], { types: { a: ['string', 'object'] } })).not.toThrow()
  expect(() => checkOptions('policy', { b: 1 }, ['a'], { noun: 'key' })).toThrow("policy: unknown key 'b' (known: a)")
})
