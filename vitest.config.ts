import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['./test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Privileged and integration tests share /tmp servers and loop devices: keep files isolated.
    pool: 'forks',
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
