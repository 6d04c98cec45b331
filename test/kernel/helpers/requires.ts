// Tests skip through feature probes only, never through the kernel version:
// a probe that finds the feature missing gives the reason to skip (naming the
// release that added it); any other probe failure (EPERM, a bug) fails the
// test instead of hiding it.
//
//   test('ring buffer records', (ctx) => {
//     skipUnless(ctx, features.haveRingbuf)
//     ...
//   })
//   describe('tokens', () => {
//     skipAllIf(requireFeature(features.haveBpfToken) ?? userNamespacesMissing())
//     test(...)
//   })
//
// The reason always goes through ctx.skip(note), so the reporter shows it
// beside each skipped test (`--reporter verbose`, and the skip summary at the
// end of every run): never a console.warn beside a bare describe.skipIf.
import { beforeEach } from 'vitest'
import { NotSupportedError } from '../../../lib/sys/errors.js'

/** Why the feature `probe` checks is missing, or undefined when it is there. Other errors are thrown. */
export function requireFeature(probe: () => void): string | undefined {
  try {
    probe()
    return undefined
  } catch (e) {
    if (e instanceof NotSupportedError) return e.message
    throw e
  }
}

/** Skips the running test, with the probe's reason as the note, when the feature is missing. */
export function skipUnless(ctx: { skip(note?: string): never }, probe: () => void): void {
  const why = requireFeature(probe)
  if (why !== undefined) ctx.skip(why)
}

/**
 * Skips every test of the enclosing describe block, each with `why` as its
 * note, when `why` is defined (a reason from requireFeature or another probe).
 */
export function skipAllIf(why: string | undefined): void {
  beforeEach((ctx) => {
    if (why !== undefined) ctx.skip(why)
  })
}
