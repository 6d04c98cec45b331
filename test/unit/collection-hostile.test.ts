// Objects built to hurt the reader: each is refused with an ElfError, or
// read, quickly and without allocating what its headers claim.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BtfBuilder, BtfReader, CollectionSpec, ElfError } from '../../lib/index.js'
import { ElfFile, SHT } from '../../lib/collection/elf.js'
import { codecFromBtf } from '../../lib/map/btf-codec.js'

const fixture = (name: string) => new Uint8Array(readFileSync(join(__dirname, '..', 'fixtures', 'bpf', name)))

describe('hostile objects', () => {
  test('a type used twice at every level of 30 does not cost 2^30 codec builds', () => {
    const b = new BtfBuilder()
    let t = b.int('int', 4, { signed: true })
    for (let i = 0; i < 30; i++) t = b.union(`u${i}`, [{ name: 'a', type: t }, { name: 'b', type: t }])
    const started = performance.now()
    const codec = codecFromBtf(new BtfReader(b.bytes()), t)
    expect(codec.size).toBe(4)
    expect(performance.now() - started).toBeLessThan(1000)
  })

  test('an executable section turned SHT_NOBITS with a 4 GiB size is refused, not conjured', () => {
    const bytes = fixture('minimal.bpf.o')
    const elf = new ElfFile(bytes)
    const socket = elf.section('socket')!
    const v = new DataView(bytes.buffer)
    const shoff = Number(v.getBigUint64(0x28, true))
    const at = shoff + socket.index * 64
    v.setUint32(at + 4, SHT.NOBITS, true)
    v.setBigUint64(at + 32, 1n << 32n, true)
    expect(() => CollectionSpec.fromBuffer(bytes)).toThrow(ElfError)
    expect(() => CollectionSpec.fromBuffer(bytes)).toThrow(/NOBITS/)
  })

  test('a map named like an Object.prototype member is a map like any other', () => {
    // 'inner_a' and 'valueOf' have the same length: rename it in the string tables.
    const bytes = fixture('map-init.bpf.o')
    const from = Buffer.from('inner_a\0'), to = Buffer.from('valueOf\0')
    const buf = Buffer.from(bytes.buffer)
    for (let at = buf.indexOf(from); at >= 0; at = buf.indexOf(from, at + 1)) to.copy(buf, at)
    const spec = CollectionSpec.fromBuffer(bytes)
    expect(Object.hasOwn(spec.maps, 'valueOf')).toBe(true)
    expect(spec.maps.valueOf).toMatchObject({ type: 'array' })
  })
})
