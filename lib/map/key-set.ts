// The set of keys a walk has given (walk.ts), for keys of up to 6 bytes read
// as integers below 2^48. A Set of numbers costs ~50 ns per key on a 10,000
// key walk (its lookups, adds and rehashes: 5% of each GET_NEXT_KEY step);
// this table is open addressing over a Float64Array, which V8 compiles to
// plain loads and stores.
const EMPTY = -1

export class KeySet {
  #slots = new Float64Array(1024).fill(EMPTY)
  #mask = 1023
  #size = 0

  get size(): number {
    return this.#size
  }

  /** Adds `id` (an integer, 0 ≤ id < 2^48); false when it was there already. */
  add(id: number): boolean {
    const slots = this.#slots
    const mask = this.#mask
    // Both halves of the id mixed, so that keys differing only above bit 32 spread too.
    let i = Math.imul((id | 0) ^ ((id / 4294967296) | 0), 0x9e3779b1) & mask
    for (;;) {
      const x = slots[i]
      if (x === id) return false
      if (x === EMPTY) break
      i = (i + 1) & mask
    }
    slots[i] = id
    if (++this.#size * 2 > mask) this.grow()
    return true
  }

  private grow(): void {
    const old = this.#slots
    this.#slots = new Float64Array(old.length * 2).fill(EMPTY)
    this.#mask = this.#slots.length - 1
    this.#size = 0
    for (let i = 0; i < old.length; i++) if (old[i] !== EMPTY) this.add(old[i])
  }
}
