import { createClient } from '@clickhouse/client';
import { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type pg from 'pg';
import { createMirrorActivities } from '../../activities/mirror-activities.js';
import { CircuitBreaker } from '../../lib/circuit-breaker.js';
import { loadConfig } from '../../lib/config.js';
import type { FakePeerDbClient } from './fake-peerdb-client.js';

/**
 * The mirror activities as a worker makes them, with a fake PeerDB client, the given PostgreSQL pool and the
 * configuration `env` gives; ClickHouse is out of reach (port 1): none of the activities tested this way uses it.
 */
export function mirrorActivitiesWith(peerdb: FakePeerDbClient, postgres: pg.Pool, env: Record<string, string> = {}) {
  return createMirrorActivities({
    config: loadConfig({ env, envFile: false }),
    postgres,
    postgresBreaker: new CircuitBreaker('postgres', { failureThreshold: 1000, successThreshold: 1, timeoutMs: 1000 }, () => true),
    clickhouse: createClient({ url: 'http://127.0.0.1:1' }),
    peerdb: peerdb.asClient(),
    temporal: new Client(),
  });
}

/** A MockActivityEnvironment that keeps every heartbeat's details. */
export function activityEnvironment() {
  const env = new MockActivityEnvironment({ startToCloseTimeoutMs: 60_000 }, { logger: new DefaultLogger('ERROR') });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return { env, heartbeats };
}
