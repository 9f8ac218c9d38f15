import pg from 'pg';
import type { Config } from '../lib/config.js';
import { peerDbNameProblem } from '../lib/naming.js';
import { isPostgresOutage } from '../lib/postgres.js';
import type { LeftOut, MirrorTable, TableFacts, TableRef } from '../workflows/model.js';
import type { sourceQueries } from './source-database.js';

type SourceQuery = ReturnType<typeof sourceQueries>;

/**
 * A table PeerDB can only take as far as its publication: without a primary key, a replica identity index or
 * REPLICA IDENTITY FULL, PeerDB's setup refuses it for ever (EnsurePullability, flow/connectors/postgres/
 * postgres_source.go), and once in a publication PostgreSQL rejects its UPDATEs and DELETEs.
 */
const NO_KEY_SKIPPED =
  'has no primary key and no REPLICA IDENTITY FULL: PeerDB cannot mirror it, and in a publication PostgreSQL would ' +
  'reject its UPDATE and DELETE (MISSING_REPLICA_IDENTITY=skip; add a primary key, or set MISSING_REPLICA_IDENTITY=set-full)';

/** How long setting REPLICA IDENTITY FULL waits for its lock before failing (and being retried later). */
const IDENTITY_LOCK_TIMEOUT = '3s';
/** SQLSTATE of a lock_timeout. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * What the catalog says about each table now: whether it exists and is a table PeerDB can follow, with a
 * replica identity it can use. Under MISSING_REPLICA_IDENTITY=set-full a table without a key is mirrorable and
 * flagged `needsFullIdentity`.
 */
export async function tableFacts(query: SourceQuery, config: Config, tables: TableRef[]): Promise<TableFacts[]> {
  const { rows } = await query<{
    i: number;
    relation_oid: string | null;
    relkind: string | null;
    relpersistence: string | null;
    relispartition: boolean | null;
    identity: string | null;
    keyed: boolean | null;
    identity_index: boolean | null;
  }>(
    `SELECT t.i, c.oid::int8 AS relation_oid, c.relkind, c.relpersistence, c.relispartition, c.relreplident AS identity,
            EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisprimary) AS keyed,
            EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisreplident) AS identity_index
     FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(schema_name, table_name, i)
     LEFT JOIN pg_namespace n ON n.nspname = t.schema_name
     LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
     ORDER BY t.i`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  const setFull = config.mirror.missingReplicaIdentity === 'set-full';
  return tables.map((table, index) => {
    const row = rows[index];
    const relationOid = row?.relation_oid == null ? null : Number(row.relation_oid);
    const noKey = row?.identity === 'd' && !row.keyed;
    const reason =
      relationOid === null ? 'does not exist'
      : !['r', 'p'].includes(row!.relkind ?? '') ? `is not a table (relkind ${row!.relkind})`
      : row!.relispartition ? 'is a partition: its parent table is mirrored'
      : row!.relpersistence === 't' ? 'is a temporary table'
      : row!.relpersistence === 'u' ? 'is unlogged: logical replication cannot follow its changes'
      : peerDbNameProblem(table)
        ?? (row!.identity === 'n' ? 'has REPLICA IDENTITY NOTHING: PeerDB cannot mirror it' : undefined)
        ?? (row!.identity === 'i' && !row!.identity_index ? 'has REPLICA IDENTITY USING INDEX, but no such index' : undefined)
        ?? (noKey && !setFull ? NO_KEY_SKIPPED : undefined);
    return {
      ...table,
      relationOid,
      mirrorable: reason === undefined,
      ...(reason && { reason }),
      ...(reason === undefined && noKey && { needsFullIdentity: true }),
    };
  });
}

/**
 * Looks at tables once more right before they go to PeerDB: those gone or not mirrorable since the workflow
 * looked are left out with the reason; under set-full, those without a key get REPLICA IDENTITY FULL now (a DDL on
 * the user's table; left out when it fails, e.g. when EchoDB's role does not own the table).
 */
export async function prepareTables(
  query: SourceQuery,
  config: Config,
  tables: MirrorTable[],
): Promise<{ ready: MirrorTable[]; leftOut: LeftOut[] }> {
  if (tables.length === 0) return { ready: [], leftOut: [] };
  const facts = await tableFacts(query, config, tables);
  const ready: MirrorTable[] = [];
  const leftOut: LeftOut[] = [];
  for (const [index, table] of tables.entries()) {
    const fact = facts[index]!;
    if (!fact.mirrorable) {
      leftOut.push({ source: table.source, reason: fact.reason ?? 'not mirrorable' });
      continue;
    }
    if (fact.needsFullIdentity) {
      try {
        // One simple-protocol query is one transaction, so SET LOCAL bounds this ALTER's wait for its ACCESS
        // EXCLUSIVE lock: queued behind a long transaction, it would block every reader of the user's table.
        await query(
          `SET LOCAL lock_timeout = '${IDENTITY_LOCK_TIMEOUT}'; ` +
            `ALTER TABLE ${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.table)} REPLICA IDENTITY FULL`,
          [],
        );
      } catch (error) {
        // Only PostgreSQL's refusal (a SQLSTATE) leaves the table out; an outage or a lock not granted in time
        // fails the activity, to be retried.
        const code = (error as { code?: unknown }).code;
        if (typeof code !== 'string' || code === LOCK_NOT_AVAILABLE || isPostgresOutage(error)) throw error;
        leftOut.push({ source: table.source, reason: `could not set REPLICA IDENTITY FULL: ${(error as Error).message}` });
        continue;
      }
    }
    ready.push(table);
  }
  return { ready, leftOut };
}
