import { defineConfig } from 'vitest/config';

/**
 * The projects, by what their tests need:
 * - `unit`: test/unit, no server at all (a test there that asks for the servers fails: test/support/servers.ts);
 * - `workflows`: test/workflows, workflow code with stubbed activities, on a Temporal dev server of its own;
 * - `integration` and `integration-faults`: every other test file, against real PostgreSQL, Redis, ClickHouse and
 *   Temporal. `integration-faults` holds the fault matrix (servers stopped, processes killed, minutes of injected
 *   PeerDB faults): mostly waiting, and about half of the integration time, so scripts/test.sh runs them beside the
 *   other integration files, each with servers of its own. `--project 'integration*'` runs both.
 */
const FAULTS = ['test/fault-matrix*.test.ts'];
const withServers = { pool: 'forks' as const, testTimeout: 60_000, hookTimeout: 120_000, teardownTimeout: 60_000, fileParallelism: false };
const realServers = { ...withServers, globalSetup: ['test/global-setup.ts'] };

export default defineConfig({
  test: {
    projects: [
      // Several unit files mostly wait (on child processes, timers): more workers than cores, and time for the
      // child processes (the CLI, docker-compose) when the machine is busy.
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], pool: 'forks', maxWorkers: 3, testTimeout: 30_000 } },
      { test: { ...withServers, name: 'workflows', include: ['test/workflows/**/*.test.ts'], globalSetup: ['test/workflows/global-setup.ts'] } },
      { test: { ...realServers, name: 'integration-faults', include: FAULTS } },
      { test: { ...realServers, name: 'integration', include: ['test/**/*.test.ts'], exclude: [...FAULTS, 'test/unit/**', 'test/workflows/**'] } },
    ],
  },
});
