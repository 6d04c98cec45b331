// ID walks read each object's info in one native step (objNextInfo): the
// programs' map IDs come with it, grown when a program uses more maps than
// the walk had room for.
import { expect, test } from 'vitest'
import { BpfMap, BpfProgram, ids } from '../../lib/index.js'
import { exit, ldMapFd, mov64Imm, program } from './helpers/raw.js'

test('the program walk lists every map a program uses, past the room it started with', () => {
  const maps = Array.from({ length: 40 }, () => BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 1 }))
  const few = maps.slice(0, 3)
  try {
    using small = BpfProgram.loadSync({ type: 'socket_filter', license: 'GPL', bytes: program(...few.map((m) => ldMapFd(1, m.fd)), mov64Imm(0, 0), exit()) })
    using large = BpfProgram.loadSync({ type: 'socket_filter', license: 'GPL', bytes: program(...maps.map((m) => ldMapFd(1, m.fd)), mov64Imm(0, 0), exit()) })
    const byId = new Map([...ids.programs()].map((p) => [p.id, p]))
    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
    expect(sorted(byId.get(small.info().id)!.mapIds)).toEqual(sorted(few.map((m) => m.id)))
    expect(sorted(byId.get(large.info().id)!.mapIds)).toEqual(sorted(maps.map((m) => m.id)))
    // The map walk sees them all, with their info.
    const mapIds = new Set([...ids.maps()].map((m) => m.id))
    for (const m of maps) expect(mapIds.has(m.id)).toBe(true)
  } finally {
    for (const m of maps) m.close()
  }
})
