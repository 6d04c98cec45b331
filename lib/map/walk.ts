// Walking a map's keys with BPF_MAP_GET_NEXT_KEY. When the key a walk stands
// on is deleted, the kernel answers with the first key again (hash maps, LPM
// tries), so a naive walk repeats keys or never ends. Two defences:
// - keys are fetched ahead, in chunks: the chunk after the current one is
//   fetched (from the current chunk's last key) before any key of the
//   current one is given out, so a caller deleting what it was just given
//   (the common case) costs nothing, as bpftool's dump loop does;
// - keys already given are remembered and skipped, for the rarer restart
//   (a caller deleting keys ahead of the walk); a walk that sees more known
//   keys in a row than it has given cannot be making progress and stops with
//   an error, as cilium/ebpf's iterator does.
import { native } from '../sys/index.js'
import { KeySet } from './key-set.js'

/**
 * Up to `max` GET_NEXT_KEY steps, from `cur` (the first key when null),
 * each from the key before, into `out` back to back; the number of keys
 * written, fewer than `max` only at the end of the map.
 */
export type NextKeys = (cur: Uint8Array | null, out: Uint8Array, max: number) => number

// Keys per chunk: the walk's native calls are one per chunk (map.ts), so
// their cost is spread over this many keys.
const CHUNK = 64

/** GET_NEXT_KEY by fd, one call per key. */
const stepsByFd = (fd: number, keySize: number): NextKeys => (cur, out, max) => {
  let from = cur
  for (let n = 0; n < max; n++) {
    const next = out.subarray(n * keySize, (n + 1) * keySize)
    if (!native.mapGetNextKey(fd, from, next)) return n
    from = next
  }
  return max
}

export function* walkKeys<K>(fd: number, keySize: number, restartable: boolean,
  decode: (keys: Uint8Array, view: DataView, offset: number) => K, steps: NextKeys = stepsByFd(fd, keySize)): Generator<K, void, undefined> {
  let cur = new Uint8Array(CHUNK * keySize)
  let ahead = new Uint8Array(CHUNK * keySize)
  let curView = new DataView(cur.buffer)
  let aheadView = new DataView(ahead.buffer)
  // Keys of up to 6 bytes are remembered as numbers (in a KeySet: no string
  // made per key); longer ones as latin1 strings.
  const small = keySize <= 6
  const seenSmall = restartable && small ? new KeySet() : undefined
  const seenLong = restartable && !small ? new Set<string>() : undefined
  let repeats = 0
  let count = steps(null, cur, CHUNK)
  while (count > 0) {
    // A short chunk is the end of the map: nothing to fetch after it.
    const aheadCount = count === CHUNK ? steps(cur.subarray((count - 1) * keySize, count * keySize), ahead, CHUNK) : 0
    for (let k = 0, at = 0; k < count; k++, at += keySize) {
      if (seenSmall || seenLong) {
        let isNew
        if (seenSmall) {
          let id = 0
          for (let i = keySize - 1; i >= 0; i--) id = id * 256 + cur[at + i]
          isNew = seenSmall.add(id)
        } else {
          const id = Buffer.from(cur.buffer, cur.byteOffset + at, keySize).toString('latin1')
          isNew = !seenLong!.has(id)
          if (isNew) seenLong!.add(id)
        }
        const given = seenSmall ? seenSmall.size : seenLong!.size
        if (!isNew) {
          if (++repeats > given) throw new Error(`map iteration aborted: the kernel keeps returning keys already seen (${given} keys walked)`)
          continue
        }
        repeats = 0
      }
      yield decode(cur, curView, at)
    }
    // Swap instead of copying: `ahead` becomes the chunk to give out (with
    // temporaries: a destructuring swap allocates two arrays per chunk).
    const t = cur
    cur = ahead
    ahead = t
    const tv = curView
    curView = aheadView
    aheadView = tv
    count = aheadCount
  }
}
