import {
  ChildWorkflowFailure,
  ParentClosePolicy,
  executeChild,
  log,
  patched,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import { DEFAULT_VERIFY_BATCH_SIZE, verifyBatches } from '../lib/workflow-safe/batches.js';
import { diffWorkflowId, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { patches } from './definitions.js';
import type { DiffResult } from './diff-model.js';
import { diffTableWorkflow, failedDiff } from './diff-workflow.js';
import type { MirrorSettings, ReconcileReport, VerificationResult, VerifyAllInput, VerifyAllReport, VerifyItem, VerifyTableInput } from './model.js';
import { reconcileWorkflow } from './reconcile-workflow.js';
import { failureText } from './failures.js';
import { verificationResult } from './verification-result.js';
import { verifyTablesChild, verifyTablesWorkflow } from './verify-tables-workflow.js';
import { verifyTableWorkflow } from './verify-workflow.js';

const { mirrorSettings, listMirroredTables } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/**
 * Proves every mirrored table: first reconcile (so that drift is repaired, not just reported), then the tables from
 * EchoDB's destination claims in batches of VERIFY_BATCH_SIZE (verifyTablesWorkflow: one count statement per
 * database for a whole batch; a table that does not match gets a verify workflow of its own), at most
 * VERIFY_CONCURRENCY batches at a time and with no initial delay. Started by the verify-all schedule and on demand.
 * Histories from before batches (patch verify-in-batches) verified each table in a workflow of its own.
 */
export async function verifyAllWorkflow(input: VerifyAllInput = {}): Promise<VerifyAllReport> {
  const { workflowId, runId } = workflowInfo();
  const reconcile = await runReconcile(`${workflowId}:reconcile`);
  const settings = await mirrorSettings();
  const tables = await listMirroredTables();
  const items = tables.map((table): VerifyItem => ({
    mirror: table.mirror,
    table: { schema: table.schema, table: table.table, source: table.source, destination: table.destination },
    eventId: `verify-all:${runId}`,
  }));
  if (input.mode === 'checksum') return diffReport(reconcile, await inLanes(items.length, settings.verifyAll.concurrency, (i) => diff(items[i]!)));

  const results = patched(patches.verifyInBatches)
    ? await verifyInBatches(items, settings)
    : await inLanes(items.length, settings.verifyAll.concurrency, (i) => verify({ ...items[i]!, settings: { ...settings.verify, delayMs: 0 }, retry: settings.retry }));

  const count = (status: VerificationResult['status']) => results.filter((r) => r.status === status).length;
  return {
    reconcile,
    tables: tables.length,
    matched: count('match'),
    mismatched: count('mismatch'),
    errors: count('error'),
    results,
  };
}

/** The tables in batches, VERIFY_CONCURRENCY batches at a time; the results keep the tables' order. */
async function verifyInBatches(items: VerifyItem[], settings: MirrorSettings): Promise<VerificationResult[]> {
  const batches = verifyBatches(items, settings.verify.batchSize ?? DEFAULT_VERIFY_BATCH_SIZE);
  const verified = await inLanes(batches.length, settings.verifyAll.concurrency, async (i) => {
    const child = verifyTablesChild({ tables: batches[i]!, settings: { ...settings.verify, delayMs: 0 }, retry: settings.retry });
    try {
      return await executeChild(verifyTablesWorkflow, child);
    } catch (error) {
      if (!(error instanceof ChildWorkflowFailure)) throw error;
      // A batch that failed (say, terminated by an operator): an error for each of its tables.
      return batches[i]!.map((item) => verificationResult(child.workflowId, item, undefined, 0, failureText(error)));
    }
  });
  return verified.flat();
}

/** VERIFY_MODE=checksum: each table's row diff; a diff that is neither a match nor an error is a mismatch. */
function diffReport(reconcile: ReconcileReport | null, diffs: DiffResult[]): VerifyAllReport {
  const errors = diffs.filter((d) => d.status === 'error').length;
  const matched = diffs.filter((d) => d.match).length;
  return { reconcile, tables: diffs.length, matched, mismatched: diffs.length - matched - errors, errors, results: [], mode: 'checksum', diffs };
}

/**
 * One table's row diff (diffTableWorkflow), on an ID of this run's, abandoned like a verify child so that its result
 * still reaches echodb.row_diffs; one that fails (terminated, say) is an error result.
 */
async function diff({ mirror, table, eventId }: VerifyItem): Promise<DiffResult> {
  const workflowId = diffWorkflowId(mirror, table, eventId);
  try {
    return await executeChild(diffTableWorkflow, {
      workflowId,
      args: [{ mirror, table, eventId }],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: tableSearchAttributes(mirror, table),
    });
  } catch (error) {
    if (!(error instanceof ChildWorkflowFailure)) throw error;
    return failedDiff(workflowId, mirror, table, failureText(error), new Date(Date.now()).toISOString());
  }
}

/** `work` for each index below `count`, at most `lanes` at a time, each lane taking the next index; results in order. */
async function inLanes<T>(count: number, lanes: number, work: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      results[index] = await work(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane));
  return results;
}

/** Reconcile as a child; null when it could not run (one with this ID runs already, or it failed). */
async function runReconcile(workflowId: string): Promise<ReconcileReport | null> {
  try {
    // Abandoned, not terminated, with this run: a repair that started is let finish.
    return await executeChild(reconcileWorkflow, { workflowId, parentClosePolicy: ParentClosePolicy.ABANDON });
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError || error instanceof ChildWorkflowFailure)) throw error;
    log.warn('verify-all goes on without reconcile', { error: failureText(error) });
    return null;
  }
}

/**
 * One table's verify workflow, on an ID of this run's (histories from before batches). It outlives a terminated
 * verify-all (abandoned), so its result still reaches echodb.verifications; cancelling verify-all cancels it. A verify
 * workflow that fails (say, terminated by an operator) is an error result.
 */
async function verify(input: VerifyTableInput): Promise<VerificationResult> {
  const { mirror, table, eventId } = input;
  const workflowId = verifyWorkflowId(mirror, table, eventId);
  try {
    return await executeChild(verifyTableWorkflow, {
      workflowId,
      args: [input],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: tableSearchAttributes(mirror, table),
    });
  } catch (error) {
    if (!(error instanceof ChildWorkflowFailure)) throw error;
    return verificationResult(workflowId, input, undefined, 0, failureText(error));
  }
}
