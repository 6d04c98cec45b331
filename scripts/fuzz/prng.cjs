'use strict'
// A small seeded PRNG (xoshiro128**, seeded through splitmix32) so that a
// case is fully determined by (target, seed, index): the reproducer of a
// finding is the seed and the index, with no dependency and no global state.

function splitmix32(state) {
  let z = (state + 0x9e3779b9) >>> 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  return (z ^ (z >>> 16)) >>> 0
}

/** FNV-1a of a string: target names become part of the seed. */
function hashString(s) {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0
  return h
}

class Rng {
  constructor(...parts) {
    let x = 0x2545f491
    for (const p of parts) x = splitmix32(x ^ (typeof p === 'string' ? hashString(p) : p >>> 0))
    this.s = [0, 0, 0, 0].map((_, i) => (x = splitmix32(x + i)))
    if (this.s.every((v) => v === 0)) this.s[0] = 1
  }

  /** A uint32. */
  next() {
    const s = this.s
    const result = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)) >>> 0, 9) >>> 0
    const t = s[1] << 9
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
    s[2] ^= t
    s[3] = ((s[3] << 11) | (s[3] >>> 21)) >>> 0
    for (let i = 0; i < 4; i++) s[i] >>>= 0
    return result
  }

  /** An integer in [0, n). */
  int(n) {
    return n <= 1 ? 0 : this.next() % n
  }

  range(lo, hi) {
    return lo + this.int(hi - lo + 1)
  }

  bool(p = 0.5) {
    return this.next() / 0x100000000 < p
  }

  pick(items) {
    return items[this.int(items.length)]
  }

  /** Picks from [weight, value] pairs; a value that is a function is called with this. */
  weighted(pairs) {
    const total = pairs.reduce((a, [w]) => a + w, 0)
    let r = this.int(total)
    for (const [w, v] of pairs) {
      if (r < w) return typeof v === 'function' ? v(this) : v
      r -= w
    }
    throw new Error('unreachable')
  }

  /** Random bytes as a JS source array literal's contents. */
  bytes(n) {
    const out = new Array(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }
}

module.exports = { Rng, hashString }
