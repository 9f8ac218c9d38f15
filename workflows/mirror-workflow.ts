import {
  ActivityFailure,
  ApplicationFailure,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { CreateOutcome, EditOutcome } from '../activities/mirror-activities.js';
import { searchAttributes, tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { parseSourceTableIdentifier, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import type {
  DestinationCollision,
  LeftOut,
  MirrorCarriedState,
  MirrorSettings,
  MirrorOperation,
  MirrorTable,
  MirrorWorkflowInput,
  TableEvent,
  TrackedTable,
} from './model.js';
import { LEGACY_RETRY, NON_RETRYABLE, mirrorStateQuery, tableEventSignal, tableEventsSignal } from './definitions.js';
import { planChanges } from './plan.js';
import { verifyTableWorkflow } from './verify-workflow.js';


const {
  mirrorSettings,
  inspectSourceTables,
  describeMirror,
  recordMirrorOperation,
  retireDestinationTable,
  claimDestinations,
  releaseDestinations,
  recordUnmirrored,
  giveReplicaIdentity,
} = proxyActivities<Activities>({
  // Short: these do not heartbeat, so one lost with its worker is retried only when this timeout passes.
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** How many event ids the workflow remembers for deduplication. */
const SEEN_EVENTS_KEPT = 2000;
/** Continue as new well before Temporal's history limits. */
const MAX_HISTORY_EVENTS = 5000;
/** patched() marker: a mirror PeerDB failed is dropped and created again (older histories recorded the failure). */
const REBUILD_FAILED_MIRROR = 'rebuild-failed-mirror';
/** patched() marker: verify workflows start in groups (older histories started them one at a time). */
const START_VERIFIES_TOGETHER = 'start-verifies-together';
/** How many verify workflows one workflow task starts: bounded, so that one task's commands stay small. */
const VERIFY_STARTS_PER_TASK = 100;
/** patched() marker: a create PeerDB refused is retried without the tables dropped since they were inspected. */
const RECHECK_REFUSED_TABLES = 'recheck-refused-tables';
/** How many times one edit tries to put tables into the mirror when PeerDB refuses a table that vanished. */
const RECHECK_ATTEMPTS = 3;
/** How many times one edit rebuilds a failed mirror before it records the failure and waits for the next event. */
const REBUILD_ATTEMPTS = 3;
/** A mirror workflow with no mirror left waits this long for new events before it completes. */
const IDLE_COMPLETION = '1 minute';
/**
 * patched() marker: tables left out (no usable replica identity, gone) are recorded in echodb.unmirrored_tables;
 * tables PeerDB refused to validate peers for, a wedged create, a leaving holder of a destination: see below.
 */
const RECORD_UNMIRRORED = 'record-unmirrored';
/** patched() marker: a peer PeerDB refuses is a recorded failure of the edit, not of the workflow run. */
const PEERS_REFUSED_IN_EDIT = 'peers-refused-in-edit';
/** patched() marker: a collision with a table that has left (moved to another schema) waits for its release. */
const WAIT_FOR_LEAVING_HOLDER = 'wait-for-leaving-holder';
/** patched() marker: a table that left (moved, renamed, dropped) before its destination was claimed is no failure. */
const SKIP_DEPARTED_CLAIMANTS = 'skip-departed-claimants';
/** The longest pause between two looks at a destination held by a table that has left. */
const MAX_CLAIM_PAUSE_MS = 10_000;

const failureText = (error: unknown): string => {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  return cause instanceof Error ? `${cause instanceof ApplicationFailure ? `${cause.type}: ` : ''}${cause.message}` : String(cause);
};

const isFailureOfType = (error: unknown, type: string): boolean =>
  error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === type;

/**
 * PeerDB failed the mirror (STATUS_FAILED), no longer knows it, or holds it in a state it never leaves (a wedged
 * create): either way, it must be created again.
 */
const lostInPeerDb = (error: unknown): boolean =>
  isFailureOfType(error, 'MirrorFailed') || isFailureOfType(error, 'MirrorNotFound') || isFailureOfType(error, 'MirrorWedged');

/** createMirror's answer; older workers answered the outcome alone. */
const createOutcomeOf = (answer: CreateOutcome | 'created' | 'exists'): CreateOutcome =>
  typeof answer === 'string' ? { outcome: answer, leftOut: [] } : answer;
/** editMirror's tables left out; older workers left none out. */
const leftOutOf = (answer: EditOutcome | Omit<EditOutcome, 'leftOut'>): LeftOut[] => ('leftOut' in answer ? answer.leftOut : []);

/**
 * The one workflow that owns one PeerDB mirror. DDL events arrive as signals (signal-with-start on a
 * deterministic ID); events that arrive within the coalescing window become one edit. Each edit converges the
 * mirror on what the source catalog says at that moment, so a duplicated or late event does no harm and
 * create -> drop -> create of one name ends with the new table mirrored once. Edits are serialized by this
 * single loop. Each added table gets a verify workflow.
 */
export async function mirrorWorkflow(input: MirrorWorkflowInput): Promise<void> {
  const { mirror } = input;
  const tables = new Map<string, TrackedTable>(input.carried?.tables.map((t) => [t.source, t]));
  const seen = new Set<string>(input.carried?.seenEventIds);
  const pending: TableEvent[] = [...(input.carried?.pending ?? [])];
  let operationSeq = input.carried?.operationSeq ?? 0;
  let mirrorExists = tables.size > 0;

  const receive = (event: TableEvent): void => {
    if (seen.has(event.eventId)) return;
    seen.add(event.eventId);
    if (seen.size > SEEN_EVENTS_KEPT) seen.delete(seen.values().next().value!);
    pending.push(event);
  };
  setHandler(tableEventsSignal, (events) => events.forEach(receive));
  setHandler(tableEventSignal, receive);
  setHandler(mirrorStateQuery, () => ({
    mirror,
    exists: mirrorExists,
    tables: [...tables.values()],
    pendingEvents: pending.length,
  }));
  upsertSearchAttributes([{ key: searchAttributes.mirror, value: mirror }]);

  const settings = withDefaults(await mirrorSettings());
  // PeerDB operations wait for the mirror's state; they heartbeat every second (so those of a worker that died
  // move to another within the heartbeat timeout), and retry (from RETRY_DELAY on, backing off to a minute) for
  // as long as PeerDB is away: a mirror edit is never abandoned because PeerDB was down.
  const { ensurePeers, createMirror, editMirror, dropMirror } = proxyActivities<Activities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '10 seconds',
    retry: {
      initialInterval: settings.retry.backoffMs,
      backoffCoefficient: settings.retry.backoffCoefficient ?? 2,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  if (input.carried === undefined) {
    // A first run: PeerDB may hold this mirror already (this workflow's history was lost or terminated).
    const description = await describeMirror(mirror);
    mirrorExists = description.exists;
    for (const table of description.tables) tables.set(table.source, { ...table, relationOid: null });
  }
  let peersEnsured = false;

  const record = async (
    operation: MirrorOperation['operation'],
    affected: MirrorTable[],
    eventIds: string[],
    error?: string,
  ): Promise<void> => {
    operationSeq++;
    const { workflowId, runId } = workflowInfo();
    await recordMirrorOperation({
      key: `${runId}:${operationSeq}`,
      mirror,
      operation,
      tables: affected.map((t) => t.source),
      result: error === undefined ? 'succeeded' : 'failed',
      ...(error !== undefined && { error }),
      workflowId,
      eventIds,
    });
    if (error !== undefined) log.warn('mirror operation failed', { mirror, operation, error, event_ids: eventIds });
  };

  /** Takes tables out of the mirror (the whole mirror when none would be left) and retires their destinations. */
  const removeTables = async (removed: TrackedTable[], eventIds: string[], at: string): Promise<void> => {
    const wholeMirror = removed.length === tables.size;
    let failed: unknown;
    try {
      if (wholeMirror) await dropMirror(mirror, { eventIds });
      else await editMirror(mirror, [], removed, { eventIds });
    } catch (error) {
      if (!wholeMirror && lostInPeerDb(error) && patched(REBUILD_FAILED_MIRROR)) failed = error;
      else {
        await record(wholeMirror ? 'drop' : 'remove_tables', removed, eventIds, failureText(error));
        return;
      }
    }
    if (wholeMirror) mirrorExists = false;
    for (const table of removed) tables.delete(table.source);
    await record(wholeMirror ? 'drop' : 'remove_tables', removed, eventIds);
    for (const table of removed) await retireDestinationTable(table.destination, settings.onDrop, at);
    await releaseDestinations(removed);
    // The rest leave with the failed (or vanished) mirror and come back in a new one.
    if (failed !== undefined) await rebuildMirror([...tables.values()], eventIds, new Map(), failed);
  };

  /**
   * Starts a verify workflow for each table a mirror just snapshotted: VERIFY_STARTS_PER_TASK at a time in one
   * workflow task (one after another, as older histories did, cost a round trip each: a minute for 200 tables).
   */
  const verifyAdded = async (added: TrackedTable[], eventIds: string[], eventIdOf: Map<string, string>): Promise<void> => {
    const startVerify = async (table: TrackedTable): Promise<void> => {
      const eventId = eventIdOf.get(table.source) ?? eventIds[eventIds.length - 1]!;
      try {
        await startChild(verifyTableWorkflow, {
          workflowId: verifyWorkflowId(mirror, table, eventId),
          args: [{ mirror, table, eventId, settings: settings.verify, retry: settings.retry }],
          parentClosePolicy: ParentClosePolicy.ABANDON,
          typedSearchAttributes: [...tableSearchAttributes(mirror, table), ...eventIdAttribute(eventId)],
        });
      } catch (error) {
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
    };
    const together = patched(START_VERIFIES_TOGETHER) ? VERIFY_STARTS_PER_TASK : 1;
    for (let i = 0; i < added.length; i += together) await Promise.all(added.slice(i, i + together).map(startVerify));
  };

  /**
   * Tables the activities left out after all (gone, or without a usable replica identity, since the workflow
   * looked): their destinations are released and, when they still exist, they are recorded as unmirrored.
   */
  const leaveOut = async (leftOut: LeftOut[], from: TrackedTable[], eventIds: string[]): Promise<TrackedTable[]> => {
    if (leftOut.length === 0) return from;
    const out = new Map(leftOut.map((table) => [table.source, table.reason]));
    const left = from.filter((table) => out.has(table.source));
    for (const table of left) log.info('table not mirrored', { mirror, schema: table.schema, table: table.table, reason: out.get(table.source), event_ids: eventIds });
    await releaseDestinations(left);
    await recordUnmirrored(mirror, left.map(({ schema, table, source }) => ({ schema, table, reason: out.get(source)! })), eventIds);
    return from.filter((table) => !out.has(table.source));
  };

  /**
   * Creates the mirror with these tables. A mirror that already existed (a retried create, a lost history) may
   * lack some of them: they are added. Returns the tables it left out, and whether a mirror exists now.
   */
  const createWith = async (wanted: TrackedTable[], eventIds: string[]): Promise<{ exists: boolean; leftOut: LeftOut[] }> => {
    const created = createOutcomeOf(await createMirror(mirror, wanted, { eventIds }));
    if (created.outcome === 'exists') return { exists: true, leftOut: leftOutOf(await editMirror(mirror, wanted, [], { eventIds })) };
    return { exists: created.outcome !== 'none', leftOut: created.leftOut };
  };

  /** Splits tables into those the catalog still has as mirrorable (with their relation now) and the rest. */
  const stillThere = async (candidates: TrackedTable[]): Promise<{ alive: TrackedTable[]; gone: TrackedTable[] }> => {
    const facts = await inspectSourceTables(candidates.map(({ schema, table }) => ({ schema, table })));
    return {
      alive: candidates.flatMap((table, i) => (facts[i]!.mirrorable ? [{ ...table, relationOid: facts[i]!.relationOid }] : [])),
      gone: candidates.filter((_, i) => !facts[i]!.mirrorable),
    };
  };

  /**
   * PeerDB gave up on the mirror (STATUS_FAILED: a table dropped during its snapshot, a lost slot), holds it in a
   * state it never leaves (a create whose table is gone or has no key: PeerDB retries that for ever), or no longer
   * knows it (dropped behind EchoDB's back). Drops it and creates it again with those of `wanted` that still exist
   * and can be mirrored, each snapshotted afresh into an empty destination: the old one is moved aside (dropped
   * under DESTINATION_ON_DROP=drop). A new mirror that fails too, or is refused (another table dropped meanwhile),
   * is rebuilt again, up to REBUILD_ATTEMPTS times in all.
   */
  const rebuildMirror = async (wanted: TrackedTable[], eventIds: string[], eventIdOf: Map<string, string>, cause: unknown): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      log.warn('mirror failed in PeerDB, is stuck there, or is gone: dropping it and creating it again', {
        mirror,
        attempt,
        tables: wanted.length,
        cause: failureText(cause),
        event_ids: eventIds,
      });
      await dropMirror(mirror, { eventIds });
      mirrorExists = false;
      tables.clear();
      await record('drop', wanted, eventIds);
      const at = new Date(Date.now()).toISOString();
      const { alive, gone } = await stillThere(wanted);
      for (const table of gone) await retireDestinationTable(table.destination, settings.onDrop, at);
      await releaseDestinations(gone);
      for (const table of alive) await retireDestinationTable(table.destination, settings.onDrop === 'drop' ? 'drop' : 'rename', at);
      if (alive.length === 0) return;
      let failure: unknown;
      let created = alive;
      try {
        const outcome = await createWith(alive, eventIds);
        created = await leaveOut(outcome.leftOut, alive, eventIds);
        if (!outcome.exists) return;
      } catch (error) {
        // Failed again, wedged, or refused (a table dropped since it was inspected): look again and retry.
        const again = isFailureOfType(error, 'MirrorFailed') || isFailureOfType(error, 'PeerDbInvalidRequest') || isFailureOfType(error, 'MirrorWedged');
        if (again && attempt < REBUILD_ATTEMPTS) {
          wanted = alive;
          cause = error;
          continue;
        }
        failure = error;
      }
      // Tracked even when this failed: they belong in the mirror, and the next edit rebuilds it with them.
      mirrorExists = true;
      for (const table of created) tables.set(table.source, table);
      if (failure !== undefined) {
        await record('create', created, eventIds, failureText(failure));
        return;
      }
      await record('create', created, eventIds);
      await verifyAdded(created, eventIds, eventIdOf);
      return;
    }
  };

  /**
   * Claims the destinations of these tables. A destination held by a table that has left under that name (moved
   * to another watched schema, whose mirror releases the claim when it removes it) is waited for, up to
   * DESTINATION_CLAIM_WAIT, instead of failing: such moves converge without reconcile.
   */
  const claim = async (wanted: TrackedTable[]) => {
    let { claimed, collisions } = await claimDestinations(mirror, wanted);
    if (collisions.length > 0 && patched(SKIP_DEPARTED_CLAIMANTS)) collisions = await withoutDeparted(collisions);
    const waitMs = settings.claimWaitMs ?? 0;
    if (collisions.length === 0 || waitMs === 0 || !patched(WAIT_FOR_LEAVING_HOLDER)) return { claimed, collisions };
    const deadline = Date.now() + waitMs;
    let waited = false;
    for (let pause = 500; collisions.length > 0 && Date.now() < deadline; pause = Math.min(pause * 2, MAX_CLAIM_PAUSE_MS)) {
      // A holder the claim no longer names (released meanwhile: `unknown`) has left too.
      const named = collisions.filter(({ heldBy }) => heldBy.includes('.'));
      const holders = await inspectSourceTables(named.map(({ heldBy }) => parseSourceTableIdentifier(heldBy)));
      const gone = new Set(named.filter((_, i) => holders[i]!.relationOid === null));
      const leaving = collisions.filter((collision) => gone.has(collision) || !collision.heldBy.includes('.'));
      if (leaving.length === 0) break;
      log.info('waiting for ClickHouse destinations held by tables that left', {
        mirror,
        tables: leaving.map(({ table, heldBy }) => `${table.source} (held by ${heldBy})`),
      });
      await sleep(Math.min(pause, Math.max(deadline - Date.now(), 1)));
      waited = true;
      const retry = await claimDestinations(mirror, leaving.map(({ table }) => table));
      claimed = [...claimed, ...retry.claimed];
      collisions = [...collisions.filter((collision) => !leaving.includes(collision)), ...retry.collisions];
    }
    // The table itself may have left while it waited (moved on, or back to where its holder was).
    if (waited && collisions.length > 0 && patched(SKIP_DEPARTED_CLAIMANTS)) collisions = await withoutDeparted(collisions);
    return { claimed, collisions };
  };

  /**
   * The collisions whose own table still exists under its name. One that left after it was inspected (moved to
   * another watched schema, whose mirror then claimed the destination; renamed; dropped) has nothing to mirror
   * here, and its next event says where it went: no failure to record.
   */
  const withoutDeparted = async (collisions: DestinationCollision[]): Promise<DestinationCollision[]> => {
    const facts = await inspectSourceTables(collisions.map(({ table }) => ({ schema: table.schema, table: table.table })));
    const departed = collisions.filter((_, i) => facts[i]!.relationOid === null);
    if (departed.length === 0) return collisions;
    log.info('tables left before their ClickHouse destinations were claimed; not adding them', {
      mirror,
      tables: departed.map(({ table, heldBy }) => `${table.source} (destination held by ${heldBy})`),
    });
    return collisions.filter((collision) => !departed.includes(collision));
  };

  /** Puts tables into the mirror (creating it when there is none) and starts a verify workflow for each. */
  const addTables = async (
    wanted: TrackedTable[],
    eventIds: string[],
    eventIdOf: Map<string, string>,
    at: string,
  ): Promise<void> => {
    const { claimed, collisions } = await claim(wanted);
    for (const { table, heldBy } of collisions) {
      const error = `NameCollision: ClickHouse table ${table.destination} already receives ${heldBy}; ${table.source} is not mirrored`;
      await record(mirrorExists ? 'add_tables' : 'create', [table], eventIds, error);
    }
    let added = wanted.filter((table) => claimed.some((c) => c.source === table.source));
    if (added.length === 0) return;
    // PeerDB snapshots only into an empty table. Under `keep`, a dropped table's data is still in place when a
    // table of that name comes back: move it aside now that the destination is this table's (a no-op when
    // there is nothing there).
    if (settings.onDrop === 'keep') {
      for (const table of added) await retireDestinationTable(table.destination, 'rename', at);
    }
    let operation: MirrorOperation['operation'] = mirrorExists ? 'add_tables' : 'create';
    let leftOut: LeftOut[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        if (!peersEnsured) {
          await ensurePeers();
          peersEnsured = true;
        }
        if (mirrorExists) {
          try {
            leftOut = leftOutOf(await editMirror(mirror, added, [], { eventIds }));
          } catch (error) {
            // Dropped behind EchoDB's back: rebuilt below with every table it should hold. Older histories
            // started over with the added tables alone.
            if (!isFailureOfType(error, 'MirrorNotFound') || patched(REBUILD_FAILED_MIRROR)) throw error;
            tables.clear();
            mirrorExists = false;
            operation = 'create';
          }
        }
        if (!mirrorExists) {
          const created = await createWith(added, eventIds);
          leftOut = created.leftOut;
          mirrorExists = created.exists;
        }
        break;
      } catch (error) {
        if (!peersEnsured) {
          // A peer PeerDB refuses (it could not log in, say): this edit fails; the next one tries the peers again.
          if (!patched(PEERS_REFUSED_IN_EDIT)) throw error;
          await record(operation, added, eventIds, `peers: ${failureText(error)}`);
          await releaseDestinations(added);
          return;
        }
        if (lostInPeerDb(error) && patched(REBUILD_FAILED_MIRROR)) {
          await rebuildMirror([...tables.values(), ...added], eventIds, eventIdOf, error);
          return;
        }
        // PeerDB refuses a create naming a table that is gone: one dropped since it was inspected. The others
        // go in without it (a later event of the dropped one finds it not tracked).
        if (isFailureOfType(error, 'PeerDbInvalidRequest') && attempt < RECHECK_ATTEMPTS && patched(RECHECK_REFUSED_TABLES)) {
          const { alive, gone } = await stillThere(added);
          if (gone.length > 0) {
            await releaseDestinations(gone);
            added = alive;
            if (added.length === 0) return;
            continue;
          }
        }
        await record(operation, added, eventIds, failureText(error));
        await releaseDestinations(added);
        return;
      }
    }
    added = await leaveOut(leftOut, added, eventIds);
    if (added.length === 0) return;
    for (const table of added) tables.set(table.source, table);
    await record(operation, added, eventIds);
    await verifyAdded(added, eventIds, eventIdOf);
  };

  const applyEvents = async (events: TableEvent[]): Promise<void> => {
    const latest = new Map<string, TableEvent>();
    for (const event of events) latest.set(event.source, event);
    const facts = await inspectSourceTables([...latest.values()].map(({ schema, table }) => ({ schema, table })));
    const plan = planChanges([...latest.values()], facts, tables);
    const eventIds = events.map((e) => e.eventId);
    const at = new Date(Date.now()).toISOString();
    for (const skipped of plan.skipped) log.info('table not mirrored', { mirror, ...skipped, event_ids: eventIds });
    for (const adopted of plan.adopted) tables.set(adopted.source, adopted);
    if (plan.skipped.length > 0 && patched(RECORD_UNMIRRORED)) await recordUnmirrored(mirror, plan.skipped, eventIds);
    // A mirrored table that lost its key, under MISSING_REPLICA_IDENTITY=set-full: given REPLICA IDENTITY FULL
    // (in a publication without it, PostgreSQL rejects its UPDATEs), or taken out when that fails.
    if (plan.repair.length > 0) {
      const failed = new Set((await giveReplicaIdentity(plan.repair)).map((table) => table.source));
      plan.remove.push(...plan.repair.filter((table) => failed.has(table.source)));
    }

    if (plan.remove.length > 0) await removeTables(plan.remove, eventIds, at);
    if (plan.add.length > 0) {
      await addTables(plan.add, eventIds, new Map(events.map((e) => [e.source, e.eventId])), at);
    }

    const touched = [...plan.add, ...plan.remove].slice(0, 50).map((t) => `${t.schema}.${t.table}`);
    upsertSearchAttributes([
      ...(events[0] ? [{ key: searchAttributes.schema, value: events[0].schema }] : []),
      ...(touched.length > 0 ? [{ key: searchAttributes.tables, value: touched }] : []),
      ...eventIdAttribute(eventIds[eventIds.length - 1]),
    ]);
  };

  for (;;) {
    const hasWork = () => pending.length > 0;
    // A workflow that owns a mirror waits for events indefinitely; one without waits a while, then completes.
    const gotWork = mirrorExists ? (await condition(hasWork), true) : await condition(hasWork, IDLE_COMPLETION);
    if (!gotWork) {
      // No mirror and nothing to do: finish. A later event starts a fresh run through signal-with-start.
      await condition(allHandlersFinished);
      if (pending.length === 0) return;
      continue;
    }
    if (settings.coalesceWindowMs > 0) await sleep(settings.coalesceWindowMs);
    await applyEvents(pending.splice(0));

    const info = workflowInfo();
    if (pending.length === 0 && (info.continueAsNewSuggested || info.historyLength > MAX_HISTORY_EVENTS)) {
      await condition(allHandlersFinished);
      const carried: MirrorCarriedState = {
        tables: [...tables.values()],
        seenEventIds: [...seen],
        pending: pending.splice(0),
        operationSeq,
      };
      await continueAsNew<typeof mirrorWorkflow>({ mirror, carried });
    }
  }
}

/**
 * Settings as an older worker returned them lack fields added since; a replayed history must still work, so
 * missing ones take the values those workers used.
 */
function withDefaults(settings: MirrorSettings): MirrorSettings {
  return { ...settings, retry: settings.retry ?? LEGACY_RETRY };
}

/** Outbox ids are integers; a rename's halves carry a suffix (`42:from`). */
function eventIdAttribute(eventId: string | undefined) {
  const numeric = Number(eventId?.split(':')[0]);
  return Number.isSafeInteger(numeric) ? [{ key: searchAttributes.eventId, value: numeric }] : [];
}
