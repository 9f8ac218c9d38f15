/**
 * Verification in batches against the real servers: countTables counts a batch with one statement per database
 * (counted at the clients), falls back to each table alone when a statement fails, and never counts an unreachable
 * side as 0; recordVerifications records each table once per run (migration 007); and a mirror edit's tables are
 * verified by one batch workflow, whose mismatching and missing tables get verify workflows of their own.
 */
import crypto from 'node:crypto';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVerifyActivities } from '../activities/verify-activities.js';
import { qualifiedTable } from '../lib/clickhouse-sql.js';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { loadConfig } from '../lib/config.js';
import type { PeerDbClient } from '../lib/peerdb/client.js';
import { searchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { installCapture, readMigrations } from '../sql/migrations.js';
import type { MirrorTable, VerificationResult } from '../workflows/model.js';
import { createTestClickHouse, type TestClickHouse } from './support/clickhouse.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { startEchoStack, type EchoStack, type VerificationRow } from './support/echo-stack.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { until } from './support/until.js';

/** Names that break naive quoting on either side, 63 bytes at most as PostgreSQL keeps them. */
const NAMES = ['plain', 'Mixed Case', 'with "quotes"', "it's", 'back\\slash', 'with`backtick', 'dot.ted', 'ünïcødé_表', 'select', 'x'.repeat(63)];

/** A ClickHouse table as PeerDB makes it (the columns verification reads), with `live` live rows and one deleted. */
async function peerDbTable(clickhouse: ClickHouseClient, database: string, name: string, live: number): Promise<void> {
  const table = qualifiedTable(database, name);
  await clickhouse.command({
    query: `CREATE TABLE ${table} (id Int64, _peerdb_is_deleted UInt8, _peerdb_version UInt64) ENGINE = ReplacingMergeTree(_peerdb_version) ORDER BY id`,
  });
  const rows = Array.from({ length: live + 1 }, (_, i) => `(${i + 1}, 0, 1)`);
  await clickhouse.command({ query: `INSERT INTO ${table} VALUES ${rows.join(', ')}` });
  // The last id deleted since: FINAL keeps that version, and it is left out.
  await clickhouse.command({ query: `INSERT INTO ${table} VALUES (${live + 1}, 1, 2)` });
}

describe('countTables and recordVerifications, against the real PostgreSQL and ClickHouse', () => {
  let database: TestDatabase;
  let sql: pg.Client;
  let pool: pg.Pool;
  let clickhouse: TestClickHouse;
  const schema = `batch ${crypto.randomBytes(3).toString('hex')} "s"`;
  /** The statements each side received, as the activities sent them. */
  const sent = { postgres: [] as string[], clickhouse: [] as string[] };

  /** The verify activities as a worker makes them, with clients that note every statement. */
  function activities(clickhouseUrl?: string) {
    const chClient = clickhouseUrl === undefined
      ? clickhouse.client
      : createClient({ url: clickhouseUrl, request_timeout: 2000, log: { level: ClickHouseLogLevel.OFF } });
    const noted = {
      query: (params: Parameters<ClickHouseClient['query']>[0]) => {
        sent.clickhouse.push(params.query);
        return chClient.query(params);
      },
    } as unknown as ClickHouseClient;
    const notedPool = {
      query: (text: string, values?: unknown[]) => {
        sent.postgres.push(text);
        return pool.query(text, values);
      },
    } as unknown as pg.Pool;
    return createVerifyActivities({
      config: loadConfig({ env: { CLICKHOUSE_DB: clickhouse.database }, envFile: false }),
      postgres: notedPool,
      postgresBreaker: new CircuitBreaker('postgres', { failureThreshold: 1000, successThreshold: 1, timeoutMs: 1000 }, () => true),
      clickhouse: noted,
      peerdb: {} as PeerDbClient,
      temporal: new Client(),
    });
  }
  const run = <T>(work: () => Promise<T>): Promise<T> => new MockActivityEnvironment().run<[], T, () => Promise<T>>(work);

  /** Tables `prefix` + each name, with i + 1 live rows on both sides. */
  async function tablesOnBothSides(prefix: string): Promise<MirrorTable[]> {
    const tables: MirrorTable[] = [];
    for (const [i, name] of NAMES.entries()) {
      const table = `${prefix}${name}`.slice(0, 63);
      await sql.query(`CREATE TABLE ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} (id int PRIMARY KEY)`);
      await sql.query(`INSERT INTO ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} SELECT generate_series(1, $1::int)`, [i + 1]);
      await peerDbTable(clickhouse.client, clickhouse.database, table, i + 1);
      tables.push({ schema, table, source: `${schema}.${table}`, destination: table });
    }
    return tables;
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    sql = await database.connect();
    pool = new pg.Pool(database.settings);
    clickhouse = await createTestClickHouse();
    await installCapture(sql);
    await sql.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
  });
  afterAll(async () => {
    await pool?.end();
    await clickhouse?.drop();
    await database?.drop();
  });

  it('counts a whole batch with one statement on each side, each table as it is counted alone', async () => {
    const tables = await tablesOnBothSides('a ');
    sent.postgres.length = 0;
    sent.clickhouse.length = 0;

    const counts = await run(() => activities().countTables(tables));

    expect(counts).toEqual(tables.map((_, i) => ({ counts: { postgres: i + 1, clickhouse: i + 1 } })));
    expect(sent.postgres).toHaveLength(1);
    expect(sent.clickhouse).toHaveLength(1);
    expect(sent.postgres[0]!.split(' UNION ALL ')).toHaveLength(tables.length);
    // The same counts as one table at a time.
    for (const [i, table] of tables.entries()) {
      expect(await run(() => activities().countRows(table))).toEqual({ postgres: i + 1, clickhouse: i + 1 });
    }
  });

  it('counts each table alone when one is missing on a side: an error for that table only, counts for the others', async () => {
    const tables = await tablesOnBothSides('b ');
    const [goneInClickHouse, goneInPostgres] = [tables[2]!, tables[5]!];
    await clickhouse.client.command({ query: `DROP TABLE ${qualifiedTable(clickhouse.database, goneInClickHouse.destination)}` });
    await sql.query(`DROP TABLE ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(goneInPostgres.table)}`);
    sent.postgres.length = 0;
    sent.clickhouse.length = 0;

    const counts = await run(() => activities().countTables(tables));

    for (const [i, count] of counts.entries()) {
      if (i === 2) expect(count).toEqual({ error: expect.stringMatching(/^ClickHouse: .*(doesn't exist|UNKNOWN_TABLE)/) as unknown });
      else if (i === 5) expect(count).toEqual({ error: expect.stringMatching(/^PostgreSQL: relation .* does not exist/) as unknown });
      else expect(count).toEqual({ counts: { postgres: i + 1, clickhouse: i + 1 } });
    }
    // The batch statement, then each table alone, on each side.
    expect(sent.postgres).toHaveLength(1 + tables.length);
    expect(sent.clickhouse).toHaveLength(1 + tables.length);
  });

  it('fails, rather than counting 0, when ClickHouse cannot be reached', async () => {
    const tables = await tablesOnBothSides('c ');
    await expect(run(() => activities('http://127.0.0.1:1').countTables(tables))).rejects.toThrow(/ECONNREFUSED/);
  });

  it('records the verifications of a run once per table, however often the activity runs', async () => {
    const result = (table: string, status: VerificationResult['status']): VerificationResult => ({
      workflowId: 'test', mirror: 'm', schema, table, destination: table, status,
      postgresCount: status === 'error' ? null : 3, clickhouseCount: status === 'error' ? null : status === 'match' ? 3 : 2,
      match: status === 'match', difference: status === 'error' ? null : status === 'match' ? 0 : 1, attempts: 1,
      ...(status === 'error' && { error: 'ClickHouse: gone' }), timestamp: new Date().toISOString(),
    });
    const results = [result('r1', 'match'), result('r2', 'mismatch'), result('r3', 'error')];
    await run(() => activities().recordVerifications(results));
    await run(() => activities().recordVerifications(results));
    await run(() => activities().recordVerification(result('r4', 'match')));
    await run(() => activities().recordVerification(result('r4', 'match')));

    const { rows } = await sql.query<VerificationRow>(
      "SELECT * FROM echodb.verifications WHERE workflow_id = 'test' AND schema_name = $1 ORDER BY table_name",
      [schema],
    );
    expect(rows.map((row) => [row.table_name, row.status, row.postgres_count, row.clickhouse_count, row.error])).toEqual([
      ['r1', 'match', '3', '3', null],
      ['r2', 'mismatch', '3', '2', null],
      ['r3', 'error', null, null, 'ClickHouse: gone'],
      ['r4', 'match', '3', '3', null],
    ]);
  });
});

describe('migration 007', () => {
  it('lets one workflow run record many tables, each of them once', async () => {
    const database = await createTestDatabase();
    try {
      const db = await database.connect();
      await installCapture(db, readMigrations().filter((m) => m.version <= 6));
      const insert = (table: string) =>
        db.query(
          `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                             postgres_count, clickhouse_count, attempts)
           VALUES ('w', 'r', 'm', 'public', $1, $1, 'match', 1, 1, 1)`,
          [table],
        );
      await insert('a');
      await expect(insert('b')).rejects.toThrow(/verifications_run_idx/);

      expect((await installCapture(db)).map((m) => m.name)).toContain('verification_batches');

      await insert('b');
      await expect(insert('b')).rejects.toThrow(/verifications_run_table_idx/);
      const { rows } = await db.query('SELECT table_name FROM echodb.verifications ORDER BY id');
      expect(rows).toEqual([{ table_name: 'a' }, { table_name: 'b' }]);
    } finally {
      await database.drop();
    }
  });
});

describe('a mirror edit verified in one batch', () => {
  let stack: EchoStack;
  afterAll(async () => {
    await stack?.close();
  });

  it('counts the edit\'s tables once together; a mismatching table and one missing in ClickHouse get verify workflows of their own', async () => {
    // A delay long enough to change the tables between their snapshot and their first count.
    stack = await startEchoStack({ VERIFY_DELAY: '3', VERIFY_ATTEMPTS: '3', VERIFY_INTERVAL: '0.3' });
    const { sql, schema } = stack;
    const mirror = `echodb_${schema}`;
    const matching = Array.from({ length: 8 }, (_, i) => `ok_${i}`);
    await sql.query('BEGIN');
    for (const table of [...matching, 'drifting', 'gone']) {
      await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY)`);
      await sql.query(`INSERT INTO ${schema}.${table} SELECT generate_series(1, 5)`);
    }
    await sql.query('COMMIT');
    await stack.dispatchPending();
    // Once the mirror exists (the snapshots are in ClickHouse), within VERIFY_DELAY: rows ClickHouse will never see
    // (the double does no CDC), and a ClickHouse table gone.
    await until(
      () => sql.query("SELECT 1 FROM echodb.mirror_operations WHERE operation = 'create' AND result = 'succeeded'"),
      (result) => result.rows.length > 0,
    );
    await sql.query(`INSERT INTO ${schema}.drifting SELECT generate_series(6, 8)`);
    await stack.clickhouse.client.command({ query: `DROP TABLE ${stack.clickhouse.database}.gone` });

    const latest = async (table: string) => (await stack.waitForVerification(table, 1, 60_000))[0]!;
    const rows: Record<string, VerificationRow> = {};
    for (const table of [...matching, 'drifting', 'gone']) rows[table] = await latest(table);

    // The matching tables: recorded together by one batch workflow.
    const batchId = rows.ok_0!.workflow_id;
    expect(batchId).toMatch(new RegExp(`^echodb-verify-tables:${mirror}:`));
    for (const table of matching) expect(rows[table]).toMatchObject({ workflow_id: batchId, status: 'match', postgres_count: '5', attempts: 1 });
    // Their own verify workflows, on today's IDs: retried on timers, and each its own record.
    const [event] = (await sql.query<{ id: string }>("SELECT id::text FROM echodb.ddl_events WHERE table_name = 'drifting'")).rows;
    expect(rows.drifting).toMatchObject({
      workflow_id: verifyWorkflowId(mirror, { schema, table: 'drifting' }, event!.id),
      status: 'mismatch',
      postgres_count: '8',
      clickhouse_count: '5',
      attempts: 3,
    });
    expect(rows.gone).toMatchObject({ status: 'error', postgres_count: null, clickhouse_count: null });
    expect(rows.gone!.workflow_id).toMatch(/^echodb-verify:/);
    expect(rows.gone!.error).toMatch(/gone/);

    // The batch counted all ten tables with one activity, and started two verify workflows.
    const history = await stack.temporal.workflow.getHandle(batchId).fetchHistory();
    const events = history.events ?? [];
    const activities = events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);
    expect(activities).toEqual(['countTables', 'recordVerifications']);
    const children = events.flatMap((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId ?? []);
    expect(children.sort()).toEqual([rows.drifting!.workflow_id, rows.gone!.workflow_id].sort());
    const drifting = await stack.temporal.workflow.getHandle(rows.drifting!.workflow_id).fetchHistory();
    const recounts = (drifting.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'countRows');
    expect(recounts).toHaveLength(2);

    // The Temporal UI finds the batch by each of its tables.
    const description = await stack.temporal.workflow.getHandle(batchId).describe();
    expect(description.typedSearchAttributes.get(searchAttributes.tables)).toEqual(
      expect.arrayContaining([...matching, 'drifting', 'gone'].map((table) => `${schema}.${table}`)),
    );
    if (recordingHistories) await saveHistory(stack.temporal, batchId, 'verify-tables-mismatch-and-missing');
  }, 120_000);
});
