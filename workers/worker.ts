import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { checkSearchAttributes, describeSearchAttributeProblems } from '../lib/search-attribute-registration.js';
import { createActivities } from '../activities/index.js';
import type { Breakers } from '../lib/circuit-breaker.js';
import { createClickHouseClient } from '../lib/clickhouse.js';
import type { Config } from '../lib/config.js';
import { PeerDbClient } from '../lib/peerdb/client.js';
import { createPostgresPool } from '../lib/postgres.js';
import { workflowCode } from './workflow-code.js';

export interface EchoWorker {
  worker: Worker;
  /** Runs until shutdown(), then closes every connection it opened. */
  run(): Promise<void>;
  shutdown(): void;
}

export interface EchoWorkerOptions {
  /** The process's circuit breakers (lib/circuit-breaker.ts createBreakers). */
  breakers: Breakers;
  /** For the activities that start or signal workflows (reconcile). */
  temporal: Client;
}

/**
 * The Temporal worker on EchoDB's own task queue, with its activities bound to real clients. Temporal's Runtime
 * (logger, metrics, signals) must be installed before: `echodb run` does it.
 */
export async function createEchoWorker(config: Config, { breakers, temporal }: EchoWorkerOptions): Promise<EchoWorker> {
  // Without its search attributes every workflow start and upsert fails: refuse to start, and say what to do.
  const { namespace } = config.temporal;
  const problem = describeSearchAttributeProblems(namespace, await checkSearchAttributes(temporal.connection, namespace));
  if (problem) throw new Error(`the worker cannot start: ${problem}`);
  const postgres = createPostgresPool(config.postgres, 'echodb-worker');
  const clickhouse = createClickHouseClient(config.clickhouse);
  const scanClickhouse = createClickHouseClient(config.clickhouse, config.diff.queryTimeoutMs);
  const peerdb = PeerDbClient.fromConfig(config.peerdb, breakers.peerdb);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...(await workflowCode()),
    activities: createActivities({ config, postgres, postgresBreaker: breakers.postgres, clickhouse, scanClickhouse, peerdb, temporal }),
    shutdownGraceTime: '30 seconds',
  });
  return {
    worker,
    async run() {
      try {
        await worker.run();
      } finally {
        await Promise.allSettled([connection.close(), postgres.end(), clickhouse.close(), scanClickhouse.close()]);
      }
    },
    shutdown: () => worker.shutdown(),
  };
}
