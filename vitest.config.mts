import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup/fd-leaks.ts'],
    globalSetup: ['test/setup/build-dist.ts'],
    // The default output, then why tests were skipped (grouped by reason).
    reporters: ['default', './test/setup/skip-reasons.ts'],
    // Kernel tests share one kernel; files run one after another so that ID
    // walks and fd leak checks see only their own objects.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
