// Starting a row diff on request and presenting its result: shared by GET /diff and `echodb diff`.
import type { MirroredTable } from '../lib/mirrored-tables.js';
import { tableSearchAttributes } from '../lib/workflow-safe/search-attributes.js';
import { diffWorkflowId, qualifiedName } from '../lib/workflow-safe/workflow-ids.js';
import { workflowTypes } from '../workflows/definitions.js';
import type { DiffResult } from '../workflows/diff-model.js';
import type { diffTableWorkflow } from '../workflows/diff-workflow.js';
import type { VerifyContext } from './verification.js';

/** One diff of a table runs at a time on request: a second request while it runs joins it. */
const ON_DEMAND = 'on-demand';

/** Starts a row diff of one mirrored table now, or joins the one already running. */
export function startDiff({ config, temporal }: VerifyContext, { mirror, ...table }: MirroredTable) {
  const { settleDelayMs, rechecks, examples } = config.diff;
  return temporal.workflow.start<typeof diffTableWorkflow>(workflowTypes.diffTable, {
    workflowId: diffWorkflowId(mirror, table, ON_DEMAND),
    taskQueue: config.temporal.taskQueue,
    args: [{ mirror, table, eventId: ON_DEMAND, settings: { settleDelayMs, rechecks, examples }, retry: config.retry }],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: tableSearchAttributes(mirror, table),
  });
}

export const isDiffResult = (result: object): result is DiffResult => 'different' in result && 'lagging' in result;

/** A diff's result as GET /diff and `echodb diff --json` give it. */
export function diffJson(result: DiffResult) {
  return {
    table: qualifiedName(result),
    status: result.status,
    match: result.match,
    different: result.different,
    lagging: result.lagging,
    untracked: result.untracked,
    examples: result.examples,
    excluded_columns: result.excluded,
    column_drift: { only_in_postgres: result.drift.onlyInPostgres, only_in_clickhouse: result.drift.onlyInClickHouse },
    segments: result.segments,
    rows_covered: result.rowsCovered,
    rechecks: result.rechecks,
    fallback: result.fallback ?? null,
    counts: result.counts ?? null,
    error: result.error ?? null,
    mirror: result.mirror,
    destination: result.destination,
    timestamp: result.timestamp,
    workflow_id: result.workflowId,
  };
}

/** One line per finding, for a terminal. */
export function describeDiff(result: DiffResult): string[] {
  const table = qualifiedName(result);
  const { missing, extra, changed } = result.different;
  const lines: string[] = [];
  switch (result.status) {
    case 'match':
      lines.push(`${table} match: ${result.rowsCovered} rows, ${result.segments} segments compared`);
      break;
    case 'lagging':
      lines.push(`${table} match after re-checks: ${result.lagging} row(s) were lagging and converged`);
      break;
    case 'different':
      lines.push(
        `${table} different: ${missing} missing in ClickHouse, ${extra} extra in ClickHouse, ${changed} changed` +
          ` (after ${result.rechecks} re-check(s); ${result.lagging} lagging row(s) converged)`,
      );
      break;
    case 'counted':
      lines.push(`${table} ${result.match ? 'match' : 'mismatch'} by counts only (${result.fallback}): PostgreSQL ${result.counts?.postgres}, ClickHouse ${result.counts?.clickhouse}`);
      break;
    case 'error':
      lines.push(`${table} error: ${result.error}`);
      break;
  }
  for (const example of result.examples) {
    const key = Object.entries(example.key).map(([name, value]) => `${name}=${value}`).join(', ');
    const columns = example.columns.map((name) => `${name}: ${JSON.stringify(example.values?.[name]?.postgres)} -> ${JSON.stringify(example.values?.[name]?.clickhouse)}`);
    lines.push(`  ${example.kind} ${key}${columns.length > 0 ? ` (PostgreSQL -> ClickHouse: ${columns.join('; ')})` : ''}`);
  }
  if (result.untracked > 0) lines.push(`  and ${result.untracked} more row(s) not remembered one by one`);
  if (result.drift.onlyInPostgres.length > 0) lines.push(`  columns only in PostgreSQL: ${result.drift.onlyInPostgres.join(', ')}`);
  if (result.drift.onlyInClickHouse.length > 0) lines.push(`  columns only in ClickHouse: ${result.drift.onlyInClickHouse.join(', ')}`);
  for (const column of result.excluded) lines.push(`  not compared: ${column.name} (${column.reason})`);
  return lines;
}
