import { Context } from '@temporalio/activity';
import type pg from 'pg';
import {
  DEFAULT_DIFF_OPTIONS,
  describeDifferences,
  isNoRowDiff,
  planDiff,
  recheck,
  scanTable,
  type DiffPass,
  type DiffPlan,
  type DiffProgress,
  type DiffSides,
  type PostgresSide,
  type Difference,
} from '../lib/row-diff/index.js';
import type { DiffResult, DiffScan, DiffSettings } from '../workflows/diff-model.js';
import type { MirrorTable, RetrySettings } from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/** How often a diff activity heartbeats, with its progress as the details. */
const HEARTBEAT_MS = 5_000;

/**
 * The row diff's activities (lib/row-diff): the first look, a re-check, the example rows, the record. Each statement
 * may run DIFF_QUERY_TIMEOUT, on either database; each activity heartbeats its progress (segments compared, source
 * rows covered), which the Temporal UI shows as the activity's heartbeat details.
 */
export function createDiffActivities(deps: ActivityDependencies) {
  const { config, postgres, postgresBreaker } = deps;
  const clickhouse = deps.scanClickhouse ?? deps.clickhouse;
  const querySource = sourceQueries(deps);

  /**
   * Each PostgreSQL statement on a pooled connection of its own (the first level runs two at once), limited to
   * DIFF_QUERY_TIMEOUT; ClickHouse's through the scan client, cancelled with the activity.
   */
  const postgresSide: PostgresSide = {
    async query<R extends pg.QueryResultRow>(text: string, values?: unknown[]) {
      const client = await withBreakerAwareRetries(() => postgresBreaker.execute(() => postgres.connect()));
      let broken: Error | undefined;
      try {
        await client.query(`SET statement_timeout = ${Math.round(config.diff.queryTimeoutMs)}`);
        return await client.query<R>(text, values);
      } catch (error) {
        broken = error instanceof Error ? error : new Error(String(error));
        throw error;
      } finally {
        // A connection whose statement failed is closed rather than handed back with the timeout still set.
        if (broken === undefined) {
          await client.query('RESET statement_timeout').catch((error: unknown) => {
            broken = error instanceof Error ? error : new Error(String(error));
          });
        }
        client.release(broken);
      }
    },
  };

  async function withSides<T>(work: (sides: DiffSides, progress: (p: DiffProgress) => void) => Promise<T>): Promise<T> {
    const context = Context.current();
    let latest: DiffProgress = { segments: 0, rowsCovered: 0 };
    const beat = setInterval(() => context.heartbeat(latest), HEARTBEAT_MS);
    try {
      const sides: DiffSides = {
        postgres: postgresSide,
        clickhouse: {
          rows: async <R>(sql: string) =>
            (await clickhouse.query({ query: sql, format: 'JSONEachRow', abort_signal: context.cancellationSignal })).json<R>(),
        },
        database: config.clickhouse.database,
      };
      return await work(sides, (progress) => {
        latest = progress;
        context.heartbeat(progress);
      });
    } finally {
      clearInterval(beat);
    }
  }

  async function plannedSides<T>(table: MirrorTable, work: (sides: DiffSides, plan: DiffPlan, progress: (p: DiffProgress) => void) => Promise<T>) {
    return withSides(async (sides, progress) => {
      const plan = await planDiff(sides.postgres, sides.clickhouse, sides.database, table);
      if (isNoRowDiff(plan)) throw new Error(`${table.schema}.${table.table} can no longer be diffed by rows: ${plan.fallback}`);
      return work(sides, plan, progress);
    });
  }

  return {
    /** DIFF_SETTLE_DELAY, DIFF_RECHECKS, DIFF_EXAMPLES and the retry settings, from the worker's configuration. */
    diffSettings(): Promise<{ diff: DiffSettings; retry: RetrySettings }> {
      const { settleDelayMs, rechecks, examples } = config.diff;
      return Promise.resolve({ diff: { settleDelayMs, rechecks, examples }, retry: { ...config.retry } });
    },

    /**
     * The first look: every segment's checksum on both sides, bisected to the differing rows. For a table without a
     * usable primary key, the reason (the workflow counts it instead).
     */
    diffScan(table: MirrorTable): Promise<DiffScan> {
      return withSides(async (sides, progress) => {
        const plan = await planDiff(sides.postgres, sides.clickhouse, sides.database, table);
        const { excluded, drift } = plan;
        if (isNoRowDiff(plan)) return { kind: 'counts', reason: plan.fallback, excluded, drift };
        const pass = await scanTable(sides, plan, { ...DEFAULT_DIFF_OPTIONS, onProgress: progress });
        return { kind: 'rows', pass, excluded, drift };
      });
    },

    /** Looks again at the rows the pass before found different (after the settle delay). */
    diffRecheck(table: MirrorTable, previous: DiffPass): Promise<DiffPass> {
      return plannedSides(table, (sides, plan) => recheck(sides, plan, previous, DEFAULT_DIFF_OPTIONS));
    },

    /** The first `limit` rows of a pass, with the columns that differ and their values on each side. */
    diffExamples(table: MirrorTable, pass: DiffPass, limit: number): Promise<Difference[]> {
      return plannedSides(table, (sides, plan) => describeDifferences(sides, plan, pass, limit));
    },

    /** Stores a finished diff in echodb.row_diffs (once per workflow run). */
    async recordDiff(result: DiffResult): Promise<void> {
      const { workflowExecution } = Context.current().info;
      if (!workflowExecution) throw new Error('recordDiff runs only inside a diff workflow');
      await querySource(
        `INSERT INTO echodb.row_diffs
           (workflow_id, run_id, mirror, schema_name, table_name, destination, status, missing, extra, changed, lagging, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (workflow_id, run_id) DO NOTHING`,
        [
          workflowExecution.workflowId,
          workflowExecution.runId,
          result.mirror,
          result.schema,
          result.table,
          result.destination,
          result.status,
          result.different.missing,
          result.different.extra,
          result.different.changed,
          result.lagging,
          JSON.stringify(result),
        ],
      );
    },
  };
}
