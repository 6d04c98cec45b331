// The copies between a map's slot buffers and the caller's, and the storage
// of the values a lookup hands out. They sit between a syscall and the
// caller, where every builtin call, allocation and fresh cache line shows
// (the kernel's entry and exit leave caches cold on virtual machines).

// Short copies are plain loops, which V8 compiles inline, instead of
// TypedArray.prototype.set / slice calls.
const SHORT = 32

/** Copies `n` bytes from src[from..] to dst[to..]. */
export function copyBytes(src: Uint8Array, from: number, dst: Uint8Array, to: number, n: number): void {
  if (n <= SHORT) {
    for (let i = 0; i < n; i++) dst[to + i] = src[from + i]
  } else {
    dst.set(from === 0 && src.length === n ? src : src.subarray(from, from + n), to)
  }
}

// V8 keeps a typed array of up to 64 bytes on its own heap, as cheap to make
// as any small object. A larger one gets a backing store of its own (a
// malloc, a tracking entry, a free after collection): ~300 ns each, beside a
// ~1.1 µs lookup. Values of 65 bytes to 4 KiB are therefore views into a
// shared 64 KiB slab, as Node's Buffer pool does: one backing store per 256
// values of 256 bytes. A view keeps its whole slab alive; larger values, of
// which a slab holds few, get their own buffer.
const ON_HEAP_MAX = 64
const POOLED_MAX = 4096
const SLAB_SIZE = 64 * 1024
let slab = new ArrayBuffer(0)
let slabUsed = 0

/** `n` zeroed bytes of the current slab (n ≤ POOLED_MAX), at an 8-byte aligned offset. */
function fromSlab(n: number): Uint8Array {
  if (slabUsed + n > slab.byteLength) {
    slab = new ArrayBuffer(SLAB_SIZE)
    slabUsed = 0
  }
  const view = new Uint8Array(slab, slabUsed, n)
  // 8-byte alignment, so that a value can be read as wider typed arrays
  // (new BigUint64Array(v.buffer, v.byteOffset, ...)).
  slabUsed += (n + 7) & ~7
  return view
}

/**
 * A copy of src[offset .. offset + n] the caller may keep. Over 64 bytes it
 * may share its ArrayBuffer with other values: read it through its own
 * byteOffset and byteLength, as with a Buffer from Node's pool.
 */
export function copyOut(src: Uint8Array, offset: number, n: number): Uint8Array {
  if (n > POOLED_MAX) return src.slice(offset, offset + n)
  const out = n > ON_HEAP_MAX ? fromSlab(n) : new Uint8Array(n)
  copyBytes(src, offset, out, 0, n)
  return out
}
