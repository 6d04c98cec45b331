// Bad input is refused with a clear error before it can change anything: a
// mistyped token never falls through to a call made without one, malformed
// options are TypeErrors that name the option, and the kernel's bare EINVAL /
// E2BIG answers come with the likely cause.
import { openSync, closeSync } from 'node:fs'
import { expect, test } from 'vitest'
import { asm, BpfError, BpfMap, BpfProgram, Btf, BtfBuilder, Fd, ids, setDefaultToken } from '../../lib/index.js'

const insns = [asm.mov64Imm(asm.R0, 0), asm.exit()]
// Other processes may create maps meanwhile: look for this test's own name.
const named = (name: string) => [...ids.maps()].filter((i) => i.name === name).length

test.each([42, 'x', {}, { fd: -1 }, { fd: 1 }, { fd: 2.5 }])('a mistyped token %j is a TypeError, and nothing is created', async (bad) => {
  const token = bad as never
  expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'bad_token', token })).toThrow(TypeError)
  expect(() => BpfProgram.loadSync({ type: 'socket_filter', insns, license: 'GPL', token })).toThrow(TypeError)
  const b = new BtfBuilder()
  b.int('u32', 4)
  expect(() => Btf.loadSync(b.bytes(), { token })).toThrow(TypeError)
  expect(() => setDefaultToken(token)).toThrow(TypeError)
  expect(named('bad_token')).toBe(0)
})

test('malformed map options name what is wrong', () => {
  expect(() => (BpfMap.create as (o?: unknown) => unknown)()).toThrow(/BpfMap.create: options must be an object/)
  expect(() => BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 1, btf: 'yes' as never })).toThrow(/btf must be true or/)
  expect(() => BpfMap.create({ type: 'hash', key: 'u32', value: { struct: [['a'] as never] }, maxEntries: 1 })).toThrow(/\[name, type\] pair/)
  expect(() => BpfMap.create({ type: 'hash', keySize: 4, valueSize: 4, maxEntries: 1, name: 'has-dash' })).toThrow(/name must be at most 15/)
  expect(() => BpfMap.create({ type: 'ringbuf', maxEntries: 5000 })).toThrow(/power of two/)
  expect(() => BpfMap.fromFd(1 as never)).toThrow(/owned Fd/)
})

test('an Fd cannot adopt a closed number or one another Fd owns', () => {
  const n = openSync('/dev/null', 'r')
  closeSync(n)
  expect(() => new Fd(n)).toThrow(/is not open/)
  using m = BpfMap.create({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })
  expect(() => new Fd(m.fd, 'map')).toThrow(/already owned/)
})

test('ring buffer records() refuses unknown options', async () => {
  using m = BpfMap.create({ type: 'ringbuf', maxEntries: 4096 })
  await expect(m.ringBuffer().records({ bogus: 1 } as never).next()).rejects.toThrow(/unknown option 'bogus'/)
})

test('kernel refusals carry the likely cause', async () => {
  using full = BpfMap.create({ type: 'hash', key: 'u32', value: 'u32', maxEntries: 1 })
  full.set(1, 1)
  expect(() => full.set(2, 2)).toThrow(/map_update_elem: E2BIG.*the map is full/)
  // A socket filter: skb test runs refuse data shorter than an Ethernet header
  // on every kernel; XDP ones did not check before 5.x (5.10 runs it).
  using prog = await BpfProgram.load({ type: 'socket_filter', insns, license: 'GPL' })
  const err = await prog.testRun({ data: new Uint8Array(4) }).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(BpfError)
  expect((err as BpfError).message).toMatch(/prog_test_run: EINVAL: .*data/)
})
