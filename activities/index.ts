import type { ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';
import type { Config } from '../lib/config.js';
import type { CircuitBreaker } from '../lib/circuit-breaker.js';
import type { PeerDbClient } from '../lib/peerdb/client.js';
import { createMirrorActivities } from './mirror-activities.js';
import { createVerifyActivities } from './verify-activities.js';

export interface ActivityDependencies {
  config: Config;
  /** The source database (where echodb.* lives too). */
  postgres: pg.Pool;
  postgresBreaker: CircuitBreaker;
  clickhouse: ClickHouseClient;
  peerdb: PeerDbClient;
}

/** Every activity EchoDB's workflows call, bound to their dependencies. */
export function createActivities(deps: ActivityDependencies) {
  return { ...createMirrorActivities(deps), ...createVerifyActivities(deps) };
}

export type Activities = ReturnType<typeof createActivities>;
