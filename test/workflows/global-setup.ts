import type { TestProject } from 'vitest/node';
import { startLocalServers, type TemporalSettings } from '../servers/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The workflows project's Temporal dev server (test/workflows/global-setup.ts). */
    temporal: TemporalSettings;
  }
}

/**
 * Starts only a Temporal dev server (EchoDB's search attributes registered; ECHODB_TEST_TEMPORAL_ADDRESS uses one
 * that runs already) for the workflow tests, which stub every activity. Each test file connects to it with
 * `TestWorkflowEnvironment.createFromExistingServer(inject('temporal'))` and unique task queues and IDs.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const startedAt = Date.now();
  const servers = await startLocalServers({ only: ['temporal'] });
  console.log(`Temporal dev server ready in ${Date.now() - startedAt} ms (started here: ${servers.started.join(', ') || 'none'})`);
  project.provide('temporal', servers.settings.temporal);
  return () => servers.stop();
}
