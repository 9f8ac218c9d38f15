import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { workflowTypes } from '../../workflows/definitions.js';
import type { DiffResult, DiffTableInput } from '../../workflows/diff-model.js';
import { diffPass, StubWorld, table } from './stub-world.js';

const diff = (world: StubWorld, input: Partial<DiffTableInput> = {}) =>
  world.run((client) =>
    client.workflow.execute(workflowTypes.diffTable, {
      workflowId: `diff-test-${randomUUID()}`,
      taskQueue: world.taskQueue,
      args: [{ mirror: 'm', table: table('orders'), eventId: 'on-demand', ...input }],
    }) as Promise<DiffResult>,
  );

const NO_DRIFT = { onlyInPostgres: [], onlyInClickHouse: [] };

describe('the diff workflow, with stubbed activities', () => {
  it('looks again after each settle delay and reports rows that converge as lagging, the rest as different', async () => {
    const world = new StubWorld();
    world.override.diffScan = () => ({ kind: 'rows', pass: diffPass({ 1: 'changed', 2: 'missing', 3: 'extra' }), excluded: [], drift: NO_DRIFT });
    const looks = [diffPass({ 1: 'changed', 3: 'extra' }), diffPass({ 1: 'changed' })];
    world.override.diffRecheck = () => looks.shift()!;
    const result = await diff(world);
    expect(result).toMatchObject({ status: 'different', match: false, different: { missing: 0, extra: 0, changed: 1 }, lagging: 2, rechecks: 2 });
    expect(result.examples).toEqual([{ key: { id: '1' }, kind: 'changed', columns: [] }]);
    // Each re-check is given the pass before it: the rows still different.
    expect(world.callsOf('diffRecheck').map(([, pass]) => (pass as ReturnType<typeof diffPass>).tracked.length)).toEqual([3, 2]);
    expect(world.diffs).toEqual([result]);
  });

  it('stops re-checking once every row has converged: lagging, a match', async () => {
    const world = new StubWorld();
    world.override.diffScan = () => ({ kind: 'rows', pass: diffPass({ 7: 'changed' }), excluded: [], drift: NO_DRIFT });
    const result = await diff(world);
    expect(result).toMatchObject({ status: 'lagging', match: true, lagging: 1, rechecks: 1, examples: [] });
    expect(world.callsOf('diffExamples')).toEqual([]);
  });

  it('reports column drift as different even when every compared row matches', async () => {
    const world = new StubWorld();
    world.override.diffScan = () => ({ kind: 'rows', pass: diffPass({}), excluded: [], drift: { onlyInPostgres: ['added_later'], onlyInClickHouse: [] } });
    expect(await diff(world)).toMatchObject({ status: 'different', match: false, rechecks: 0 });
  });

  it('counts a table it cannot diff by rows, and records an unreadable side as an error after MAX_RETRIES retries', async () => {
    const world = new StubWorld();
    world.override.diffScan = () => ({ kind: 'counts', reason: 'the table has no primary key', excluded: [], drift: NO_DRIFT });
    world.override.countRows = () => ({ postgres: 4, clickhouse: 3 });
    expect(await diff(world)).toMatchObject({ status: 'counted', match: false, counts: { postgres: 4, clickhouse: 3 }, fallback: 'the table has no primary key' });

    const failing = new StubWorld();
    failing.override.diffScan = () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:8123');
    };
    const result = await diff(failing, { settings: { settleDelayMs: 100, rechecks: 2, examples: 5 }, retry: { maxRetries: 1, backoffMs: 50, backoffCoefficient: 1 } });
    expect(result).toMatchObject({ status: 'error', match: false });
    expect(result.error).toContain('ECONNREFUSED');
    expect(failing.callsOf('diffScan')).toHaveLength(2);
    expect(failing.callsOf('diffSettings')).toEqual([]);
    expect(failing.diffs).toEqual([result]);
  });
});
