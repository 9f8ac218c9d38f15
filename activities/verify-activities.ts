import { Context } from '@temporalio/activity';
import pg from 'pg';
import { countLiveRows, qualifiedTable } from '../lib/clickhouse-sql.js';
import { mirroredTables, type MirroredTable } from '../lib/mirrored-tables.js';
import type { MirrorTable, RowCounts, VerificationResult } from '../workflows/model.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

export function createVerifyActivities(deps: ActivityDependencies) {
  const { config, postgres, postgresBreaker, clickhouse } = deps;
  const querySource = sourceQueries(deps);

  return {
    /** Every table EchoDB's mirrors hold, from its destination claims (durable; no PeerDB call). */
    listMirroredTables(): Promise<MirroredTable[]> {
      return mirroredTables(querySource);
    },

    /**
     * Counts the table on both sides: PostgreSQL's count(*) and ClickHouse's live rows (FINAL, not deleted).
     * Either side failing fails the activity: an unreachable side is an error, never a count of 0.
     */
    async countRows(table: MirrorTable): Promise<RowCounts> {
      return withBreakerAwareRetries(async () => {
        const source = `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.table)}`;
        const destination = qualifiedTable(config.clickhouse.database, table.destination);
        const [postgresCount, clickhouseCount] = await Promise.all([
          postgresBreaker.execute(async () => {
            const { rows } = await postgres.query<{ n: string }>(`SELECT count(*) AS n FROM ${source}`);
            return Number(rows[0]?.n);
          }),
          (async () => {
            const result = await clickhouse.query({
              query: countLiveRows(config.clickhouse.database, table.destination),
              format: 'JSONEachRow',
              abort_signal: Context.current().cancellationSignal,
            });
            const [row] = await result.json<{ n: string | number }>();
            if (row === undefined) throw new Error(`ClickHouse returned no count for ${destination}`);
            return Number(row.n);
          })(),
        ]);
        return { postgres: postgresCount, clickhouse: clickhouseCount };
      });
    },

    /** Stores a finished verification in echodb.verifications (once per workflow run). */
    async recordVerification(result: VerificationResult): Promise<void> {
      const { workflowExecution } = Context.current().info;
      if (!workflowExecution) throw new Error('recordVerification runs only inside a verify workflow');
      await querySource(
        `INSERT INTO echodb.verifications
           (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
            postgres_count, clickhouse_count, attempts, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (workflow_id, run_id) DO NOTHING`,
        [
          workflowExecution.workflowId,
          workflowExecution.runId,
          result.mirror,
          result.schema,
          result.table,
          result.destination,
          result.status,
          result.postgresCount,
          result.clickhouseCount,
          result.attempts,
          result.error ?? null,
        ],
      );
    },
  };
}
