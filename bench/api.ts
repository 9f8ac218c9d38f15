import type { ServerSettings } from '../test/servers/index.js';
import { startBenchStack } from './api-stack.js';
import { fetchOk, percentile, round, timeSequential } from './stats.js';
import { createTablesInOneTransaction, waitForVerifications } from './tables.js';

export interface ApiBenchResult {
  tables: number;
  verificationRows: number;
  requestsPerEndpoint: number;
  /** Sequential requests against `echodb run --roles worker,listener,api`, in ms. */
  latencyMs: Record<string, { p50: number; p99: number; max: number }>;
  verifyAll: { concurrency: number; seconds: number; matched: number };
  residentMemoryMiB: number;
}

async function timeRequests(url: string, count: number) {
  const sample = await timeSequential(count, () => fetchOk(url));
  return { p50: round(percentile(sample, 50), 2), p99: round(percentile(sample, 99), 2), max: round(Math.max(...sample), 2) };
}

/**
 * The HTTP API over a deployment with `tables` mirrored tables and `historyPerTable` verifications of each in
 * echodb.verifications (the history hourly verify-all runs leave): the latency of each read endpoint, the time
 * verify-all takes at VERIFY_CONCURRENCY `concurrency`, and the process's resident memory afterwards.
 */
export async function measureApi(
  servers: ServerSettings,
  tables: number,
  historyPerTable: number,
  requests: number,
  concurrency: number,
): Promise<ApiBenchResult> {
  const { stack, api } = await startBenchStack(servers, { API_VERIFY_WAIT: '600', VERIFY_CONCURRENCY: String(concurrency) });
  try {
    const { sql, schema } = stack;
    await createTablesInOneTransaction(sql, schema, tables);
    await waitForVerifications(sql, tables);
    // History as hourly verify-all runs would leave it, older than the real rows.
    await sql.query(
      `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                         postgres_count, clickhouse_count, attempts, verified_at)
       SELECT 'bench-history', v.table_name || ':' || g, v.mirror, v.schema_name, v.table_name, v.destination,
              'match', 10, 10, 1, now() - g * interval '1 hour'
         FROM echodb.verifications v, generate_series(1, $1::int) g`,
      [historyPerTable],
    );
    await sql.query('ANALYZE echodb.verifications');
    const { rows } = await sql.query<{ n: string }>('SELECT count(*) AS n FROM echodb.verifications');

    const latencyMs: ApiBenchResult['latencyMs'] = {};
    for (const path of ['/health', '/metrics', '/metrics/prometheus', '/mirrors', '/events?limit=100']) {
      latencyMs[path] = await timeRequests(`${api}${path}`, requests);
    }

    const startedAt = performance.now();
    const response = await fetch(`${api}/verify-all?wait=600`);
    const body = (await response.json()) as { summary: { matched: number } };
    const verifyAll = { concurrency, seconds: round((performance.now() - startedAt) / 1000, 1), matched: body.summary.matched };

    const text = await (await fetch(`${api}/metrics/prometheus`)).text();
    const rss = Number(/^echodb_process_resident_memory_bytes (\d+)/m.exec(text)?.[1]);
    return {
      tables,
      verificationRows: Number(rows[0]?.n),
      requestsPerEndpoint: requests,
      latencyMs,
      verifyAll,
      residentMemoryMiB: round(rss / 2 ** 20, 1),
    };
  } finally {
    await stack.close();
  }
}
