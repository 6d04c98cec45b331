// The ID walk's own rules, driven by scripted answers in place of the kernel's
// ID calls (the kernel side is covered in test/kernel/ids.test.ts).
import { expect, test } from 'vitest'
import { walkIds } from '../../lib/sys/id-walk.js'

function scripted(order: number[], gone: number[] = []) {
  const closed: number[] = []
  const walk = walkIds({
    next: (id) => order[order.indexOf(id) + 1] ?? 0,
    open: (id) => {
      if (gone.includes(id)) throw Object.assign(new Error('gone'), { code: 'ENOENT' })
      return 100 + id
    },
    info: (fd) => ({ id: fd - 100 }),
    close: (fd) => closed.push(fd),
  })
  return { walk, closed }
}

test('walks every id in order and closes each fd it opened', () => {
  const { walk, closed } = scripted([0, 3, 7, 9])
  expect([...walk].map((i) => i.id)).toEqual([3, 7, 9])
  expect(closed).toEqual([103, 107, 109])
})

test('skips an object freed between GET_NEXT_ID and GET_FD_BY_ID', () => {
  const { walk } = scripted([0, 3, 7, 9], [7])
  expect([...walk].map((i) => i.id)).toEqual([3, 9])
})

test('a next id that does not grow stops the walk with an error', () => {
  const { walk, closed } = scripted([0, 5, 5])
  expect(() => [...walk]).toThrow(/next id 5 after 5/)
  expect(closed).toEqual([105])
})

test('other open errors are thrown, not skipped', () => {
  const walk = walkIds({
    next: (id) => (id === 0 ? 1 : 0),
    open: () => { throw Object.assign(new Error('denied'), { code: 'EPERM' }) },
    info: () => ({}),
    close: () => {},
  })
  expect(() => [...walk]).toThrow(/denied/)
})
