// The guard's events while something runs: guard.test and broker-guard.test
// read them to see that the kernel's refusal was the guard's, and whose.
import type { Guard, GuardEvent } from '../../../lib/guard/index.js'

/**
 * The events `guard` reports while `during` runs: until `count` have come,
 * or `graceMs` pass after `during` ends (or throws: the reading stops then
 * too).
 */
export async function eventsDuring(guard: Guard, count: number, during: () => Promise<void> | void, graceMs: number): Promise<GuardEvent[]> {
  const ac = new AbortController()
  const out: GuardEvent[] = []
  const reading = (async () => {
    for await (const e of guard.events({ signal: ac.signal })) {
      out.push(e)
      if (out.length >= count) break
    }
  })()
  try {
    await during()
  } finally {
    const timer = setTimeout(() => ac.abort(), graceMs)
    await reading
    clearTimeout(timer)
  }
  return out
}
