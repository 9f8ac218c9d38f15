/**
 * The row diff as operators run it: `diffTableWorkflow` on a running worker, started by GET /diff's and
 * `echodb diff`'s code, against a table mirrored by the PeerDB double into the real ClickHouse. Rows are changed
 * behind EchoDB's back on either side; one change reaches ClickHouse only during the settle delay (lag), another
 * never does. The double does no CDC, so ClickHouse changes only when a test writes it.
 */
import { Client } from '@temporalio/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDiffActivities } from '../activities/diff-activities.js';
import { startDiff } from '../api/diff.js';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { diffWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { findMirroredTable, startVerifyAll } from '../api/verification.js';
import { qualifiedTable } from '../lib/clickhouse-sql.js';
import type { DiffResult, DiffScan } from '../workflows/diff-model.js';
import { runCli } from './support/cli.js';
import { activityEnvironment } from './support/mirror-activities.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { until } from './support/until.js';

describe('diffTableWorkflow', () => {
  let stack: EchoStack;

  const table = (name: string) => findMirroredTable((text, values) => stack.sql.query(text, values), { schema: stack.schema, table: name });

  async function diff(name: string): Promise<DiffResult> {
    const handle = await startDiff(stack, await table(name));
    return handle.result();
  }

  /** Writes a newer version of a row into the destination, as PeerDB applies a change. */
  async function applyInClickHouse(destination: string, values: Record<string, unknown>, version: number, deleted = 0): Promise<void> {
    await stack.clickhouse.client.insert({
      table: qualifiedTable(stack.clickhouse.database, destination),
      format: 'JSONEachRow',
      values: [{ ...values, _peerdb_is_deleted: deleted, _peerdb_version: version }],
    });
  }

  beforeAll(async () => {
    stack = await startEchoStack({ DIFF_SETTLE_DELAY: '1.5', DIFF_RECHECKS: '2', DIFF_EXAMPLES: '10' });
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.orders (id bigint PRIMARY KEY, note text, amount numeric(10,2), blob bytea)`);
    await sql.query(`INSERT INTO ${schema}.orders SELECT i, 'note ' || i, i / 4.0, '\\x00ff' FROM generate_series(1, 3000) i`);
    await sql.query(`CREATE TABLE ${schema}.settling (id int PRIMARY KEY, state text)`);
    await sql.query(`INSERT INTO ${schema}.settling SELECT i, 'new' FROM generate_series(1, 100) i`);
    await sql.query(`CREATE TABLE ${schema}.keyless (a int, b text)`);
    await sql.query(`ALTER TABLE ${schema}.keyless REPLICA IDENTITY FULL`);
    await sql.query(`INSERT INTO ${schema}.keyless SELECT i, 'x' FROM generate_series(1, 7) i`);
    await stack.dispatchPending();
    for (const name of ['orders', 'settling', 'keyless']) {
      const [verification] = await stack.waitForVerification(name);
      expect(verification?.status).toBe('match');
    }
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('reports a faithful copy as a match, names the columns it cannot compare, and records the result', async () => {
    const result = await diff('orders');
    expect(result).toMatchObject({
      status: 'match',
      match: true,
      different: { missing: 0, extra: 0, changed: 0 },
      lagging: 0,
      rowsCovered: 3000,
      examples: [],
      drift: { onlyInPostgres: [], onlyInClickHouse: [] },
    });
    expect(result.segments).toBeGreaterThan(1);
    expect(result.excluded.map((column) => column.name)).toEqual(['blob']);
    expect(result.excluded[0]?.reason).toContain('bytea');
    const { rows } = await stack.sql.query<{ status: string; missing: string; changed: string; report: DiffResult }>(
      'SELECT status, missing, changed, report FROM echodb.row_diffs WHERE workflow_id = $1',
      [result.workflowId],
    );
    expect(rows.map(({ status, missing, changed, report }) => [status, missing, changed, report.status])).toEqual([['match', '0', '0', 'match']]);
  });

  it('finds exactly the rows changed behind its back on either side, with the columns that differ', async () => {
    const { sql, schema } = stack;
    const { destination } = await table('orders');
    await sql.query(`UPDATE ${schema}.orders SET note = 'edited' WHERE id = 17`);
    await sql.query(`UPDATE ${schema}.orders SET amount = 0.01, note = 'both' WHERE id = 2500`);
    await sql.query(`DELETE FROM ${schema}.orders WHERE id = 1234`);
    await sql.query(`INSERT INTO ${schema}.orders VALUES (5000, 'late', 1, NULL)`);
    await applyInClickHouse(destination, { id: '99', note: 'note 99', amount: '99.99', blob: '' }, 2);
    await applyInClickHouse(destination, { id: '600', note: 'note 600', amount: '150.00', blob: '' }, 2, 1);

    const result = await diff('orders');
    expect(result).toMatchObject({ status: 'different', match: false, different: { missing: 2, extra: 1, changed: 3 }, lagging: 0, rechecks: 2 });
    const byKey = new Map(result.examples.map((e) => [e.key.id ?? '', e]));
    expect([...byKey.keys()].sort()).toEqual(['1234', '17', '2500', '5000', '600', '99']);
    expect(byKey.get('17')).toMatchObject({ kind: 'changed', columns: ['note'], values: { note: { postgres: 'edited', clickhouse: 'note 17' } } });
    expect(byKey.get('2500')).toMatchObject({ kind: 'changed', columns: ['note', 'amount'] });
    expect(byKey.get('99')).toMatchObject({ kind: 'changed', columns: ['amount'], values: { amount: { postgres: '24.75', clickhouse: '99.99' } } });
    expect(byKey.get('1234')).toMatchObject({ kind: 'extra', columns: [] });
    expect(byKey.get('5000')).toMatchObject({ kind: 'missing' });
    expect(byKey.get('600')).toMatchObject({ kind: 'missing' });
  });

  it('reports a change that reaches ClickHouse during the settle delay as lagging, not different', async () => {
    const { sql, schema } = stack;
    const { destination } = await table('settling');
    await sql.query(`UPDATE ${schema}.settling SET state = 'shipped' WHERE id IN (3, 42)`);
    const handle = await startDiff(stack, await table('settling'));
    // PeerDB applies one of the two changes only after the diff's first look.
    await until(
      async () => (await handle.fetchHistory()).events ?? [],
      (events) => events.some((event) => event.timerStartedEventAttributes),
      30_000,
    );
    await applyInClickHouse(destination, { id: 42, state: 'shipped' }, 2);
    const result = await handle.result();
    if (recordingHistories) await saveHistory(stack.temporal, handle.workflowId, 'diff-lagging-and-different');
    expect(result).toMatchObject({ status: 'different', different: { missing: 0, extra: 0, changed: 1 }, lagging: 1 });
    expect(result.examples.map((e) => e.key)).toEqual([{ id: '3' }]);

    await applyInClickHouse(destination, { id: 3, state: 'shipped' }, 2);
    expect(await diff('settling')).toMatchObject({ status: 'match', lagging: 0 });
  });

  it('heartbeats its progress, segments compared and rows covered, while it scans', async () => {
    const postgres = new pg.Pool(stack.database.settings);
    try {
      const activities = createDiffActivities({
        config: stack.config,
        postgres,
        postgresBreaker: new CircuitBreaker('postgres', { failureThreshold: 1000, successThreshold: 1, timeoutMs: 1000 }, () => true),
        clickhouse: stack.clickhouse.client,
        peerdb: undefined as never,
        temporal: new Client(),
      });
      const { env, heartbeats } = activityEnvironment();
      const orders = await table('orders');
      const scan = await env.run<[], DiffScan, () => Promise<DiffScan>>(() => activities.diffScan(orders));
      expect(scan.kind).toBe('rows');
      expect(heartbeats.at(-1)).toEqual({ segments: expect.any(Number) as number, rowsCovered: 3000 });
      expect((heartbeats.at(-1) as { segments: number }).segments).toBeGreaterThan(1);
    } finally {
      await postgres.end();
    }
  });

  it('counts a table without a primary key instead, and says why', async () => {
    const result = await diff('keyless');
    expect(result).toMatchObject({ status: 'counted', match: true, counts: { postgres: 7, clickhouse: 7 } });
    expect(result.fallback).toMatch(/primary key/);
  });

  it('verify-all under VERIFY_MODE=checksum diffs every mirrored table, counting the one without a primary key', async () => {
    const config = { ...stack.config, diff: { ...stack.config.diff, mode: 'checksum' as const } };
    const handle = await startVerifyAll({ config, temporal: stack.temporal });
    const report = await handle.result();
    expect(report).toMatchObject({ mode: 'checksum', tables: 3, matched: 2, mismatched: 1, errors: 0, results: [] });
    const eventId = `verify-all:${handle.firstExecutionRunId}`;
    expect(Object.fromEntries((report.diffs ?? []).map((d) => [d.table, [d.status, d.workflowId]]))).toEqual({
      orders: ['different', diffWorkflowId(`echodb_${stack.schema}`, { schema: stack.schema, table: 'orders' }, eventId)],
      settling: ['match', diffWorkflowId(`echodb_${stack.schema}`, { schema: stack.schema, table: 'settling' }, eventId)],
      keyless: ['counted', diffWorkflowId(`echodb_${stack.schema}`, { schema: stack.schema, table: 'keyless' }, eventId)],
    });
  });

  it('echodb diff prints the result and exits 3 when rows differ', async () => {
    const different = await runCli(['diff', `${stack.schema}.orders`, '--json'], stack.env);
    expect(different.code).toBe(3);
    expect(JSON.parse(different.stdout)).toMatchObject({ status: 'different', different: { missing: 2, extra: 1, changed: 3 } });
    const same = await runCli(['diff', `${stack.schema}.keyless`], stack.env);
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/match by counts only \(the table has no primary key/);
    const unknown = await runCli(['diff', `${stack.schema}.nope`], stack.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no table/);
  });
});
