import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { qualifiedName } from '../lib/workflow-safe/workflow-ids.js';
import type { ReconcileReport } from './model.js';

const { findDrift, sendTableEvents } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/**
 * Repairs drift between the catalog and the mirrors: tables that existed before setup, or whose events were
 * lost while the triggers were disabled, get a create event; mirrored tables that no longer exist a drop event.
 * The events go to the mirror workflows like the listener's, and those converge on the catalog, so an event
 * that crosses a DDL in flight does no harm. Runs when a listener becomes leader, and on demand.
 */
export async function reconcileWorkflow(): Promise<ReconcileReport> {
  // Synthetic event ids, unique to this run (the mirror workflows deduplicate by event id).
  const drift = await findDrift(`reconcile:${workflowInfo().runId}`);
  const events = [...drift.add, ...drift.remove];
  const workflowIds = events.length > 0 ? await sendTableEvents(events) : [];
  const named = ({ mirror, event }: (typeof events)[number]) => ({ mirror, table: qualifiedName(event) });
  return {
    added: drift.add.map(named),
    removed: drift.remove.map(named),
    skipped: drift.skipped.map(({ reason, ...table }) => ({ table: qualifiedName(table), reason })),
    unwatched: drift.unwatched.map(({ reason, ...table }) => ({ table: qualifiedName(table), reason })),
    workflowIds,
  };
}
