import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { verifyWorkflowId } from '../../lib/workflow-safe/workflow-ids.js';
import { workflowTypes } from '../../workflows/definitions.js';
import type { MirrorTable, RowCounts, TableCount, VerificationResult, VerifySettings, VerifyTablesInput } from '../../workflows/model.js';
import { FAST_SETTINGS, StubWorld, table, uniqueMirror } from './stub-world.js';

// verifyTablesWorkflow against stubbed activities: one count for the whole batch, one record of the matches, and a
// verify workflow of its own for each table that does not match or could not be counted.

const tables = ['a', 'b', 'c', 'd'].map((name) => table(name));

async function verifyBatch(world: StubWorld, client: Client, settings: VerifySettings, mirror = uniqueMirror('batch')) {
  const workflowId = `verify-tables-test-${randomUUID()}`;
  const input: VerifyTablesInput = {
    tables: tables.map((t) => ({ mirror, table: t, eventId: '7' })),
    settings,
    retry: FAST_SETTINGS.retry,
  };
  const results = (await client.workflow.execute(workflowTypes.verifyTables, {
    workflowId,
    taskQueue: world.taskQueue,
    args: [input],
  })) as VerificationResult[];
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return { workflowId, mirror, results, history };
}

/** Counts as countTables answers them: each table's, by name; equal unless given. */
const answer = (counts: Record<string, RowCounts | { error: string }>) => (batch: MirrorTable[]): TableCount[] =>
  batch.map((t) => {
    const given = counts[t.table] ?? { postgres: 4, clickhouse: 4 };
    return 'error' in given ? given : { counts: given };
  });

describe('the batch verify workflow, with stubbed activities', () => {
  it('waits VERIFY_DELAY, counts every table with one countTables call and records the matches with one recordVerifications', async () => {
    const world = new StubWorld();
    world.override.countTables = answer({});
    const { workflowId, results, history } = await world.run((client) =>
      verifyBatch(world, client, { delayMs: 200, attempts: 3, intervalMs: 100 }),
    );

    expect(world.callsOf('countTables')).toEqual([[tables]]);
    expect(world.callsOf('countRows')).toEqual([]);
    expect(world.callsOf('recordVerifications')).toHaveLength(1);
    expect(results.map((r) => [r.table, r.status, r.attempts, r.workflowId])).toEqual(
      tables.map((t) => [t.table, 'match', 1, workflowId]),
    );
    expect(world.verifications).toEqual(results);
    // The delay is a timer before the count; no child workflow.
    const events = history.events ?? [];
    const timer = events.findIndex((e) => e.timerStartedEventAttributes);
    const count = events.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'countTables');
    expect(timer).toBeGreaterThan(-1);
    expect(count).toBeGreaterThan(timer);
    expect(events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes)).toEqual([]);
  });

  it('gives a table that does not match a verify workflow of its own, which counts again on its timer and records it', async () => {
    const world = new StubWorld();
    world.override.countTables = answer({ c: { postgres: 5, clickhouse: 3 } });
    const recounts: RowCounts[] = [{ postgres: 5, clickhouse: 4 }, { postgres: 5, clickhouse: 5 }];
    world.override.countRows = () => recounts.shift()!;
    const { mirror, results, workflowId } = await world.run((client) =>
      verifyBatch(world, client, { delayMs: 0, attempts: 3, intervalMs: 100 }),
    );

    const own = verifyWorkflowId(mirror, tables[2]!, '7');
    expect(results[2]).toMatchObject({ workflowId: own, table: 'c', status: 'match', attempts: 3, postgresCount: 5, clickhouseCount: 5 });
    expect(results.filter((r) => r.table !== 'c').every((r) => r.status === 'match' && r.workflowId === workflowId)).toBe(true);
    // The batch recorded the three matches at once; the verify workflow its own result.
    expect(world.callsOf('recordVerifications')).toEqual([[results.filter((r) => r.table !== 'c')]]);
    expect(world.callsOf('recordVerification')).toEqual([[results[2]]]);
    expect(world.callsOf('countRows')).toEqual([[tables[2]], [tables[2]]]);
  });

  it('records a mismatch at once when VERIFY_ATTEMPTS is 1: the batched count was the only one', async () => {
    const world = new StubWorld();
    world.override.countTables = answer({ b: { postgres: 2, clickhouse: 1 } });
    const { results } = await world.run((client) => verifyBatch(world, client, { delayMs: 0, attempts: 1, intervalMs: 100 }));

    expect(results[1]).toMatchObject({ status: 'mismatch', attempts: 1, postgresCount: 2, clickhouseCount: 1, difference: 1 });
    expect(world.callsOf('countRows')).toEqual([]);
    expect(world.verifications).toHaveLength(4);
  });

  it('gives a table that could not be counted a verify workflow that counts it afresh, and records the others', async () => {
    const world = new StubWorld();
    world.override.countTables = answer({ d: { error: "ClickHouse: Table e.d doesn't exist" } });
    world.override.countRows = () => {
      throw new Error("Table e.d doesn't exist");
    };
    const { mirror, results } = await world.run((client) => verifyBatch(world, client, { delayMs: 0, attempts: 3, intervalMs: 100 }));

    expect(results.slice(0, 3).map((r) => r.status)).toEqual(['match', 'match', 'match']);
    expect(results[3]).toMatchObject({
      workflowId: verifyWorkflowId(mirror, tables[3]!, '7'),
      status: 'error',
      postgresCount: null,
      clickhouseCount: null,
      error: "Table e.d doesn't exist",
    });
    // MAX_RETRIES is 0 here: one count of its own.
    expect(world.callsOf('countRows')).toEqual([[tables[3]]]);
    expect(world.verifications.map((v) => v.status).sort()).toEqual(['error', 'match', 'match', 'match']);
  });

  it('records every table as an error, with no counts, when a side stays unreachable after MAX_RETRIES', async () => {
    const world = new StubWorld();
    world.settings = { ...FAST_SETTINGS, retry: { maxRetries: 1, backoffMs: 50, backoffCoefficient: 1 } };
    world.override.countTables = () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:8123');
    };
    const results = await world.run(async (client) => {
      const input: VerifyTablesInput = {
        tables: tables.map((t) => ({ mirror: 'm', table: t, eventId: '7' })),
        settings: FAST_SETTINGS.verify,
        retry: world.settings.retry,
      };
      return (await client.workflow.execute(workflowTypes.verifyTables, {
        workflowId: `verify-tables-test-${randomUUID()}`,
        taskQueue: world.taskQueue,
        args: [input],
      })) as VerificationResult[];
    });

    expect(world.callsOf('countTables')).toHaveLength(2);
    expect(results.every((r) => r.status === 'error' && r.postgresCount === null && r.clickhouseCount === null)).toBe(true);
    expect(results[0]!.error).toContain('ECONNREFUSED');
    expect(world.callsOf('recordVerifications')).toEqual([[results]]);
    expect(world.callsOf('countRows')).toEqual([]);
  });
});
