import { ParentClosePolicy, log, patched, proxyActivities, sleep, startChild, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import { MirrorFailed, MirrorNotFound, MirrorWedged, PeerDbInvalidRequest } from '../lib/workflow-safe/peerdb-errors.js';
import { eventIdAttribute, tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { parseSourceTableIdentifier, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { DEFAULT_VERIFY_BATCH_SIZE, verifyBatches } from '../lib/workflow-safe/batches.js';
import { NON_RETRYABLE, patches } from './definitions.js';
import { failureText, isFailureOfType } from './failures.js';
import type { MirrorState } from './mirror-state.js';
import type { DestinationCollision, LeftOut, MirrorOperation, MirrorSettings, MirrorTable, RetrySettings, TrackedTable } from './model.js';
import { verifyTablesChild, verifyTablesWorkflow } from './verify-tables-workflow.js';
import { verifyTableWorkflow } from './verify-workflow.js';

const {
  inspectSourceTables,
  recordMirrorOperation,
  retireDestinationTable,
  claimDestinations,
  releaseDestinations,
  recordUnmirrored,
} = proxyActivities<Activities>({
  // Short: these do not heartbeat, so one lost with its worker is retried only when this timeout passes.
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', nonRetryableErrorTypes: NON_RETRYABLE },
});

/** How many verify workflows (or batches) one workflow task starts: bounded, so that one task's commands stay small. */
const VERIFY_STARTS_PER_TASK = 100;
/** How many times one edit tries to put tables into the mirror when PeerDB refuses a table that vanished. */
const RECHECK_ATTEMPTS = 3;
/** How many times one edit rebuilds a failed mirror before it records the failure and waits for the next event. */
const REBUILD_ATTEMPTS = 3;
/** The longest pause between two looks at a destination held by a table that has left. */
const MAX_CLAIM_PAUSE_MS = 10_000;

export type PeerDbActivities = Pick<Activities, 'ensurePeers' | 'createMirror' | 'editMirror' | 'dropMirror'>;

/**
 * PeerDB operations wait for the mirror's state; they heartbeat every second (so those of a worker that died move
 * to another within the heartbeat timeout), and retry (from RETRY_DELAY on, RETRY_BACKOFF times longer each time, up
 * to a minute) for as long as PeerDB is away: a mirror edit is never abandoned because PeerDB was down.
 */
export function peerDbActivities(retry: RetrySettings): PeerDbActivities {
  return proxyActivities<Activities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '10 seconds',
    retry: {
      initialInterval: retry.backoffMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: '1 minute',
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
}

/** One run of a mirror workflow: its state, its settings, its PeerDB activities. */
export interface MirrorRun {
  readonly state: MirrorState;
  readonly settings: MirrorSettings;
  readonly peerdb: PeerDbActivities;
  /** The peers were created or updated in this run. */
  peersEnsured: boolean;
}

/** One edit of the mirror: the events it applies. */
export interface Edit {
  readonly run: MirrorRun;
  readonly eventIds: string[];
  /** Each table's latest event, which names its verify workflow. */
  readonly eventIdOf: ReadonlyMap<string, string>;
  /** When the edit began (ISO 8601), which names the destinations it moves aside. */
  readonly at: string;
}

/**
 * PeerDB failed the mirror (STATUS_FAILED), no longer knows it, or holds it in a state it never leaves (a wedged
 * create): either way, it must be created again.
 */
const lostInPeerDb = (error: unknown): boolean =>
  [MirrorFailed, MirrorNotFound, MirrorWedged].some((type) => isFailureOfType(error, type));

/** Records one operation on the mirror in echodb.mirror_operations (and logs a failed one). */
async function record(edit: Edit, operation: MirrorOperation['operation'], affected: MirrorTable[], error?: string): Promise<void> {
  const { state } = edit.run;
  const { workflowId, runId } = workflowInfo();
  await recordMirrorOperation({
    key: state.nextOperationKey(runId),
    mirror: state.mirror,
    operation,
    tables: affected.map((table) => table.source),
    result: error === undefined ? 'succeeded' : 'failed',
    ...(error !== undefined && { error }),
    workflowId,
    eventIds: edit.eventIds,
  });
  if (error !== undefined) log.warn('mirror operation failed', { mirror: state.mirror, operation, error, event_ids: edit.eventIds });
}

/**
 * Takes tables out of the mirror (the whole mirror when none would be left) and retires their destinations. A
 * mirror PeerDB failed or lost meanwhile is rebuilt with the tables that stay.
 */
export async function removeTables(edit: Edit, removed: TrackedTable[]): Promise<void> {
  const { state, settings, peerdb } = edit.run;
  const wholeMirror = removed.length === state.size;
  const operation = wholeMirror ? 'drop' : 'remove_tables';
  let lost: unknown;
  try {
    if (wholeMirror) await peerdb.dropMirror(state.mirror, { eventIds: edit.eventIds });
    else await peerdb.editMirror(state.mirror, [], removed, { eventIds: edit.eventIds });
  } catch (error) {
    if (wholeMirror || !lostInPeerDb(error)) return record(edit, operation, removed, failureText(error));
    lost = error;
  }
  state.untrack(removed);
  if (wholeMirror) state.exists = false;
  await record(edit, operation, removed);
  for (const table of removed) await retireDestinationTable(table.destination, settings.onDrop, edit.at);
  await releaseDestinations(removed);
  // The rest leave with the failed (or vanished) mirror and come back in a new one.
  if (lost !== undefined) await rebuildMirror(edit, state.tables, lost);
}

/** Puts tables into the mirror (creating it when there is none) and starts a verify workflow for each. */
export async function addTables(edit: Edit, wanted: TrackedTable[]): Promise<void> {
  const { state, settings } = edit.run;
  const claimed = await claim(edit, wanted);
  if (claimed.length === 0) return;
  // PeerDB snapshots only into an empty table. Under `keep`, a dropped table's data is still in place when a table
  // of that name comes back: move it aside now that the destination is this table's (a no-op when there is none).
  if (settings.onDrop === 'keep') {
    for (const table of claimed) await retireDestinationTable(table.destination, 'rename', edit.at);
  }
  const operation = state.exists ? 'add_tables' : 'create';
  if (!(await peersReady(edit, operation, claimed))) return;
  const put = await putIntoMirror(edit, operation, claimed);
  if (put === undefined) return;
  const added = await leaveOut(edit, put.leftOut, put.added);
  if (added.length === 0) return;
  state.track(added);
  await record(edit, operation, added);
  await verifyAdded(edit, added);
}

/** Creates or updates the peers once per run; a peer PeerDB refuses fails this edit, and the next one tries again. */
async function peersReady(edit: Edit, operation: MirrorOperation['operation'], tables: TrackedTable[]): Promise<boolean> {
  if (edit.run.peersEnsured) return true;
  try {
    await edit.run.peerdb.ensurePeers();
    edit.run.peersEnsured = true;
    return true;
  } catch (error) {
    await record(edit, operation, tables, `peers: ${failureText(error)}`);
    await releaseDestinations(tables);
    return false;
  }
}

/**
 * Adds the tables to the mirror, or creates it with them. PeerDB refuses a create naming a table that is gone (one
 * dropped since it was inspected): the others go in without it, up to RECHECK_ATTEMPTS times. A mirror PeerDB
 * failed or lost is rebuilt. Returns what went in, or undefined when the edit ended here (recorded).
 */
async function putIntoMirror(
  edit: Edit,
  operation: MirrorOperation['operation'],
  tables: TrackedTable[],
): Promise<{ added: TrackedTable[]; leftOut: LeftOut[] } | undefined> {
  const { state, peerdb } = edit.run;
  let added = tables;
  for (let attempt = 1; ; attempt++) {
    try {
      if (state.exists) return { added, leftOut: (await peerdb.editMirror(state.mirror, added, [], { eventIds: edit.eventIds })).leftOut };
      const created = await createWith(edit, added);
      state.exists = created.exists;
      return { added, leftOut: created.leftOut };
    } catch (error) {
      if (lostInPeerDb(error)) {
        await rebuildMirror(edit, [...state.tables, ...added], error);
        return undefined;
      }
      if (isFailureOfType(error, PeerDbInvalidRequest) && attempt < RECHECK_ATTEMPTS) {
        const { alive, gone } = await stillThere(added);
        if (gone.length > 0) {
          await releaseDestinations(gone);
          added = alive;
          if (added.length === 0) return undefined;
          continue;
        }
      }
      await record(edit, operation, added, failureText(error));
      await releaseDestinations(added);
      return undefined;
    }
  }
}

/**
 * Creates the mirror with these tables. A mirror that already existed (a retried create, a lost history) may lack
 * some of them: they are added. Returns the tables it left out, and whether a mirror exists now.
 */
async function createWith(edit: Edit, wanted: TrackedTable[]): Promise<{ exists: boolean; leftOut: LeftOut[] }> {
  const { state, peerdb } = edit.run;
  const created = await peerdb.createMirror(state.mirror, wanted, { eventIds: edit.eventIds });
  if (created.outcome !== 'exists') return { exists: created.outcome !== 'none', leftOut: created.leftOut };
  return { exists: true, leftOut: (await peerdb.editMirror(state.mirror, wanted, [], { eventIds: edit.eventIds })).leftOut };
}

/**
 * PeerDB gave up on the mirror (STATUS_FAILED: a table dropped during its snapshot, a lost slot), holds it in a state
 * it never leaves (a create whose table is gone or has no key: PeerDB retries that for ever), or no longer knows it
 * (dropped behind EchoDB's back). Drops it and creates it again with those of `wanted` that still exist and can be
 * mirrored, each snapshotted afresh into an empty destination. A new mirror that fails too, or is refused (another
 * table dropped meanwhile), is rebuilt again, up to REBUILD_ATTEMPTS times in all.
 */
async function rebuildMirror(edit: Edit, wanted: TrackedTable[], cause: unknown): Promise<void> {
  const { state } = edit.run;
  for (let attempt = 1; ; attempt++) {
    log.warn('mirror failed in PeerDB, is stuck there, or is gone: dropping it and creating it again', {
      mirror: state.mirror,
      attempt,
      tables: wanted.length,
      cause: failureText(cause),
      event_ids: edit.eventIds,
    });
    const alive = await dropAndRetire(edit, wanted);
    if (alive.length === 0) return;
    let created = alive;
    let failure: unknown;
    try {
      const outcome = await createWith(edit, alive);
      created = await leaveOut(edit, outcome.leftOut, alive);
      if (!outcome.exists) return;
    } catch (error) {
      // Failed again, wedged, or refused (a table dropped since it was inspected): look again and retry.
      const again = [MirrorFailed, MirrorWedged, PeerDbInvalidRequest].some((type) => isFailureOfType(error, type));
      if (again && attempt < REBUILD_ATTEMPTS) {
        [wanted, cause] = [alive, error];
        continue;
      }
      failure = error;
    }
    // Tracked even when this failed: they belong in the mirror, and the next edit rebuilds it with them.
    state.exists = true;
    state.track(created);
    await record(edit, 'create', created, failure === undefined ? undefined : failureText(failure));
    if (failure === undefined) await verifyAdded(edit, created);
    return;
  }
}

/**
 * Drops the mirror and retires the destinations of `wanted`: those of tables gone as DESTINATION_ON_DROP says, those
 * of tables still there moved aside (dropped under `drop`), so that a new mirror snapshots into empty tables.
 * Returns the tables still there.
 */
async function dropAndRetire(edit: Edit, wanted: TrackedTable[]): Promise<TrackedTable[]> {
  const { state, settings, peerdb } = edit.run;
  await peerdb.dropMirror(state.mirror, { eventIds: edit.eventIds });
  state.forget();
  await record(edit, 'drop', wanted);
  const { alive, gone } = await stillThere(wanted);
  for (const table of gone) await retireDestinationTable(table.destination, settings.onDrop, edit.at);
  await releaseDestinations(gone);
  for (const table of alive) await retireDestinationTable(table.destination, settings.onDrop === 'drop' ? 'drop' : 'rename', edit.at);
  return alive;
}

/** Splits tables into those the catalog still has as mirrorable (with their relation now) and the rest. */
async function stillThere(candidates: TrackedTable[]): Promise<{ alive: TrackedTable[]; gone: TrackedTable[] }> {
  const facts = await inspectSourceTables(candidates.map(({ schema, table }) => ({ schema, table })));
  return {
    alive: candidates.flatMap((table, i) => (facts[i]!.mirrorable ? [{ ...table, relationOid: facts[i]!.relationOid }] : [])),
    gone: candidates.filter((_, i) => !facts[i]!.mirrorable),
  };
}

/**
 * Tables the activities left out after all (gone, or without a usable replica identity, since the workflow looked):
 * their destinations are released and, when they still exist, they are recorded as unmirrored.
 */
async function leaveOut(edit: Edit, leftOut: LeftOut[], from: TrackedTable[]): Promise<TrackedTable[]> {
  if (leftOut.length === 0) return from;
  const { mirror } = edit.run.state;
  const reasons = new Map(leftOut.map((table) => [table.source, table.reason]));
  const left = from.filter((table) => reasons.has(table.source));
  for (const table of left) {
    log.info('table not mirrored', { mirror, schema: table.schema, table: table.table, reason: reasons.get(table.source), event_ids: edit.eventIds });
  }
  await releaseDestinations(left);
  await recordUnmirrored(mirror, left.map(({ schema, table, source }) => ({ schema, table, reason: reasons.get(source)! })), edit.eventIds);
  return from.filter((table) => !reasons.has(table.source));
}

/**
 * Claims the destinations of these tables and returns those claimed; each collision is recorded as a failure. A
 * destination held by a table that has left under that name (moved to another watched schema, whose mirror releases
 * the claim when it removes it) is waited for, up to DESTINATION_CLAIM_WAIT: such moves converge without reconcile.
 */
async function claim(edit: Edit, wanted: TrackedTable[]): Promise<TrackedTable[]> {
  const { state, settings } = edit.run;
  const first = await claimDestinations(state.mirror, wanted);
  const collisions = await withoutDeparted(edit, first.collisions);
  const { claimed, collisions: left } = collisions.length > 0 && settings.claimWaitMs > 0
    ? await waitForLeavingHolders(edit, first.claimed, collisions)
    : { claimed: first.claimed, collisions };
  for (const { table, heldBy } of left) {
    const error = `NameCollision: ClickHouse table ${table.destination} already receives ${heldBy}; ${table.source} is not mirrored`;
    await record(edit, state.exists ? 'add_tables' : 'create', [table], error);
  }
  return wanted.filter((table) => claimed.some((c) => c.source === table.source));
}

/** Claims again, with growing pauses until DESTINATION_CLAIM_WAIT passes, the destinations whose holders have left. */
async function waitForLeavingHolders(edit: Edit, claimed: MirrorTable[], collisions: DestinationCollision[]) {
  const { state, settings } = edit.run;
  const deadline = Date.now() + settings.claimWaitMs;
  let waited = false;
  for (let pause = 500; collisions.length > 0 && Date.now() < deadline; pause = Math.min(pause * 2, MAX_CLAIM_PAUSE_MS)) {
    const leaving = await leavingHolders(collisions);
    if (leaving.length === 0) break;
    log.info('waiting for ClickHouse destinations held by tables that left', {
      mirror: state.mirror,
      tables: leaving.map(({ table, heldBy }) => `${table.source} (held by ${heldBy})`),
    });
    await sleep(Math.min(pause, Math.max(deadline - Date.now(), 1)));
    waited = true;
    const retry = await claimDestinations(state.mirror, leaving.map(({ table }) => table));
    claimed = [...claimed, ...retry.claimed];
    collisions = [...collisions.filter((collision) => !leaving.includes(collision)), ...retry.collisions];
  }
  // The table itself may have left while it waited (moved on, or back to where its holder was).
  return { claimed, collisions: waited ? await withoutDeparted(edit, collisions) : collisions };
}

/** The collisions whose holder has left: it no longer exists under its name, or the claim no longer names it. */
async function leavingHolders(collisions: DestinationCollision[]): Promise<DestinationCollision[]> {
  const named = collisions.filter(({ heldBy }) => heldBy.includes('.'));
  const holders = await inspectSourceTables(named.map(({ heldBy }) => parseSourceTableIdentifier(heldBy)));
  const gone = new Set(named.filter((_, i) => holders[i]!.relationOid === null));
  return collisions.filter((collision) => gone.has(collision) || !collision.heldBy.includes('.'));
}

/**
 * The collisions whose own table still exists under its name. One that left after it was inspected (moved to another
 * watched schema, whose mirror then claimed the destination; renamed; dropped) has nothing to mirror here, and its
 * next event says where it went: no failure to record.
 */
async function withoutDeparted(edit: Edit, collisions: DestinationCollision[]): Promise<DestinationCollision[]> {
  if (collisions.length === 0) return collisions;
  const facts = await inspectSourceTables(collisions.map(({ table }) => ({ schema: table.schema, table: table.table })));
  const departed = collisions.filter((_, i) => facts[i]!.relationOid === null);
  if (departed.length === 0) return collisions;
  log.info('tables left before their ClickHouse destinations were claimed; not adding them', {
    mirror: edit.run.state.mirror,
    tables: departed.map(({ table, heldBy }) => `${table.source} (destination held by ${heldBy})`),
  });
  return collisions.filter((collision) => !departed.includes(collision));
}

/** The event that names a table's verification: its own latest, or the edit's latest for a table it rebuilt. */
const eventIdOf = (edit: Edit, table: TrackedTable): string => edit.eventIdOf.get(table.source) ?? edit.eventIds[edit.eventIds.length - 1]!;

/**
 * Starts the verification of the tables a mirror just snapshotted: in batches of VERIFY_BATCH_SIZE, each a
 * verifyTablesWorkflow that waits VERIFY_DELAY, counts its tables together and gives those that do not match a verify
 * workflow of their own; VERIFY_STARTS_PER_TASK batches per workflow task. Histories from before batches (patch
 * verify-in-batches) started one verify workflow per table.
 */
async function verifyAdded(edit: Edit, added: TrackedTable[]): Promise<void> {
  if (!patched(patches.verifyInBatches)) return verifyEachAdded(edit, added);
  const { state, settings } = edit.run;
  const items = added.map((t) => ({
    mirror: state.mirror,
    table: { schema: t.schema, table: t.table, source: t.source, destination: t.destination },
    eventId: eventIdOf(edit, t),
  }));
  const startBatch = async (tables: typeof items): Promise<void> => {
    try {
      const input = { tables, settings: settings.verify, retry: settings.retry };
      await startChild(verifyTablesWorkflow, verifyTablesChild(input, edit.eventIds[edit.eventIds.length - 1]));
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  };
  const batches = verifyBatches(items, settings.verify.batchSize ?? DEFAULT_VERIFY_BATCH_SIZE);
  for (let i = 0; i < batches.length; i += VERIFY_STARTS_PER_TASK) {
    await Promise.all(batches.slice(i, i + VERIFY_STARTS_PER_TASK).map(startBatch));
  }
}

/** Starts a verify workflow for each table a mirror just snapshotted, VERIFY_STARTS_PER_TASK per workflow task. */
async function verifyEachAdded(edit: Edit, added: TrackedTable[]): Promise<void> {
  const { state, settings } = edit.run;
  const startVerify = async (table: TrackedTable): Promise<void> => {
    const eventId = eventIdOf(edit, table);
    try {
      await startChild(verifyTableWorkflow, {
        workflowId: verifyWorkflowId(state.mirror, table, eventId),
        args: [{ mirror: state.mirror, table, eventId, settings: settings.verify, retry: settings.retry }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        typedSearchAttributes: [...tableSearchAttributes(state.mirror, table), ...eventIdAttribute(eventId)],
      });
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    }
  };
  for (let i = 0; i < added.length; i += VERIFY_STARTS_PER_TASK) {
    await Promise.all(added.slice(i, i + VERIFY_STARTS_PER_TASK).map(startVerify));
  }
}
