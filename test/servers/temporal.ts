import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporalBinary } from './binaries.js';
import { ManagedProcess } from './managed-process.js';
import { freePorts } from '../../lib/free-port.js';
import { searchAttributeTypes } from '../../lib/workflow-safe/search-attributes.js';

export interface TemporalSettings {
  address: string;
  namespace: string;
  /** The Web UI's address (http://127.0.0.1:<port>), when the server was started with it. */
  uiUrl?: string;
}

/**
 * A Temporal dev server on a sqlite file, with EchoDB's search attributes registered (or, for the tests of their
 * registration, the `searchAttributes` given: name -> type as the CLI spells it). Headless unless `ui`: then its
 * Web UI listens on a free loopback port too.
 */
export async function startTemporal(
  dir: string,
  options: { ui?: boolean; searchAttributes?: Record<string, string> } = {},
): Promise<{ settings: TemporalSettings; process: ManagedProcess }> {
  fs.mkdirSync(dir, { recursive: true });
  const [port, httpPort, metricsPort, uiPort] = await freePorts(4);
  const ui = options.ui ? ['--ui-ip', '127.0.0.1', '--ui-port', String(uiPort)] : ['--headless'];
  const registered = options.searchAttributes ?? searchAttributeTypes;
  const searchAttributes = Object.entries(registered).flatMap(([name, type]) => [
    '--search-attribute', `${name}=${type}`,
  ]);
  const process = new ManagedProcess({
    name: 'Temporal dev server',
    command: temporalBinary(),
    args: ['server', 'start-dev', ...ui, '--ip', '127.0.0.1', '--port', String(port),
      '--http-port', String(httpPort), '--metrics-port', String(metricsPort),
      '--db-filename', path.join(dir, 'temporal.db'), '--log-level', 'warn', ...searchAttributes,
      // Long-lived workflows are asked to continue as new after 150 events instead of 4 Ki, so that the tests
      // exercise that path (a server in production suggests it at its own limit).
      '--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=150'],
    logFile: path.join(dir, 'temporal.log'),
  });
  const settings: TemporalSettings = {
    address: `127.0.0.1:${port}`,
    namespace: 'default',
    ...(options.ui && { uiUrl: `http://127.0.0.1:${uiPort}` }),
  };
  await process.waitUntilReady(
    async () => (await hasSearchAttributes(settings, Object.keys(registered))) && (settings.uiUrl === undefined || (await fetch(settings.uiUrl)).ok),
    60_000,
  );
  return { settings, process };
}

async function hasSearchAttributes(settings: TemporalSettings, names: string[]): Promise<boolean> {
  const connection = await Connection.connect({ address: settings.address, connectTimeout: 1000 });
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({
      namespace: settings.namespace,
    });
    return names.every((name) => name in (customAttributes ?? {}));
  } finally {
    await connection.close();
  }
}
