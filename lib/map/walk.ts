// Walking a map's keys with BPF_MAP_GET_NEXT_KEY. When the key a walk stands
// on is deleted, the kernel answers with the first key again (hash maps, LPM
// tries), so a naive walk repeats keys or never ends. Two defences:
// - the key after the current one is fetched before the current one is
//   given out, so a caller deleting what it was just given (the common case)
//   costs nothing, as bpftool's dump loop does;
// - keys already given are remembered and skipped, for the rarer restart
//   (a caller deleting keys ahead of the walk); a walk that sees more known
//   keys in a row than it has given cannot be making progress and stops with
//   an error, as cilium/ebpf's iterator does.
import { native } from '../sys/index.js'

/** One GET_NEXT_KEY: the key after `cur` (the first key when null) into `out`; false at the end. */
export type NextKey = (cur: Uint8Array | null, out: Uint8Array) => boolean

export function* walkKeys<K>(fd: number, keySize: number, restartable: boolean, decode: (key: Uint8Array, view: DataView) => K,
  step: NextKey = (cur, out) => native.mapGetNextKey(fd, cur, out)): Generator<K, void, undefined> {
  let cur = new Uint8Array(keySize)
  let next = new Uint8Array(keySize)
  let curView = new DataView(cur.buffer)
  let nextView = new DataView(next.buffer)
  // Keys of up to 6 bytes are remembered as numbers (a Set of small
  // integers: no string made per key); longer ones as latin1 strings.
  const seen = restartable ? new Set<number | string>() : undefined
  const small = keySize <= 6
  let repeats = 0
  let have = step(null, cur)
  while (have) {
    const haveNext = step(cur, next)
    if (seen) {
      let id: number | string = 0
      if (small) {
        for (let i = keySize - 1; i >= 0; i--) id = id * 256 + cur[i]
      } else {
        id = Buffer.from(cur.buffer, cur.byteOffset, keySize).toString('latin1')
      }
      if (seen.has(id)) {
        if (++repeats > seen.size) throw new Error(`map iteration aborted: the kernel keeps returning keys already seen (${seen.size} keys walked)`)
      } else {
        seen.add(id)
        repeats = 0
        yield decode(cur, curView)
      }
    } else {
      yield decode(cur, curView)
    }
    // Swap instead of copying: `next` becomes the cursor for the next call
    // (with temporaries: a destructuring swap allocates two arrays per key).
    const t = cur
    cur = next
    next = t
    const tv = curView
    curView = nextView
    nextView = tv
    have = haveNext
  }
}
