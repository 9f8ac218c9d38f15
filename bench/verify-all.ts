import type { ServerSettings } from '../test/servers/index.js';
import { startBenchStack } from './api-stack.js';
import { round } from './stats.js';
import { createTablesInOneTransaction, waitForVerifications } from './tables.js';

export interface VerifyAllBenchResult {
  tables: number;
  /** VERIFY_BATCH_SIZE and VERIFY_CONCURRENCY as the deployment ran (the defaults unless set). */
  batchSize: number;
  concurrency: number;
  runs: {
    /** GET /verify-all, the round trip. */
    seconds: number;
    /** Of which reconcile (the workflow's start to its reconcile child's completion, from Temporal's event times). */
    reconcileSeconds: number;
    matched: number;
    /** Batch workflows verify-all started. */
    batches: number;
  }[];
  medianSeconds: number;
}

const eventMs = (time: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  Number(time?.seconds ?? 0) * 1000 + (time?.nanos ?? 0) / 1e6;

/**
 * Verify-all over `tables` mirrored tables, all matching, as the API starts it (`GET /verify-all`), `runs` times:
 * the round trip, the part reconcile takes, and the batch workflows it started. The settings are the deployment's
 * defaults unless `env` says otherwise.
 */
export async function measureVerifyAll(
  servers: ServerSettings,
  tables: number,
  runs: number,
  env: Record<string, string> = {},
): Promise<VerifyAllBenchResult> {
  const { stack, api } = await startBenchStack(servers, { API_VERIFY_WAIT: '600', ...env });
  try {
    const { sql, schema } = stack;
    await createTablesInOneTransaction(sql, schema, tables);
    await waitForVerifications(sql, tables);

    const results: VerifyAllBenchResult['runs'] = [];
    for (let run = 0; run < runs; run++) {
      const startedAt = performance.now();
      const response = await fetch(`${api}/verify-all?wait=600`);
      const body = (await response.json()) as { workflow_id: string; summary: { matched: number } };
      const seconds = (performance.now() - startedAt) / 1000;
      if (!response.ok) throw new Error(`/verify-all answered ${response.status}: ${JSON.stringify(body)}`);
      const history = await stack.temporal.workflow.getHandle(body.workflow_id).fetchHistory();
      const events = history.events ?? [];
      const reconciled = events.find((e) => e.childWorkflowExecutionCompletedEventAttributes?.workflowType?.name === 'reconcileWorkflow');
      const batches = events.filter(
        (e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'verifyTablesWorkflow',
      ).length;
      results.push({
        seconds: round(seconds, 2),
        reconcileSeconds: round((eventMs(reconciled?.eventTime) - eventMs(events[0]?.eventTime)) / 1000, 2),
        matched: body.summary.matched,
        batches,
      });
    }
    const sorted = results.map((r) => r.seconds).sort((a, b) => a - b);
    return {
      tables,
      batchSize: stack.config.verify.batchSize,
      concurrency: stack.config.consistencyChecker.concurrency,
      runs: results,
      medianSeconds: sorted[Math.floor(sorted.length / 2)]!,
    };
  } finally {
    await stack.close();
  }
}
