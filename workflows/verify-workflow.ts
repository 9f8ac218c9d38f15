import { proxyActivities, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { failureText } from './failures.js';
import type { RowCounts, VerificationResult, VerifyTableInput } from './model.js';
import { verificationResult } from './verification-result.js';

const { mirrorSettings, recordVerification } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/**
 * Verifies one mirrored table: waits, compares PostgreSQL's count(*) with ClickHouse's live count, retries a
 * mismatch on timers, stores the result in echodb.verifications and returns it. Started on demand (/verify), and by a
 * batch (verifyTablesWorkflow) for each table that did not match there.
 */
export async function verifyTableWorkflow(input: VerifyTableInput): Promise<VerificationResult> {
  const { table } = input;
  // Already set when a workflow started it; a verify started on its own needs them too.
  upsertSearchAttributes(tableSearchAttributes(input.mirror, table));
  const { verify: settings, retry } = input.settings && input.retry
    ? { verify: input.settings, retry: input.retry }
    : await mirrorSettings();
  // Counting gives up after MAX_RETRIES: an unreachable side becomes an error result, not a stuck workflow.
  const { countRows } = proxyActivities<Activities>({
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: retry.backoffMs, backoffCoefficient: retry.backoffCoefficient, maximumAttempts: retry.maxRetries + 1 },
  });
  // sleep(0) would still cost a timer round trip (about a second on a dev server).
  if (settings.delayMs > 0) await sleep(settings.delayMs);

  // A batch that found a mismatch made the first count (verifyTablesWorkflow).
  let attempts = input.attemptsDone ?? 0;
  let counts: RowCounts | undefined;
  let error: string | undefined;
  while (attempts < settings.attempts) {
    attempts++;
    try {
      counts = await countRows(table);
    } catch (failure) {
      counts = undefined;
      error = failureText(failure);
      break;
    }
    if (counts.postgres === counts.clickhouse || attempts === settings.attempts) break;
    await sleep(settings.intervalMs);
  }

  const result = verificationResult(workflowInfo().workflowId, input, counts, attempts, error);
  await recordVerification(result);
  return result;
}
