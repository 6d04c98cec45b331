// The mutation engine for object files (scripts/fuzz/targets/collection.cjs),
// typed for the unit and kernel fuzz tests that share it with `npm run fuzz`.
import { createRequire } from 'node:module'
import { join } from 'node:path'

export interface Mutated { bytes: Uint8Array; steps: string[] }

const load = createRequire(__filename)
const engine = load('../../scripts/fuzz/targets/collection.cjs') as {
  mutateObject(original: Uint8Array, rng: unknown): Mutated
  fixtureObjects(root: string): string[]
}
const { Rng } = load('../../scripts/fuzz/prng.cjs') as { Rng: new (...parts: (string | number)[]) => unknown }

/** The checkout's root. */
export const root = join(__dirname, '..', '..')

/** Every fixture object, test/fixtures/bpf/*.bpf.o. */
export const fixtureObjects = (): string[] => engine.fixtureObjects(root)

/** Case `index` of `seed` for fixture `name`: the same damage every run. */
export function mutate(original: Uint8Array, name: string, seed: number, index: number): Mutated {
  return engine.mutateObject(original, new Rng(name, seed, index))
}
