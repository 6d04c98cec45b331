// Entry points that need a map (root), given a value String() cannot convert
// (an object without a prototype): the message names the argument instead of
// JavaScript's "Cannot convert object to primitive value" (npm run fuzz).
import { describe, expect, it } from 'vitest'
import { BpfMap } from '../../lib/index.js'

const internals = /Cannot read prop|is not iterable|is not a function|undefined is not|Cannot convert|Cannot mix BigInt/

function messageOf(call: () => unknown): string {
  try {
    call()
  } catch (e) {
    expect(e).toBeInstanceOf(RangeError)
    return (e as Error).message
  }
  throw new Error('no error thrown')
}

describe('map entry points name a value String() cannot show', () => {
  it('MappedArray get and set with such an index', () => {
    using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 8, maxEntries: 4, flags: ['mmapable'] })
    using a = m.mmap()
    for (const call of [() => a.get(Object.create(null)), () => a.set(Object.create(null), new Uint8Array(8))]) {
      const message = messageOf(call)
      expect(message).toMatch(/^index must be an integer in 0..3, got an object$/)
      expect(message).not.toMatch(internals)
    }
    expect(messageOf(() => a.get(4))).toBe('index must be an integer in 0..3, got number 4')
  })

  it('lookupBatch with such a batch size', () => {
    using m = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: 4 })
    const message = messageOf(() => m.lookupBatch({ batchSize: Object.create(null) }))
    expect(message).toMatch(/^batchSize must be 1..2\^20, got an object$/)
  })
})
