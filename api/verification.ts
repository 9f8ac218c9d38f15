// Starting verify and verify-all workflows on request, and waiting a while for their result: shared by the HTTP
// API and the CLI. Both only start workflows; the worker does the counting.
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { mirroredTables, type MirroredTable, type SourceQuery } from '../lib/mirrored-tables.js';
import { qualifiedName, sourceTableIdentifier, verifyAllWorkflowId, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { workflowTypes } from '../workflows/definitions.js';
import type { TableRef, VerificationResult, VerifyAllReport } from '../workflows/model.js';
import type { verifyAllWorkflow } from '../workflows/verify-all-workflow.js';
import type { verifyTableWorkflow } from '../workflows/verify-workflow.js';
import { verifyAllArgs } from '../lib/verify-all-schedule.js';
import { diffJson } from './diff.js';
import { tableExists } from './state.js';

/** The table asked for is in no mirror, or does not exist. */
export class UnknownTable extends Error {
  override readonly name = 'UnknownTable';
}

/** What starting a verification needs: the deployment's task queue and settings, and a Temporal client. */
export interface VerifyContext {
  config: Config;
  temporal: Client;
}

/** The event id of verifications started on request: one runs per table at a time, later requests start anew. */
const ON_DEMAND = 'on-demand';

/**
 * Only EchoDB's verify, batch verify (the workflow_id of a table verified with others: /mirrors, echodb status) and
 * verify-all workflows may be polled through the API.
 */
export const isVerificationWorkflowId = (workflowId: string) => /^echodb-(verify(-all|-tables)?(-scheduled)?|diff):/.test(workflowId);

export async function findMirroredTable(query: SourceQuery, ref: TableRef): Promise<MirroredTable> {
  const [found] = await mirroredTables(query, sourceTableIdentifier(ref));
  if (found !== undefined) return found;
  throw new UnknownTable(
    (await tableExists(query, ref))
      ? `table ${qualifiedName(ref)} is in no mirror (not watched, excluded, or not added yet)`
      : `PostgreSQL has no table ${qualifiedName(ref)}`,
  );
}

/**
 * Starts verifying one mirrored table now (no VERIFY_DELAY; a mismatch is retried VERIFY_ATTEMPTS times), or
 * joins the verification of that table already running.
 */
export function startVerify({ config, temporal }: VerifyContext, { mirror, ...table }: MirroredTable) {
  return temporal.workflow.start<typeof verifyTableWorkflow>(workflowTypes.verifyTable, {
    workflowId: verifyWorkflowId(mirror, table, ON_DEMAND),
    taskQueue: config.temporal.taskQueue,
    args: [{ mirror, table, eventId: ON_DEMAND, settings: { ...config.verify, delayMs: 0 }, retry: config.retry }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: tableSearchAttributes(mirror, table),
  });
}

/** Starts verify-all (reconcile, then every mirrored table), or joins the one already running. */
export function startVerifyAll({ config, temporal }: VerifyContext) {
  return temporal.workflow.start<typeof verifyAllWorkflow>(workflowTypes.verifyAll, {
    workflowId: verifyAllWorkflowId(config.temporal.taskQueue),
    taskQueue: config.temporal.taskQueue,
    args: verifyAllArgs(config),
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
}

/** The workflow's result if it completes within `waitMs`, else undefined (the workflow runs on). */
export async function resultWithin<T>(temporal: Client, handle: WorkflowHandle, waitMs: number): Promise<T | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), waitMs);
  try {
    return (await temporal.connection.withAbortSignal(controller.signal, () => handle.result())) as T;
  } catch (error) {
    if (controller.signal.aborted) return undefined;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

export type RunState<T> =
  | { state: 'completed'; result: T }
  | { state: 'running' }
  | { state: 'failed'; status: string; error: string }
  | { state: 'unknown' };

/** Where a verify or verify-all workflow is: its result when it completed. */
export async function runState<T>(temporal: Client, workflowId: string, runId?: string): Promise<RunState<T>> {
  if (!isVerificationWorkflowId(workflowId)) return { state: 'unknown' };
  const handle = temporal.workflow.getHandle(workflowId, runId);
  try {
    const { status } = await handle.describe();
    if (status.name === 'RUNNING') return { state: 'running' };
    if (status.name === 'COMPLETED') return { state: 'completed', result: (await handle.result()) as T };
    return { state: 'failed', status: status.name, error: `the workflow ended ${status.name.toLowerCase()}` };
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return { state: 'unknown' };
    throw error;
  }
}

/** The original manual's verification JSON, with what EchoDB adds (status, mirror, attempts, error, workflow id). */
export function verificationJson(result: VerificationResult) {
  return {
    table: qualifiedName(result),
    postgres_count: result.postgresCount,
    clickhouse_count: result.clickhouseCount,
    match: result.match,
    difference: result.difference,
    timestamp: result.timestamp,
    status: result.status,
    mirror: result.mirror,
    destination: result.destination,
    attempts: result.attempts,
    error: result.error ?? null,
    workflow_id: result.workflowId,
  };
}

export function verifyAllJson(report: VerifyAllReport, workflowId: string) {
  return {
    workflow_id: workflowId,
    summary: {
      tables: report.tables,
      matched: report.matched,
      mismatched: report.mismatched,
      errors: report.errors,
      match: report.mismatched === 0 && report.errors === 0,
    },
    mode: report.mode ?? 'count',
    results: report.results.map(verificationJson),
    ...(report.diffs && { diffs: report.diffs.map(diffJson) }),
    reconcile: report.reconcile,
  };
}

/** A batch verify's results (verifyTablesWorkflow): every table it verified. */
export function verifyTablesJson(results: VerificationResult[], workflowId: string) {
  return { workflow_id: workflowId, results: results.map(verificationJson) };
}

/** Is a result verify's or verify-all's (a polled workflow may be either, or a batch verify's). */
export function isVerifyAllReport(result: VerificationResult | VerificationResult[] | VerifyAllReport): result is VerifyAllReport {
  return 'results' in result;
}
