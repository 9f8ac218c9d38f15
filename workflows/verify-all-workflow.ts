import {
  ChildWorkflowFailure,
  ParentClosePolicy,
  executeChild,
  log,
  proxyActivities,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { MirroredTable } from '../lib/mirrored-tables.js';
import { verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import type { ReconcileReport, VerificationResult, VerifyAllReport, VerifyTableInput } from './model.js';
import { reconcileWorkflow } from './reconcile-workflow.js';
import { failureText } from './failures.js';
import { verifyTableWorkflow } from './verify-workflow.js';

const { mirrorSettings, listMirroredTables } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/**
 * Proves every mirrored table: first reconcile (so that drift is repaired, not just reported), then one verify
 * workflow per table from EchoDB's destination claims, at most VERIFY_CONCURRENCY at a time and with no initial
 * delay. Started by the verify-all schedule and on demand. Each table costs the history three events, so a
 * thousand tables stay far below Temporal's limits.
 */
export async function verifyAllWorkflow(): Promise<VerifyAllReport> {
  const { workflowId, runId } = workflowInfo();
  const reconcile = await runReconcile(`${workflowId}:reconcile`);
  const settings = await mirrorSettings();
  const tables = await listMirroredTables();
  const input = (table: MirroredTable): VerifyTableInput => ({
    mirror: table.mirror,
    table: { schema: table.schema, table: table.table, source: table.source, destination: table.destination },
    eventId: `verify-all:${runId}`,
    settings: { ...settings.verify, delayMs: 0 },
    retry: settings.retry,
  });

  const results: VerificationResult[] = [];
  let next = 0;
  // Each lane verifies one table at a time; the results keep the tables' order.
  const lane = async (): Promise<void> => {
    while (next < tables.length) {
      const index = next++;
      results[index] = await verify(input(tables[index]!));
    }
  };
  const lanes = Math.min(settings.verifyAll.concurrency, tables.length);
  await Promise.all(Array.from({ length: lanes }, lane));

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
 * One table's verify workflow, on an ID of this run's. It outlives a terminated verify-all (abandoned), so its
 * result still reaches echodb.verifications; cancelling verify-all cancels it. A verify workflow that fails (say,
 * terminated by an operator) is an error result.
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
    return {
      workflowId,
      mirror,
      schema: table.schema,
      table: table.table,
      destination: table.destination,
      status: 'error',
      postgresCount: null,
      clickhouseCount: null,
      match: false,
      difference: null,
      attempts: 0,
      error: failureText(error),
      timestamp: new Date(Date.now()).toISOString(),
    };
  }
}
