import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { CleanupReport } from '../lib/retention.js';

const { deleteOldRows } = proxyActivities<Activities>({
  // A first cleanup of a long history may take minutes; each batch heartbeats, so a worker that died is noticed
  // within the heartbeat timeout and the retry (which starts over, harmlessly) runs elsewhere.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '10 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
});

/**
 * Retention: deletes the history rows older than RETENTION_DAYS (lib/retention.ts), in batches of
 * RETENTION_BATCH_SIZE, with the worker's configuration. Started by the cleanup schedule.
 */
export async function cleanupWorkflow(): Promise<CleanupReport> {
  return await deleteOldRows();
}
