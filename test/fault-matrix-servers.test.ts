import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServers, type LocalServers } from './servers/index.js';
import { mirrorWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { tablesAddedBy } from './peerdb-double/index.js';
import { expectConverged } from './support/end-state.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { createTables, echoProcesses, handledBy, ownStack, reportOnFailure, sleep } from './support/fault-helpers.js';
import { until } from './support/until.js';
import { itWithDouble } from './support/peerdb-under-test.js';
import { testServers } from './support/servers.js';

/** Fault-matrix cases that stop a server under EchoDB (PostgreSQL, Redis, Temporal) or kill its worker. */

interface OutboxRow {
  table_name: string;
  operation: string;
  status: string;
  failed_attempts: number;
}

async function outboxRows(sql: pg.Client, tables: string[]): Promise<OutboxRow[]> {
  const { rows } = await sql.query<OutboxRow>(
    'SELECT table_name, operation, status, failed_attempts FROM echodb.ddl_events WHERE table_name = ANY($1) ORDER BY id',
    [tables],
  );
  return rows;
}

describe('a PostgreSQL restart while DDL flows', () => {
  let postgres: LocalServers<'postgres'>;
  let stack: EchoStack;
  /** The test's live connection: the stack's own dies with the restart. */
  let sql: pg.Client;
  const processes = echoProcesses();
  reportOnFailure(() => stack && { ...stack, sql });

  beforeAll(async () => {
    postgres = await startLocalServers({ only: ['postgres'], env: {} });
    stack = await startEchoStack({ POSTGRES_TIMEOUT: '1' }, { ...testServers(), postgres: postgres.settings.postgres });
    sql = stack.sql;
  });
  afterAll(async () => {
    await stack?.close();
    await postgres?.stop();
  });

  it('converges: listener and worker reconnect, and what was committed around the restart is mirrored', async () => {
    const { schema } = stack;
    const listener = await processes.startListener(stack, 'replica-a');
    await listener.waitForLine(/is leader/);
    await createTables(sql, schema, ['before_0', 'before_1', 'before_2']);
    // The restart comes while the events are being handed over and the mirror is being created.
    await until(() => handledBy(sql, 'replica-a'), (count) => count >= 1, 30_000);

    sql.on('error', () => undefined); // the restart ends this connection
    const stoppedAt = Date.now();
    await postgres.stopServer('postgres');
    // Down for a few seconds: the listener's fourth attempt comes 3.5 s after the loss (RECONNECT_DELAY 0.5 s, doubling).
    await listener.waitForLine(/reconnecting to PostgreSQL \(attempt 4\)/, 30_000, stoppedAt);
    await postgres.restartServer('postgres');
    sql = await stack.database.connect();

    await createTables(sql, schema, ['after_0', 'after_1', 'after_2']);
    await sql.query(`DROP TABLE ${schema}.before_0`);
    await expectConverged({ ...stack, sql }, 120_000);
    expect(stack.peerdb.mirrors().flatMap((m) => m.tables.map((t) => t.sourceTableIdentifier)).sort()).toEqual(
      ['after_0', 'after_1', 'after_2', 'before_1', 'before_2'].map((table) => `${schema}.${table}`),
    );
    // The LISTEN connection is back too, not only the outbox poll.
    await until(() => listenSessions(sql, 'replica-a'), (count) => count === 1, 30_000);
  }, 180_000);

  // pg-listen's reconnection loop ignores close(): the listener ends it itself (listener/ddl-listener.ts).
  it('a listener SIGTERMed while PostgreSQL is down exits, and the next one catches up', async () => {
    const { schema } = stack;
    const listener = await processes.startListener(stack, 'replica-b');
    await listener.waitForLine(/is leader/);
    sql.on('error', () => undefined);
    const stoppedAt = Date.now();
    await postgres.stopServer('postgres');
    await listener.waitForLine(/reconnecting to PostgreSQL \(attempt 2\)/, 30_000, stoppedAt);
    const exit = await Promise.race([listener.stop(), sleep(15_000).then(() => 'still running after 15 s')]);
    await postgres.restartServer('postgres');
    sql = await stack.database.connect();
    expect(exit).toBe(0);

    await createTables(sql, schema, ['after_stop']);
    await processes.startListener(stack, 'replica-c');
    await expectConverged({ ...stack, sql }, 60_000);
  }, 120_000);
});

/** The listener's sessions that LISTEN (pg-listen's: its LISTENs, then a paranoid check every second). */
async function listenSessions(sql: pg.Client, workerId: string): Promise<number> {
  const { rows } = await sql.query<{ count: string }>(
    `SELECT count(*) FROM pg_stat_activity
      WHERE application_name = $1 AND (query LIKE 'LISTEN %' OR query = 'SELECT pg_backend_pid()')`,
    [`echodb-listener:${workerId}`],
  );
  return Number(rows[0]!.count);
}

describe('a Redis outage under two listener replicas', () => {
  let redis: LocalServers<'redis'>;
  let redisEnv: Record<string, string>;
  let stack: EchoStack;
  const processes = echoProcesses();
  reportOnFailure(() => stack);

  beforeAll(async () => {
    [stack, redis] = await Promise.all([startEchoStack(), startLocalServers({ only: ['redis'], env: {} })]);
    const { host, port, password } = redis.settings.redis;
    redisEnv = { REDIS_HOST: host, REDIS_PORT: String(port), REDIS_PASSWORD: password };
  });
  afterAll(async () => {
    await stack?.close();
    await redis?.stop();
  });

  it('converges, and nothing is dispatched without a lease', async () => {
    const { sql, schema } = stack;
    const { leader, leaderName } = await processes.startPair(stack, redisEnv);
    const creating = createTables(sql, schema, Array.from({ length: 20 }, (_, i) => `burst_${i}`));
    await until(() => handledBy(sql, leaderName), (count) => count >= 5, 30_000);
    const stoppedAt = Date.now();
    await redis.stopServer('redis');
    await leader.waitForLine(/is follower: lease ran out/, 15_000, stoppedAt);
    await creating;
    const during = ['during_0', 'during_1', 'during_2'];
    await createTables(sql, schema, during);
    await sql.query(`DROP TABLE ${schema}.during_2`);
    // The outage lasts a few polls and renewals longer, so that a replica dispatching without a lease would.
    await sleep(2500);
    const { rows } = await sql.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const restartedAt = rows[0]!.now;
    await redis.restartServer('redis');

    await expectConverged(stack);
    const { rows: dispatched } = await sql.query<{ table_name: string; dispatched_at: Date }>(
      'SELECT table_name, dispatched_at FROM echodb.ddl_events WHERE table_name = ANY($1)',
      [during],
    );
    expect(dispatched).toHaveLength(during.length + 1); // the creates, and the drop of during_2
    expect(dispatched.filter((row) => row.dispatched_at <= restartedAt)).toEqual([]);
  }, 150_000);
});

describe('a Temporal dev server restart (same database file)', () => {
  let temporal: LocalServers<'temporal'>;
  let stack: EchoStack;
  const processes = echoProcesses();
  reportOnFailure(() => stack);

  beforeAll(async () => {
    temporal = await startLocalServers({ only: ['temporal'], env: {} });
    stack = await startEchoStack({}, { ...testServers(), temporal: temporal.settings.temporal });
  });
  afterAll(async () => {
    await stack?.close();
    await temporal?.stop();
  });

  it('converges: the outbox holds the DDL made while Temporal is down, worker and listener reconnect by themselves', async () => {
    const { sql, schema } = stack;
    const listener = await processes.startListener(stack, 'replica-a');
    await listener.waitForLine(/is leader/);
    await createTables(sql, schema, ['before_0', 'before_1']);
    await expectConverged(stack);
    await stack.waitForVerification('before_0'); // its snapshot is done: it may be dropped below
    const mirrorWorkflow = stack.temporal.workflow.getHandle(mirrorWorkflowId(stack.peerdb.mirrors()[0]!.name));
    const { runId } = await mirrorWorkflow.describe();

    const stoppedAt = Date.now();
    await temporal.stopServer('temporal');
    const during = ['during_0', 'during_1', 'during_2'];
    await createTables(sql, schema, during);
    await sql.query(`DROP TABLE ${schema}.before_0`);
    // The leader tried to hand them over and Temporal was unreachable (after the client's own retries): they stay
    // pending, and the log gives the gRPC error's own words, not the SDK's summary.
    await listener.waitForLine(/dispatch failed for .* event\(s\): .*(No connection established|Connection dropped|ECONNREFUSED)/, 60_000, stoppedAt);
    const waiting = await outboxRows(sql, [...during, 'before_0']);
    expect(waiting.some((row) => row.failed_attempts > 0)).toBe(true);
    expect(waiting.map(({ table_name, operation, status }) => `${operation} ${table_name} ${status}`)).toEqual([
      'create before_0 dispatched',
      'create during_0 pending',
      'create during_1 pending',
      'create during_2 pending',
      'drop before_0 pending',
    ]);

    await temporal.restartServer('temporal');
    await expectConverged(stack, 120_000);
    // The server came back with its database: the mirror workflow's run from before the stop is still known.
    const again = stack.temporal.workflow.getHandle(mirrorWorkflow.workflowId, runId);
    expect((await again.describe()).runId).toBe(runId);
    expect(stack.peerdb.mirrors().flatMap((m) => m.tables.map((t) => t.sourceTableIdentifier)).sort()).toEqual(
      ['before_1', ...during].map((table) => `${schema}.${table}`),
    );
  }, 180_000);
});

describe('a worker SIGKILLed in the middle of a PeerDB edit', () => {
  let stack: EchoStack;
  const processes = echoProcesses();
  ownStack((started) => (stack = started));
  afterAll(() => {
    if (stack) stack.peerdb.knobs.stuck = false;
  });

  itWithDouble('converges once another worker takes the edit over (after the heartbeat timeout), the table added once', async () => {
    const { sql, schema, peerdb } = stack;
    await createTables(sql, schema, ['first']);
    await stack.dispatchPending();
    await expectConverged(stack);
    const mirror = peerdb.mirrors()[0]!.name;
    await peerdb.waitForStatus(mirror, 'STATUS_RUNNING', 30_000);

    // The double holds the mirror in STATUS_PAUSING: the worker has sent the pause, not yet the update.
    peerdb.knobs.stuck = true;
    const from = peerdb.requests.length;
    await createTables(sql, schema, ['second']);
    await stack.dispatchPending();
    await until(
      () => Promise.resolve(peerdb.requests.slice(from)),
      (requests) => requests.some((r) => r.path === '/v1/mirrors/state_change' && r.status === 200 &&
        (r.body as { requestedFlowState?: string }).requestedFlowState === 'STATUS_PAUSED'),
      30_000,
    );
    // PeerDB reads the pause a moment after it answered.
    await until(() => Promise.resolve(peerdb.mirrors()[0]?.status), (status) => status === 'STATUS_PAUSING', 10_000);
    stack.worker.kill('SIGKILL');
    await stack.worker.exited;

    await processes.start('replacement worker', stack.env);
    peerdb.knobs.stuck = false;
    // The killed worker's editMirror attempt times out on its heartbeat (10 s), then the new worker retries it.
    await expectConverged(stack, 60_000);
    const added = peerdb.requests.flatMap(tablesAddedBy).filter((table) => table === `${schema}.second`);
    expect(added).toEqual([`${schema}.second`]);
    expect(peerdb.mirrors()[0]?.tables.map((t) => t.sourceTableIdentifier).sort()).toEqual([`${schema}.first`, `${schema}.second`]);
  }, 120_000);
});
