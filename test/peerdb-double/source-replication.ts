/**
 * What PeerDB does in the source PostgreSQL, done for real: the mirror's publication and logical replication slot,
 * tables added to and removed from the publication, and the checks PeerDB makes of the source tables. PostgreSQL
 * then enforces what it enforces for PeerDB: a table without a replica identity in a publication rejects UPDATE
 * and DELETE, a slot keeps its database from being dropped, and leaks show in pg_replication_slots.
 */
import pg from 'pg';
import { postgresConnection } from './tls.js';
import type { ConnectionSettings } from './messages.js';
import { quoteTable, type QualifiedTable } from './source-table.js';

// The double's source connections return every value as PostgreSQL's text (source-table.ts connectToSource):
// booleans read 't' or 'f'.

/** The mirror's slot and publication in the source database. */
export interface ReplicationNames {
  slot: string;
  publication: string;
}

/**
 * The slot and publication the mirror's config names, else PeerDB's defaults (flow/connectors/postgres/postgres.go
 * GetDefaultSlotName, GetDefaultPublicationName).
 */
export function replicationNames(config: { flowJobName: string; replicationSlotName: string; publicationName: string }): ReplicationNames {
  return {
    slot: config.replicationSlotName || `peerflow_slot_${config.flowJobName}`,
    publication: config.publicationName || `peerflow_pub_${config.flowJobName}`,
  };
}

/** A PostgreSQL error's SQLSTATE, if it is one. */
const sqlState = (error: unknown): string | undefined => (error as { code?: string }).code;

/**
 * PeerDB's EnsurePullability (flow/connectors/postgres/postgres_source.go): every table exists, and with
 * `checkConstraints` (a new mirror, not a table addition: setup_flow.go passes !InitialSnapshotOnly) each has a
 * primary key, a replica identity index or REPLICA IDENTITY FULL; REPLICA IDENTITY NOTHING is an error of its own
 * (client.go getReplicaIdentityType). Throws PeerDB's message for the first table that fails.
 */
export async function ensurePullability(
  client: pg.Client,
  tables: QualifiedTable[],
  checkConstraints: boolean,
): Promise<void> {
  for (const table of tables) {
    const { rows } = await client.query<{ identity: string; keyed: string; index_ok: string }>(
      `SELECT c.relreplident AS identity,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS keyed,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS index_ok
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2`,
      [table.schema, table.table],
    );
    const row = rows[0];
    const name = quoteTable(table);
    // shared.ErrTableDoesNotExist, wrapped: retried like any error (see retry-policies.ts).
    if (!row) throw new Error(`failed to ensure pullability: table does not exist`);
    if (!checkConstraints) continue;
    if (row.identity === 'n') throw new Error(`failed to ensure pullability: table ${name} has replica identity 'n'/NOTHING`);
    if (row.identity === 'i' && row.index_ok !== 't') throw new Error(`failed to ensure pullability: table ${name} has no replica identity index`);
    const keyed = row.identity === 'i' || row.keyed === 't';
    if (!keyed && row.identity !== 'f') {
      throw new Error(`failed to ensure pullability: table ${name} has no primary keys and does not have REPLICA IDENTITY FULL`);
    }
  }
}

/**
 * The replica identity GetTableSchema reads during create validation (flow/cmd/validate_mirror.go), which
 * fails only for REPLICA IDENTITY NOTHING: a table without a key passes validation and fails later, in setup.
 */
export async function replicaIdentityProblem(client: pg.Client, table: QualifiedTable): Promise<string | undefined> {
  const { rows } = await client.query<{ identity: string }>(
    `SELECT c.relreplident AS identity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [table.schema, table.table],
  );
  return rows[0]?.identity === 'n' ? `table ${quoteTable(table)} has replica identity 'n'/NOTHING` : undefined;
}

/**
 * createSlotAndPublication (flow/connectors/postgres/client.go): the publication first, FOR TABLE the mirror's
 * tables WITH (publish_via_partition_root = true), then the pgoutput slot; each only when missing.
 */
export async function createPublicationAndSlot(
  client: pg.Client,
  { slot, publication }: ReplicationNames,
  tables: QualifiedTable[],
): Promise<void> {
  const exists = await client.query<{ publication: string; slot: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2) AS slot`,
    [publication, slot],
  );
  if (exists.rows[0]!.publication !== 't') {
    await client.query(
      `CREATE PUBLICATION ${pg.escapeIdentifier(publication)} FOR TABLE ${tables.map(quoteTable).join(', ')}
       WITH (publish_via_partition_root = true)`,
    );
  }
  if (exists.rows[0]!.slot !== 't') await client.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slot]);
}

/** AddTablesToPublication (postgres_source.go): ALTER PUBLICATION ... ADD TABLE one by one; "already a member" is fine. */
export async function addTablesToPublication(client: pg.Client, { publication }: ReplicationNames, tables: QualifiedTable[]): Promise<void> {
  for (const table of tables) {
    try {
      await client.query(`ALTER PUBLICATION ${pg.escapeIdentifier(publication)} ADD TABLE ${quoteTable(table)}`);
    } catch (error) {
      if (sqlState(error) !== '42710') throw new Error(`failed to alter publication: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** RemoveTablesFromPublication (postgres_source.go): a table no longer in it, or gone, is fine. */
export async function removeTablesFromPublication(
  client: pg.Client,
  { publication }: ReplicationNames,
  tables: QualifiedTable[],
): Promise<void> {
  for (const table of tables) {
    try {
      await client.query(`ALTER PUBLICATION ${pg.escapeIdentifier(publication)} DROP TABLE ${quoteTable(table)}`);
    } catch (error) {
      if (!['42704', '42P01'].includes(sqlState(error) ?? '')) {
        throw new Error(`failed to alter publication: ${(error as Error).message}`, { cause: error });
      }
    }
  }
}

/** PullFlowCleanup (postgres_source.go), the source side of DropFlowWorkflow: the slot, then the publication. */
export async function dropPublicationAndSlot(client: pg.Client, { slot, publication }: ReplicationNames): Promise<void> {
  await client.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  await client.query(`DROP PUBLICATION IF EXISTS ${pg.escapeIdentifier(publication)}`);
}

/**
 * ValidateMirrorSource's replication checks (flow/connectors/postgres/validate.go): a replication connection that
 * answers IDENTIFY_SYSTEM (which needs a role with REPLICATION), wal_level logical, max_wal_senders of at least 2.
 * Returns PeerDB's message for the first that fails.
 */
export async function replicationProblem(settings: ConnectionSettings, client: pg.Client): Promise<string | undefined> {
  const replication = new pg.Client({ ...postgresConnection(settings), replication: 'database' } as pg.ClientConfig);
  replication.on('error', () => undefined);
  try {
    await replication.connect();
    await replication.query('IDENTIFY_SYSTEM');
  } catch (error) {
    return `unable to establish replication connectivity: failed to create replication connection: ${(error as Error).message}`;
  } finally {
    await replication.end().catch(() => undefined);
  }
  const { rows } = await client.query<{ wal_level: string; senders: string }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('max_wal_senders')::int AS senders`,
  );
  const row = rows[0]!;
  if (row.wal_level !== 'logical') return 'failed to check replication permissions: wal_level is not logical';
  if (Number(row.senders) < 2) return 'failed to check replication permissions: max_wal_senders must be at least 2';
  return undefined;
}
