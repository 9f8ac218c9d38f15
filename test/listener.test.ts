import { defaultPayloadConverter } from '@temporalio/common';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServers, type LocalServers, type RedisSettings } from './servers/index.js';
import { mirrorWorkflowId, reconcileWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { LEADER_KEY } from '../listener/redis-lease.js';
import type { TableEvent } from '../workflows/model.js';
import { tableEventsSignal } from '../workflows/definitions.js';
import { tablesAddedBy } from './peerdb-double/index.js';
import { runCli } from './support/cli.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { startEchoProcess, type EchoProcess } from './support/echo-process.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { until } from './support/until.js';
import { FAST_ELECTION, TTL_MS } from './support/fast-election.js';
import { testServers } from './support/servers.js';

const INTERVAL_MS = Number(FAST_ELECTION.LEADER_ELECTION_INTERVAL) * 1000;

const redisEnv = (redis: RedisSettings) => ({
  REDIS_HOST: redis.host,
  REDIS_PORT: String(redis.port),
  REDIS_PASSWORD: redis.password,
});

const started: EchoProcess[] = [];

/** `echodb run --roles listener` as a replica of its own; the stack's worker runs the workflows. */
async function startListener(stack: EchoStack, name: string, env: Record<string, string> = {}): Promise<EchoProcess> {
  const listener = await startEchoProcess({ ...stack.env, ...FAST_ELECTION, ...env, WORKER_ID: name }, ['listener']);
  started.push(listener);
  return listener;
}

/** Two listeners; resolves once one of them leads, with the leader first. */
async function startPair(stack: EchoStack, env: Record<string, string> = {}) {
  const [a, b] = await Promise.all([startListener(stack, 'replica-a', env), startListener(stack, 'replica-b', env)]);
  const leader = await Promise.any([a, b].map(async (replica) => (await replica.waitForLine(/is leader/), replica)));
  return leader === a ? { leader: a, follower: b, leaderName: 'replica-a', followerName: 'replica-b' }
    : { leader: b, follower: a, leaderName: 'replica-b', followerName: 'replica-a' };
}

afterEach(async (context) => {
  const replicas = started.splice(0);
  await Promise.all(replicas.map((replica) => replica.stop()));
  if (context.task.result?.state === 'fail') {
    for (const replica of replicas) console.log(`--- listener output:\n${replica.lines.join('\n')}`);
  }
});

interface OutboxRow {
  id: string;
  table_name: string;
  status: string;
  handled_by: string | null;
  skip_reason: string | null;
}

async function outbox(sql: pg.Client): Promise<OutboxRow[]> {
  const { rows } = await sql.query<OutboxRow>(
    'SELECT id, table_name, status, handled_by, skip_reason FROM echodb.ddl_events ORDER BY id',
  );
  return rows;
}

/** Waits until no row is pending, and returns them all. */
function allHandled(sql: pg.Client, count: number, timeoutMs = 60_000): Promise<OutboxRow[]> {
  return until(() => outbox(sql), (rows) => rows.length >= count && rows.every((r) => r.status !== 'pending'), timeoutMs);
}

async function createTables(sql: pg.Client, schema: string, names: string[]): Promise<void> {
  for (const name of names) await sql.query(`CREATE TABLE ${schema}.${name} (id int PRIMARY KEY)`);
}

/** How often the double was asked to put each table into a mirror (create or edit). */
function additionsPerTable(stack: EchoStack): Map<string, number> {
  const additions = new Map<string, number>();
  for (const request of stack.peerdb.requests) {
    for (const table of tablesAddedBy(request)) additions.set(table, (additions.get(table) ?? 0) + 1);
  }
  return additions;
}

const mirroredTables = (stack: EchoStack) =>
  stack.peerdb.mirrors().flatMap((mirror) => mirror.tables.map((table) => table.sourceTableIdentifier)).sort();

/** The tables of the stack's schema as PostgreSQL has them now, as `schema.table`. */
async function schemaTables(stack: EchoStack): Promise<string[]> {
  // A connection of its own: a test may have restarted PostgreSQL under stack.sql.
  const sql = await stack.database.connect();
  try {
    const { rows } = await sql.query<{ name: string }>(
      "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables WHERE table_schema = $1",
      [stack.schema],
    );
    return rows.map((row) => row.name);
  } finally {
    await sql.end();
  }
}

/**
 * Waits until the double's mirrors hold these tables, each added exactly once, and nothing that is not a table
 * of the schema now (whatever other tests of the file mirrored meanwhile).
 */
async function expectMirroredOnce(stack: EchoStack, names: string[], timeoutMs = 90_000): Promise<void> {
  const expected = names.map((name) => `${stack.schema}.${name}`).sort();
  await until(() => Promise.resolve(mirroredTables(stack)), (tables) => expected.every((table) => tables.includes(table)), timeoutMs);
  const added = additionsPerTable(stack);
  expect(expected.filter((table) => added.get(table) !== 1)).toEqual([]);
  const existing = await schemaTables(stack);
  expect(mirroredTables(stack).filter((table) => !existing.includes(table))).toEqual([]);
  const creates = stack.peerdb.requests.filter((r) => r.path === '/v1/flows/cdc/create' && (r.status ?? 500) < 300);
  expect(creates).toHaveLength(stack.peerdb.mirrors().length);
}

/** The event ids the mirror workflow's runs received, signal by signal, in order. */
async function signalledEventIds(stack: EchoStack, mirror: string): Promise<string[]> {
  const ids: string[] = [];
  const { executions } = await stack.temporal.workflowService.listWorkflowExecutions({
    namespace: stack.config.temporal.namespace,
    query: `WorkflowId = '${mirrorWorkflowId(mirror)}'`,
  });
  for (const execution of executions) {
    const handle = stack.temporal.workflow.getHandle(mirrorWorkflowId(mirror), execution.execution?.runId ?? undefined);
    const history = await handle.fetchHistory();
    for (const event of history.events ?? []) {
      const signal = event.workflowExecutionSignaledEventAttributes;
      if (signal?.signalName !== tableEventsSignal.name) continue;
      const [events] = (signal.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload<TableEvent[]>(p));
      ids.push(...(events ?? []).map((e) => e.eventId));
    }
  }
  return ids;
}

const burst = (count: number) => Array.from({ length: count }, (_, i) => `burst_${String(i).padStart(3, '0')}`);

describe.each([
  { backend: 'redis' as const },
  { backend: 'postgres' as const },
])('leader election through $backend', ({ backend }) => {
  let stack: EchoStack;
  let redis: LocalServers<'redis'> | undefined;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    stack = await startEchoStack();
    if (backend === 'redis') {
      // A Redis of this file's own: the tests stop it, and the leader key is the manual's fixed name.
      redis = await startLocalServers({ only: ['redis'], env: {} });
      env = redisEnv(redis.settings.redis);
    }
  });
  afterAll(async () => {
    await stack?.close();
    await redis?.stop();
  });

  it('lets only the leader dispatch, and hands every event to its mirror exactly once', async () => {
    const { sql, schema } = stack;
    const { leaderName, follower } = await startPair(stack, env);
    const names = Array.from({ length: 20 }, (_, i) => `pair_${i}`);
    const before = await outbox(sql);
    const lastIdBefore = BigInt(before.at(-1)?.id ?? 0);
    await createTables(sql, schema, names);

    const rows = (await allHandled(sql, before.length + names.length)).slice(before.length);
    expect(rows.map((r) => r.status)).toEqual(names.map(() => 'dispatched'));
    expect(new Set(rows.map((r) => r.handled_by))).toEqual(new Set([leaderName]));
    expect(follower.lines.some((line) => /is leader/.test(line))).toBe(false);
    await expectMirroredOnce(stack, names);
    // Reconcile (run when a listener becomes leader) may send its own events for tables created meanwhile.
    const ids = (await signalledEventIds(stack, `echodb_${schema}`)).filter((id) => !id.startsWith('reconcile:') && BigInt(id.split(':')[0]!) > lastIdBefore);
    expect(ids.toSorted()).toEqual(rows.map((r) => r.id).toSorted());
  });

  it('fails over within TTL + interval when the leader is killed in the middle of 200 CREATE TABLE', async () => {
    const { sql, schema } = stack;
    const { leader, leaderName, follower, followerName } = await startPair(stack, env);
    const before = (await outbox(sql)).length;
    const names = burst(200);
    // The second half is created after the kill, so the follower has events to take over, however fast the
    // leader was with the first.
    const creatingFirstHalf = createTables(sql, schema, names.slice(0, 100));

    await until(() => outbox(sql), (rows) => rows.slice(before).filter((r) => r.handled_by === leaderName).length >= 40);
    leader.kill('SIGKILL');
    const killedAt = Date.now();
    const creating = creatingFirstHalf.then(() => createTables(sql, schema, names.slice(100)));
    const { at } = await follower.waitForLine(/is leader/, TTL_MS + INTERVAL_MS + 10_000, killedAt);
    await creating;

    expect(at - killedAt).toBeLessThanOrEqual(TTL_MS + INTERVAL_MS + 1500);
    const rows = (await allHandled(sql, before + names.length)).slice(before);
    expect(rows.filter((r) => r.status !== 'dispatched')).toEqual([]);
    expect(rows.some((r) => r.handled_by === followerName)).toBe(true);
    await expectMirroredOnce(stack, names);
  });

  it('hands over at once on SIGTERM: the leader finishes its batch, releases the lease and tells the followers', async () => {
    const { sql, schema } = stack;
    // Renewal every 20 s: only the leader's announcement can explain a takeover within a few seconds.
    const { leader, follower, followerName } = await startPair(stack, {
      ...env,
      LEADER_ELECTION_TTL: '60',
      LEADER_ELECTION_INTERVAL: '20',
    });
    const stoppedAt = Date.now();
    const code = await leader.stop();
    const { at } = await follower.waitForLine(/is leader/, 10_000, stoppedAt);

    expect(code).toBe(0);
    expect(leader.lines).toEqual(expect.arrayContaining([expect.stringMatching(/is follower: released the lease/)]));
    expect(at - stoppedAt).toBeLessThan(5000);
    const before = (await outbox(sql)).length;
    await createTables(sql, schema, ['after_handover']);
    const rows = (await allHandled(sql, before + 1)).slice(before);
    expect(rows).toMatchObject([{ status: 'dispatched', handled_by: followerName }]);
  });

  if (backend === 'redis') {
    it('dispatches nothing while Redis is down, and everything once it is back', async () => {
      const { sql, schema } = stack;
      const { leader } = await startPair(stack, env);
      const before = (await outbox(sql)).length;
      const stoppedAt = Date.now();
      await redis!.stopServer('redis');
      await leader.waitForLine(/is follower: lease ran out/, TTL_MS + 5000, stoppedAt);
      const names = ['while_redis_down_1', 'while_redis_down_2', 'while_redis_down_3'];
      await createTables(sql, schema, names);
      // Time passing is the behaviour: nothing is dispatched during two election intervals without Redis.
      await new Promise((resolve) => setTimeout(resolve, 2 * INTERVAL_MS + 500));
      const waiting = (await outbox(sql)).slice(before);
      expect(waiting.map(({ table_name, status }) => ({ table_name, status }))).toEqual(
        names.map((table_name) => ({ table_name, status: 'pending' })),
      );

      await redis!.restartServer('redis');
      const rows = (await allHandled(sql, before + names.length)).slice(before);
      expect(rows.map((r) => r.status)).toEqual(names.map(() => 'dispatched'));
    });

    it('stops dispatching at once when another replica holds the lease, and goes on once it leads again', async () => {
      const { sql, schema } = stack;
      const listener = await startListener(stack, 'replica-a', env);
      await listener.waitForLine(/is leader/);
      const redisClient = new Redis(redis!.settings.redis);
      try {
        // As if this leader had stalled past its TTL and another replica had taken the lease meanwhile.
        await redisClient.set(LEADER_KEY, 'replica-z:intruder', 'PX', 60_000);
        const takenAt = Date.now();
        const before = (await outbox(sql)).length;
        await createTables(sql, schema, ['while_fenced']);
        await listener.waitForLine(/is follower: no longer holds the lease/, 10_000, takenAt);
        // Time passing is the behaviour: nothing is dispatched during two election intervals without the lease.
        await new Promise((resolve) => setTimeout(resolve, 2 * INTERVAL_MS));
        expect((await outbox(sql)).slice(before).map((r) => r.status)).toEqual(['pending']);

        await redisClient.del(LEADER_KEY);
        const rows = (await allHandled(sql, before + 1)).slice(before);
        expect(rows).toMatchObject([{ status: 'dispatched', handled_by: 'replica-a' }]);
      } finally {
        redisClient.disconnect();
      }
    });
  }
});

describe('a PostgreSQL restart under a running listener', () => {
  let postgres: LocalServers<'postgres'>;
  let stack: EchoStack;

  beforeAll(async () => {
    postgres = await startLocalServers({ only: ['postgres'], env: {} });
    stack = await startEchoStack({ POSTGRES_TIMEOUT: '1' }, { ...testServers(), postgres: postgres.settings.postgres });
  });
  afterAll(async () => {
    await stack?.close();
    await postgres?.stop();
  });

  it('reconnects, takes the lease again and catches up on what was committed meanwhile', async () => {
    const listener = await startListener(stack, 'replica-a');
    await listener.waitForLine(/is leader/);
    await createTables(stack.sql, stack.schema, ['before_restart']);
    await allHandled(stack.sql, 1);

    stack.sql.on('error', () => undefined); // the restart ends this connection
    const stoppedAt = Date.now();
    await postgres.stopServer('postgres');
    await postgres.restartServer('postgres');
    // Committed before the listener is back: no notification reaches it, only the outbox has them.
    const sql = await stack.database.connect();
    const names = ['after_restart_1', 'after_restart_2', 'after_restart_3'];
    await createTables(sql, stack.schema, names);

    await listener.waitForLine(/reconnecting to PostgreSQL/, 10_000, stoppedAt);
    const rows = await allHandled(sql, 1 + names.length);
    expect(rows.map((r) => r.status)).toEqual(['dispatched', ...names.map(() => 'dispatched')]);
    await expectMirroredOnce(stack, ['before_restart', ...names]);
  });
});

describe('filters and reconcile', () => {
  let stack: EchoStack;
  const other = (schema: string) => `${schema}_other`;

  beforeAll(async () => {
    stack = await startEchoStack(
      (schema) => ({ EXCLUDED_TABLES: `temp_*,${schema}.audit_*` }),
      testServers(),
      {
        // Tables that exist before `echodb setup`: no event was ever recorded for them.
        beforeSetup: async (sql, schema) => {
          await sql.query(`CREATE TABLE ${schema}.early (id int PRIMARY KEY)`);
          await sql.query(`INSERT INTO ${schema}.early SELECT generate_series(1, 5)`);
          await sql.query(`CREATE TABLE ${schema}.temp_early (id int PRIMARY KEY)`);
          await sql.query(`CREATE SCHEMA ${other(schema)}`);
        },
      },
    );
  });
  afterAll(async () => {
    await stack?.close();
  });
  afterEach(async (context) => {
    if (context.task.result?.state !== 'fail') return;
    const { rows } = await stack.sql.query('SELECT mirror, operation, tables, result, error FROM echodb.mirror_operations ORDER BY id');
    const mirrors = stack.peerdb.mirrors().map(({ name, status, error }) => ({ name, status, error }));
    console.log(
      `--- mirror operations:\n${JSON.stringify(rows, null, 1)}\n--- PeerDB double's mirrors:\n${JSON.stringify(mirrors)}` +
        `\n--- worker output:\n${stack.worker.lines.filter((line) => !/webpack|modules|\[built\]/.test(line)).slice(-60).join('\n')}`,
    );
  });

  it('mirrors a table created before setup as soon as a listener leads, but no excluded one', async () => {
    const listener = await startListener(stack, 'replica-a');
    await listener.waitForLine(/reconcile echodb-reconcile:.* started/);
    await expectMirroredOnce(stack, ['early']);
    expect(mirroredTables(stack)).not.toContain(`${stack.schema}.temp_early`);
    const [verification] = await stack.waitForVerification('early');
    expect(verification).toMatchObject({ status: 'match', postgres_count: '5' });
  });

  it('skips, with the reason, tables outside SYNC_SCHEMA and tables an EXCLUDED_TABLES glob matches', async () => {
    const { sql, schema } = stack;
    await startListener(stack, 'replica-a');
    const before = (await outbox(sql)).length;
    await sql.query(`CREATE TABLE ${schema}.orders (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.temp_orders (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.audit_log (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${other(schema)}.orders (id int PRIMARY KEY)`);

    const rows = (await allHandled(sql, before + 4)).slice(before);
    expect(rows.map(({ table_name, status, skip_reason }) => ({ table_name, status, skip_reason }))).toEqual([
      { table_name: 'orders', status: 'dispatched', skip_reason: null },
      { table_name: 'temp_orders', status: 'skipped', skip_reason: 'matches EXCLUDED_TABLES pattern temp_*' },
      { table_name: 'audit_log', status: 'skipped', skip_reason: `matches EXCLUDED_TABLES pattern ${schema}.audit_*` },
      { table_name: 'orders', status: 'skipped', skip_reason: `schema not in SYNC_SCHEMA (${schema})` },
    ]);
    await expectMirroredOnce(stack, ['early', 'orders']);
  });

  it('on demand, removes a mirrored table that was dropped while the triggers were off', async () => {
    const { sql, schema } = stack;
    const listener = await startListener(stack, 'replica-a');
    await sql.query(`CREATE TABLE ${schema}.dropped_unseen (id int PRIMARY KEY)`);
    await expectMirroredOnce(stack, ['early', 'dropped_unseen']);
    // The mapping is in place before the snapshot ends: the table is dropped once its snapshot has ended.
    await stack.waitForVerification('dropped_unseen');
    // No listener from here on: the reconcile asked for below is the one that finds the table gone.
    await listener.stop();
    const mirroredBefore = mirroredTables(stack);
    await sql.query('ALTER EVENT TRIGGER peerdb_auto_mirror_drop_trigger DISABLE');
    try {
      await sql.query(`DROP TABLE ${schema}.dropped_unseen`);
    } finally {
      await sql.query('ALTER EVENT TRIGGER peerdb_auto_mirror_drop_trigger ENABLE');
    }
    const result = await runCli(['reconcile'], stack.env);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain('reconcile: 0 to add, 1 to remove');
    expect(result.stdout).toContain(`remove ${schema}.dropped_unseen from echodb_${schema}`);
    expect(result.stdout).toContain(`skip   ${schema}.temp_early: matches EXCLUDED_TABLES pattern temp_*`);
    if (recordingHistories) {
      await saveHistory(stack.temporal, reconcileWorkflowId(stack.config.temporal.taskQueue), 'reconcile-remove-dropped-table');
    }
    const expected = mirroredBefore.filter((table) => table !== `${schema}.dropped_unseen`);
    await until(
      () => Promise.resolve(mirroredTables(stack)),
      (tables) => JSON.stringify(tables) === JSON.stringify(expected),
      60_000,
    );

    const again = await runCli(['reconcile'], stack.env);
    expect(again.stdout).toContain('reconcile: 0 to add, 0 to remove');
  });
});
