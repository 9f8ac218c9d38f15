import {
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { eventIdAttribute, fittingKeywords, searchAttributes, tableKeyword } from '../lib/workflow-safe/search-attributes.js';
import { NON_RETRYABLE, mirrorStateQuery, tableEventsSignal } from './definitions.js';
import { addTables, peerDbActivities, removeTables, type Edit, type MirrorRun } from './mirror-edit.js';
import { MirrorState } from './mirror-state.js';
import type { MirrorWorkflowInput, TableEvent } from './model.js';
import { planChanges } from './plan.js';

const { mirrorSettings, inspectSourceTables, describeMirror, recordUnmirrored, giveReplicaIdentity } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** Continue as new well before Temporal's history limits. */
const MAX_HISTORY_EVENTS = 5000;

/**
 * The one workflow that owns one PeerDB mirror. DDL events arrive as signals (signal-with-start on a
 * deterministic ID); events that arrive within the coalescing window become one edit. Each edit converges the
 * mirror on what the source catalog says at that moment, so a duplicated or late event does no harm and
 * create -> drop -> create of one name ends with the new table mirrored once. Edits are serialized by this
 * single loop; their steps are in workflows/mirror-edit.ts, the bookkeeping in workflows/mirror-state.ts.
 */
export async function mirrorWorkflow(input: MirrorWorkflowInput): Promise<void> {
  const state = new MirrorState(input.mirror, input.carried);
  setHandler(tableEventsSignal, (events) => state.receive(events));
  setHandler(mirrorStateQuery, () => state.view());
  upsertSearchAttributes([{ key: searchAttributes.mirror, value: input.mirror }]);

  const settings = await mirrorSettings();
  const run: MirrorRun = { state, settings, peerdb: peerDbActivities(settings.retry), peersEnsured: false };
  // A first run: PeerDB may hold this mirror already (this workflow's history was lost or terminated).
  if (input.carried === undefined) state.adopt(await describeMirror(input.mirror));

  for (;;) {
    const hasWork = () => state.hasPending;
    // A workflow that owns a mirror waits for events indefinitely; one without waits a while, then completes.
    const gotWork = state.exists ? (await condition(hasWork), true) : await condition(hasWork, settings.idleCompletionMs);
    if (!gotWork) {
      // No mirror and nothing to do: finish. A later event starts a fresh run through signal-with-start.
      await condition(allHandlersFinished);
      if (!state.hasPending) return;
      continue;
    }
    if (settings.coalesceWindowMs > 0) await sleep(settings.coalesceWindowMs);
    await applyEvents(run, state.takePending());

    const info = workflowInfo();
    if (!state.hasPending && (info.continueAsNewSuggested || info.historyLength > MAX_HISTORY_EVENTS)) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof mirrorWorkflow>({ mirror: input.mirror, carried: state.carried() });
    }
  }
}

/** One edit: converges the mirror on what the catalog says now about the tables the events name. */
async function applyEvents(run: MirrorRun, events: TableEvent[]): Promise<void> {
  const { state } = run;
  const latest = new Map(events.map((event) => [event.source, event]));
  const facts = await inspectSourceTables([...latest.values()].map(({ schema, table }) => ({ schema, table })));
  const plan = planChanges([...latest.values()], facts, state.byTable());
  const eventIds = events.map((event) => event.eventId);
  const edit: Edit = { run, eventIds, eventIdOf: new Map(events.map((e) => [e.source, e.eventId])), at: new Date(Date.now()).toISOString() };
  for (const skipped of plan.skipped) log.info('table not mirrored', { mirror: state.mirror, ...skipped, event_ids: eventIds });
  state.track(plan.adopted);
  if (plan.skipped.length > 0) await recordUnmirrored(state.mirror, plan.skipped, eventIds);
  // A mirrored table that lost its key, under MISSING_REPLICA_IDENTITY=set-full: given REPLICA IDENTITY FULL (in a
  // publication without it, PostgreSQL rejects its UPDATEs), or taken out when that fails.
  if (plan.repair.length > 0) {
    const failed = new Set((await giveReplicaIdentity(plan.repair)).map((table) => table.source));
    plan.remove.push(...plan.repair.filter((table) => failed.has(table.source)));
  }
  if (plan.remove.length > 0) await removeTables(edit, plan.remove);
  if (plan.add.length > 0) await addTables(edit, plan.add);

  // At most 50, and within Temporal's 2 KB for the value: long names would otherwise fail every workflow task.
  const touched = fittingKeywords([...plan.add, ...plan.remove].slice(0, 50).map(tableKeyword));
  upsertSearchAttributes([
    ...(events[0] ? [{ key: searchAttributes.schema, value: events[0].schema }] : []),
    ...(touched.length > 0 ? [{ key: searchAttributes.tables, value: touched }] : []),
    ...eventIdAttribute(eventIds[eventIds.length - 1]),
  ]);
}
