import pg from 'pg';
import { latestVerifications } from '../api/state.js';
import { deleteOldRows, type CleanupReport } from '../lib/retention.js';
import type { ServerSettings } from '../test/servers/index.js';
import { startBenchStack } from './api-stack.js';
import { fetchOk, percentile, round, timeSequential } from './stats.js';

export interface RetentionBenchResult {
  days: number;
  tables: number;
  verifyAllEveryMinutes: number;
  eventsPerDay: number;
  fillSeconds: number;
  retentionDays: number;
  batchSize: number;
  before: TableFigures;
  after: TableFigures;
  /** p50 and p95 of sequential requests (and of `echodb status`'s query), before and after, in ms. */
  latencyMs: Record<string, { before: { p50: number; p95: number }; after: { p50: number; p95: number } }>;
  cleanup: { seconds: number; longestBatchMs: number; tables: CleanupReport['tables'] };
  /** A verify workflow's INSERT into echodb.verifications, every 20 ms while the cleanup ran, in ms. */
  insertsDuringCleanupMs: { count: number; p50: number; p95: number; max: number };
}

type TableFigures = Record<string, { rows: number; totalMiB: number }>;

const TABLES = ['ddl_events', 'mirror_operations', 'verifications'] as const;

async function tableFigures(pool: pg.Pool): Promise<TableFigures> {
  const figures: TableFigures = {};
  for (const table of TABLES) {
    const { rows } = await pool.query<{ n: string; bytes: string }>(
      `SELECT (SELECT count(*) FROM echodb.${table}) AS n, pg_total_relation_size('echodb.${table}') AS bytes`,
    );
    figures[table] = { rows: Number(rows[0]!.n), totalMiB: round(Number(rows[0]!.bytes) / 2 ** 20, 1) };
  }
  return figures;
}

async function timeAll(requests: number, once: () => Promise<void>) {
  const sample = await timeSequential(requests, once);
  return { p50: round(percentile(sample, 50), 1), p95: round(percentile(sample, 95), 1) };
}

const ENDPOINTS = ['/mirrors', '/metrics', '/metrics/prometheus', '/events?limit=100'];

/** The API's read endpoints over these tables, and the query `echodb status` runs (latest verification per table). */
async function latencies(api: string, pool: pg.Pool, requests: number) {
  const figures: Record<string, { p50: number; p95: number }> = {};
  for (const path of ENDPOINTS) {
    figures[`GET ${path}`] = await timeAll(requests, () => fetchOk(`${api}${path}`));
  }
  const query = (text: string, values: unknown[]) => pool.query(text, values);
  figures['echodb status (latest verifications)'] = await timeAll(Math.min(requests, 20), async () => {
    await latestVerifications(query, 20);
  });
  return figures;
}

/**
 * `days` of history as a verify-all every `everyMinutes` over `tables` tables leaves it in echodb.verifications,
 * with `eventsPerDay` dispatched outbox events and as many mirror operations a day, written by generate_series in
 * time order (ids grow with time, as in production).
 */
async function fill(pool: pg.Pool, tables: number, days: number, everyMinutes: number, eventsPerDay: number): Promise<void> {
  await pool.query(
    `INSERT INTO echodb.destination_claims (destination, source, mirror)
     SELECT 't' || lpad(g::text, 4, '0'), 'public.t' || lpad(g::text, 4, '0'), 'echodb_public' FROM generate_series(1, $1::int) g`,
    [tables],
  );
  const runs = Math.floor((days * 24 * 60) / everyMinutes);
  await pool.query(
    `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                       postgres_count, clickhouse_count, attempts, verified_at)
     SELECT 'echodb-verify:echodb_public:verify-all:' || r || ':public.t' || lpad(t::text, 4, '0'), 'run-' || r,
            'echodb_public', 'public', 't' || lpad(t::text, 4, '0'), 't' || lpad(t::text, 4, '0'), 'match', 1000, 1000, 1,
            now() - make_interval(days => $3::int) + (r * $4::int) * interval '1 minute'
       FROM generate_series(1, $1::int) r, generate_series(1, $2::int) t
      ORDER BY r, t`,
    [runs, tables, days, everyMinutes],
  );
  const events = days * eventsPerDay;
  await pool.query(
    `INSERT INTO echodb.ddl_events (operation, schema_name, table_name, relation_oid, command_tag, created_at, status,
                                    dispatched_at, workflow_id, handled_by)
     SELECT 'create', 'public', 't' || lpad((1 + g % $2::int)::text, 4, '0'), 16384 + g, 'CREATE TABLE', at, 'dispatched',
            at, 'echodb-mirror:echodb_public', 'bench'
       FROM generate_series(1, $1::int) g,
            LATERAL (SELECT now() - make_interval(days => $3::int) + g * (make_interval(days => $3::int) / $1::int)) a(at)
      ORDER BY g`,
    [events, tables, days],
  );
  await pool.query(
    `INSERT INTO echodb.mirror_operations (operation_key, mirror, operation, tables, result, workflow_id, event_ids, created_at)
     SELECT 'bench:' || g, 'echodb_public', 'add_tables', ARRAY['public.t' || lpad((1 + g % $2::int)::text, 4, '0')],
            'succeeded', 'echodb-mirror:echodb_public', ARRAY[g::bigint],
            now() - make_interval(days => $3::int) + g * (make_interval(days => $3::int) / $1::int)
       FROM generate_series(1, $1::int) g ORDER BY g`,
    [events, tables, days],
  );
  await pool.query('VACUUM ANALYZE echodb.verifications, echodb.ddl_events, echodb.mirror_operations');
}

/** A verify workflow recording its result every 20 ms until `stop`: how long each INSERT took while cleanup ran. */
async function insertWhile(pool: pg.Pool, stopped: () => boolean): Promise<number[]> {
  const sample: number[] = [];
  for (let i = 0; !stopped(); i++) {
    const startedAt = performance.now();
    await pool.query(
      `INSERT INTO echodb.verifications (workflow_id, run_id, mirror, schema_name, table_name, destination, status,
                                         postgres_count, clickhouse_count, attempts)
       VALUES ('bench-during-cleanup', $1, 'echodb_public', 'public', 't0001', 't0001', 'match', 1, 1, 1)`,
      [String(i)],
    );
    sample.push(performance.now() - startedAt);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return sample;
}

/**
 * Retention over a month of history: fills `days` of a verify-all every `everyMinutes` minutes over `tables`
 * tables, then measures the tables and the HTTP API before and after a cleanup with the default retention
 * (RETENTION_DAYS, RETENTION_BATCH_SIZE: what the cleanup schedule runs), and the cleanup itself.
 */
export async function measureRetention(
  servers: ServerSettings,
  { tables = 1000, days = 30, everyMinutes = 15, eventsPerDay = 1000, requests = 50 } = {},
): Promise<RetentionBenchResult> {
  // The API alone: no worker or listener acts on the made-up history.
  const { stack, api } = await startBenchStack(servers, {}, ['api']);
  const pool = new pg.Pool({ ...stack.database.settings, max: 4 });
  try {
    const { days: retentionDays, batchSize } = stack.config.retention;
    const fillStartedAt = performance.now();
    await fill(pool, tables, days, everyMinutes, eventsPerDay);
    const fillSeconds = round((performance.now() - fillStartedAt) / 1000, 1);
    const before = await tableFigures(pool);
    const latencyBefore = await latencies(api, pool, requests);

    let done = false;
    const inserts = insertWhile(pool, () => done);
    const report = await deleteOldRows((text, values) => pool.query(text, values), { olderThanDays: retentionDays, batchSize }).finally(() => {
      done = true;
    });
    const insertSample = await inserts;
    // What autovacuum does after a large delete: the dead rows' space becomes reusable, the statistics current.
    await pool.query('VACUUM ANALYZE echodb.verifications, echodb.ddl_events, echodb.mirror_operations');
    const after = await tableFigures(pool);
    const latencyAfter = await latencies(api, pool, requests);

    return {
      days,
      tables,
      verifyAllEveryMinutes: everyMinutes,
      eventsPerDay,
      fillSeconds,
      retentionDays,
      batchSize,
      before,
      after,
      latencyMs: Object.fromEntries(Object.keys(latencyBefore).map((name) => [name, { before: latencyBefore[name]!, after: latencyAfter[name]! }])),
      cleanup: {
        seconds: round(report.durationMs / 1000, 1),
        longestBatchMs: Math.max(...report.tables.map((t) => t.longestBatchMs)),
        tables: report.tables,
      },
      insertsDuringCleanupMs: {
        count: insertSample.length,
        p50: round(percentile(insertSample, 50), 1),
        p95: round(percentile(insertSample, 95), 1),
        max: round(Math.max(...insertSample), 1),
      },
    };
  } finally {
    await pool.end();
    await stack.close();
  }
}
