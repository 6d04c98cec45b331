import { expect, test } from 'vitest'
import { Fd, native } from '../../lib/sys/index.js'

test('map create through the addon', () => {
  using fd = new Fd(native.mapCreate({ mapType: 1, keySize: 4, valueSize: 8, maxEntries: 4 }), 'map')
  expect(native.mapMeta(fd.fd).keySize).toBe(4)
})
