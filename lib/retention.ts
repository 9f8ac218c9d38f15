// Retention: deletes EchoDB's old history rows (the outbox's handled events, mirror operations, verifications) in
// small batches, each batch one short statement of its own, so that a busy table is never locked for long. One
// implementation for `echodb cleanup` and the cleanup schedule's activity.
import { RETENTION_BATCH_SIZE_MAX, wholeNumber } from './config.js';
import type { SourceQuery } from './mirrored-tables.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The tables retention trims, each with its age column and what makes an old row deletable. What the API and
 * `echodb status` show is always kept, whatever its age: a table's latest verification and a mirror's latest
 * operation (the row with the highest id of its table or mirror, as api/state.ts picks it), and every event the
 * listener has not dispatched yet.
 */
export const RETAINED_TABLES = [
  {
    table: 'ddl_events',
    age: 'created_at',
    deletable: "t.status IN ('dispatched', 'skipped')",
  },
  {
    table: 'mirror_operations',
    age: 'created_at',
    deletable: 'EXISTS (SELECT 1 FROM echodb.mirror_operations n WHERE n.mirror = t.mirror AND n.id > t.id)',
  },
  {
    table: 'verifications',
    age: 'verified_at',
    deletable:
      'EXISTS (SELECT 1 FROM echodb.verifications n WHERE n.schema_name = t.schema_name AND n.table_name = t.table_name AND n.id > t.id)',
  },
  {
    table: 'row_diffs',
    age: 'diffed_at',
    deletable:
      'EXISTS (SELECT 1 FROM echodb.row_diffs n WHERE n.schema_name = t.schema_name AND n.table_name = t.table_name AND n.id > t.id)',
  },
] as const;

export type RetainedTable = (typeof RETAINED_TABLES)[number]['table'];

export interface CleanupOptions {
  /** Rows older than this many days go (whole days, at least one). */
  olderThanDays: number;
  /** Rows per DELETE statement. */
  batchSize: number;
  /** Count what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Called after each batch (the activity heartbeats). */
  onBatch?: (progress: { table: RetainedTable; deleted: number; batches: number }) => void;
  /** Checked before each batch: an aborted cleanup stops between two batches. */
  signal?: AbortSignal;
}

export interface TableCleanup {
  table: RetainedTable;
  /** Rows deleted (with dryRun: that would be). */
  deleted: number;
  /** DELETE statements run (0 with dryRun). */
  batches: number;
  /** The most rows one statement deleted. */
  largestBatch: number;
  /** The longest single statement, in ms. */
  longestBatchMs: number;
}

export interface CleanupReport {
  /** Rows older than this went (ISO time, from the database's clock). */
  cutoff: string;
  olderThanDays: number;
  batchSize: number;
  dryRun: boolean;
  tables: TableCleanup[];
  durationMs: number;
}

/** The time before which rows are old: `days` whole days before `now`. */
export function retentionCutoff(now: Date, days: number): Date {
  return new Date(now.getTime() - days * DAY_MS);
}

/**
 * A whole number of days of at least one, as given on the command line; undefined when it is not one. Fractions
 * are refused rather than rounded, so that a typo never deletes more than was meant.
 */
export function parseDays(raw: string): number | undefined {
  return wholeNumber(raw, 1);
}

/** A number of rows per statement, from 1 to 100,000 (RETENTION_BATCH_SIZE's range); undefined otherwise. */
export function parseBatchSize(raw: string): number | undefined {
  return wholeNumber(raw, 1, RETENTION_BATCH_SIZE_MAX);
}

/**
 * Deletes the rows older than `olderThanDays` that retention lets go, table by table, `batchSize` at a time in id
 * order. Each batch is one statement, hence its own transaction: it locks only the rows it deletes, for as long
 * as one batch takes. Ids are walked upwards from the last batch, up to the newest old row, so that no batch
 * rescans what earlier ones deleted. Re-runnable at any point, and harmless beside another cleanup.
 */
export async function deleteOldRows(query: SourceQuery, options: CleanupOptions): Promise<CleanupReport> {
  const startedAt = performance.now();
  const { rows } = await query<{ now: Date }>('SELECT clock_timestamp() AS now', []);
  const cutoff = retentionCutoff(rows[0]!.now, options.olderThanDays);
  const tables: TableCleanup[] = [];
  for (const spec of RETAINED_TABLES) {
    tables.push(options.dryRun ? await countOldRows(query, spec, cutoff) : await deleteInBatches(query, spec, cutoff, options));
  }
  return {
    cutoff: cutoff.toISOString(),
    olderThanDays: options.olderThanDays,
    batchSize: options.batchSize,
    dryRun: options.dryRun ?? false,
    tables,
    durationMs: Math.round(performance.now() - startedAt),
  };
}

type Spec = (typeof RETAINED_TABLES)[number];

async function countOldRows(query: SourceQuery, spec: Spec, cutoff: Date): Promise<TableCleanup> {
  const { rows } = await query<{ n: string }>(
    `SELECT count(*) AS n FROM echodb.${spec.table} t WHERE t.${spec.age} < $1 AND ${spec.deletable}`,
    [cutoff],
  );
  return { table: spec.table, deleted: Number(rows[0]?.n ?? 0), batches: 0, largestBatch: 0, longestBatchMs: 0 };
}

async function deleteInBatches(query: SourceQuery, spec: Spec, cutoff: Date, options: CleanupOptions): Promise<TableCleanup> {
  const result: TableCleanup = { table: spec.table, deleted: 0, batches: 0, largestBatch: 0, longestBatchMs: 0 };
  // The newest old row: the batches stop there, and never walk the recent rows.
  const { rows: bound } = await query<{ last: string | null }>(
    `SELECT max(id) AS last FROM echodb.${spec.table} WHERE ${spec.age} < $1`,
    [cutoff],
  );
  const lastOldId = bound[0]?.last ?? null;
  let after = '0';
  while (lastOldId !== null) {
    options.signal?.throwIfAborted();
    const startedAt = performance.now();
    const { rows } = await query<{ selected: string; last: string | null; deleted: string }>(
      `WITH batch AS (
         SELECT t.id FROM echodb.${spec.table} t
          WHERE t.id > $1 AND t.id <= $2 AND t.${spec.age} < $3 AND ${spec.deletable}
          ORDER BY t.id LIMIT $4),
       deleted AS (DELETE FROM echodb.${spec.table} d USING batch WHERE d.id = batch.id RETURNING d.id)
       SELECT (SELECT count(*) FROM batch) AS selected, (SELECT max(id) FROM batch) AS last,
              (SELECT count(*) FROM deleted) AS deleted`,
      [after, lastOldId, cutoff, options.batchSize],
    );
    const elapsedMs = performance.now() - startedAt;
    const { selected, last, deleted } = rows[0]!;
    if (Number(selected) === 0 || last === null) break;
    result.batches += 1;
    result.deleted += Number(deleted);
    result.largestBatch = Math.max(result.largestBatch, Number(deleted));
    result.longestBatchMs = Math.max(result.longestBatchMs, Math.round(elapsedMs));
    options.onBatch?.({ table: spec.table, deleted: result.deleted, batches: result.batches });
    if (Number(selected) < options.batchSize) break;
    after = last;
  }
  return result;
}
