import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServers, type LocalServers } from './servers/index.js';
import { startVerifyAll } from '../api/verification.js';
import { mirrorNameFor, namingRules } from '../lib/naming.js';
import { mirrorWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import type { VerifyAllReport } from '../workflows/model.js';
import { expectConverged } from './support/end-state.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { createTables, echoProcesses, handledBy, ownStack, reportOnFailure } from './support/fault-helpers.js';
import { until } from './support/until.js';
import { itWithDouble } from './support/peerdb-under-test.js';
import { testServers } from './support/servers.js';

const { startListener, startPair } = echoProcesses();

describe('DDL faults: listeners', () => {
  let stack: EchoStack;
  let redis: LocalServers<'redis'>;
  let redisEnv: Record<string, string>;
  reportOnFailure(() => stack);

  beforeAll(async () => {
    stack = await startEchoStack();
    // A Redis of this file's own: the leader key is the manual's fixed name.
    redis = await startLocalServers({ only: ['redis'], env: {} });
    const { host, port, password } = redis.settings.redis;
    redisEnv = { REDIS_HOST: host, REDIS_PORT: String(port), REDIS_PASSWORD: password };
  });
  afterAll(async () => {
    await stack?.close();
    await redis?.stop();
  });

  it('converges after 100 creates, drops and renames made while no listener ran', async () => {
    const { sql, schema } = stack;
    // 70 creates, 15 drops, 15 renames: 100 statements.
    await createTables(sql, schema, Array.from({ length: 70 }, (_, i) => `offline_${i}`));
    for (let i = 0; i < 15; i++) await sql.query(`DROP TABLE ${schema}.offline_${i}`);
    for (let i = 15; i < 30; i++) await sql.query(`ALTER TABLE ${schema}.offline_${i} RENAME TO renamed_${i}`);
    const { rows } = await sql.query<{ count: string }>("SELECT count(*) FROM echodb.ddl_events WHERE status = 'pending'");
    expect(Number(rows[0]!.count)).toBeGreaterThanOrEqual(100);
    expect(stack.peerdb.mirrors()).toEqual([]);

    await startListener(stack, 'replica-a');
    await expectConverged(stack);
    const mirrored = stack.peerdb.mirrors().flatMap((m) => m.tables.map((t) => t.sourceTableIdentifier));
    expect(mirrored).toHaveLength(55);
    expect(mirrored).toEqual(expect.arrayContaining([`${schema}.renamed_15`, `${schema}.offline_69`]));
  }, 150_000);

  it('converges after the leader is SIGTERMed in a burst', async () => {
    const { sql, schema } = stack;
    const { leader, follower, leaderName } = await startPair(stack, redisEnv);
    const before = await handledBy(sql, leaderName);
    const creating = createTables(sql, schema, Array.from({ length: 100 }, (_, i) => `stopped_${i}`));
    await until(() => handledBy(sql, leaderName), (count) => count >= before + 20, 60_000);
    const stoppedAt = Date.now();
    expect(await leader.stop()).toBe(0);
    await follower.waitForLine(/is leader/, 10_000, stoppedAt);
    await creating;

    await expectConverged(stack);
  }, 150_000);

  it('converges after the leader is SIGKILLed in a 200-table burst', async () => {
    const { sql, schema } = stack;
    const { leader, follower, leaderName, followerName } = await startPair(stack, redisEnv);
    const before = await handledBy(sql, leaderName);
    const creating = createTables(sql, schema, Array.from({ length: 200 }, (_, i) => `killed_${i}`));
    await until(() => handledBy(sql, leaderName), (count) => count >= before + 30, 60_000);
    leader.kill('SIGKILL');
    await follower.waitForLine(/is leader/, 30_000);
    await creating;

    await expectConverged(stack);
    expect(await handledBy(sql, followerName)).toBeGreaterThan(0);
  }, 150_000);

});

describe('DDL faults: PeerDB', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started));

  itWithDouble('converges after PeerDB answers 503 for 60 s, then recovers', async () => {
    const { sql, schema } = stack;
    await startListener(stack, 'replica-a');
    await createTables(sql, schema, ['steady_0', 'steady_1']);
    await expectConverged(stack);
    // Dropping a table during its initial snapshot fails the whole mirror (as PeerDB does): let it finish.
    await stack.waitForVerification('steady_1');
    const from = stack.peerdb.requests.length;
    stack.peerdb.knobs.failUntil = Date.now() + 60_000;
    try {
      await createTables(sql, schema, Array.from({ length: 10 }, (_, i) => `unavailable_${i}`));
      await sql.query(`DROP TABLE ${schema}.steady_0`);
      await until(() => Promise.resolve(stack.peerdb.requests.length - from), (count) => count > 0, 30_000);
      // While PeerDB is down, the events were handed over, and the double answered 503 to whatever was asked.
      const during = stack.peerdb.requests.slice(from);
      expect(during.length).toBeGreaterThan(0);
      expect(during.every((r) => r.status === 503)).toBe(true);
      await until(() => Promise.resolve(Date.now()), (now) => now >= (stack.peerdb.knobs.failUntil ?? 0), 70_000);
      await expectConverged(stack);
    } finally {
      stack.peerdb.knobs.failUntil = undefined;
    }
  }, 180_000);

  itWithDouble('converges while PeerDB fails 30 % of requests at random', async () => {
    const { sql, schema } = stack;
    await startListener(stack, 'replica-a');
    const from = stack.peerdb.requests.length;
    stack.peerdb.knobs.errorRate = 0.3;
    try {
      await createTables(sql, schema, Array.from({ length: 10 }, (_, i) => `flaky_${i}`));
      await stack.waitForVerification('flaky_9', 1, 90_000);
      for (let i = 0; i < 3; i++) await sql.query(`DROP TABLE ${schema}.flaky_${i}`);
      await createTables(sql, schema, ['flaky_late']);
      await expectConverged(stack, 120_000);
    } finally {
      stack.peerdb.knobs.errorRate = 0;
    }
    const during = stack.peerdb.requests.slice(from);
    expect(during.filter((r) => r.status === 503).length).toBeGreaterThan(0);
  }, 180_000);

  itWithDouble('converges after PeerDB requests hang (client timeouts) for a while', async () => {
    const { sql, schema } = stack;
    await startListener(stack, 'replica-a');
    const from = stack.peerdb.requests.length;
    stack.peerdb.knobs.hang = true;
    try {
      await createTables(sql, schema, Array.from({ length: 5 }, (_, i) => `hung_${i}`));
      await until(() => Promise.resolve(stack.peerdb.requests.length - from), (count) => count > 0, 30_000);
      // Until the worker's requests have timed out (PEERDB_REQUEST_TIMEOUT, 2 s) more than once: it sent again.
      await until(
        () => Promise.resolve(stack.peerdb.requests.slice(from).filter((r) => r.status === undefined).length),
        (unanswered) => unanswered > 1,
        30_000,
      );
    } finally {
      stack.peerdb.knobs.hang = false;
    }
    expect(stack.peerdb.requests.slice(from).filter((r) => r.status === undefined).length).toBeGreaterThan(1);
    await expectConverged(stack);
  }, 150_000);

  itWithDouble('shows in Temporal why a mirror edit waits while PeerDB requests hang (its last heartbeat)', async () => {
    const { sql, schema, peerdb } = stack;
    await startListener(stack, 'replica-a');
    await createTables(sql, schema, ['waiting_0']);
    await expectConverged(stack);
    const mirror = mirrorNameFor({ schema, table: 'waiting_0' }, namingRules(stack.config));
    await peerdb.waitForStatus(mirror, 'STATUS_RUNNING', 30_000);
    const handle = stack.temporal.workflow.getHandle(mirrorWorkflowId(mirror));
    const heartbeats = async () => {
      const { raw } = await handle.describe();
      return (raw.pendingActivities ?? []).flatMap((activity) => {
        const payload = activity.heartbeatDetails?.payloads?.[0];
        return payload ? [`${activity.activityType?.name}: ${String(defaultPayloadConverter.fromPayload(payload))}`] : [];
      });
    };
    // The edit that adds waiting_1 is held while pausing; then every request hangs past the client's timeout.
    peerdb.knobs.stuck = true;
    try {
      await createTables(sql, schema, ['waiting_1']);
      await until(() => Promise.resolve(peerdb.mirrors().find((m) => m.name === mirror)?.status), (status) => status === 'STATUS_PAUSING', 30_000);
      peerdb.knobs.hang = true;
      await until(heartbeats, (details) => details.some((d) => d.startsWith('editMirror: PeerDB unavailable')), 30_000);
    } finally {
      peerdb.knobs.hang = false;
      peerdb.knobs.stuck = false;
    }
    await expectConverged(stack);
  }, 150_000);
});

describe('a mirror PeerDB failed', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started));

  itWithDouble('is dropped and created again with every table it holds when PeerDB fails it (an added table\'s load failed 20 times)', async () => {
    const { sql, schema, peerdb } = stack;
    for (const table of ['kept_0', 'kept_1']) {
      await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY)`);
      await sql.query(`INSERT INTO ${schema}.${table} SELECT generate_series(1, 5)`);
    }
    await stack.dispatchPending();
    expect((await stack.waitForVerification('kept_1'))[0]?.status).toBe('match');
    const [mirror] = peerdb.mirrors().map((m) => m.name);

    // The addition's child workflow is attempted 20 times (cdc_flow.go processTableAdditions); then PeerDB fails
    // the mirror. The load works again once EchoDB drops it.
    peerdb.knobs.snapshotFails = [`${schema}.unloadable`];
    try {
      await sql.query(`CREATE TABLE ${schema}.unloadable (id int PRIMARY KEY)`);
      await stack.dispatchPending();
      await until(
        () => Promise.resolve(peerdb.requests.some((r) => r.path === '/v1/mirrors/state_change' && (r.body as { requestedFlowState?: string }).requestedFlowState === 'STATUS_TERMINATING')),
        Boolean,
        90_000,
      );
    } finally {
      peerdb.knobs.snapshotFails = [];
    }
    await sql.query(`CREATE TABLE ${schema}.after_failure (id int PRIMARY KEY)`);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    expect(peerdb.mirrors().map((m) => m.name)).toEqual([mirror]);
    // The tables that were in the failed mirror were snapshotted again, and verified again.
    expect((await stack.waitForVerification('kept_0', 2)).at(-1)).toMatchObject({ status: 'match', postgres_count: '5' });
    expect((await stack.waitForVerification('after_failure'))[0]?.status).toBe('match');
    const { rows } = await sql.query<{ operation: string; tables: string[]; result: string }>(
      'SELECT operation, tables, result FROM echodb.mirror_operations WHERE mirror = $1 ORDER BY id',
      [mirror],
    );
    expect(rows.map((r) => `${r.operation} ${r.result} ${[...r.tables].sort().join(',')}`)).toEqual([
      `create succeeded ${schema}.kept_0,${schema}.kept_1`,
      `drop succeeded ${schema}.kept_0,${schema}.kept_1,${schema}.unloadable`,
      `create succeeded ${schema}.kept_0,${schema}.kept_1,${schema}.unloadable`,
      `add_tables succeeded ${schema}.after_failure`,
    ]);
  }, 180_000);

  itWithDouble('is created again with every table it held when it was dropped behind EchoDB\'s back', async () => {
    const { sql, schema, peerdb } = stack;
    const [mirror] = peerdb.mirrors().map((m) => m.name);
    const verified = (await stack.verifications('kept_0')).length;
    // As an operator dropping it in PeerDB's UI would.
    const dropped = await fetch(`${peerdb.url}/v1/mirrors/state_change`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ flowJobName: mirror, requestedFlowState: 'STATUS_TERMINATING' }),
    });
    expect(dropped.status).toBe(200);
    await until(() => Promise.resolve(peerdb.mirrors().length), (count) => count === 0, 30_000);

    await sql.query(`CREATE TABLE ${schema}.after_drop (id int PRIMARY KEY)`);
    await stack.dispatchPending();
    await expectConverged(stack);
    expect(peerdb.mirrors()[0]?.tables.map((t) => t.sourceTableIdentifier).sort()).toEqual(
      ['after_drop', 'after_failure', 'kept_0', 'kept_1', 'unloadable'].map((table) => `${schema}.${table}`),
    );
    expect((await stack.waitForVerification('kept_0', verified + 1)).at(-1)).toMatchObject({ status: 'match', postgres_count: '5' });
    // Both rebuilds (after the failure and after the drop), as a replay fixture (test/replay.test.ts).
    if (recordingHistories) await saveHistory(stack.temporal, mirrorWorkflowId(mirror!), 'mirror-rebuilt');
  }, 150_000);
});

describe('a table dropped while the create that names it is in flight', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started));

  itWithDouble('is left out when PeerDB refuses the create, and the other tables are mirrored', async () => {
    const { sql, schema, peerdb } = stack;
    // Each request takes 1.5 s (under the 2 s request timeout): time to drop a table once the create is sent.
    peerdb.knobs.latencyMs = 1500;
    for (const table of ['stays', 'vanishes']) await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY)`);
    await stack.dispatchPending();
    await until(() => Promise.resolve(peerdb.requests.some((r) => r.path === '/v1/flows/cdc/create')), Boolean, 30_000);
    await sql.query(`DROP TABLE ${schema}.vanishes`);
    await stack.dispatchPending();
    await expectConverged(stack);

    const creates = peerdb.requests.filter((r) => r.path === '/v1/flows/cdc/create').map((r) => r.status);
    expect(creates).toEqual([500, 200]);
    expect(peerdb.mirrors()[0]?.tables.map((t) => t.sourceTableIdentifier)).toEqual([`${schema}.stays`]);
    const { rows } = await sql.query("SELECT count(*)::int AS failed FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows[0]).toEqual({ failed: 0 });
    if (recordingHistories) await saveHistory(stack.temporal, mirrorWorkflowId(peerdb.mirrors()[0]!.name), 'mirror-create-refused');
  }, 150_000);
});

describe('verify-all while ClickHouse is down', () => {
  let clickhouse: LocalServers<'clickhouse'>;
  let stack: EchoStack;
  reportOnFailure(() => stack);

  async function verifyAll(): Promise<VerifyAllReport> {
    const handle = await startVerifyAll(stack);
    return handle.result();
  }

  beforeAll(async () => {
    clickhouse = await startLocalServers({ only: ['clickhouse'], env: {} });
    stack = await startEchoStack({}, { ...testServers(), clickhouse: clickhouse.settings.clickhouse });
    const { sql, schema } = stack;
    for (const table of ['first', 'second']) {
      await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY)`);
      await sql.query(`INSERT INTO ${schema}.${table} SELECT generate_series(1, 7)`);
    }
    await stack.dispatchPending();
    for (const table of ['first', 'second']) expect((await stack.waitForVerification(table))[0]?.status).toBe('match');
  });
  afterAll(async () => {
    await stack?.close();
    await clickhouse?.stop();
  });

  itWithDouble('reports every table as an error with no counts while ClickHouse is down, and matches once it is back', async () => {
    await clickhouse.stopServer('clickhouse');
    let down: VerifyAllReport;
    try {
      down = await verifyAll();
    } finally {
      await clickhouse.restartServer('clickhouse');
    }
    expect(down).toMatchObject({ tables: 2, matched: 0, mismatched: 0, errors: 2 });
    for (const result of down.results) {
      expect(result).toMatchObject({ status: 'error', postgresCount: null, clickhouseCount: null, difference: null });
    }

    const up = await verifyAll();
    expect(up).toMatchObject({ tables: 2, matched: 2, mismatched: 0, errors: 0 });
    await expectConverged(stack);
  }, 150_000);
});
