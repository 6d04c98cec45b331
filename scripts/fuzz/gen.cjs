'use strict'
// Source-text generators for hostile values. A fuzz case is JavaScript
// source, so what ran is exactly what the reproducer file contains. Every
// helper named `h.*` is defined in harness.cjs.

/** The numbers that break integer conversions: sign, 32/53-bit edges, NaN, infinities, -0, fractions. */
const edgeNumbers = [
  '0', '-1', '1', '-0', '0.5', '2147483647', '2147483648', '-2147483648', '-2147483649',
  '4294967295', '4294967296', '9007199254740992', '-9007199254740992', '1e300',
  'NaN', 'Infinity', '-Infinity', 'Number.MAX_VALUE', 'Number.MIN_VALUE',
]

/** Values of every other type, including ones whose conversions throw. */
const wrongTypes = [
  'undefined', 'null', 'true', 'false', "'7'", "''", "'x'.repeat(5000)", "'\\u0000'", '{}', '[]', '[null]', '[1, 2]',
  "Symbol('fuzz')", '() => 0', '0n', '-1n', '2n ** 64n', '2n ** 31n', 'new Date(0)', '/re/', 'new Map()', 'new Set([1])',
  'h.throwingValueOf()', 'h.throwingProxy()', 'Object.create(null)', 'new Error("fuzz: value")', 'Promise.resolve(1)',
]

/** Huge lengths and counts: what a buffer size, entry count or log size must be checked against. */
const hugeNumbers = ['2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '1 << 30', '0x7ffffff8']

function literal(v) {
  if (typeof v === 'bigint') return `${v}n`
  if (Object.is(v, -0)) return '-0'
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v)
  if (v instanceof Uint8Array) return `new Uint8Array([${Array.from(v).join(',')}])`
  return JSON.stringify(v)
}

/** A valid value most of the time, an edge number sometimes, another type rarely. */
function number(rng, valid) {
  return rng.weighted([
    [6, () => literal(rng.pick(valid))],
    [3, () => rng.pick(edgeNumbers)],
    [1, () => rng.pick(hugeNumbers)],
    [1, () => rng.pick(wrongTypes)],
  ])
}

function anyValue(rng) {
  return rng.weighted([[3, () => rng.pick(edgeNumbers)], [3, () => rng.pick(wrongTypes)], [1, () => rng.pick(hugeNumbers)], [2, () => buffer(rng, rng.int(64))]])
}

/** Byte buffers of the right size, off by one, empty, detached, offset, shared, WebAssembly-backed, or not a view. */
function buffer(rng, size, { contents } = {}) {
  const n = rng.weighted([[8, size], [2, size + 1], [2, Math.max(0, size - 1)], [1, 0], [1, rng.int(4096)]])
  const filled = contents ? `h.fill(${literal(contents(n))}, ${n})` : null
  return rng.weighted([
    [10, () => filled ?? `new Uint8Array(${n})`],
    [2, `Buffer.alloc(${n}, ${rng.int(256)})`],
    [1, `new Uint32Array(${Math.ceil(n / 4)})`],
    [1, `new BigUint64Array(${Math.ceil(n / 8)})`],
    [1, `new DataView(new ArrayBuffer(${n}))`],
    [1, `new ArrayBuffer(${n})`],
    [1, `h.detached(${n})`],
    [1, `h.offsetView(${n})`],
    [1, `new Uint8Array(new SharedArrayBuffer(${n}))`],
    [1, `h.wasmView(${n})`],
    [1, () => rng.pick(wrongTypes)],
  ])
}

/**
 * File descriptors, all of this process's own making: closed numbers,
 * foreign fds (a pipe, /dev/null, a socket, a directory), bpf objects of
 * each kind, and numbers no fd table reaches. Never a small guessed number.
 */
function fd(rng, own = []) {
  return rng.weighted([
    [6, () => rng.pick(own.length ? own : ['h.hashMapFd()'])],
    [2, 'h.closedFd()'],
    [1, 'h.pipeFd()'],
    [1, 'h.devNull()'],
    [1, 'h.socketFd()'],
    [1, 'h.dirFd()'],
    [1, 'h.hashMapFd()'],
    [1, 'h.arrayMapFd()'],
    [1, 'h.ringbufMapFd()'],
    [1, 'h.progFd()'],
    [1, 'h.btfFd()'],
    [1, "h.ownFd(h.fdNumber('/dev/null'))"],
    [2, () => rng.pick(['-1', '2147483647', '2147483648', '4294967295', '9007199254740992', 'NaN', 'Infinity', '-0', '0.5'])],
    [1, () => rng.pick(wrongTypes)],
  ])
}

/** A plain-object literal from [key, source] pairs, sometimes with one key behind a throwing or mutating getter, or an unknown key. */
function object(rng, entries) {
  const body = entries.filter(([, v]) => v !== undefined).map(([k, v]) => `${JSON.stringify(k)}: ${v}`)
  if (rng.bool(0.05)) body.push(`${JSON.stringify(rng.pick(['bogus', 'constructor', '__proto__x', 'toString']))}: 1`)
  const src = `{ ${body.join(', ')} }`
  if (entries.length && rng.bool(0.06)) return `h.throwingGetter(${src}, ${JSON.stringify(rng.pick(entries)[0])})`
  if (rng.bool(0.03)) return rng.pick(['h.throwingProxy()', 'null', 'undefined', '[]', "'attrs'", 'Object.create({ inherited: 1 })'])
  return src
}

/** Picks n of the entries, keeping order: optional keys come and go. */
function some(rng, entries, p = 0.6) {
  return entries.filter(() => rng.bool(p))
}

module.exports = { edgeNumbers, wrongTypes, hugeNumbers, literal, number, anyValue, buffer, fd, object, some }
