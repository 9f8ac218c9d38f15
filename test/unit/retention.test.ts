import { describe, expect, it } from 'vitest';
import type { SourceQuery } from '../../lib/mirrored-tables.js';
import { deleteOldRows, parseBatchSize, parseDays, RETAINED_TABLES, retentionCutoff } from '../../lib/retention.js';
import { runCli } from '../support/cli.js';

/**
 * A database that answers retention's statements from counts alone: `old` deletable rows per table, deleted
 * `selected` at a time as a batch asks. Records every statement.
 */
function fakeDatabase(old: Record<string, number>) {
  const left = { ...old };
  const statements: { text: string; values: unknown[] }[] = [];
  const query = ((text: string, values: unknown[]) => {
    statements.push({ text, values });
    const table = /echodb\.(\w+)/.exec(text)?.[1] ?? '';
    const rows = text.startsWith('SELECT clock_timestamp()')
      ? [{ now: new Date('2026-12-05T12:00:00Z') }]
      : text.startsWith('SELECT max(id)')
        ? [{ last: left[table] ? '1000000' : null }]
        : (() => {
            const selected = Math.min(left[table] ?? 0, values[3] as number);
            left[table] = (left[table] ?? 0) - selected;
            const last = selected === 0 ? null : String(Number(values[0]) + selected);
            return [{ selected: String(selected), last, deleted: String(selected) }];
          })();
    return Promise.resolve({ rows });
  }) as unknown as SourceQuery;
  return { query, statements };
}

describe('retention settings', () => {
  it('puts the cutoff whole days before now', () => {
    const now = new Date('2026-12-05T12:00:00.000Z');
    expect(retentionCutoff(now, 7).toISOString()).toBe('2026-11-28T12:00:00.000Z');
    expect(retentionCutoff(now, 30).toISOString()).toBe('2026-11-05T12:00:00.000Z');
  });

  it('takes whole days of one or more, and batch sizes from 1 to 100000', () => {
    expect([' 7 ', '30', '1'].map(parseDays)).toEqual([7, 30, 1]);
    expect(['0', '1.5', '-3', 'seven', '', '7d'].map(parseDays)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(['1', '1000', '100000'].map(parseBatchSize)).toEqual([1, 1000, 100_000]);
    expect(['0', '100001', '10.5', 'all'].map(parseBatchSize)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('keeps pending events, and the latest verification of a table and operation of a mirror by id, as api/state.ts reads them', () => {
    expect(Object.fromEntries(RETAINED_TABLES.map(({ table, age, deletable }) => [table, `${age}: ${deletable}`]))).toEqual({
      ddl_events: "created_at: t.status IN ('dispatched', 'skipped')",
      mirror_operations: 'created_at: EXISTS (SELECT 1 FROM echodb.mirror_operations n WHERE n.mirror = t.mirror AND n.id > t.id)',
      verifications:
        'verified_at: EXISTS (SELECT 1 FROM echodb.verifications n WHERE n.schema_name = t.schema_name AND n.table_name = t.table_name AND n.id > t.id)',
      row_diffs:
        'diffed_at: EXISTS (SELECT 1 FROM echodb.row_diffs n WHERE n.schema_name = t.schema_name AND n.table_name = t.table_name AND n.id > t.id)',
    });
  });
});

describe('deleteOldRows', () => {
  it('deletes in statements of at most the batch size, each after the last id of the one before', async () => {
    const { query, statements } = fakeDatabase({ ddl_events: 0, mirror_operations: 5, verifications: 250 });
    const report = await deleteOldRows(query, { olderThanDays: 7, batchSize: 100 });

    expect(report.cutoff).toBe('2026-11-28T12:00:00.000Z');
    expect(report.tables.map(({ table, deleted, batches, largestBatch }) => [table, deleted, batches, largestBatch])).toEqual([
      ['ddl_events', 0, 0, 0],
      ['mirror_operations', 5, 1, 5],
      ['verifications', 250, 3, 100],
      ['row_diffs', 0, 0, 0],
    ]);
    const deletes = statements.filter(({ text }) => text.includes('DELETE'));
    expect(deletes.map(({ values }) => values[3])).toEqual([100, 100, 100, 100]);
    expect(deletes.filter(({ text }) => text.includes('echodb.verifications')).map(({ values }) => values[0])).toEqual(['0', '100', '200']);
  });

  it('only counts in a dry run', async () => {
    const { query, statements } = fakeDatabase({});
    const counted = ((text: string, values: unknown[]) =>
      text.startsWith('SELECT count(*)') ? Promise.resolve({ rows: [{ n: '42' }] }) : query(text, values)) as SourceQuery;
    const report = await deleteOldRows(counted, { olderThanDays: 7, batchSize: 100, dryRun: true });
    expect(report.tables.map(({ deleted, batches }) => [deleted, batches])).toEqual([[42, 0], [42, 0], [42, 0], [42, 0]]);
    expect(statements.some(({ text }) => text.includes('DELETE'))).toBe(false);
  });

  it('stops before the next batch once aborted', async () => {
    const { query, statements } = fakeDatabase({ ddl_events: 10 });
    const controller = new AbortController();
    const cleanup = deleteOldRows(query, { olderThanDays: 7, batchSize: 2, onBatch: () => controller.abort(), signal: controller.signal });
    await expect(cleanup).rejects.toThrow(/aborted/);
    expect(statements.filter(({ text }) => text.includes('DELETE'))).toHaveLength(1);
  });
});

describe('`echodb cleanup` options', () => {
  it('refuses a bad option with exit 2 and the reason, before connecting anywhere', { timeout: 30_000 }, async () => {
    const cases = [
      [['--older-than', '0'], /option '--older-than <days>' argument '0' is invalid\. "0" is not a whole number of days of 1 or more/],
      [['--older-than', '1.5'], /"1\.5" is not a whole number of days of 1 or more/],
      [['--batch-size', 'many'], /option '--batch-size <rows>' argument 'many' is invalid\. "many" is not a number of rows from 1 to 100000/],
      [['--frobnicate'], /unknown option '--frobnicate'/],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => runCli(['cleanup', ...args], { POSTGRES_PORT: '1' })));
    results.forEach((result, i) => {
      expect(result.code, cases[i]![0].join(' ')).toBe(2);
      expect(result.stderr).toMatch(cases[i]![1]);
    });
  });

  it('stops on a bad retention setting with exit 78, naming the variable', { timeout: 30_000 }, async () => {
    const result = await runCli(['cleanup'], { RETENTION_DAYS: 'forever' });
    expect(result.code).toBe(78);
    expect(result.stderr).toContain('RETENTION_DAYS: "forever" is not a number of days; expected an integer from 1 to 36500');
  });
});
