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
