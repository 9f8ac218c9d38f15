import { ChildWorkflowFailure, ParentClosePolicy, proxyActivities, sleep, startChild, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import { eventIdAttribute, tableSearchAttributes, tablesSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { verifyTablesWorkflowId, verifyWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { failureText } from './failures.js';
import type { TableCount, VerificationResult, VerifyItem, VerifyTableInput, VerifyTablesInput } from './model.js';
import { verificationResult } from './verification-result.js';
import { verifyTableWorkflow } from './verify-workflow.js';

const { recordVerifications } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/** How many verify workflows one workflow task starts: bounded, so that one task's commands stay small. */
const STARTS_PER_TASK = 100;

/** A table's way on after the batched count: its result, or its own verify workflow. */
type Outcome = { result: VerificationResult } | { recheck: VerifyTableInput };

/**
 * Verifies a batch of mirrored tables together: waits VERIFY_DELAY, counts every table on both sides with one
 * statement per database (countTables), records the matches in one statement, and gives each table that does not
 * match, or could not be counted alone, a verify workflow of its own (verifyTableWorkflow: retried on timers, its
 * own record), whose result it waits for. Returns every table's result, in the batch's order. A side that cannot
 * be reached after MAX_RETRIES is an error for every table, recorded here: never a count of 0.
 */
export async function verifyTablesWorkflow(input: VerifyTablesInput): Promise<VerificationResult[]> {
  const { tables, settings, retry } = input;
  const { workflowId } = workflowInfo();
  // Counting gives up after MAX_RETRIES: an unreachable side becomes an error result, not a stuck workflow.
  const { countTables } = proxyActivities<Activities>({
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: retry.backoffMs, backoffCoefficient: retry.backoffCoefficient, maximumAttempts: retry.maxRetries + 1 },
  });
  if (settings.delayMs > 0) await sleep(settings.delayMs);

  let outcomes: Outcome[];
  try {
    const counted = await countTables(tables.map((item) => item.table));
    outcomes = tables.map((item, i) => settle(workflowId, item, counted[i]!, input));
  } catch (failure) {
    const error = failureText(failure);
    outcomes = tables.map((item) => ({ result: verificationResult(workflowId, item, undefined, 1, error) }));
  }
  const settled = outcomes.flatMap((outcome) => ('result' in outcome ? [outcome.result] : []));
  if (settled.length > 0) await recordVerifications(settled);

  const rechecked = await recheckAll(outcomes.flatMap((outcome) => ('recheck' in outcome ? [outcome.recheck] : [])));
  return outcomes.map((outcome) => ('result' in outcome ? outcome.result : rechecked.shift()!));
}

/**
 * A match is settled. A mismatch goes on as today's verify workflow would after its first count: VERIFY_INTERVAL
 * later, up to VERIFY_ATTEMPTS counts in all (settled now when that is one). A table that could not be counted gets a
 * verify workflow that counts it afresh at once, with its own retries.
 */
function settle(workflowId: string, item: VerifyItem, count: TableCount, { settings, retry }: VerifyTablesInput): Outcome {
  const own = { mirror: item.mirror, table: item.table, eventId: item.eventId, retry };
  if ('error' in count) return { recheck: { ...own, settings: { ...settings, delayMs: 0 } } };
  const { postgres, clickhouse } = count.counts;
  if (postgres !== clickhouse && settings.attempts > 1) {
    return { recheck: { ...own, settings: { ...settings, delayMs: settings.intervalMs }, attemptsDone: 1 } };
  }
  return { result: verificationResult(workflowId, item, count.counts, 1) };
}

/** Runs the verify workflows of the tables left to recheck, STARTS_PER_TASK per workflow task, and their results. */
async function recheckAll(rechecks: VerifyTableInput[]): Promise<VerificationResult[]> {
  const running: Promise<VerificationResult>[] = [];
  for (let i = 0; i < rechecks.length; i += STARTS_PER_TASK) {
    const started = await Promise.all(rechecks.slice(i, i + STARTS_PER_TASK).map(startRecheck));
    running.push(...started.map((start) => start.result));
  }
  return Promise.all(running);
}

/**
 * One table's verify workflow, on the ID it has always had (its mirror, event and name). It outlives this batch
 * (abandoned), so its result still reaches echodb.verifications; cancelling the batch cancels it. One that fails (say,
 * terminated by an operator), or that runs already for the same event, is an error result (not recorded here).
 */
async function startRecheck(input: VerifyTableInput): Promise<{ result: Promise<VerificationResult> }> {
  const workflowId = verifyWorkflowId(input.mirror, input.table, input.eventId);
  const failed = (error: unknown) => verificationResult(workflowId, input, undefined, input.attemptsDone ?? 0, failureText(error));
  try {
    const child = await startChild(verifyTableWorkflow, {
      workflowId,
      args: [input],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      typedSearchAttributes: [...tableSearchAttributes(input.mirror, input.table), ...eventIdAttribute(input.eventId)],
    });
    return {
      result: child.result().catch((error: unknown) => {
        if (!(error instanceof ChildWorkflowFailure)) throw error;
        return failed(error);
      }),
    };
  } catch (error) {
    if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
    return { result: Promise.resolve(failed(error)) };
  }
}

/**
 * How a workflow starts a batch: on an ID after its first table (verifyTablesWorkflowId), with EchoDbTables listing
 * every table (the batch must fit it: lib/workflow-safe/batches.ts verifyBatches), abandoned when the parent closes.
 */
export function verifyTablesChild(input: VerifyTablesInput, eventId?: string) {
  const first = input.tables[0]!;
  return {
    workflowId: verifyTablesWorkflowId(first.mirror, first.table, first.eventId),
    args: [input] as [VerifyTablesInput],
    parentClosePolicy: ParentClosePolicy.ABANDON,
    typedSearchAttributes: tablesSearchAttributes(input.tables, eventId),
  };
}
