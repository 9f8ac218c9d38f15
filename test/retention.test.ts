import crypto from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { pino } from 'pino';
import pg from 'pg';
import { latestVerifications, mirrorsOverview } from '../api/state.js';
import { createBreakers } from '../lib/circuit-breaker.js';
import { loadConfig } from '../lib/config.js';
import type { SourceQuery } from '../lib/mirrored-tables.js';
import { deleteOldRows, type CleanupReport } from '../lib/retention.js';
import { cleanupScheduleId } from '../lib/workflow-safe/workflow-ids.js';
import { installCapture, readMigrations } from '../sql/migrations.js';
import { createEchoWorker } from '../workers/worker.js';
import { postgresEnv, runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { testServers } from './support/servers.js';
import { until } from './support/until.js';

// The worker of the schedule test logs errors only.
Runtime.install({ logger: new DefaultLogger('ERROR') });

const DAY = 24 * 60 * 60 * 1000;

/**
 * A history with rows on both sides of a 30-day cutoff, each row's age in days in its name, so that what is left
 * reads as a list. Rows of a table or a mirror are inserted oldest first: the highest id is the latest, as
 * api/state.ts picks it.
 */
async function fillHistory(db: pg.Client): Promise<void> {
  const at = (days: number) => new Date(Date.now() - days * DAY);
  const verification = (table: string, days: number) =>
    db.query(
      `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                         postgres_count, clickhouse_count, attempts, verified_at)
       VALUES ($1, $2, 'echodb_public', 'public', $3, $3, 'match', 1, 1, 1, $4)`,
      [`verify:${table}:${days}`, crypto.randomUUID(), table, at(days)],
    );
  const operation = (mirror: string, days: number) =>
    db.query(
      `INSERT INTO echodb.mirror_operations (operation_key, mirror, operation, result, workflow_id, created_at)
       VALUES ($1, $2, 'add_tables', 'succeeded', $3, $4)`,
      [crypto.randomUUID(), mirror, `op:${mirror}:${days}`, at(days)],
    );
  const diff = (table: string, days: number) =>
    db.query(
      `INSERT INTO echodb.row_diffs (workflow_id, run_id, mirror, schema_name, table_name, destination, status, report, diffed_at)
       VALUES ($1, $2, 'echodb_public', 'public', $3, $3, 'match', '{}', $4)`,
      [`diff:${table}:${days}`, crypto.randomUUID(), table, at(days)],
    );
  const event = (status: string, days: number) =>
    db.query(
      `INSERT INTO echodb.ddl_events (operation, schema_name, table_name, relation_oid, command_tag, status, created_at)
       VALUES ('create', 'public', $1, 1, 'CREATE TABLE', $2, $3)`,
      [`${status}_${days}`, status, at(days)],
    );
  // `busy` is verified often, and recently too; `quiet` was last verified 31 days ago. Each is in a mirror of its own.
  await db.query(
    `INSERT INTO echodb.destination_claims (destination, source, mirror)
     VALUES ('busy', 'public.busy', 'echodb_busy'), ('quiet', 'public.quiet', 'echodb_quiet')`,
  );
  for (const days of [40, 35, 31, 1]) await verification('busy', days);
  for (const days of [40, 35, 31]) await verification('quiet', days);
  for (const days of [40, 35, 1]) await diff('busy', days);
  await diff('quiet', 40);
  for (const days of [40, 31, 2]) await operation('echodb_busy', days);
  for (const days of [40, 31]) await operation('echodb_quiet', days);
  for (const [status, days] of [['dispatched', 40], ['skipped', 40], ['pending', 40], ['pending', 1], ['dispatched', 1]] as const) {
    await event(status, days);
  }
}

async function remaining(db: pg.Client) {
  const names = async (sql: string) => (await db.query<{ name: string }>(sql)).rows.map((row) => row.name);
  return {
    verifications: await names('SELECT workflow_id AS name FROM echodb.verifications ORDER BY id'),
    operations: await names('SELECT workflow_id AS name FROM echodb.mirror_operations ORDER BY id'),
    events: await names('SELECT table_name AS name FROM echodb.ddl_events ORDER BY id'),
    diffs: await names('SELECT workflow_id AS name FROM echodb.row_diffs ORDER BY id'),
  };
}

const kept = {
  verifications: ['verify:busy:1', 'verify:quiet:31'],
  operations: ['op:echodb_busy:2', 'op:echodb_quiet:31'],
  events: ['pending_40', 'pending_1', 'dispatched_1'],
  diffs: ['diff:busy:1', 'diff:quiet:40'],
};

const byTable = (report: CleanupReport) => Object.fromEntries(report.tables.map(({ table, ...rest }) => [table, rest]));

describe('retention', () => {
  let database: TestDatabase;
  let db: pg.Client;
  let pool: pg.Pool;
  let query: SourceQuery;

  beforeEach(async () => {
    database = await createTestDatabase();
    db = await database.connect();
    await installCapture(db);
    // A pool, as the CLI and the worker use: the API's reads run their queries side by side.
    pool = new pg.Pool(database.settings);
    query = (text, values) => pool.query(text, values);
  });

  afterEach(async () => {
    await pool.end();
    await database.drop();
  });

  it("deletes what is older than the cutoff but each table's latest verification, each mirror's latest operation and every pending event", async () => {
    await fillHistory(db);
    const [latestBefore, mirrorsBefore] = [await latestVerifications(query, 100), await mirrorsOverview(query)];

    const report = await deleteOldRows(query, { olderThanDays: 30, batchSize: 2 });

    expect(await remaining(db)).toEqual(kept);
    expect(report.tables.map(({ table, deleted, batches, largestBatch }) => ({ table, deleted, batches, largestBatch }))).toEqual([
      { table: 'ddl_events', deleted: 2, batches: 1, largestBatch: 2 },
      { table: 'mirror_operations', deleted: 3, batches: 2, largestBatch: 2 },
      { table: 'verifications', deleted: 5, batches: 3, largestBatch: 2 },
      { table: 'row_diffs', deleted: 2, batches: 1, largestBatch: 2 },
    ]);
    expect(Date.now() - Date.parse(report.cutoff)).toBeGreaterThanOrEqual(30 * DAY);
    // What the API and `echodb status` show is what they showed before.
    expect(await latestVerifications(query, 100)).toEqual(latestBefore);
    expect(await mirrorsOverview(query)).toEqual(mirrorsBefore);

    const again = await deleteOldRows(query, { olderThanDays: 30, batchSize: 2 });
    expect(again.tables.map(({ deleted }) => deleted)).toEqual([0, 0, 0, 0]);
  });

  it('deletes a long history in statements of at most the batch size, and counts without deleting in a dry run', async () => {
    await db.query(
      `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                         postgres_count, clickhouse_count, attempts, verified_at)
       SELECT 'history', g::text, 'm', 'public', 't' || (g % 3), 't', 'match', 1, 1, 1, now() - interval '60 days' + g * interval '1 minute'
         FROM generate_series(1, 1000) g`,
    );
    const progress: number[] = [];

    const dryRun = await deleteOldRows(query, { olderThanDays: 7, batchSize: 100, dryRun: true });
    expect(byTable(dryRun).verifications).toEqual({ deleted: 997, batches: 0, largestBatch: 0, longestBatchMs: 0 });
    expect((await db.query('SELECT 1 FROM echodb.verifications')).rowCount).toBe(1000);

    const report = await deleteOldRows(query, {
      olderThanDays: 7,
      batchSize: 100,
      onBatch: ({ table, deleted }) => table === 'verifications' && progress.push(deleted),
    });
    expect(byTable(report).verifications).toMatchObject({ deleted: 997, batches: 10, largestBatch: 100 });
    expect(progress).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 997]);
    // The latest of t2, t0 and t1.
    const { rows } = await db.query<{ run_id: string }>('SELECT run_id FROM echodb.verifications ORDER BY id');
    expect(rows.map((row) => row.run_id)).toEqual(['998', '999', '1000']);
  });

  it('stops between two batches when aborted', async () => {
    await fillHistory(db);
    const controller = new AbortController();
    await expect(
      deleteOldRows(query, { olderThanDays: 30, batchSize: 1, onBatch: () => controller.abort(), signal: controller.signal }),
    ).rejects.toThrow(/aborted/);
    expect((await remaining(db)).events).toEqual(['skipped_40', ...kept.events]);
  });

  it("reads each table's latest verification, newest first, whatever the names", async () => {
    // Names that sort next to each other and hold dots, quotes, spaces and capitals; rows of one table out of time order.
    const tables = [['a', 't'], ['a', 't '], ['a', 'tt'], ['a.b', 't'], ['A"b', 'T'], ['z', '']] as const;
    const rows: { workflowId: string; schema: string; table: string }[] = [];
    for (const [index, [schema, table]] of tables.entries()) {
      for (const days of [3, 9, 1, 5]) {
        const workflowId = `verify:${schema}:${table}:${days}`;
        await db.query(
          `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                             postgres_count, clickhouse_count, attempts, verified_at)
           VALUES ($1, 'r', 'm', $2, $3, $3, 'match', 1, 1, 1, $4)`,
          [workflowId, schema, table, new Date(Date.now() - days * DAY - index * 1000)],
        );
        rows.push({ workflowId, schema, table });
      }
    }
    const latest = tables.map(([schema, table]) => rows.filter((r) => r.schema === schema && r.table === table).at(-1)!);
    // The last row of each table is 5 days old, the tables a second apart: newest first is the order of `tables`.
    expect((await latestVerifications(query, 100)).map((row) => row.workflow_id)).toEqual(latest.map((r) => r.workflowId));
    expect((await latestVerifications(query, 2)).map((row) => row.workflow_id)).toEqual(latest.slice(0, 2).map((r) => r.workflowId));
  });

  it('`echodb cleanup` prints what it deleted per table, and counts with --dry-run', async () => {
    await fillHistory(db);
    const env = postgresEnv(database.settings);

    const dryRun = await runCli(['cleanup', '--older-than', '30', '--dry-run'], env);
    expect(dryRun).toMatchObject({ code: 0, stderr: '' });
    expect(dryRun.stdout).toMatch(/^cleanup \(dry run\): would delete rows older than 30 day\(s\) \(before \S+Z\), 1000 a statement/);
    expect(dryRun.stdout).toMatch(/^ {2}echodb\.ddl_events {9}would delete 2$/m);
    expect(dryRun.stdout).toMatch(/^ {2}echodb\.mirror_operations {2}would delete 3$/m);
    expect(dryRun.stdout).toMatch(/^ {2}echodb\.verifications {6}would delete 5$/m);
    expect(dryRun.stdout).toMatch(/^ {2}echodb\.row_diffs +would delete 2$/m);
    expect((await remaining(db)).verifications).toHaveLength(7);

    const deleted = await runCli(['cleanup', '--older-than', '30', '--batch-size', '2'], env);
    expect(deleted).toMatchObject({ code: 0, stderr: '' });
    expect(deleted.stdout).toMatch(/^ {2}echodb\.verifications {6}deleted 5 in 3 batch\(es\), the longest \d+ ms$/m);
    expect(deleted.stdout).toContain("kept whatever their age: pending events, each table's latest verification and row diff, each mirror's latest operation");
    expect(await remaining(db)).toEqual(kept);

    const json = await runCli(['cleanup', '--json'], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ olderThanDays: 7, batchSize: 1000, dryRun: false, tables: [{ table: 'ddl_events', deleted: 0 }, {}, {}, {}] });
  });

  it('`echodb cleanup` on a database without EchoDB fails with exit 1 and says so', async () => {
    const bare = await createTestDatabase();
    try {
      const result = await runCli(['cleanup'], postgresEnv(bare.settings));
      expect(result).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toMatch(/^echodb: EchoDB is not installed in this database .*run `echodb setup` first/);
    } finally {
      await bare.drop();
    }
  });
});

describe('migration 006', () => {
  it("turns the outbox's never-written 'failed' rows into pending ones, then refuses the status", async () => {
    const database = await createTestDatabase();
    try {
      const db = await database.connect();
      await installCapture(db, readMigrations().filter((m) => m.version <= 5));
      await db.query(
        `INSERT INTO echodb.ddl_events (operation, schema_name, table_name, relation_oid, command_tag, status)
         VALUES ('create', 'public', 'lost', 1, 'CREATE TABLE', 'failed')`,
      );

      expect((await installCapture(db, readMigrations().filter((m) => m.version <= 6))).map((m) => m.name)).toEqual(['retention']);

      expect((await db.query('SELECT table_name, status FROM echodb.ddl_events')).rows).toEqual([{ table_name: 'lost', status: 'pending' }]);
      await expect(db.query("UPDATE echodb.ddl_events SET status = 'failed'")).rejects.toThrow(/ddl_events_status_check/);
    } finally {
      await database.drop();
    }
  });
});

describe('the cleanup schedule', () => {
  const { temporal: server } = testServers();
  let database: TestDatabase;
  let connection: Connection;
  let client: Client;
  const taskQueue = `echodb-cleanup-test-${crypto.randomBytes(4).toString('hex')}`;
  const scheduleId = cleanupScheduleId(taskQueue);

  beforeAll(async () => {
    database = await createTestDatabase();
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection, namespace: server.namespace });
  });

  afterAll(async () => {
    await client?.schedule.getHandle(scheduleId).delete().catch(() => undefined);
    await client?.schedule.getHandle(`echodb-verify-all:${taskQueue}`).delete().catch(() => undefined);
    await connection?.close();
    await database?.drop();
  });

  it('is created by `setup` with CLEANUP_INTERVAL, runs cleanupWorkflow, is deleted when turned off and by `uninstall`', async () => {
    const env = {
      ...postgresEnv(database.settings),
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: server.namespace,
      TEMPORAL_TASK_QUEUE: taskQueue,
      RETENTION_DAYS: '30',
      RETENTION_BATCH_SIZE: '2',
    };

    const created = await runCli(['setup', '--no-peers'], { ...env, CLEANUP_INTERVAL: '3600' });
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toContain(`setup: cleanup schedule ${scheduleId} created (every 3600 s, rows older than 30 days)`);
    const handle = client.schedule.getHandle(scheduleId);
    const description = await handle.describe();
    expect(description.spec.intervals).toEqual([expect.objectContaining({ every: 3_600_000 })]);
    expect(description.policies.overlap).toBe('SKIP');
    expect(description.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'cleanupWorkflow',
      workflowId: `echodb-cleanup-scheduled:${taskQueue}`,
      taskQueue,
    });
    expect((await runCli(['setup', '--no-peers'], env)).stdout).toContain(`setup: cleanup schedule ${scheduleId} updated (every 86400 s, rows older than 30 days)`);

    // A run, as the schedule starts it, on a worker of this deployment. The schedule is paused first: its
    // intervals are aligned to the epoch, so a test that runs across the hour would otherwise get a run of its own
    // (which a trigger still starts when paused), and any it started already is ended.
    await handle.pause('the test triggers its own run');
    for (const action of (await handle.describe()).info.runningActions) {
      await client.workflow.getHandle(action.workflow.workflowId).terminate('the test triggers its own run');
    }
    const db = await database.connect();
    await fillHistory(db);
    const config = loadConfig({ envFile: false, env });
    const worker = await createEchoWorker(config, { breakers: createBreakers(config, pino({ level: 'silent' })), temporal: client });
    const running = worker.run();
    try {
      const before = (await handle.describe()).info.recentActions.length;
      await handle.trigger();
      const { recentActions } = await until(() => handle.describe().then((d) => d.info), (info) => info.recentActions.length > before);
      const run = client.workflow.getHandle(recentActions.at(-1)!.action.workflow.workflowId);
      const report = (await run.result()) as CleanupReport;
      expect(report.tables.map(({ table, deleted, batches }) => `${table} ${deleted} in ${batches}`)).toEqual([
        'ddl_events 2 in 1',
        'mirror_operations 3 in 2',
        'verifications 5 in 3',
        'row_diffs 2 in 1',
      ]);
      expect(await remaining(db)).toEqual(kept);
      // The activity heartbeats (after each batch): it was scheduled with a heartbeat timeout.
      const history = await run.fetchHistory();
      expect(history.events?.some((event) => event.activityTaskScheduledEventAttributes?.heartbeatTimeout)).toBe(true);
      if (recordingHistories) await saveHistory(client, run.workflowId, 'cleanup-scheduled');
    } finally {
      worker.shutdown();
      await running;
    }

    const off = await runCli(['setup', '--no-peers'], { ...env, CLEANUP_INTERVAL: 'off' });
    expect(off.stdout).toContain(`setup: cleanup schedule ${scheduleId} deleted (CLEANUP_INTERVAL is off)`);
    await expect(handle.describe()).rejects.toThrow(ScheduleNotFoundError);

    await runCli(['setup', '--no-peers'], env);
    const removed = await runCli(['uninstall'], env);
    expect(removed).toMatchObject({ code: 0, stderr: '' });
    expect(removed.stdout).toContain(`uninstall: deleted the cleanup schedule ${scheduleId}`);
    await expect(handle.describe()).rejects.toThrow(ScheduleNotFoundError);
  });
});
