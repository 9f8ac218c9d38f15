import pg from 'pg';
import { postgresConnection } from './tls.js';
import type { ConnectionSettings } from './messages.js';

export interface QualifiedTable {
  schema: string;
  table: string;
}

/**
 * PeerDB's reading of a sourceTableIdentifier (ParseTableIdentifier in flow/pkg/common/identifiers.go): the
 * text before the first dot is the schema, the rest is the table, both taken literally because PeerDB quotes
 * them itself. Names with quotes, spaces, capitals or other characters therefore need no quoting, and a
 * quoted form such as `"public"."users"` names a schema that is literally `"public"`. A table whose schema or
 * name contains a dot cannot be named at all: undefined, which PeerDB reports as `invalid table name`.
 */
export function parseTableIdentifier(identifier: string): QualifiedTable | undefined {
  const dot = identifier.indexOf('.');
  if (dot < 0) return undefined;
  const schema = identifier.slice(0, dot);
  const table = identifier.slice(dot + 1);
  if (schema === '' || table === '' || table.includes('.')) return undefined;
  return { schema, table };
}

export function quoteTable({ schema, table }: QualifiedTable): string {
  return `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
}

/**
 * A connection to a source peer's database that returns every value as PostgreSQL's text, timestamps with
 * time zone in UTC and dates in ISO form: the copier converts from text, never from the driver's local-time
 * Date objects.
 */
export async function connectToSource(settings: ConnectionSettings): Promise<pg.Client> {
  const client = new pg.Client({
    ...postgresConnection(settings),
    options: '-c TimeZone=UTC -c DateStyle=ISO',
    types: { getTypeParser: () => (text: string) => text },
  });
  await client.connect();
  return client;
}

interface SourceColumn {
  name: string;
  /** pg_type.typname of the column's type, e.g. int4, timestamptz, _text for text[]. */
  type: string;
  notNull: boolean;
}

interface SourceTableSchema {
  columns: SourceColumn[];
  /**
   * The columns PeerDB keys the destination on (getTableSchemaForTable and getUniqueColumns in
   * flow/connectors/postgres): the replica identity index's under REPLICA IDENTITY USING INDEX, else the primary
   * key's; under REPLICA IDENTITY FULL without a primary key, every column.
   */
  primaryKey: string[];
}

/** The table's columns in order and its key columns in key order; undefined when there is no such table. */
export async function readTableSchema(client: pg.Client, table: QualifiedTable): Promise<SourceTableSchema | undefined> {
  const found = await client.query<{ oid: string | null; identity: string | null }>(
    'SELECT c.oid, c.relreplident AS identity FROM pg_class c WHERE c.oid = to_regclass($1)',
    [quoteTable(table)],
  );
  const { oid, identity } = found.rows[0] ?? { oid: null, identity: null };
  if (!oid) return undefined;
  const columns = await client.query<{ name: string; type: string; notNull: string }>(
    `SELECT a.attname AS name, t.typname AS type, a.attnotnull AS "notNull"
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attnum`,
    [oid],
  );
  const key = await client.query<{ name: string }>(
    `SELECT a.attname AS name
     FROM pg_index i
     CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = $1 AND (CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END)
     ORDER BY k.position`,
    [oid, identity],
  );
  const names = columns.rows.map((row) => row.name);
  const keyColumns = key.rows.map((row) => row.name);
  return {
    columns: columns.rows.map((row) => ({ name: row.name, type: row.type, notNull: row.notNull === 't' })),
    primaryKey: keyColumns.length === 0 && identity === 'f' ? names : keyColumns,
  };
}
