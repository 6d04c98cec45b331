// Entry-point checks added for what `npm run fuzz` found (issue 11, "Errors
// that name the wrong cause or leak internals"): FdSocket.send and
// FdSocket.from name a bad argument instead of failing inside JavaScript
// ("fds.map is not a function", "Cannot read properties of null"), and send
// nothing. Unit: a socketpair needs no privileges.
import { describe, expect, it } from 'vitest'
import { asm, BpfMap, BpfProgram, BtfReader, Fd, FdSocket, features } from '../../lib/index.js'

const internals = /Cannot read prop|is not iterable|is not a function|undefined is not|Cannot convert|Cannot mix BigInt|Cannot perform .* on a detached/

async function nothingArrives(b: FdSocket): Promise<void> {
  await expect(b.receive({ signal: AbortSignal.timeout(30) })).rejects.toMatchObject({ name: expect.stringMatching(/AbortError|TimeoutError/) })
}

describe('FdSocket.send names a bad argument and sends nothing', () => {
  const detached = () => {
    const u = new Uint8Array(8)
    structuredClone(u.buffer, { transfer: [u.buffer] })
    return u
  }
  const cases: Array<[string, () => [unknown, unknown, unknown?], RegExp]> = [
    ['data null', () => [null, []], /send: data must be a Uint8Array, got null/],
    ['data a BigUint64Array', () => [new BigUint64Array(2), []], /send: data must be a Uint8Array/],
    ['data detached', () => [detached(), []], /send: data is a view of a detached ArrayBuffer/],
    ['fds a string', () => [new Uint8Array(1), 'fds'], /send: fds must be an array of Fd or fd numbers/],
    ['fds an array-like', () => [new Uint8Array(1), { length: 1 }], /send: fds must be an array/],
    ['fds [null]', () => [new Uint8Array(1), [null]], /send: fds\[0\] must be an Fd or an fd number, got null/],
    ['fds [-1]', () => [new Uint8Array(1), [-1]], /send: fds\[0\] must be an Fd or an fd number/],
    ['fds [NaN]', () => [new Uint8Array(1), [NaN]], /send: fds\[0\] must be an Fd or an fd number/],
    ['signal not an AbortSignal', () => [new Uint8Array(1), [], { signal: {} }], /send: option 'signal' must be an AbortSignal/],
    ['unknown option', () => [new Uint8Array(1), [], { bogus: 1 }], /send: unknown option 'bogus'/],
  ]
  for (const [what, args, message] of cases) {
    it(what, async () => {
      const [a, b] = FdSocket.pair()
      try {
        const [data, fds, options] = args()
        const sent = (a.send as (...x: unknown[]) => Promise<void>)(data, fds, options)
        await expect(sent).rejects.toThrow(TypeError)
        const e = await sent.catch((x: Error) => x)
        expect((e as Error).message).toMatch(message)
        expect((e as Error).message).not.toMatch(internals)
        await nothingArrives(b)
      } finally {
        a.close()
        b.close()
      }
    })
  }

  it('still sends Buffers and fds given as numbers or objects with an fd', async () => {
    const [a, b] = FdSocket.pair()
    try {
      await a.send(Buffer.from('ok'), [a.fd, { fd: b.fd } as never])
      const m = await b.receive({ fds: 2 })
      expect(m!.data.toString()).toBe('ok')
      for (const f of m!.fds) f.close()
    } finally {
      a.close()
      b.close()
    }
  })
})

describe('FdSocket.from names a bad argument', () => {
  for (const bad of [null, undefined, 'socket', true]) {
    it(String(bad), () => {
      expect(() => FdSocket.from(bad as never)).toThrow(/^FdSocket.from: socket must be a net.Socket, an Fd or an fd number, got /)
    })
  }
})

describe('FdSocket.receive names a signal that is not an AbortSignal', () => {
  for (const bad of [{}, { aborted: false }, 'signal']) {
    it(JSON.stringify(bad), async () => {
      const [a, b] = FdSocket.pair()
      try {
        await a.send(Buffer.from('kept'))
        const e = await b.receive({ signal: bad as never }).catch((x: Error) => x)
        expect(e).toBeInstanceOf(TypeError)
        expect((e as Error).message).toMatch(/^receive: option 'signal' must be an (AbortSignal|object)/)
        // Refused before reading: the message is still there, the socket still open.
        expect((await b.receive())!.data.toString()).toBe('kept')
      } finally {
        a.close()
        b.close()
      }
    })
  }
})

describe('a view of a detached ArrayBuffer is refused by name, not by JavaScript', () => {
  const detached = (n: number) => {
    const u = new Uint8Array(n)
    structuredClone(u.buffer, { transfer: [u.buffer] })
    return u
  }

  it('new BtfReader(detached)', () => {
    expect(() => new BtfReader(detached(64))).toThrow(/^not BTF: 0 bytes, shorter than the 24-byte header$/)
    expect(() => new BtfReader(new Uint8Array(10))).toThrow(/^not BTF: 10 bytes/)
  })

  it('BpfProgram.load({ bytes: detached }) and loadSync', async () => {
    const options = { type: 'socket_filter', license: 'GPL', bytes: detached(16) } as const
    await expect(BpfProgram.load(options)).rejects.toThrow(/^BpfProgram.load: bytes is empty \(no instructions, or its ArrayBuffer was detached\)$/)
    expect(() => BpfProgram.loadSync(options)).toThrow(RangeError)
  })
})

describe('asm builders name a bad operand that String() cannot convert', () => {
  it.each([
    ['mov64Imm immediate', () => asm.mov64Imm(asm.R0, Object.create(null)), /^immediate must fit in 32 bits, got /],
    ['mov64Imm register', () => asm.mov64Imm(Object.create(null), 0), /must be r0\.\.r10, got /],
    ['add64Imm immediate', () => asm.add64Imm(asm.R1, Object.create(null)), /^immediate must fit in 32 bits, got /],
  ])('%s', (_what, build, message) => {
    let error: unknown
    try {
      build()
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toMatch(message)
    expect((error as Error).message).not.toMatch(internals)
  })
})

// Values that String() cannot convert (an object without a prototype) or
// JSON.stringify cannot (a bigint) must still give a message naming the argument.
describe('bad values that String() or JSON.stringify cannot show', () => {
  const bare = () => Object.create(null) as never
  const hash = { type: 'hash', keySize: 4, valueSize: 8, maxEntries: 1 } as const
  it.each([
    ['maxEntries', () => BpfMap.create({ ...hash, maxEntries: bare() }), /maxEntries must be an integer in 0..2\^32-1, got an object/],
    ['mapExtra', () => BpfMap.create({ ...hash, mapExtra: bare() }), /mapExtra must be a u64 .*, got an object/],
    ['a flag name', () => BpfMap.create({ ...hash, flags: [bare()] }), /unknown map flag an object \(known:/],
    ['a type description', () => BpfMap.create({ ...hash, key: 5n as never }), /not a type description: bigint 5/],
    ['a struct field', () => BpfMap.create({ ...hash, keySize: undefined, key: { struct: [5n as never] } }), /each struct field is a \[name, type\] pair, got bigint 5/],
    ['an array length', () => BpfMap.create({ ...hash, keySize: undefined, key: { array: 'u8', length: bare() } }), /array length must be a positive integer, got an object/],
    ['a byte swap width', () => asm.bswap(asm.R0, bare()), /byte swap width must be 16, 32 or 64, got an object/],
    ['an atomic op', () => asm.atomic(bare(), 64, asm.R1, asm.R2, 0), /unknown atomic op an object/],
    ['a BTF kind', () => features.haveBtfKind(bare()), /haveBtfKind: unknown kind an object/],
  ])('%s', (_what, call, message) => {
    let error: unknown
    try {
      call()
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toMatch(message)
    expect((error as Error).message).not.toMatch(internals)
  })
})

describe('new Fd names a value a template cannot show', () => {
  it.each([[Symbol('fd')], [Object.create(null)]])('%s', (bad) => {
    expect(() => new Fd(bad as never)).toThrow(/^not an owned file descriptor: (symbol Symbol\(fd\)|an object)$/)
  })
})
