import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { workflowTypes } from '../../workflows/definitions.js';
import type { RowCounts, VerificationResult, VerifyTableInput } from '../../workflows/model.js';
import { FAST_SETTINGS, StubWorld, table } from './stub-world.js';

const verify = (world: StubWorld, input: Omit<VerifyTableInput, 'eventId'>) =>
  world.run((client) =>
    client.workflow.execute(workflowTypes.verifyTable, {
      workflowId: `verify-test-${randomUUID()}`,
      taskQueue: world.taskQueue,
      args: [{ ...input, eventId: '1' }],
    }) as Promise<VerificationResult>,
  );

describe('the verify workflow, with stubbed activities', () => {
  it('counts again on its timer until the counts meet, and records the match', async () => {
    const world = new StubWorld();
    const counts: RowCounts[] = [{ postgres: 5, clickhouse: 3 }, { postgres: 5, clickhouse: 4 }, { postgres: 5, clickhouse: 5 }];
    world.override.countRows = () => counts.shift()!;
    const result = await verify(world, {
      mirror: 'm',
      table: table('orders'),
      settings: { delayMs: 0, attempts: 5, intervalMs: 100 },
      retry: FAST_SETTINGS.retry,
    });
    expect(result).toMatchObject({ status: 'match', attempts: 3, postgresCount: 5, clickhouseCount: 5, difference: 0 });
    expect(world.verifications).toEqual([result]);
  });

  it('records a mismatch with both counts after its last attempt', async () => {
    const world = new StubWorld();
    world.override.countRows = () => ({ postgres: 5, clickhouse: 4 });
    const result = await verify(world, {
      mirror: 'm',
      table: table('orders'),
      settings: { delayMs: 0, attempts: 2, intervalMs: 100 },
      retry: FAST_SETTINGS.retry,
    });
    expect(result).toMatchObject({ status: 'mismatch', attempts: 2, postgresCount: 5, clickhouseCount: 4, difference: 1, match: false });
  });

  it('records a side it cannot count as an error, never a count of 0, after MAX_RETRIES retries', async () => {
    const world = new StubWorld();
    world.override.countRows = () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:8123');
    };
    // Started on its own (the API's verify): it reads the worker's settings.
    world.settings = { ...FAST_SETTINGS, retry: { maxRetries: 2, backoffMs: 50, backoffCoefficient: 1 } };
    const result = await verify(world, { mirror: 'm', table: table('orders') });
    expect(result).toMatchObject({ status: 'error', postgresCount: null, clickhouseCount: null, difference: null });
    expect(result.error).toContain('ECONNREFUSED');
    expect(world.callsOf('countRows')).toHaveLength(3);
    expect(world.callsOf('mirrorSettings')).toHaveLength(1);
  });
});
