// The suite's own configuration with time limits for a guest under software
// emulation (qemu TCG runs JavaScript 15-20x slower than the host), so the
// host run keeps its tight limits. run.mjs compiles dist/ on the host before
// booting (and the tenant fixtures), so the guest skips the compile step of
// the global setup (tsc alone would take minutes under emulation).
import { defineConfig } from 'vitest/config'
import { fileURLToPath } from 'node:url'
import base from '../../vitest.config.mts'

const slow = Number(process.env.BPFKIT_TEST_SLOWDOWN ?? '20')
const test = base.test ?? {}

export default defineConfig({
  ...base,
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    ...test,
    globalSetup: [],
    // Every test on its own line with the probe's reason for each skip, so a
    // CI log says what each kernel lacked.
    reporters: ['verbose', './test/setup/skip-reasons.ts'],
    testTimeout: (test.testTimeout ?? 5_000) * slow,
    hookTimeout: (test.hookTimeout ?? 10_000) * slow,
    teardownTimeout: 10_000 * slow,
  },
})
