import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVerifyAll } from '../api/verification.js';
import { verifyAllWorkflowId, verifyTablesWorkflowId, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import type { VerifyAllReport } from '../workflows/model.js';
import { startEchoStack, type EchoStack, type VerificationRow } from './support/echo-stack.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { until } from './support/until.js';

/** How many child workflows (reconcile included) a run started, and the most that ran at the same time. */
async function childrenInFlight(stack: EchoStack, workflowId: string, runId: string) {
  const history = await stack.temporal.workflow.getHandle(workflowId, runId).fetchHistory();
  let started = 0;
  let running = 0;
  let mostAtOnce = 0;
  for (const event of history.events ?? []) {
    if (event.startChildWorkflowExecutionInitiatedEventAttributes) {
      started++;
      mostAtOnce = Math.max(mostAtOnce, ++running);
    }
    if (
      event.childWorkflowExecutionCompletedEventAttributes ||
      event.childWorkflowExecutionFailedEventAttributes ||
      event.startChildWorkflowExecutionFailedEventAttributes
    ) {
      running--;
    }
  }
  return { started, mostAtOnce };
}

describe('verify-all', () => {
  let stack: EchoStack;
  let mirror: string;

  /** Runs verify-all on demand, as the API and the CLI start it, and waits for its report. */
  async function verifyAll(): Promise<{ report: VerifyAllReport; runId: string }> {
    const handle = await startVerifyAll(stack);
    return { report: await handle.result(), runId: handle.firstExecutionRunId };
  }

  beforeAll(async () => {
    // One table a batch and one batch at a time, so that the history shows the bound.
    stack = await startEchoStack({ VERIFY_CONCURRENCY: '1', VERIFY_BATCH_SIZE: '1' });
    mirror = `echodb_${stack.schema}`;
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.steady (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.steady SELECT generate_series(1, 10)`);
    await sql.query(`CREATE TABLE ${schema}.drifting (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.drifting SELECT generate_series(1, 5)`);
    await stack.dispatchPending();
    for (const table of ['steady', 'drifting']) {
      const [verification] = await stack.waitForVerification(table);
      expect(verification?.status).toBe('match');
    }
    // The double does no CDC: rows inserted after the snapshot never reach ClickHouse.
    await sql.query(`INSERT INTO ${schema}.drifting SELECT generate_series(6, 8)`);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('reconciles, then verifies every mirrored table in batches, VERIFY_CONCURRENCY at a time, and reports matches and mismatches', async () => {
    const { report, runId } = await verifyAll();
    const workflowId = verifyAllWorkflowId(stack.config.temporal.taskQueue);
    if (recordingHistories) await saveHistory(stack.temporal, workflowId, 'verify-all-mismatch');

    expect(report).toMatchObject({
      reconcile: { added: [], removed: [] },
      tables: 2,
      matched: 1,
      mismatched: 1,
      errors: 0,
    });
    // A matching table is recorded by its batch; a mismatching one by a verify workflow of its own, after retries.
    const ownId = (table: string) => verifyWorkflowId(mirror, { schema: stack.schema, table }, `verify-all:${runId}`);
    const batchId = (table: string) => verifyTablesWorkflowId(mirror, { schema: stack.schema, table }, `verify-all:${runId}`);
    expect(report.results).toEqual([
      expect.objectContaining({
        workflowId: ownId('drifting'),
        table: 'drifting',
        status: 'mismatch',
        postgresCount: 8,
        clickhouseCount: 5,
        difference: 3,
        attempts: 3,
      }),
      expect.objectContaining({ workflowId: batchId('steady'), table: 'steady', status: 'match', postgresCount: 10, clickhouseCount: 10 }),
    ]);
    const { rows } = await stack.sql.query<VerificationRow>(
      'SELECT * FROM echodb.verifications WHERE workflow_id = ANY($1) ORDER BY table_name',
      [[ownId('drifting'), batchId('steady')]],
    );
    expect(rows).toEqual([
      expect.objectContaining({ table_name: 'drifting', status: 'mismatch', postgres_count: '8', clickhouse_count: '5' }),
      expect.objectContaining({ table_name: 'steady', status: 'match', postgres_count: '10', clickhouse_count: '10' }),
    ]);
    // Reconcile, then the two batches one after the other.
    expect(await childrenInFlight(stack, workflowId, runId)).toEqual({ started: 3, mostAtOnce: 1 });
  });

  it('reports a table whose ClickHouse side is gone as an error, never a count of 0, in a fresh run', async () => {
    await stack.clickhouse.client.command({ query: `DROP TABLE ${stack.clickhouse.database}.steady` });
    const before = (await stack.verifications('steady')).length;

    const { report } = await verifyAll();

    expect(report).toMatchObject({ tables: 2, matched: 0, mismatched: 1, errors: 1 });
    expect(report.results.find((r) => r.table === 'steady')).toMatchObject({
      status: 'error',
      postgresCount: null,
      clickhouseCount: null,
      error: expect.stringMatching(/steady/) as unknown,
    });
    const rows = await until(() => stack.verifications('steady'), (found) => found.length > before);
    expect(rows.at(-1)).toMatchObject({ status: 'error', clickhouse_count: null });
  });
});
