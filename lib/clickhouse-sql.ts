/**
 * Quoting for SQL sent to ClickHouse. ClickHouse 18.16 has no query parameters, so every name and value that
 * EchoDB puts into a statement goes through one of these; the escapes are the ones 18.16 and 25.x both read.
 */

// Backslash escapes inside quotes; the control characters are escaped so that a statement stays on one line.
const escapes: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '`': '\\`',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\0': '\\0',
  '\b': '\\b',
  '\f': '\\f',
};

const escape = (text: string, special: RegExp) => text.replace(special, (char) => escapes[char] ?? char);

/** A table, database or column name, backtick-quoted: any text but NUL (which no ClickHouse name can hold). */
export function quoteIdentifier(name: string): string {
  if (name.includes('\0')) throw new Error(`a ClickHouse name cannot contain a NUL byte: ${JSON.stringify(name)}`);
  return `\`${escape(name, /[\\`]/g)}\``;
}

/** A String literal. */
export function quoteString(value: string): string {
  return `'${escape(value, /[\\'\n\r\t\0\b\f]/g)}'`;
}

/** `db`.`table` */
export function qualifiedTable(database: string, table: string): string {
  return `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;
}

/*
 * Every statement EchoDB sends to ClickHouse, built here and nowhere else. Each runs unchanged on ClickHouse 18.16
 * and on current ClickHouse (25.x and later): test/clickhouse-current.test.ts runs them on both, against
 * PeerDB-shaped tables. UInt64 results arrive as JSON strings from 18.16 and as numbers from current versions:
 * read them with Number().
 */

/** The destination check: one row, `result` 1 when `database`.`table` exists, else 0. */
export function existsTable(database: string, table: string): string {
  return `EXISTS TABLE ${qualifiedTable(database, table)}`;
}

/**
 * The live rows of a PeerDB destination table, as PeerDB's own tests count them: one row, `n`. FINAL keeps each
 * key's newest version, then the rows PeerDB marked deleted are left out. Fails on a missing table (never 0).
 */
export function countLiveRows(database: string, table: string): string {
  return `SELECT count() AS n FROM ${qualifiedTable(database, table)} FINAL WHERE _peerdb_is_deleted = 0`;
}

/**
 * The live rows of several PeerDB destination tables in one statement, each counted as countLiveRows counts it: one
 * row per table, `i` its index in `tables` and `n` its count, in no particular order. Fails as a whole when one table
 * is missing. `i` is a UInt32 in every branch, so that every branch gives the same types whatever the index.
 */
export function countLiveRowsOfEach(database: string, tables: readonly string[]): string {
  if (tables.length === 0) throw new Error('countLiveRowsOfEach needs at least one table');
  return tables
    .map((table, i) => `SELECT toUInt32(${i}) AS i, count() AS n FROM ${qualifiedTable(database, table)} FINAL WHERE _peerdb_is_deleted = 0`)
    .join(' UNION ALL ');
}

/** DESTINATION_ON_DROP=drop: the table and its data go; nothing happens when it is already gone. */
export function dropTable(database: string, table: string): string {
  return `DROP TABLE IF EXISTS ${qualifiedTable(database, table)}`;
}

/** DESTINATION_ON_DROP=rename: the table and its data move to `to`, in the same database; fails if `to` exists. */
export function renameTable(database: string, from: string, to: string): string {
  return `RENAME TABLE ${qualifiedTable(database, from)} TO ${qualifiedTable(database, to)}`;
}

/** Whether `database` exists (echodb setup): one row, `n` 1 when it does, else 0. */
export function databaseExists(database: string): string {
  return `SELECT count() AS n FROM system.databases WHERE name = ${quoteString(database)}`;
}

/** Creates `database` when it is missing (echodb setup); nothing happens when it exists. */
export function createDatabase(database: string): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdentifier(database)}`;
}

/** The readiness check: a real query (a ping succeeds even with a wrong password); one row. */
export function readinessQuery(): string {
  return 'SELECT 1';
}
