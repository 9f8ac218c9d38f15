// One run of EchoDB's row diff (lib/row-diff) as its own process, so that bench/diff.ts can measure its wall time
// and peak memory the same way as reladiff's. Reads BENCH_DIFF_TARGET (JSON, DiffRunTarget), prints one JSON line
// (DiffRunOutput) on stdout and exits 0, or prints the error on stderr and exits 1.
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import pg from 'pg';
import { diffTable } from '../lib/row-diff/index.js';
import type { ClickHouseSettings, PostgresSettings } from '../test/servers/index.js';

export interface DiffRunTarget {
  postgres: PostgresSettings;
  clickhouse: ClickHouseSettings;
  /** The ClickHouse database of the destination table. */
  database: string;
  schema: string;
  table: string;
  destination: string;
}

export interface DiffRunOutput {
  totals: { missing: number; extra: number; changed: number };
  /** At most MAX_PRINTED differences; `totals` counts them all. */
  differences: { key: Record<string, string>; kind: 'missing' | 'extra' | 'changed'; columns: string[] }[];
  /** diffTable alone, from its call to its answer (the process's wall time adds start-up and connecting). */
  diffMs: number;
}

/** A diff that finds everything different must not make this process's output (and memory) the measurement. */
const MAX_PRINTED = 1000;

const target = JSON.parse(process.env.BENCH_DIFF_TARGET ?? '') as DiffRunTarget;
const postgres = new pg.Pool(target.postgres);
const client = createClient({
  url: target.clickhouse.url,
  username: target.clickhouse.user,
  password: target.clickhouse.password,
  request_timeout: 600_000,
  log: { level: ClickHouseLogLevel.OFF },
  ...(target.clickhouse.ca === undefined ? {} : { tls: { ca_cert: Buffer.from(target.clickhouse.ca) } }),
});
const clickhouse = {
  async rows<T>(sql: string): Promise<T[]> {
    const result = await client.query({ query: sql, format: 'JSONEachRow' });
    return result.json<T>();
  },
};

try {
  const startedAt = performance.now();
  const report = await diffTable(
    { postgres, clickhouse, database: target.database },
    { schema: target.schema, table: target.table, destination: target.destination },
    {},
  );
  const diffMs = performance.now() - startedAt;
  const output: DiffRunOutput = {
    totals: report.totals,
    differences: report.differences.slice(0, MAX_PRINTED).map(({ key, kind, columns }) => ({ key, kind, columns })),
    diffMs,
  };
  process.stdout.write(`${JSON.stringify(output)}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await Promise.all([postgres.end(), client.close()]);
}
