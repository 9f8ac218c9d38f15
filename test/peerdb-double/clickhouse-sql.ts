/**
 * Quoting for the SQL the double sends to ClickHouse. 18.16 has no query parameters, so every identifier and
 * literal is quoted here; inside backticks and single quotes ClickHouse reads backslash escapes.
 */

export function quoteIdentifier(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

export function quoteString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

export function qualifiedTable(database: string, table: string): string {
  return `${quoteIdentifier(database)}.${quoteIdentifier(table)}`;
}
