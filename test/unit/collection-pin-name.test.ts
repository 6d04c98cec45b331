// The names pinCollection pins under: an object's symbol names, unchecked,
// must not reach outside DIR/maps|progs|links or name a subdirectory.
import { expect, test } from 'vitest'
import { pinName } from '../../lib/collection/pin-all.js'

test('dots (bpffs refuses them), slashes and anything else outside [A-Za-z0-9_] become _', () => {
  expect(pinName('.rodata')).toBe('_rodata')
  expect(pinName('counts')).toBe('counts')
  expect(pinName('a/b')).toBe('a_b')
  expect(pinName('../../etc')).toBe('______etc')
  expect(pinName('x y\n')).toBe('x_y_')
})
