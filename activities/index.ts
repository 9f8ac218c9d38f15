import type { ClickHouseClient } from '@clickhouse/client';
import type { Client } from '@temporalio/client';
import type pg from 'pg';
import type { Config } from '../lib/config.js';
import type { CircuitBreaker } from '../lib/circuit-breaker.js';
import type { PeerDbClient } from '../lib/peerdb/client.js';
import { createCleanupActivities } from './cleanup-activities.js';
import { createDiffActivities } from './diff-activities.js';
import { createMirrorActivities } from './mirror-activities.js';
import { createReconcileActivities } from './reconcile-activities.js';
import { createVerifyActivities } from './verify-activities.js';

export interface ActivityDependencies {
  config: Config;
  /** The source database (where echodb.* lives too). */
  postgres: pg.Pool;
  postgresBreaker: CircuitBreaker;
  clickhouse: ClickHouseClient;
  /** The row diff's ClickHouse client, whose requests may take DIFF_QUERY_TIMEOUT (default: `clickhouse`). */
  scanClickhouse?: ClickHouseClient;
  peerdb: PeerDbClient;
  /** For signal-with-start to mirror workflows (reconcile). */
  temporal: Client;
}

/** Every activity EchoDB's workflows call, bound to their dependencies. */
export function createActivities(deps: ActivityDependencies) {
  return { ...createMirrorActivities(deps), ...createVerifyActivities(deps), ...createReconcileActivities(deps), ...createCleanupActivities(deps), ...createDiffActivities(deps) };
}

export type Activities = ReturnType<typeof createActivities>;
