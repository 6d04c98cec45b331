// lib/cli/progress.ts: a progress line only on a terminal, only once the work
// has taken a while, redrawn at most every 100 ms, erased when done.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { Progress, withProgress } from '../../lib/cli/progress.js'

function stream(isTTY: boolean) {
  const writes: string[] = []
  return { isTTY, writes, write: (s: string) => { writes.push(s); return true } }
}

describe('Progress', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  test('on a terminal: nothing for quick work, then a count redrawn at most every 100 ms, erased at the end', () => {
    const s = stream(true)
    const p = new Progress('walking programs', 5000, s)
    p.tick()
    expect(s.writes).toEqual([])
    vi.advanceTimersByTime(400)
    p.tick()
    p.tick()
    expect(s.writes).toEqual(['\r\x1b[Kwalking programs: 2 of 5000'])
    vi.advanceTimersByTime(150)
    p.tick(10)
    expect(s.writes.at(-1)).toBe('\r\x1b[Kwalking programs: 13 of 5000')
    expect(p.count).toBe(13)
    p.done()
    expect(s.writes.at(-1)).toBe('\r\x1b[K')
  })

  test('not a terminal (a pipe, a file): never writes', () => {
    const s = stream(false)
    const items = [...withProgress('walking maps', (function* () {
      for (let i = 0; i < 3; i++) {
        vi.advanceTimersByTime(500)
        yield i
      }
    })(), s)]
    expect(items).toEqual([0, 1, 2])
    expect(s.writes).toEqual([])
  })

  test('withProgress erases its line when the walk is abandoned', () => {
    const s = stream(true)
    for (const _ of withProgress('walking links', [1, 2, 3], s)) {
      vi.advanceTimersByTime(500)
      break
    }
    // Nothing was shown (no tick after the first item), so nothing to erase.
    expect(s.writes).toEqual([])
    const t = stream(true)
    let n = 0
    for (const _ of withProgress('walking links', [1, 2, 3], t)) {
      vi.advanceTimersByTime(500)
      if (++n === 2) break
    }
    expect(t.writes).toEqual(['\r\x1b[Kwalking links: 1', '\r\x1b[K'])
  })
})
