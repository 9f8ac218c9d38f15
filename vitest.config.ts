import { defineConfig } from 'vitest/config';

/**
 * The fault files (servers stopped, processes killed, minutes of injected PeerDB faults): mostly waiting, and
 * together about half of the suite's time. scripts/test.sh runs them as one lane and everything else as a
 * second lane beside it, each lane one file at a time with servers of its own.
 */
const FAULTS = ['test/fault-matrix*.test.ts', 'test/soak.test.ts'];
const common = { pool: 'forks' as const, testTimeout: 60_000, hookTimeout: 120_000, teardownTimeout: 60_000, fileParallelism: false };

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    projects: [
      { test: { ...common, name: 'faults', include: FAULTS } },
      { test: { ...common, name: 'main', include: ['test/**/*.test.ts'], exclude: FAULTS } },
    ],
  },
});
