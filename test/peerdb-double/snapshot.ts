import type { ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { qualifiedTable, quoteIdentifier } from './clickhouse-sql.js';
import type { ConnectionSettings, FlowConnectionConfigs, TableMapping } from './messages.js';
import {
  connectToSource,
  parseTableIdentifier,
  quoteTable,
  readTableSchema,
  type QualifiedTable,
} from './source-table.js';
import { envFlag, NULLABLE } from './settings.js';

const FETCH_SIZE = 10_000;

/**
 * ClickHouse types for PostgreSQL's (by pg_type.typname), a simplification valid on 18.16 (PeerDB itself uses
 * Int16, Float32, Decimal, Bool, DateTime64(6), Date32, Array and UUID where they apply); anything else is a String.
 */
const CLICKHOUSE_TYPES: Record<string, string> = {
  int2: 'Int32',
  int4: 'Int32',
  int8: 'Int64',
  float4: 'Float64',
  float8: 'Float64',
  numeric: 'String',
  bool: 'UInt8',
  timestamp: 'DateTime',
  timestamptz: 'DateTime',
  date: 'Date',
};

/** What ClickHouse stores for NULL in a column that is not Nullable. */
const DEFAULT_VALUES: Record<string, unknown> = {
  Int32: 0,
  Int64: '0',
  Float64: 0,
  UInt8: 0,
  DateTime: '0000-00-00 00:00:00',
  Date: '0000-00-00',
  String: '',
};

/** The mirror settings that shape its destination tables (flow/connectors/clickhouse/normalize.go). */
export interface DestinationShape {
  /** `syncedAtColName`, lower-cased; PeerDB adds the column only when the mirror names it. */
  syncedAtColumn: string | undefined;
  /** PEERDB_NULLABLE: without it PeerDB makes no column Nullable and stores NULL as the type's default. */
  nullable: boolean;
}

export function destinationShape(config: FlowConnectionConfigs): DestinationShape {
  return {
    syncedAtColumn: config.syncedAtColName === '' ? undefined : config.syncedAtColName.toLowerCase(),
    nullable: envFlag(config.env, NULLABLE),
  };
}

export interface DestinationTable {
  /** The mapping's sourceTableIdentifier, as sent. */
  sourceIdentifier: string;
  source: QualifiedTable;
  database: string;
  name: string;
  columns: { name: string; type: string; nullable: boolean }[];
  syncedAtColumn: string | undefined;
}

export interface CopyProgress {
  /** False once the mirror was dropped (or the double closed): the copy stops after its current batch. */
  isCurrent(): boolean;
  /** Called before a table's copy starts; throwing ends the copy there (the tables before it are loaded). */
  beforeTable?(table: DestinationTable): void;
  onRows(table: DestinationTable, count: number): void;
  /** Every row of the table is in ClickHouse. */
  onTableDone(table: DestinationTable): void;
}

/**
 * What PeerDB's setup flow and initial load do for a ClickHouse destination, minus CDC: create each destination
 * table shaped like PeerDB's, then copy the source table's rows into it.
 */
export class SnapshotCopier {
  constructor(private readonly clickhouse: ClickHouseClient) {}

  /**
   * Reads each source table's columns and primary key and creates its destination table when missing:
   * ReplacingMergeTree(_peerdb_version) ordered by the primary key, or by tuple() without one.
   */
  async setUpTables(
    source: ConnectionSettings,
    database: string,
    mappings: TableMapping[],
    shape: DestinationShape,
  ): Promise<DestinationTable[]> {
    const client = await connectToSource(source);
    try {
      await this.clickhouse.command({ query: `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}` });
      const tables: DestinationTable[] = [];
      for (const mapping of mappings) {
        const table = parseTableIdentifier(mapping.sourceTableIdentifier);
        if (!table) throw new Error(`invalid table name: ${mapping.sourceTableIdentifier}`);
        const schema = await readTableSchema(client, table);
        if (!schema) throw new Error(`source tables do not exist: ${mapping.sourceTableIdentifier}`);
        const columns = schema.columns
          .filter((column) => !mapping.exclude.includes(column.name))
          .map((column) => ({
            name: column.name,
            type: CLICKHOUSE_TYPES[column.type] ?? 'String',
            nullable: shape.nullable && !column.notNull,
          }));
        const primaryKey = schema.primaryKey.filter((name) => columns.some((column) => column.name === name));
        const definitions = [
          ...columns.map(({ name, type, nullable }) => `${quoteIdentifier(name)} ${nullable ? `Nullable(${type})` : type}`),
          ...(shape.syncedAtColumn ? [`${quoteIdentifier(shape.syncedAtColumn)} DateTime DEFAULT now()`] : []),
          '`_peerdb_is_deleted` UInt8',
          '`_peerdb_version` UInt64',
        ];
        const orderBy = primaryKey.length > 0 ? `(${primaryKey.map(quoteIdentifier).join(', ')})` : 'tuple()';
        await this.clickhouse.command({
          query: `CREATE TABLE IF NOT EXISTS ${qualifiedTable(database, mapping.destinationTableIdentifier)}
            (${definitions.join(', ')}) ENGINE = ReplacingMergeTree(\`_peerdb_version\`) ORDER BY ${orderBy}`,
        });
        tables.push({
          sourceIdentifier: mapping.sourceTableIdentifier,
          source: table,
          database,
          name: mapping.destinationTableIdentifier,
          columns,
          syncedAtColumn: shape.syncedAtColumn,
        });
      }
      return tables;
    } finally {
      await client.end();
    }
  }

  /** Copies every row of each table through a server-side cursor, one JSONEachRow insert per fetch. */
  async copyRows(source: ConnectionSettings, tables: DestinationTable[], progress: CopyProgress): Promise<void> {
    const client = await connectToSource(source);
    try {
      for (const table of tables) {
        progress.beforeTable?.(table);
        const columnList = table.columns.map((column) => pg.escapeIdentifier(column.name)).join(', ');
        await client.query('BEGIN');
        await client.query(`DECLARE snapshot NO SCROLL CURSOR FOR SELECT ${columnList} FROM ${quoteTable(table.source)}`);
        for (;;) {
          if (!progress.isCurrent()) return;
          const { rows } = await client.query<(string | null)[]>({ text: `FETCH ${FETCH_SIZE} FROM snapshot`, rowMode: 'array' });
          if (rows.length === 0) break;
          const syncedAt = table.syncedAtColumn ? { [table.syncedAtColumn]: dateTime(new Date().toISOString()) } : {};
          await this.clickhouse.insert({
            table: qualifiedTable(table.database, table.name),
            format: 'JSONEachRow',
            values: rows.map((row) => ({
              ...Object.fromEntries(table.columns.map((column, i) => [column.name, toClickHouse(row[i] ?? null, column)])),
              ...syncedAt,
              _peerdb_is_deleted: 0,
              _peerdb_version: 1,
            })),
          });
          progress.onRows(table, rows.length);
        }
        await client.query('COMMIT');
        progress.onTableDone(table);
      }
    } finally {
      await client.end();
    }
  }
}

/**
 * A value in PostgreSQL's text form, as JSONEachRow gives it to ClickHouse 18.16: Int64 stays a string (exact),
 * booleans become 0/1, timestamps 'YYYY-MM-DD hh:mm:ss' in UTC; numeric, json, arrays and the rest are strings.
 */
function toClickHouse(text: string | null, column: { type: string; nullable: boolean }): unknown {
  if (text === null) return column.nullable ? null : DEFAULT_VALUES[column.type];
  switch (column.type) {
    case 'Int32':
    case 'Float64':
      return Number(text);
    case 'UInt8':
      return text === 't' ? 1 : 0;
    case 'DateTime':
      return dateTime(text);
    default:
      return text;
  }
}

/** 'YYYY-MM-DD hh:mm:ss' from ISO or PostgreSQL timestamp text; the zero DateTime for infinity and BC dates. */
function dateTime(text: string): string {
  const match = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})/.exec(text);
  return match && !text.endsWith(' BC') ? `${match[1]} ${match[2]}` : '0000-00-00 00:00:00';
}
