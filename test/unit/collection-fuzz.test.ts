// CollectionSpec.fromBuffer on damaged copies of every clang-built fixture
// (test/fixtures/bpf/*.bpf.o): seeded bit flips, byte and u32 overwrites aimed
// at the ELF header, section headers, symbols, relocations, .BTF, .BTF.ext and
// .maps, section header field edits (sh_offset, sh_size, sh_link, sh_info,
// sh_entsize, ...) and truncations. Each must give a spec or an ElfError:
// never another error class, never a hang.
//
// The mutation engine is scripts/fuzz/targets/collection.cjs (shared with
// `npm run fuzz -- --target collection` and the kernel test). A case is
// (fixture, seed, index), so a failure reproduces with
//   BPFKIT_FUZZ_SEED=<seed> npx vitest run test/unit/collection-fuzz.test.ts
// and names the mutations it made. More cases: BPFKIT_FUZZ_CASES=<per fixture>.
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CollectionSpec, ElfError } from '../../lib/index.js'

import { fixtureObjects, mutate } from '../helpers/object-fuzz.js'

const seed = Number(process.env.BPFKIT_FUZZ_SEED ?? 1)
const cases = Number(process.env.BPFKIT_FUZZ_CASES ?? 100)
// A reader that takes this long on a few kilobytes is looping on something it read.
const slowMs = 2000

/** Everything a spec offers without the kernel, read, so that lazily computed parts are exercised too. */
function touch(spec: CollectionSpec): void {
  for (const p of Object.values(spec.programs)) void p.type
  for (const m of Object.values(spec.maps)) void m.type
  for (const v of Object.values(spec.variables)) v.get()
}

describe('CollectionSpec.fromBuffer on damaged objects: a spec or an ElfError', () => {
  for (const file of fixtureObjects()) {
    const name = basename(file)
    it(`${name}: ${cases} damaged copies (seed ${seed})`, () => {
      const original = new Uint8Array(readFileSync(file))
      let refused = 0
      for (let i = 0; i < cases; i++) {
        const { bytes, steps } = mutate(original, name, seed, i)
        const what = `${name}, seed ${seed}, case ${i} (${steps.join('; ')})`
        const started = performance.now()
        try {
          touch(CollectionSpec.fromBuffer(bytes))
        } catch (err) {
          if (!(err instanceof ElfError)) {
            throw new Error(`${what}: ${(err as Error)?.name} instead of ElfError: ${(err as Error)?.message}`, { cause: err })
          }
          refused++
        }
        const ms = performance.now() - started
        if (ms > slowMs) throw new Error(`${what}: took ${Math.round(ms)} ms`)
      }
      // The damage is real: some copies are refused (and some, read as well-formed, are not).
      expect(refused, `${name}: no damaged copy was refused`).toBeGreaterThan(0)
    })
  }
})
