// Read-only views of EchoDB's durable state (the echodb.* tables of the source database), for the HTTP API and
// `echodb status`. Every value that comes from a request is a parameter: no SQL is built from input.
import type { DurableFigures } from '../lib/metrics.js';
import type { MirroredTable, SourceQuery } from '../lib/mirrored-tables.js';
import { parseSourceTableIdentifier, qualifiedName } from '../lib/workflow-safe/workflow-ids.js';
import type { DdlEventRow } from '../sql/ddl-events.js';
import type { TableRef } from '../workflows/model.js';

/** The outbox statuses (sql/001_outbox.sql, without the 'failed' that sql/006_retention.sql removed: never written). */
export const EVENT_STATUSES = ['pending', 'dispatched', 'skipped'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

export interface VerificationRow {
  workflow_id: string;
  mirror: string;
  schema_name: string;
  table_name: string;
  destination: string;
  status: 'match' | 'mismatch' | 'error';
  postgres_count: string | null;
  clickhouse_count: string | null;
  attempts: number;
  error: string | null;
  verified_at: Date;
}

export interface MirrorOperationRow {
  mirror: string;
  operation: string;
  tables: string[];
  result: 'succeeded' | 'failed';
  error: string | null;
  workflow_id: string;
  created_at: Date;
}

/**
 * Each mirrored table (its destination claim) beside its latest verification, as `c` and `latest`. A claim's
 * source is schema.table split at the first dot (lib/workflow-safe/workflow-ids.ts), which lets the latest verification of each
 * table come from the (schema_name, table_name, id) index however long the history grows.
 */
const CLAIMS_WITH_LATEST_VERIFICATION = `
  echodb.destination_claims c
  CROSS JOIN LATERAL (SELECT split_part(c.source, '.', 1) AS schema_name) s
  LEFT JOIN LATERAL (
    SELECT v.* FROM echodb.verifications v
     WHERE v.schema_name = s.schema_name AND v.table_name = substr(c.source, length(s.schema_name) + 2)
     ORDER BY v.id DESC LIMIT 1) latest ON true`;

export async function durableFigures(query: SourceQuery): Promise<DurableFigures> {
  const [outbox, operations, verifications, tables, waits, unmirrored, latestOperations] = await Promise.all([
    query<{ pending: string; oldest_age: number | null }>(
      `SELECT count(*) AS pending, extract(epoch FROM clock_timestamp() - min(created_at))::float8 AS oldest_age
         FROM echodb.ddl_events WHERE status = 'pending'`,
      [],
    ),
    query<{ operation: string; result: string; count: string }>(
      'SELECT operation, result, count(*) AS count FROM echodb.mirror_operations GROUP BY 1, 2 ORDER BY 1, 2',
      [],
    ),
    query<{ status: string; count: string }>(
      'SELECT status, count(*) AS count FROM echodb.verifications GROUP BY 1 ORDER BY 1',
      [],
    ),
    query<{ mirrored: string; mismatched: string; errors: string }>(
      `SELECT count(*) AS mirrored, count(*) FILTER (WHERE latest.status = 'mismatch') AS mismatched,
              count(*) FILTER (WHERE latest.status = 'error') AS errors
         FROM ${CLAIMS_WITH_LATEST_VERIFICATION}`,
      [],
    ),
    query<{ mirror: string; operation: string; seconds: number; stalled: boolean }>(
      `SELECT mirror, operation, extract(epoch FROM clock_timestamp() - since)::float8 AS seconds,
              stalled_since IS NOT NULL AS stalled
         FROM echodb.mirror_waits ORDER BY mirror`,
      [],
    ),
    query<{ count: string }>('SELECT count(*) AS count FROM echodb.unmirrored_tables', []),
    query<{ mirror: string; failed: boolean }>(
      `SELECT DISTINCT ON (mirror) mirror, result = 'failed' AS failed
         FROM echodb.mirror_operations ORDER BY mirror, id DESC`,
      [],
    ),
  ]);
  return {
    outbox: { pending: Number(outbox.rows[0]?.pending ?? 0), oldestPendingAgeSeconds: outbox.rows[0]?.oldest_age ?? null },
    mirrorOperations: operations.rows.map((row) => ({ ...row, count: Number(row.count) })),
    verifications: verifications.rows.map((row) => ({ ...row, count: Number(row.count) })),
    mirroredTables: Number(tables.rows[0]?.mirrored ?? 0),
    tablesMismatched: Number(tables.rows[0]?.mismatched ?? 0),
    tablesVerificationErrors: Number(tables.rows[0]?.errors ?? 0),
    mirrorsLastOperation: latestOperations.rows,
    mirrorWaits: waits.rows,
    unmirroredTables: Number(unmirrored.rows[0]?.count ?? 0),
  };
}

/** The latest failed mirror operation, or null. */
export async function lastMirrorFailure(query: SourceQuery): Promise<MirrorOperationRow | null> {
  const { rows } = await query<MirrorOperationRow>(
    `SELECT mirror, operation, tables, result, error, workflow_id, created_at
       FROM echodb.mirror_operations WHERE result = 'failed' ORDER BY id DESC LIMIT 1`,
    [],
  );
  return rows[0] ?? null;
}

/** Outbox rows, newest first, optionally of one status and older than an id (paging). */
export async function outboxEvents(
  query: SourceQuery,
  filter: { status?: EventStatus; limit: number; beforeId?: string },
): Promise<DdlEventRow[]> {
  const { rows } = await query<DdlEventRow>(
    `SELECT * FROM echodb.ddl_events
      WHERE ($1::text IS NULL OR status = $1::text) AND ($2::bigint IS NULL OR id < $2::bigint)
      ORDER BY id DESC LIMIT $3`,
    [filter.status ?? null, filter.beforeId ?? null, filter.limit],
  );
  return rows;
}

/**
 * The latest verification of each table, newest first (at most `limit`). The tables are found by skipping through
 * the (schema_name, table_name, id) index, one probe per table, and each one's latest row by one more: the cost
 * follows the number of tables, not of verifications (a DISTINCT ON over the whole history read every row: 4.7 s
 * at 2.9 million, bench/retention.ts).
 */
export async function latestVerifications(query: SourceQuery, limit: number): Promise<VerificationRow[]> {
  const { rows } = await query<VerificationRow>(
    `WITH RECURSIVE verified AS (
       (SELECT schema_name, table_name FROM echodb.verifications ORDER BY schema_name, table_name LIMIT 1)
       UNION ALL
       SELECT next.schema_name, next.table_name FROM verified t
        CROSS JOIN LATERAL (
          SELECT v.schema_name, v.table_name FROM echodb.verifications v
           WHERE (v.schema_name, v.table_name) > (t.schema_name, t.table_name)
           ORDER BY v.schema_name, v.table_name LIMIT 1) next)
     SELECT latest.* FROM verified t
      CROSS JOIN LATERAL (
        SELECT workflow_id, mirror, schema_name, table_name, destination, status, postgres_count, clickhouse_count,
               attempts, error, verified_at
          FROM echodb.verifications v
         WHERE v.schema_name = t.schema_name AND v.table_name = t.table_name
         ORDER BY v.id DESC LIMIT 1) latest
      ORDER BY latest.verified_at DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

/** A mirror operation waiting on PeerDB right now (echodb.mirror_waits). */
export interface MirrorWaitRow {
  mirror: string;
  operation: string;
  tables: string[];
  state: string;
  since: Date;
  stalled_since: Date | null;
  diagnosis: string | null;
}

/** A table a mirror's workflow left out, and why (echodb.unmirrored_tables). */
export interface UnmirroredRow {
  mirror: string;
  schema_name: string;
  table_name: string;
  reason: string;
  event_id: string | null;
  recorded_at: Date;
}

export interface MirrorOverview {
  mirror: string;
  tables: { table: TableRef & { destination: string }; lastVerification: VerificationRow | null }[];
  lastOperation: MirrorOperationRow | null;
  /** What the mirror's workflow waits for in PeerDB now, if anything. */
  waiting: MirrorWaitRow | null;
  /** Tables it left out, and why. */
  unmirrored: UnmirroredRow[];
}

/**
 * Each mirror with its tables (durable state), each table's latest verification, the mirror's last operation,
 * what it waits for in PeerDB now and the tables it left out.
 */
export async function mirrorsOverview(query: SourceQuery): Promise<MirrorOverview[]> {
  const [tables, operations, waits, unmirrored] = await Promise.all([
    query<Pick<MirroredTable, 'mirror' | 'source' | 'destination'> & { verification: VerificationRow | null }>(
      `SELECT c.mirror, c.source, c.destination,
              CASE WHEN latest.id IS NULL THEN NULL ELSE json_build_object(
                'workflow_id', latest.workflow_id, 'mirror', latest.mirror, 'schema_name', latest.schema_name,
                'table_name', latest.table_name, 'destination', latest.destination, 'status', latest.status,
                'postgres_count', latest.postgres_count::text, 'clickhouse_count', latest.clickhouse_count::text,
                'attempts', latest.attempts, 'error', latest.error, 'verified_at', latest.verified_at) END AS verification
         FROM ${CLAIMS_WITH_LATEST_VERIFICATION}
        ORDER BY c.mirror, c.source`,
      [],
    ),
    query<MirrorOperationRow>(
      `SELECT DISTINCT ON (mirror) mirror, operation, tables, result, error, workflow_id, created_at
         FROM echodb.mirror_operations ORDER BY mirror, id DESC`,
      [],
    ),
    query<MirrorWaitRow>('SELECT mirror, operation, tables, state, since, stalled_since, diagnosis FROM echodb.mirror_waits', []),
    query<UnmirroredRow>(
      `SELECT mirror, schema_name, table_name, reason, event_id::text, recorded_at
         FROM echodb.unmirrored_tables ORDER BY mirror, schema_name, table_name`,
      [],
    ),
  ]);
  const operationOf = new Map(operations.rows.map((row) => [row.mirror, row]));
  const waitOf = new Map(waits.rows.map((row) => [row.mirror, row]));
  const mirrors = new Map<string, MirrorOverview>();
  const overviewOf = (mirror: string): MirrorOverview => {
    let overview = mirrors.get(mirror);
    if (overview === undefined) {
      overview = { mirror, tables: [], lastOperation: operationOf.get(mirror) ?? null, waiting: waitOf.get(mirror) ?? null, unmirrored: [] };
      mirrors.set(mirror, overview);
    }
    return overview;
  };
  for (const { mirror, source, destination, verification } of tables.rows) {
    overviewOf(mirror).tables.push({
      table: { ...parseSourceTableIdentifier(source), destination },
      // json_build_object gives the time as text.
      lastVerification: verification && { ...verification, verified_at: new Date(verification.verified_at) },
    });
  }
  // A mirror that holds no table yet may wait on PeerDB (its create), or have left every table out.
  for (const wait of waits.rows) overviewOf(wait.mirror);
  for (const row of unmirrored.rows) overviewOf(row.mirror).unmirrored.push(row);
  return [...mirrors.values()].sort((a, b) => a.mirror.localeCompare(b.mirror));
}

/** A wait as the API and `echodb status --json` show it. */
export function waitJson(row: MirrorWaitRow) {
  return {
    operation: row.operation,
    tables: row.tables,
    state: row.state,
    since: row.since.toISOString(),
    stalled: row.stalled_since !== null,
    stalled_since: row.stalled_since?.toISOString() ?? null,
    diagnosis: row.diagnosis,
  };
}

/** An unmirrored table as the API and `echodb status --json` show it. */
export function unmirroredJson(row: UnmirroredRow) {
  return {
    table: qualifiedName({ schema: row.schema_name, table: row.table_name }),
    reason: row.reason,
    event_id: row.event_id === null ? null : Number(row.event_id),
    since: row.recorded_at.toISOString(),
  };
}

/** Whether PostgreSQL has a table (ordinary or partitioned) of exactly this schema and name. */
export async function tableExists(query: SourceQuery, { schema, table }: TableRef): Promise<boolean> {
  const { rows } = await query(
    `SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, table],
  );
  return rows.length > 0;
}

/** A stored verification as the API and `echodb status --json` show it. */
export function verificationRowJson(row: VerificationRow) {
  const postgres = row.postgres_count === null ? null : Number(row.postgres_count);
  const clickhouse = row.clickhouse_count === null ? null : Number(row.clickhouse_count);
  return {
    table: qualifiedName({ schema: row.schema_name, table: row.table_name }),
    status: row.status,
    postgres_count: postgres,
    clickhouse_count: clickhouse,
    match: row.status === 'match',
    difference: postgres === null || clickhouse === null ? null : postgres - clickhouse,
    timestamp: row.verified_at.toISOString(),
    error: row.error,
    workflow_id: row.workflow_id,
  };
}

/** A recorded mirror operation as the API and `echodb status --json` show it. */
export function operationJson(row: MirrorOperationRow) {
  return {
    operation: row.operation,
    result: row.result,
    tables: row.tables,
    error: row.error,
    at: row.created_at.toISOString(),
    workflow_id: row.workflow_id,
  };
}
