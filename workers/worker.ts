import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { createClickHouseClient } from '../lib/clickhouse.js';
import type { Config } from '../lib/config.js';
import { PeerDbClient, isPeerDbOutage } from '../lib/peerdb/client.js';
import { createPostgresPool, isPostgresOutage } from '../lib/postgres.js';

/** Running compiled (dist/, .js) or from the TypeScript source (tests, ./echodb). */
const extension = path.extname(fileURLToPath(import.meta.url));
/** Where `npm run build` writes the workflow bundle; a compiled worker uses it when present (production). */
export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
export const WORKFLOWS_ENTRY = fileURLToPath(new URL(`../workflows/index${extension}`, import.meta.url));

export interface EchoWorker {
  worker: Worker;
  breakers: { peerdb: CircuitBreaker; postgres: CircuitBreaker };
  /** Runs until shutdown() (or a signal Temporal's runtime handles), then closes every connection. */
  run(): Promise<void>;
  shutdown(): void;
}

/** The Temporal worker on EchoDB's own task queue, with its activities bound to real clients. */
export async function createEchoWorker(config: Config): Promise<EchoWorker> {
  const breakers = {
    peerdb: new CircuitBreaker('peerdb_api', config.circuitBreaker.peerdb, isPeerDbOutage),
    postgres: new CircuitBreaker('postgres_connection', config.circuitBreaker.postgres, isPostgresOutage),
  };
  for (const breaker of Object.values(breakers)) {
    breaker.onStateChange((state) => console.log(`circuit breaker ${breaker.dependency} is ${state}`));
  }
  const postgres = createPostgresPool(config.postgres, 'echodb-worker');
  const clickhouse = createClickHouseClient(config.clickhouse);
  const peerdb = new PeerDbClient({
    baseUrl: config.peerdb.apiUrl,
    requestTimeoutMs: config.peerdb.requestTimeoutMs,
    breaker: breakers.peerdb,
  });
  // `echodb run` handles SIGINT and SIGTERM itself, to stop every role in order.
  Runtime.install({ shutdownSignals: [] });
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const clientConnection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const workflowCode = extension === '.js' && fs.existsSync(WORKFLOW_BUNDLE)
    ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
    : { workflowsPath: WORKFLOWS_ENTRY };
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflowCode,
    activities: createActivities({ config, postgres, postgresBreaker: breakers.postgres, clickhouse, peerdb, temporal }),
    shutdownGraceTime: '30 seconds',
  });
  return {
    worker,
    breakers,
    async run() {
      try {
        await worker.run();
      } finally {
        await Promise.allSettled([connection.close(), clientConnection.close(), postgres.end(), clickhouse.close()]);
      }
    },
    shutdown: () => worker.shutdown(),
  };
}
