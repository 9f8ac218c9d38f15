/**
 * What a diff compares, read from both catalogs: the columns on each side, the rule for each column both have, the
 * columns only one side has (drift), the primary key, and where each row sits in the key space (its position).
 */
import pg from 'pg';
import { qualifiedTable, quoteIdentifier, quoteString } from '../clickhouse-sql.js';
import { columnRule, isCompared, type ClickHouseColumn, type ComparedColumn, type ExcludedColumn, type PostgresColumn } from './normalise.js';
import type { ClickHouseSide, DiffTarget, PostgresSide } from './sides.js';

/** PeerDB's own columns in a destination table (_peerdb_is_deleted, _peerdb_version, _peerdb_synced_at, ...). */
const isPeerDbColumn = (name: string) => name.toLowerCase().startsWith('_peerdb_');

export interface ColumnDrift {
  /** Source columns the destination does not have (added after the mirror's snapshot, or excluded). */
  onlyInPostgres: string[];
  /** Destination columns the source no longer has (dropped or renamed at the source). */
  onlyInClickHouse: string[];
}

/**
 * Where a row sits in the key space, the same number on both sides: the key itself when the primary key is one
 * integer column (so that a segment is a range of the primary key, read through its index), else the first 32
 * bits of the MD5 of the key's text form (segments are then ranges of that hash).
 */
export interface Position {
  kind: 'key' | 'key-hash';
  postgres: string;
  clickhouse: string;
}

export interface DiffPlan {
  postgresTable: string;
  clickhouseTable: string;
  key: ComparedColumn[];
  /** Every compared column, the key's included, in the source's order. */
  columns: ComparedColumn[];
  excluded: ExcludedColumn[];
  drift: ColumnDrift;
  position: Position;
}

/** A table the diff cannot compare row by row, and why; verification falls back to counting it. */
export interface NoRowDiff {
  fallback: string;
  excluded: ExcludedColumn[];
  drift: ColumnDrift;
}

const KEY_HASH_BITS = 32;
export const KEY_HASH_SPAN = 1n << BigInt(KEY_HASH_BITS);

/**
 * The text form of a row (or of its key): the columns' forms joined with `|`, which no form can hold unquoted. No
 * form is NULL; an array, not concat_ws, because a PostgreSQL function takes at most 100 arguments.
 */
export const joinedPostgres = (columns: ComparedColumn[]) => `array_to_string(ARRAY[${columns.map((c) => c.postgres).join(', ')}], '|')`;
/**
 * One column's form alone: every form is a String already, and ClickHouse 18.16 names a literal by its text, so a
 * `''` beside it would clash with a column named `''` ("no supertype for types String, Int64").
 */
export const joinedClickHouse = (columns: ComparedColumn[]) =>
  columns.length === 1 ? columns[0]!.clickhouse : `concat(${columns.flatMap((c, i) => (i === 0 ? [c.clickhouse] : ["'|'", c.clickhouse])).join(', ')})`;

async function postgresColumns(postgres: PostgresSide, table: string): Promise<{ columns: PostgresColumn[]; key: string[] }> {
  const { rows } = await postgres.query<PostgresColumn & { key: number | null }>(
    `SELECT a.attname AS name, b.typname AS type, b.typtype AS kind, e.typname AS element, a.attnotnull AS "notNull",
            format_type(a.atttypid, a.atttypmod) AS display,
            array_position(i.indkey::int2[], a.attnum) AS key
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [table],
  );
  if (rows.length === 0) throw new Error(`PostgreSQL table ${table} has no columns`);
  const key = rows.filter((row) => row.key !== null).sort((a, b) => a.key! - b.key!).map((row) => row.name);
  return { columns: rows.map(({ key: _, ...column }) => column), key };
}

async function clickhouseColumns(clickhouse: ClickHouseSide, database: string, table: string): Promise<ClickHouseColumn[]> {
  const rows = await clickhouse.rows<ClickHouseColumn>(
    `SELECT name, type FROM system.columns WHERE database = ${quoteString(database)} AND table = ${quoteString(table)}`,
  );
  if (rows.length === 0) throw new Error(`ClickHouse table ${qualifiedTable(database, table)} does not exist`);
  return rows;
}

/** Reads both catalogs and decides how the table is compared, or why it cannot be row by row. */
export async function planDiff(
  postgres: PostgresSide,
  clickhouse: ClickHouseSide,
  database: string,
  target: DiffTarget,
): Promise<DiffPlan | NoRowDiff> {
  const postgresTable = `${pg.escapeIdentifier(target.schema)}.${pg.escapeIdentifier(target.table)}`;
  const [source, destination] = await Promise.all([
    postgresColumns(postgres, postgresTable),
    clickhouseColumns(clickhouse, database, target.destination),
  ]);
  const destinationByName = new Map(destination.filter((c) => !isPeerDbColumn(c.name)).map((c) => [c.name, c]));
  const drift: ColumnDrift = {
    onlyInPostgres: source.columns.filter((c) => !destinationByName.has(c.name)).map((c) => c.name),
    onlyInClickHouse: [...destinationByName.keys()].filter((name) => !source.columns.some((c) => c.name === name)),
  };
  const rules = source.columns.filter((c) => destinationByName.has(c.name)).map((c) => columnRule(c, destinationByName.get(c.name)!));
  const columns = rules.filter(isCompared);
  const excluded = rules.filter((rule): rule is ExcludedColumn => !isCompared(rule));

  if (source.key.length === 0) return { fallback: 'the table has no primary key: rows cannot be matched by key', excluded, drift };
  const key = source.key.map((name) => columns.find((c) => c.name === name));
  const missing = source.key.filter((_, i) => key[i] === undefined);
  if (missing.length > 0) {
    const why = missing.map((name) => excluded.find((c) => c.name === name)?.reason ?? `not in the destination table`);
    return { fallback: `primary key column ${missing.map((n, i) => `${n} (${why[i]})`).join(', ')} cannot be compared`, excluded, drift };
  }
  const keyColumns = key as ComparedColumn[];
  return {
    postgresTable,
    clickhouseTable: qualifiedTable(database, target.destination),
    key: keyColumns,
    columns,
    excluded,
    drift,
    position: position(keyColumns, source.columns, destinationByName),
  };
}

function position(key: ComparedColumn[], source: PostgresColumn[], destination: Map<string, ClickHouseColumn>): Position {
  const only = key.length === 1 ? key[0]! : undefined;
  const sourceType = only && source.find((c) => c.name === only.name)?.type;
  const destinationType = only && destination.get(only.name)?.type;
  if (only && ['int2', 'int4', 'int8'].includes(sourceType ?? '') && /^Int(8|16|32|64)$/.test(destinationType ?? '')) {
    return { kind: 'key', postgres: pg.escapeIdentifier(only.name), clickhouse: `toInt64(${quoteIdentifier(only.name)})` };
  }
  return keyHashPosition(key);
}

/** Positions by the hash of the key's text form: for any key, and for integer keys spread too wide to subtract. */
export function keyHashPosition(key: ComparedColumn[]): Position {
  return {
    kind: 'key-hash',
    postgres: `('x' || substr(md5(${joinedPostgres(key)}), 1, 8))::bit(32)::bigint`,
    clickhouse: `intDiv(halfMD5(${joinedClickHouse(key)}), 4294967296)`,
  };
}
