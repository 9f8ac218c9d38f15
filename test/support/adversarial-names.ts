/**
 * Names and values that break naive quoting: each one is used as a ClickHouse table name and as a String value
 * (test/clickhouse-sql.test.ts, test/clickhouse-current.test.ts). No NUL: no ClickHouse name can hold one.
 */
export const adversarialNames: readonly string[] = [
  'plain',
  'with`backtick',
  '``',
  'back\\slash',
  'ends with a backslash\\',
  '\\`',
  '\\n not a newline',
  "it's",
  "''",
  'say "hi"',
  'with space',
  'dot.ted',
  'new\nline',
  'carriage\rreturn',
  'tab\there',
  'bell\b form\f feed',
  'control \u0001\u001f\u007f',
  'ünïcødé',
  'заказы 注文',
  '😀🏳️‍🌈',
  "'; DROP TABLE x; --",
  '`; DROP TABLE x; --',
  '{x:String}',
  '?',
  'x'.repeat(200),
];

/** A short, readable label for a test name. */
export const nameLabel = (name: string): string => JSON.stringify(name).slice(0, 60);
