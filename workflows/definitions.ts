/**
 * EchoDB's Temporal contract, defined once: the workflow types that the listener, the API, reconcile and the
 * verify-all schedule start, the signal the listener sends, the query the API and the tests read, and the failures
 * a workflow does not retry. Every name here is written into histories: renaming one breaks running workflows.
 * Safe both inside the workflow sandbox and in Node.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { MirrorFailed, MirrorNotFound, MirrorStalled, MirrorWedged, PeerDbInvalidRequest } from '../lib/workflow-safe/peerdb-errors.js';
import type { TableEvent, TrackedTable } from './model.js';

/** Workflow types, as registered by the worker (each is the exported function's name; test/workflow-code.test.ts). */
export const workflowTypes = {
  mirror: 'mirrorWorkflow',
  verifyTable: 'verifyTableWorkflow',
  verifyTables: 'verifyTablesWorkflow',
  verifyAll: 'verifyAllWorkflow',
  reconcile: 'reconcileWorkflow',
  cleanup: 'cleanupWorkflow',
  diffTable: 'diffTableWorkflow',
} as const;

/**
 * The markers of patched() (README "Changing workflow code"): histories recorded before a change take its old branch.
 * - verifyInBatches: the mirror workflow and verify-all verify tables in batches (verifyTablesWorkflow), not one
 *   verify workflow per table.
 */
export const patches = {
  verifyInBatches: 'verify-in-batches',
} as const;

/** Events for this mirror, in outbox order: one signal per mirror per listener batch. */
export const tableEventsSignal = defineSignal<[TableEvent[]]>('tableEvents');

export interface MirrorView {
  mirror: string;
  exists: boolean;
  tables: TrackedTable[];
  pendingEvents: number;
}
export const mirrorStateQuery = defineQuery<MirrorView>('mirrorState');

/**
 * Failures that retrying cannot fix: the workflow records them and moves on. An activity's failure type is its
 * error's class name (lib/workflow-safe/peerdb-errors.ts), so they are named from the classes.
 */
export const NON_RETRYABLE = [PeerDbInvalidRequest, MirrorFailed, MirrorNotFound, MirrorWedged, MirrorStalled].map(
  (type) => type.name,
);
