import { proxyActivities, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { DiffPass, Difference, DifferenceKind } from '../lib/row-diff/index.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import type { DiffResult, DiffScan, DiffSettings, DiffTableInput } from './diff-model.js';
import { failureText } from './failures.js';
import type { MirrorTable, RetrySettings, RowCounts } from './model.js';

const { diffSettings, recordDiff } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

/**
 * The diff's reading activities: long (a scan of a large table), heartbeating every few seconds with their
 * progress, retried MAX_RETRIES times; a side that stays unreachable makes the result an error, not a stuck diff.
 * A table without a usable key is counted by verification's countRows, which does not heartbeat: it has the verify
 * workflow's deadline.
 */
function readingActivities(retry: RetrySettings) {
  const retries = { initialInterval: retry.backoffMs, backoffCoefficient: retry.backoffCoefficient, maximumAttempts: retry.maxRetries + 1 };
  const { diffScan, diffRecheck, diffExamples } = proxyActivities<Activities>({ startToCloseTimeout: '6 hours', heartbeatTimeout: '1 minute', retry: retries });
  const { countRows } = proxyActivities<Activities>({ startToCloseTimeout: '5 minutes', retry: retries });
  return { diffScan, diffRecheck, diffExamples, countRows };
}

const differing = (pass: DiffPass) => pass.totals.missing + pass.totals.extra + pass.totals.changed;

/**
 * Diffs one mirrored table row by row (lib/row-diff): a first look, then, while rows differ, up to DIFF_RECHECKS
 * looks at those rows again, DIFF_SETTLE_DELAY apart (timers), so that changes PeerDB had not applied yet are told
 * apart (lagging) from rows that stay different. The result, with up to DIFF_EXAMPLES still-different rows, is
 * stored in echodb.row_diffs and returned.
 */
export async function diffTableWorkflow(input: DiffTableInput): Promise<DiffResult> {
  upsertSearchAttributes(tableSearchAttributes(input.mirror, input.table));
  const { diff: settings, retry } = input.settings && input.retry ? { diff: input.settings, retry: input.retry } : await diffSettings();
  const { diffScan, diffRecheck, diffExamples, countRows } = readingActivities(retry);
  const base = baseResult(input);
  let result: DiffResult;
  try {
    const scan = await diffScan(input.table);
    if (scan.kind === 'counts') {
      result = countedResult(base, scan, await countRows(input.table));
    } else {
      const { last, rechecks } = await settle(scan.pass, settings, (pass) => diffRecheck(input.table, pass));
      const examples = differing(last) === 0 ? [] : await diffExamples(input.table, last, settings.examples);
      result = rowsResult(base, scan, scan.pass, last, rechecks, examples);
    }
  } catch (failure) {
    result = { ...base, status: 'error', error: failureText(failure) };
  }
  await recordDiff(result);
  return result;
}

/** Re-checks the differing rows after each settle delay, until none differs or the re-checks are spent. */
async function settle(
  first: DiffPass,
  settings: DiffSettings,
  look: (pass: DiffPass) => Promise<DiffPass>,
): Promise<{ last: DiffPass; rechecks: number }> {
  let last = first;
  let rechecks = 0;
  while (differing(last) > 0 && rechecks < settings.rechecks) {
    await sleep(settings.settleDelayMs);
    last = await look(last);
    rechecks++;
  }
  return { last, rechecks };
}

const NO_ROWS: Record<DifferenceKind, number> = { missing: 0, extra: 0, changed: 0 };

function baseResult({ mirror, table }: DiffTableInput): DiffResult {
  return failedDiff(workflowInfo().workflowId, mirror, table, undefined, new Date(Date.now()).toISOString());
}

/** A diff that could not be done (`error` says why), and the blank every result starts from. */
export function failedDiff(workflowId: string, mirror: string, table: MirrorTable, error: string | undefined, timestamp: string): DiffResult {
  return {
    workflowId,
    mirror,
    schema: table.schema,
    table: table.table,
    destination: table.destination,
    status: 'error',
    match: false,
    different: { ...NO_ROWS },
    lagging: 0,
    untracked: 0,
    examples: [],
    excluded: [],
    drift: { onlyInPostgres: [], onlyInClickHouse: [] },
    segments: 0,
    rowsCovered: 0,
    rechecks: 0,
    ...(error !== undefined && { error }),
    timestamp,
  };
}

/** A table without a usable key, counted by verification's own count (countRows) instead. */
function countedResult(base: DiffResult, scan: Extract<DiffScan, { kind: 'counts' }>, counts: RowCounts): DiffResult {
  const match = counts.postgres === counts.clickhouse && scan.drift.onlyInPostgres.length === 0 && scan.drift.onlyInClickHouse.length === 0;
  return {
    ...base,
    status: 'counted',
    match,
    excluded: scan.excluded,
    drift: scan.drift,
    fallback: scan.reason,
    counts: { postgres: counts.postgres, clickhouse: counts.clickhouse },
  };
}

function rowsResult(
  base: DiffResult,
  scan: Extract<DiffScan, { kind: 'rows' }>,
  first: DiffPass,
  last: DiffPass,
  rechecks: number,
  examples: Difference[],
): DiffResult {
  const still = differing(last);
  const drifted = scan.drift.onlyInPostgres.length > 0 || scan.drift.onlyInClickHouse.length > 0;
  const status = still > 0 || drifted ? 'different' : differing(first) > 0 ? 'lagging' : 'match';
  return {
    ...base,
    status,
    match: status === 'match' || status === 'lagging',
    different: { ...last.totals },
    lagging: Math.max(0, differing(first) - still),
    untracked: last.untracked,
    examples,
    excluded: scan.excluded,
    drift: scan.drift,
    segments: first.segments,
    rowsCovered: first.rowsCovered,
    rechecks,
  };
}
