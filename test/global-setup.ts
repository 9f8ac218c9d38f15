import type { TestProject } from 'vitest/node';
import { startLocalServers, type ServerSettings } from './servers/index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    servers: ServerSettings;
  }
}

/** Starts the real servers every test talks to, once per run, and stops them afterwards. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const startedAt = Date.now();
  const servers = await startLocalServers();
  console.log(
    `test servers ready in ${Date.now() - startedAt} ms (started here: ${servers.started.join(', ') || 'none'})`,
  );
  project.provide('servers', servers.settings);
  return () => servers.stop();
}
