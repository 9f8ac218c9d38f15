import type { MirrorTable, RowCounts, VerificationResult } from './model.js';

/**
 * A verification's result, as echodb.verifications stores it and /verify answers it: `counts` when both sides were
 * counted (a match or a mismatch), none for an error. Plain code, safe in the workflow sandbox.
 */
export function verificationResult(
  workflowId: string,
  { mirror, table }: { mirror: string; table: MirrorTable },
  counts: RowCounts | undefined,
  attempts: number,
  error?: string,
): VerificationResult {
  return {
    workflowId,
    mirror,
    schema: table.schema,
    table: table.table,
    destination: table.destination,
    status: counts === undefined ? 'error' : counts.postgres === counts.clickhouse ? 'match' : 'mismatch',
    postgresCount: counts?.postgres ?? null,
    clickhouseCount: counts?.clickhouse ?? null,
    match: counts !== undefined && counts.postgres === counts.clickhouse,
    difference: counts === undefined ? null : counts.postgres - counts.clickhouse,
    attempts,
    ...(error !== undefined && { error }),
    timestamp: new Date(Date.now()).toISOString(),
  };
}
