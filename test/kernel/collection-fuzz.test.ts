// Damaged objects that still read as a CollectionSpec go on to spec.load():
// the kernel may refuse them, but only with bpfkit's own errors (ElfError for
// what the reader let through, BpfError and its VerifierError from the
// kernel, CoreError for a CO-RE relocation that cannot be applied), and a
// failed or closed load leaves no fd open. Mutations are the unit fuzz test's
// (scripts/fuzz/targets/collection.cjs), seeded per fixture; a failure names
// fixture, seed, case and mutations, and reproduces with
//   BPFKIT_FUZZ_SEED=<seed> npx vitest run test/kernel/collection-fuzz.test.ts
// More loads: BPFKIT_FUZZ_LOADS=<per fixture>.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { describe, expect, it } from 'vitest'
import { BpfError, CollectionSpec, CoreError, ElfError, ExternError } from '../../lib/index.js'
import { Fd } from '../../lib/sys/index.js'
import { fdTable, opened } from './helpers/fds.js'
import { privateBpffs } from './helpers/scratch.js'

import { fixtureObjects, mutate } from '../helpers/object-fuzz.js'

const seed = Number(process.env.BPFKIT_FUZZ_SEED ?? 1)
const loads = Number(process.env.BPFKIT_FUZZ_LOADS ?? 4)

/** The errors a load may end in. CoreError is matched by name: API.md does not export it (yet). */
// ExternError: a damaged extern name the kernel has no value for.
const allowed = (err: unknown) => err instanceof ElfError || err instanceof BpfError || err instanceof CoreError || err instanceof ExternError

describe('spec.load() of damaged objects: only bpfkit errors, no fd leaked', () => {
  for (const file of fixtureObjects()) {
    const name = basename(file)
    it(`${name}: ${loads} damaged copies that read as a spec (seed ${seed})`, async (ctx) => {
      const original = new Uint8Array(readFileSync(file))
      // Some fixtures are refused on purpose (test/unit tests their errors); their damaged copies have nothing to load.
      try {
        CollectionSpec.fromBuffer(original)
      } catch (err) {
        if (err instanceof ElfError) ctx.skip(`${name} itself does not read as a spec (${err.message})`)
        throw err
      }
      // By-name pins (LIBBPF_PIN_BY_NAME maps) go to a bpffs of this test's own, never /sys/fs/bpf.
      using pins = privateBpffs()
      let loaded = 0
      for (let i = 0; loaded < loads && i < loads * 50; i++) {
        const { bytes, steps } = mutate(original, `load:${name}`, seed, i)
        const what = `${name}, seed ${seed}, case ${i} (${steps.join('; ')})`
        let spec: CollectionSpec
        try {
          spec = CollectionSpec.fromBuffer(bytes)
        } catch (err) {
          if (err instanceof ElfError) continue // the unit test's business; here only what reads goes on
          throw new Error(`${what}: CollectionSpec.fromBuffer threw ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err })
        }
        loaded++
        const fdsBefore = fdTable()
        const ownedBefore = new Set(Fd.openFds().map((f) => f.fd))
        try {
          const collection = await spec.load({ pinPath: pins.path })
          collection.close()
        } catch (err) {
          if (!allowed(err)) throw new Error(`${what}: load failed with ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err })
        }
        const leaked = [
          ...Fd.openFds().filter((f) => !ownedBefore.has(f.fd)).map((f) => `fd ${f.fd} (${f.kind})`),
          ...opened(fdsBefore, fdTable()).filter((e) => /anon_inode:\[?(bpf|btf)/.test(e)),
        ]
        if (leaked.length > 0) throw new Error(`${what}: leaked ${leaked.join(', ')}`)
      }
      expect(loaded, `${name}: too few damaged copies read as a spec to load`).toBe(loads)
    })
  }
})
