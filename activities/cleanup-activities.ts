import { Context } from '@temporalio/activity';
import { deleteOldRows, type CleanupReport } from '../lib/retention.js';
import type { ActivityDependencies } from './index.js';
import { sourceQueries } from './source-database.js';

export function createCleanupActivities(deps: ActivityDependencies) {
  const { config } = deps;
  const querySource = sourceQueries(deps);

  return {
    /**
     * Deletes the rows retention lets go (RETENTION_DAYS, RETENTION_BATCH_SIZE), heartbeating after each batch
     * (the Temporal UI shows the table and the rows deleted so far); a cancellation stops it between two batches.
     */
    async deleteOldRows(): Promise<CleanupReport> {
      const context = Context.current();
      const report = await deleteOldRows(querySource, {
        olderThanDays: config.retention.days,
        batchSize: config.retention.batchSize,
        onBatch: (progress) => context.heartbeat(progress),
        signal: context.cancellationSignal,
      });
      context.log.info('cleanup: old rows deleted', {
        cutoff: report.cutoff,
        ...Object.fromEntries(report.tables.map(({ table, deleted }) => [table, deleted])),
      });
      return report;
    },
  };
}
