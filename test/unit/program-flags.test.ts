import { expect, test } from 'vitest'
import { progFlags, progFlagsValue } from '../../lib/prog/flags.js'

test('program flags: names and numbers combine; unknown names are a TypeError', () => {
  expect(progFlagsValue(undefined)).toBeUndefined()
  expect(progFlagsValue(['sleepable', 'xdp_has_frags'])).toBe(progFlags.sleepable | progFlags.xdp_has_frags)
  expect(progFlagsValue([1, 'any_alignment'])).toBe(3)
  expect(progFlagsValue(0x80000000)).toBe(0x80000000)
  expect(() => progFlagsValue(['nope' as never])).toThrow(/unknown program flag 'nope' \(known: strict_alignment/)
  expect(() => progFlagsValue(-1)).toThrow(RangeError)
  expect(() => progFlagsValue('sleepable' as never)).toThrow(TypeError)
})
