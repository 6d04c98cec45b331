import { expect, test } from 'vitest'
import { progFlags, progFlagsValue } from '../../lib/prog/flags.js'
import { mapFlags, mapFlagsValue } from '../../lib/map/kinds.js'
import { kernel } from '../../lib/sys/index.js'

test('program flags: names and numbers combine; unknown names are a TypeError', () => {
  expect(progFlagsValue(undefined)).toBe(0)
  expect(progFlagsValue(['sleepable', 'xdp_has_frags'])).toBe(progFlags.sleepable! | progFlags.xdp_has_frags!)
  expect(progFlagsValue([1, 'any_alignment'])).toBe(3)
  expect(progFlagsValue(0x80000000)).toBe(0x80000000)
  expect(() => progFlagsValue(['nope' as never])).toThrow(/unknown program flag 'nope' \(known: strict_alignment/)
  expect(() => progFlagsValue(-1)).toThrow(RangeError)
  expect(() => progFlagsValue([-1])).toThrow(RangeError)
  expect(() => progFlagsValue('sleepable' as never)).toThrow(TypeError)
  expect(() => progFlagsValue(null as never)).toThrow(/program flags must be a number or a list of flag names, got null/)
})

test('map and program flags take one path and their values from the generated definitions', () => {
  expect(mapFlags.mmapable).toBe(kernel.flags.BPF_F_MMAPABLE)
  expect(mapFlags.no_prealloc).toBe(kernel.flags.BPF_F_NO_PREALLOC)
  expect(progFlags.sleepable).toBe(kernel.progLoadFlags.BPF_F_SLEEPABLE)
  // Every program flag the generated definitions know is offered by name.
  expect(Object.keys(progFlags).map((n) => `BPF_F_${n.toUpperCase()}`).sort()).toEqual(Object.keys(kernel.progLoadFlags).sort())
  expect(mapFlagsValue(['mmapable', 'no_prealloc'])).toBe(kernel.flags.BPF_F_MMAPABLE | kernel.flags.BPF_F_NO_PREALLOC)
  expect(() => mapFlagsValue(['fast' as never])).toThrow(/unknown map flag 'fast' \(known: no_prealloc/)
  expect(() => mapFlagsValue(2 ** 32)).toThrow(RangeError)
  expect(() => mapFlagsValue([2 ** 32])).toThrow(RangeError)
})
