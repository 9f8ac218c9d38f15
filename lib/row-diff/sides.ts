import type pg from 'pg';

/** The source database: a pg.Pool, a pg.Client, or anything that runs a parameterized statement. */
export interface PostgresSide {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** The destination: runs one statement and answers its rows (JSONEachRow). */
export interface ClickHouseSide {
  rows<T>(sql: string): Promise<T[]>;
}

export interface DiffSides {
  postgres: PostgresSide;
  clickhouse: ClickHouseSide;
  /** The ClickHouse database the destination tables are in. */
  database: string;
}

/** A source table and its ClickHouse destination. */
export interface DiffTarget {
  schema: string;
  table: string;
  destination: string;
}
