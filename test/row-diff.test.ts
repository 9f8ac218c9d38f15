/**
 * The row diff (lib/row-diff) between the real PostgreSQL and a ClickHouse copy of each table, on the ClickHouse 18.16
 * the tests start (destination tables with the PeerDB double's simplified types, test/peerdb-double/snapshot.ts) and
 * on current ClickHouse through chdb (PeerDB's own types, flow/shared/types/kind.go): Int16, Decimal(P, S), Bool,
 * UUID, Date32, DateTime64(6), Float32, Array(...), LowCardinality(String), Nullable only with PEERDB_NULLABLE.
 *
 * Each destination table is filled here with what PeerDB (or, on 18.16, the double) stores for the source rows:
 * PostgreSQL's rows are read back as text and written as ClickHouse literals of the destination's types, NULL as
 * the type's default where the column is not Nullable, infinite dates and timestamps and non-finite numerics as NULL
 * or the epoch (flow/connectors/postgres/qvalue_convert.go), a NULL array element as 0 or '' (ArrayCastElements),
 * JSON re-encoded as Go's encoding/json does (parseJSON). Then rows change behind the mirror's back on both sides.
 *
 * The names are the awkward ones: schema, table, type and column names with quotes, dots, spaces, backticks and
 * unicode, names of 63 bytes, and columns named like the diff's own aliases (k, h, c0, segment, low, high, n, s1,
 * cell), which ClickHouse resolves to an alias of the same name before the column.
 */
import crypto from 'node:crypto';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualifiedTable, quoteIdentifier, quoteString } from '../lib/clickhouse-sql.js';
import { diffTable, type DiffReport, type DiffSides, type DiffOptions } from '../lib/row-diff/index.js';
import { adversarialNames, nameLabel } from './support/adversarial-names.js';
import { startChdb } from './support/chdb.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testServers } from './support/servers.js';

/** One ClickHouse: statements that answer rows (JSONEachRow), and statements that answer nothing. */
interface Target {
  rows<T>(sql: string): Promise<T[]>;
  command(sql: string): Promise<void>;
  close(): Promise<void>;
}

/** A failed statement's error, with the statement. */
async function stating<T>(sql: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new Error(`${(error as Error).message}\n in: ${sql}`, { cause: error });
  }
}

function harnessClickHouse(): Promise<Target> {
  const { url, user, password } = testServers().clickhouse;
  const client = createClient({ url, username: user, password, log: { level: ClickHouseLogLevel.OFF } });
  return Promise.resolve({
    rows: <T>(sql: string) => stating(sql, async () => (await client.query({ query: sql, format: 'JSONEachRow' })).json<T>()),
    command: (sql) => stating(sql, async () => void (await client.command({ query: sql }))),
    close: () => client.close(),
  });
}

async function currentClickHouse(): Promise<Target> {
  const chdb = await startChdb();
  return {
    rows: <T>(sql: string) =>
      stating(sql, async () =>
        (await chdb.query(sql, 'JSONEachRow'))
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as T),
      ),
    command: (sql) => stating(sql, async () => void (await chdb.query(sql))),
    close: () => chdb.close(),
  };
}

let database: TestDatabase;
/** The diff's connection, in a time zone and date style of its own: no form may depend on them. */
let postgres: pg.Pool;
/** Every value as PostgreSQL's text, timestamps in UTC: what the copies are made from. */
let text: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase();
  postgres = new pg.Pool({ ...database.settings, options: '-c TimeZone=Asia/Kathmandu -c DateStyle=SQL,DMY' });
  text = new pg.Client({
    ...database.settings,
    options: '-c TimeZone=UTC -c DateStyle=ISO',
    types: { getTypeParser: () => (value: string) => value },
  });
  await text.connect();
});
afterAll(async () => {
  await text?.end();
  await postgres?.end();
  await database?.drop();
});

/** A source column and its destination type on each ClickHouse. */
interface Column {
  name: string;
  pg: string;
  /** PeerDB's type on current ClickHouse, before Nullable(...). */
  peerdb: string;
  /** The double's type on ClickHouse 18.16, before Nullable(...). */
  double: string;
  notNull?: boolean;
  /** PostgreSQL's DEFAULT, for a NOT NULL column. */
  default?: string;
}

/** A source table and its destination, named alike. */
interface Table {
  schema: string;
  name: string;
  columns: Column[];
  key: string[];
}

const pgTable = (table: Table) => `${pg.escapeIdentifier(table.schema)}.${pg.escapeIdentifier(table.name)}`;
const isArray = (type: string) => type.startsWith('Array(');

/** The destination column's type: PeerDB keeps arrays out of Nullable; the double makes every nullable column so. */
function destinationType(column: Column, current: boolean, nullable: boolean): string {
  const base = current ? column.peerdb : column.double;
  if (!nullable || column.notNull || (current && isArray(base))) return base;
  return base === 'LowCardinality(String)' ? 'LowCardinality(Nullable(String))' : `Nullable(${base})`;
}

/** JSON as PeerDB writes it: decoded, then Go's json.Marshal (keys sorted, no spaces, <, > and & escaped). */
function goJson(value: string): string {
  const string = (s: string) =>
    JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const encode = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(encode).join(',')}]`;
    if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([key, item]) => `${string(key)}:${encode(item)}`).join(',')}}`;
    }
    return typeof v === 'string' ? string(v) : JSON.stringify(v);
  };
  return encode(JSON.parse(value));
}

const FLOATS: Record<string, string> = { Infinity: 'inf', '-Infinity': '-inf', NaN: 'nan' };

/** What ClickHouse stores for NULL in a column of this type that is not Nullable. */
function defaultLiteral(base: string): string {
  if (/^U?Int\d+$|^Float\d+$/.test(base)) return '0';
  if (base === 'Bool') return 'false';
  if (base === 'UUID') return "toUUID('00000000-0000-0000-0000-000000000000')";
  if (base === 'DateTime') return 'toDateTime(0)';
  if (base.startsWith('DateTime64')) return `toDateTime64(0, 6)`;
  if (base.startsWith('Date')) return `CAST('1970-01-01' AS ${base})`;
  if (base.startsWith('Decimal') || isArray(base)) return `CAST(${base.startsWith('Decimal') ? "'0'" : '[]'} AS ${base})`;
  return "''";
}

/**
 * A ClickHouse literal of the value PeerDB (current) or the double (18.16) stores for a source value: `value` is
 * PostgreSQL's text (timestamps in UTC), for an array the JSON list of its elements' text.
 */
function literal(value: string | null, column: Column, type: string, current: boolean): string {
  const nullable = type.startsWith('Nullable(') || type.startsWith('LowCardinality(Nullable(');
  const base = type.replace(/^LowCardinality\(Nullable\((.*)\)\)$/, 'LowCardinality($1)').replace(/^Nullable\((.*)\)$/, '$1');
  const infinite = value === 'infinity' || value === '-infinity';
  const nonFinite = value !== null && ['NaN', 'Infinity', '-Infinity'].includes(value);
  if (value === null || (infinite && base.startsWith('Date')) || (nonFinite && base.startsWith('Decimal'))) {
    return nullable ? 'NULL' : defaultLiteral(base);
  }
  if (column.pg === 'bool') return base === 'Bool' ? String(value === 't') : value === 't' ? '1' : '0';
  if (/^U?Int\d+$/.test(base)) return value;
  if (base.startsWith('Float')) return `CAST(${quoteString(FLOATS[value] ?? value)} AS ${base})`;
  if (base.startsWith('Decimal') || base.startsWith('Date(') || base === 'Date' || base === 'Date32') {
    return `CAST(${quoteString(value)} AS ${base})`;
  }
  if (base === 'UUID') return `toUUID(${quoteString(value)})`;
  if (base === 'DateTime') return `toDateTime(${quoteString(value.slice(0, 19))}, 'UTC')`;
  if (base === 'DateTime64(6)') return `toDateTime64(${quoteString(value.replace(/\+00$/, ''))}, 6, 'UTC')`;
  if (isArray(base)) {
    const elements = JSON.parse(value) as (string | null)[];
    const empty = base === 'Array(String)' ? '' : '0';
    return `CAST([${elements.map((element) => quoteString(element ?? empty)).join(', ')}] AS ${base})`;
  }
  const json = current && (column.pg === 'json' || column.pg === 'jsonb');
  return quoteString(json ? goJson(value) : value);
}

/** A scenario's tables, in a PostgreSQL schema and a ClickHouse database of their own. */
function scenario(target: () => Target, clickhouseDatabase: string, current: boolean, nullable = false) {
  const sides = (): DiffSides => ({ postgres, clickhouse: { rows: (sql) => target().rows(sql) }, database: clickhouseDatabase });
  const chTable = (table: Table) => qualifiedTable(clickhouseDatabase, table.name);

  async function create(table: Table): Promise<void> {
    const definitions = table.columns.map(
      (c) => `${pg.escapeIdentifier(c.name)} ${c.pg}${c.notNull ? ' NOT NULL' : ''}${c.default ? ` DEFAULT ${c.default}` : ''}`,
    );
    const key = table.key.length > 0 ? [`PRIMARY KEY (${table.key.map((k) => pg.escapeIdentifier(k)).join(', ')})`] : [];
    await postgres.query(`CREATE TABLE ${pgTable(table)} (${[...definitions, ...key].join(', ')})`);
    const synced = current ? '`_peerdb_synced_at` DateTime64(9) DEFAULT now64()' : '`_peerdb_synced_at` DateTime DEFAULT now()';
    const columns = [
      ...table.columns.map((c) => `${quoteIdentifier(c.name)} ${destinationType(c, current, nullable)}`),
      synced,
      '`_peerdb_is_deleted` UInt8',
      '`_peerdb_version` UInt64',
    ];
    const orderBy = table.key.length > 0 ? table.key.map(quoteIdentifier).join(', ') : 'tuple()';
    await target().command(
      `CREATE TABLE ${chTable(table)} (${columns.join(', ')}) ENGINE = ReplacingMergeTree(\`_peerdb_version\`) ORDER BY (${orderBy})`,
    );
  }

  /**
   * Copies what `select` answers (the table's columns, by name) into the destination as one more version of those
   * rows: what PeerDB does for an insert or update, or with `deleted` for a delete.
   */
  async function copy(table: Table, select: string, version: number, deleted = false): Promise<void> {
    // Each value in PostgreSQL's output form (a bpchar padded, a bool t or f), an array's elements also as JSON.
    const list = table.columns.map((c, i) => {
      const column = `s.${pg.escapeIdentifier(c.name)}`;
      const elements = `CASE WHEN ${column} IS NULL THEN NULL ELSE coalesce((SELECT json_agg(x::text ORDER BY i) FROM unnest(${column}) WITH ORDINALITY AS u(x, i)), '[]') END::text`;
      return `${column} AS v${i}${c.pg.endsWith('[]') ? `, ${elements} AS a${i}` : ''}`;
    });
    const { rows } = await text.query<Record<string, string | null>>(`SELECT ${list.join(', ')} FROM (${select}) AS s`);
    if (rows.length === 0) return;
    const values = rows.map((row) => {
      const literals = table.columns.map((c, i) => {
        const type = destinationType(c, current, nullable);
        return literal(row[`${type.includes('Array(') ? 'a' : 'v'}${i}`] ?? null, c, type, current);
      });
      return `(${literals.join(', ')}, ${deleted ? 1 : 0}, ${version})`;
    });
    const names = [...table.columns.map((c) => quoteIdentifier(c.name)), '`_peerdb_is_deleted`', '`_peerdb_version`'];
    await target().command(`INSERT INTO ${chTable(table)} (${names.join(', ')}) VALUES ${values.join(', ')}`);
  }

  /** The table's columns for a SELECT, `changes` (column name to a PostgreSQL expression) in place of some. */
  const selectList = (table: Table, changes: Record<string, string> = {}) =>
    table.columns
      .map((c) => (c.name in changes ? `(${changes[c.name]})::${c.pg} AS ${pg.escapeIdentifier(c.name)}` : pg.escapeIdentifier(c.name)))
      .join(', ');

  return {
    create,
    /** The destination gets every source row, as PeerDB's snapshot copies them. */
    snapshot: (table: Table) => copy(table, `SELECT * FROM ${pgTable(table)}`, 1),
    /** A newer version of the rows `where` picks, with `changes`: a change PeerDB did not carry. */
    changeInClickHouse: (table: Table, where: string, changes: Record<string, string>, version = 2) =>
      copy(table, `SELECT ${selectList(table, changes)} FROM ${pgTable(table)} WHERE ${where}`, version),
    /** The rows `where` picks, deleted in the destination only. */
    deleteInClickHouse: (table: Table, where: string) => copy(table, `SELECT * FROM ${pgTable(table)} WHERE ${where}`, 2, true),
    diff: (table: Table, options: Partial<DiffOptions> = {}) =>
      diffTable(sides(), { schema: table.schema, table: table.name, destination: table.name }, options),
  };
}

/** What a test compares of a report: each difference's key, kind and columns, by key. */
function found(report: DiffReport): { key: string; kind: string; columns: string[] }[] {
  return report.differences
    .map(({ key, kind, columns }) => ({ key: Object.values(key).join(' / '), kind, columns }))
    .sort((a, b) => a.key.localeCompare(b.key, 'en', { numeric: true }));
}
const expected = (rows: { key: string | number; kind: string; columns?: string[] }[]) =>
  rows
    .map(({ key, kind, columns }) => ({ key: String(key), kind, columns: columns ?? [] }))
    .sort((a, b) => a.key.localeCompare(b.key, 'en', { numeric: true }));
const totals = (rows: { kind: string }[]) => ({
  missing: rows.filter((r) => r.kind === 'missing').length,
  extra: rows.filter((r) => r.kind === 'extra').length,
  changed: rows.filter((r) => r.kind === 'changed').length,
});

/** Text that breaks naive quoting and splitting: quotes, backslashes, the forms' `|` and `:`, line ends, unicode. */
const AWKWARD_TEXT = 'it\'s "q" `b` \\back\\slash\\ | pipe : 3:colon|\nnew\r\nline\ttab ünïcødé 注文 😀🏳️‍🌈 \u0001\u007f';
/** A column name with everything awkward in it, and one of 63 bytes (PostgreSQL's longest). */
const AWKWARD_COLUMN = 'we"ird \'co`l|:ü.mn';
const LONG_COLUMN = `${'ü'.repeat(31)}x`;

/**
 * The typed table: one column per supported type, most named like an alias of the diff's own statements. `other`
 * is a value whose form differs from row 1's, as subtly as the type allows (one unit, one microsecond, one float
 * step, one element split in two); on 18.16 timestamps keep whole seconds, so there they move by one second.
 */
const TYPED: (Column & { other?: (current: boolean) => string })[] = [
  { name: 'k', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true },
  { name: 'h', pg: 'int2', peerdb: 'Int16', double: 'Int32', other: () => '13' },
  { name: 'c0', pg: 'int4', peerdb: 'Int32', double: 'Int32', other: () => '123457' },
  { name: 'segment', pg: 'int8', peerdb: 'Int64', double: 'Int64', other: () => '9007199254740993' },
  { name: 'n', pg: 'numeric(12,2)', peerdb: 'Decimal(12, 2)', double: 'String', other: () => '12.31' },
  { name: 's1', pg: 'numeric', peerdb: 'Decimal(76, 38)', double: 'String', other: () => "'1.50000000000000000000000000000000000001'" },
  { name: 'low', pg: 'text', peerdb: 'String', double: 'String', other: () => "'plain '" },
  { name: 'high', pg: 'varchar(20)', peerdb: 'String', double: 'String', other: () => "'abC'" },
  { name: AWKWARD_COLUMN, pg: 'text', peerdb: 'String', double: 'String', other: () => pg.escapeLiteral(AWKWARD_TEXT.replace('\r\n', '\n\r')) },
  { name: 'cell', pg: 'bpchar(5)', peerdb: 'String', double: 'String', other: () => "'ab c'" },
  { name: 'j', pg: 'json', peerdb: 'String', double: 'String' },
  { name: 'jb', pg: 'jsonb', peerdb: 'String', double: 'String' },
  { name: 'u', pg: 'uuid', peerdb: 'UUID', double: 'String', other: () => "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'" },
  { name: 'b', pg: 'bool', peerdb: 'Bool', double: 'UInt8', other: () => 'false' },
  { name: 'd', pg: 'date', peerdb: 'Date32', double: 'Date', other: () => "'2024-03-01'" },
  {
    name: 'ts',
    pg: 'timestamp',
    peerdb: 'DateTime64(6)',
    double: 'DateTime',
    other: (current) => (current ? "'2024-03-01 00:00:00'" : "'2024-03-01 00:00:00.999999'"),
  },
  {
    name: 'tstz',
    pg: 'timestamptz',
    peerdb: 'DateTime64(6)',
    double: 'DateTime',
    other: (current) => (current ? "'2024-02-29 23:59:59.999998+05:30'" : "'2024-02-29 23:59:58.999999+05:30'"),
  },
  { name: 'f4', pg: 'float4', peerdb: 'Float32', double: 'Float64', other: () => "'1.1000001'" },
  { name: 'f8', pg: 'float8', peerdb: 'Float64', double: 'Float64', other: () => "'0.10000000000000002'" },
  { name: 'ai', pg: 'int8[]', peerdb: 'Array(Int64)', double: 'String', other: () => "'{1,3,2}'" },
  { name: 'at', pg: 'text[]', peerdb: 'Array(String)', double: 'String', other: () => `'{"a,b"}'` },
  { name: 'e', pg: 'ENUM', peerdb: 'LowCardinality(String)', double: 'String', other: () => `'a "b"'` },
  { name: LONG_COLUMN, pg: 'int4', peerdb: 'Int32', double: 'Int32', other: () => '8' },
  // NOT NULL, and infinite in most rows: PeerDB stores the epoch, which the form of NULL stands for.
  {
    name: 'valid until',
    pg: 'timestamptz',
    peerdb: 'DateTime64(6)',
    double: 'DateTime',
    notNull: true,
    default: "'infinity'",
    other: () => "'2030-01-01 00:00:00+00'",
  },
];
/** Compared on both sides; PeerDB re-encodes JSON, so its columns are left out of the comparison. */
const JSON_COLUMNS = ['j', 'jb'];
const ENUM_LABELS = ["it's", 'a "b"', 'ü|:', 'NULL'];

/** Row 1, the row most others copy. */
const TYPICAL: Record<string, string | null> = {
  h: '12',
  c0: '123456',
  segment: '9007199254740992',
  n: '12.30',
  s1: '1.5',
  low: 'plain',
  high: 'abc',
  [AWKWARD_COLUMN]: AWKWARD_TEXT,
  cell: 'ab',
  j: '{"b": 1, "a": [1, 2.50, "<&>"], "c": {"z": null, "y": 1e2}}',
  jb: '{"b": 1, "a": [1, 2.50, "<&>"], "c": {"z": null, "y": 1e2}}',
  u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  b: 't',
  d: '2024-02-29',
  ts: '2024-02-29 23:59:59.999999',
  tstz: '2024-02-29 23:59:59.999999+05:30',
  f4: '1.1',
  f8: '0.1',
  ai: '{1,2,3}',
  at: '{a,b}',
  e: "it's",
  [LONG_COLUMN]: '7',
};

/** The other rows: NULLs, extremes, NULL array elements, infinities; on current ClickHouse times outside 18.16's. */
function typedRows(current: boolean): Record<string, string | null>[] {
  const rows: Record<string, string | null>[] = [
    { k: '1', ...TYPICAL },
    { k: '2' },
    {
      k: '3',
      h: '-32768',
      c0: '2147483647',
      segment: '-9223372036854775808',
      n: '-0.50',
      s1: '-12345678901234567890.12345678901234567890123456789012345678',
      low: '',
      high: 'x|y:z',
      [AWKWARD_COLUMN]: '',
      cell: 'abcde',
      j: '[]',
      jb: '{}',
      u: '00000000-0000-0000-0000-000000000001',
      b: 'f',
      d: '1970-01-01',
      ts: '1970-01-01 00:00:00',
      tstz: '2038-01-19 03:14:08+00',
      f4: '-0',
      // The smallest subnormal: 18.16 reads it as 0 (and so would the double's copy).
      f8: current ? '5e-324' : '2.2250738585072014e-308',
      ai: '{}',
      at: '{}',
      e: 'a "b"',
      [LONG_COLUMN]: '-1',
      'valid until': '2000-01-01 00:00:00.000001+00',
    },
    {
      ...TYPICAL,
      k: '4',
      n: '0',
      s1: '0.00000000000000000000000000000000000001',
      f4: 'Infinity',
      f8: '-Infinity',
      ai: '{-9223372036854775808,NULL,9223372036854775807}',
      at: '{NULL,"","a,b","q\\"uote","back\\\\slash","ü|:","NULL","3:x"}',
      e: 'NULL',
      high: '',
      cell: '',
    },
    // PeerDB stores NULL for what ClickHouse cannot hold, or the type's default (the epoch) where not Nullable.
    { ...TYPICAL, k: '5', d: 'infinity', ts: 'infinity', tstz: '-infinity', ...(current && { n: 'NaN', s1: 'Infinity' }) },
  ];
  if (current) {
    rows.push({
      ...TYPICAL,
      k: '6',
      d: '1900-01-02',
      ts: '1969-12-31 23:59:59.999999',
      tstz: '2200-01-01 00:00:00.000001+00',
      f8: '1.7976931348623157e308',
    });
  }
  return rows;
}

describe.each([
  { label: 'ClickHouse 18.16 (the test harness) with the PeerDB double’s types', open: harnessClickHouse, current: false },
  { label: 'current ClickHouse (chdb) with PeerDB’s types', open: currentClickHouse, current: true },
])('row diff on $label', ({ open, current }) => {
  const clickhouseDatabase = `e'${crypto.randomBytes(2).toString('hex')}`;
  /** Schema names with a quote, a dot, a space, a backtick and unicode; one of 63 bytes. */
  const schema = `sch"e.ma 'ü\` ${current ? 'now' : '18'}`;
  const longSchema = `${'ş'.repeat(30)}${current ? 'now' : '018'}`;
  let clickhouse: Target | undefined;
  const on = (): Target => {
    if (!clickhouse) throw new Error('the ClickHouse under test did not start');
    return clickhouse;
  };
  const enumType = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier('mo"od.ü')}`;

  beforeAll(async () => {
    clickhouse = await open();
    await on().command(`CREATE DATABASE ${quoteIdentifier(clickhouseDatabase)}`);
    await postgres.query(`CREATE SCHEMA ${pg.escapeIdentifier(schema)}`);
    await postgres.query(`CREATE SCHEMA ${pg.escapeIdentifier(longSchema)}`);
    await postgres.query(`CREATE TYPE ${enumType} AS ENUM (${ENUM_LABELS.map((l) => pg.escapeLiteral(l)).join(', ')})`);
  });
  afterAll(async () => {
    if (!clickhouse) return;
    await clickhouse.command(`DROP DATABASE IF EXISTS ${quoteIdentifier(clickhouseDatabase)}`);
    await clickhouse.close();
  });

  describe.each([
    { variant: 'not Nullable (NULL stored as the default)', nullable: false },
    { variant: 'Nullable (PEERDB_NULLABLE)', nullable: true },
  ])('every supported type, destination columns $variant', ({ nullable }) => {
    const table: Table = {
      schema,
      name: `ty"pe.d 'all' \`注文\` ${nullable ? 'null' : 'dflt'}`,
      columns: TYPED.map((c) => (c.pg === 'ENUM' ? { ...c, pg: enumType } : c)),
      key: ['k'],
    };
    const s = scenario(on, clickhouseDatabase, current, nullable);
    const compared = TYPED.filter((c) => c.other);
    /** Each compared column is changed in PostgreSQL in row 10 + 2i and in ClickHouse in row 11 + 2i. */
    const changedRow = (i: number, side: 0 | 1) => 10 + 2 * i + side;
    const spare = 10 + 2 * compared.length;

    beforeAll(async () => {
      await s.create(table);
      const rows = typedRows(current);
      for (const row of rows) {
        const names = Object.keys(row);
        await postgres.query(
          `INSERT INTO ${pgTable(table)} (${names.map((n) => pg.escapeIdentifier(n)).join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`,
          Object.values(row),
        );
      }
      // Copies of row 1, for the changes.
      const others = table.columns.filter((c) => c.name !== 'k').map((c) => pg.escapeIdentifier(c.name));
      await postgres.query(
        `INSERT INTO ${pgTable(table)} (k, ${others.join(', ')}) SELECT g, ${others.join(', ')}
           FROM ${pgTable(table)}, generate_series(10, ${spare + 10}) AS g WHERE k = 1`,
      );
      await s.snapshot(table);
    });

    it('finds a faithful copy equal, comparing every type but JSON', async () => {
      const report = await s.diff(table);
      expect(report.excluded.map((c) => c.name)).toEqual(JSON_COLUMNS);
      for (const column of report.excluded) expect(column.reason).toMatch(/json.*PeerDB/i);
      expect(report.drift).toEqual({ onlyInPostgres: [], onlyInClickHouse: [] });
      expect(report.differences).toEqual([]);
      expect(report.totals).toEqual({ missing: 0, extra: 0, changed: 0 });
      expect(report.rowsCovered).toBe(typedRows(current).length + spare + 1);
    });

    it('finds each change of each type on either side, the deleted, added and extra rows, with the columns changed', async () => {
      const want: { key: number; kind: string; columns?: string[] }[] = [];
      for (const [i, column] of compared.entries()) {
        const value = column.other!(current);
        const name = pg.escapeIdentifier(column.name);
        await postgres.query(`UPDATE ${pgTable(table)} SET ${name} = ${value} WHERE k = ${changedRow(i, 0)}`);
        await s.changeInClickHouse(table, `k = ${changedRow(i, 1)}`, { [column.name]: value });
        want.push({ key: changedRow(i, 0), kind: 'changed', columns: [column.name] }, { key: changedRow(i, 1), kind: 'changed', columns: [column.name] });
      }
      const row = (n: number) => spare + n;
      // JSON changes on either side are not differences: the columns are not compared.
      await postgres.query(`UPDATE ${pgTable(table)} SET j = '{"other": true}' WHERE k = ${row(0)}`);
      await s.changeInClickHouse(table, `k = ${row(1)}`, { jb: `'[1]'` });
      // Gone from PostgreSQL (extra in ClickHouse); deleted in ClickHouse only (missing there); a newer version that
      // changes nothing.
      await postgres.query(`DELETE FROM ${pgTable(table)} WHERE k = ${row(2)}`);
      await s.deleteInClickHouse(table, `k = ${row(3)}`);
      await s.changeInClickHouse(table, `k = ${row(4)}`, {});
      // Two columns in one row; one column on each side of another row.
      await postgres.query(`UPDATE ${pgTable(table)} SET low = 'changed', b = NULL WHERE k = ${row(5)}`);
      await s.changeInClickHouse(table, `k = ${row(6)}`, { u: `'00000000-0000-0000-0000-000000000000'` }, 3);
      await postgres.query(`UPDATE ${pgTable(table)} SET f8 = -0.1 WHERE k = ${row(6)}`);
      // A row only in PostgreSQL; one only in ClickHouse (deleted in PostgreSQL since, say).
      await postgres.query(`INSERT INTO ${pgTable(table)} SELECT 1000, ${table.columns.slice(1).map((c) => pg.escapeIdentifier(c.name)).join(', ')} FROM ${pgTable(table)} WHERE k = 1`);
      await s.changeInClickHouse(table, 'k = 1', { k: '2000' });
      // Row 2 is all NULL: the destination's default where NULL is kept is a change, where it is not it is the same.
      await s.changeInClickHouse(table, 'k = 2', { c0: '0', low: "''", b: 'false', ts: "'1970-01-01 00:00:00'" });
      want.push(
        { key: row(2), kind: 'extra' },
        { key: row(3), kind: 'missing' },
        { key: row(5), kind: 'changed', columns: ['low', 'b'] },
        { key: row(6), kind: 'changed', columns: ['u', 'f8'] },
        { key: 1000, kind: 'missing' },
        { key: 2000, kind: 'extra' },
        ...(nullable ? [{ key: 2, kind: 'changed', columns: ['c0', 'low', 'b', 'ts'] }] : []),
      );

      const report = await s.diff(table);
      expect(found(report)).toEqual(expected(want));
      expect(report.totals).toEqual(totals(want));
      expect(report.untracked).toBe(0);

      const at = (key: number) => report.differences.find((d) => d.key.k === String(key));
      const segment = compared.findIndex((c) => c.name === 'segment');
      expect(at(changedRow(segment, 0))?.values).toEqual({ segment: { postgres: '9007199254740993', clickhouse: '9007199254740992' } });
      expect(at(changedRow(segment, 1))?.values).toEqual({ segment: { postgres: '9007199254740992', clickhouse: '9007199254740993' } });
      const awkward = compared.findIndex((c) => c.name === AWKWARD_COLUMN);
      expect(at(changedRow(awkward, 0))?.values?.[AWKWARD_COLUMN]).toEqual({
        postgres: AWKWARD_TEXT.replace('\r\n', '\n\r'),
        clickhouse: AWKWARD_TEXT,
      });
      expect(at(2000)).toMatchObject({ key: { k: '2000' }, kind: 'extra', columns: [] });
    });
  });

  it('leaves out the columns it cannot compare, naming them with the reason, and reports the columns on one side only', async () => {
    const table: Table = {
      schema,
      name: 'un.supported "cols"',
      columns: [
        { name: 'id', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true },
        { name: 'x', pg: 'int4', peerdb: 'Int32', double: 'Int32' },
        { name: 'blob', pg: 'bytea', peerdb: 'String', double: 'String' },
        { name: 'span', pg: 'interval', peerdb: 'String', double: 'String' },
        { name: 'at', pg: 'time', peerdb: 'DateTime64(6)', double: 'String' },
        { name: 'f8 in f4', pg: 'float8', peerdb: 'Float32', double: 'Float32' },
        { name: 'ts in ts4', pg: 'timestamp', peerdb: 'DateTime64(4)', double: 'String' },
        { name: 'only in ClickHouse', pg: 'int4', peerdb: 'String', double: 'String' },
      ],
      key: ['id'],
    };
    const s = scenario(on, clickhouseDatabase, current);
    await s.create(table);
    await postgres.query(`ALTER TABLE ${pgTable(table)} DROP COLUMN "only in ClickHouse", ADD COLUMN "added at the source" text`);
    await postgres.query(
      `INSERT INTO ${pgTable(table)} VALUES (1, 1, '\\x00ff', '1 day', '12:00', 0.1, '2024-01-01 00:00:00.123456', 'a'), (2, 2, NULL, NULL, NULL, NULL, NULL, NULL)`,
    );
    const columns = ['id', 'x', 'blob', 'span', 'at', 'f8 in f4', 'ts in ts4'];
    // Values that differ in every left-out column: none of it is a difference.
    await on().command(
      `INSERT INTO ${qualifiedTable(clickhouseDatabase, table.name)} (${columns.map(quoteIdentifier).join(', ')}, \`_peerdb_is_deleted\`, \`_peerdb_version\`) VALUES `
        + `(1, 1, 'other', 'other', ${current ? 'toDateTime64(0, 6)' : "'other'"}, 1.5, ${current ? 'toDateTime64(0, 4)' : "'other'"}, 0, 1), `
        + `(2, 2, 'x', 'y', ${current ? 'toDateTime64(1, 6)' : "'z'"}, 2.5, ${current ? 'toDateTime64(1, 4)' : "'w'"}, 0, 1)`,
    );

    const report = await s.diff(table);
    expect(report.excluded.map((c) => c.name)).toEqual(['blob', 'span', 'at', 'f8 in f4', 'ts in ts4']);
    const reason = (name: string) => report.excluded.find((c) => c.name === name)?.reason;
    expect(reason('blob')).toMatch(/bytea in a ClickHouse String/);
    expect(reason('span')).toMatch(/interval in a ClickHouse String/);
    expect(reason('at')).toMatch(new RegExp(`time without time zone in a ClickHouse ${current ? 'DateTime64\\(6\\)' : 'String'}`));
    expect(reason('f8 in f4')).toMatch(/double precision in a ClickHouse Float32/);
    expect(reason('ts in ts4')).toMatch(current ? /DateTime64\(4\).*precision 3, 6 or 9/ : /timestamp without time zone in a ClickHouse String/);
    expect(report.drift).toEqual({ onlyInPostgres: ['added at the source'], onlyInClickHouse: ['only in ClickHouse'] });
    expect(report.totals).toEqual({ missing: 0, extra: 0, changed: 0 });

    await postgres.query(`UPDATE ${pgTable(table)} SET x = 3, blob = '\\x01' WHERE id = 2`);
    expect(found(await s.diff(table))).toEqual(expected([{ key: 2, kind: 'changed', columns: ['x'] }]));
  });

  it('rejects a table without a primary key, or with one it cannot compare, saying why', async () => {
    const s = scenario(on, clickhouseDatabase, current);
    const keyless: Table = {
      schema,
      name: 'no key.',
      columns: [{ name: 'id', pg: 'bigint', peerdb: 'Int64', double: 'Int64' }],
      key: [],
    };
    await s.create(keyless);
    await expect(s.diff(keyless)).rejects.toThrow(/no primary key/);
    const byteaKey: Table = {
      schema,
      name: 'bytea key',
      columns: [{ name: 'id', pg: 'bytea', peerdb: 'String', double: 'String', notNull: true }],
      key: ['id'],
    };
    await s.create(byteaKey);
    await expect(s.diff(byteaKey)).rejects.toThrow(/primary key column id \(bytea in a ClickHouse String/);
  });

  describe.each([
    {
      keyKind: 'a composite key (bigint, text)',
      columns: [
        { name: 'a', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true },
        { name: 'k', pg: 'text', peerdb: 'String', double: 'String', notNull: true },
      ],
    },
    { keyKind: 'a text key', columns: [{ name: 'k', pg: 'text', peerdb: 'String', double: 'String', notNull: true }] },
  ])('a table with $keyKind (rows placed by the key’s hash)', ({ columns }) => {
    const composite = columns.length === 2;
    const table: Table = {
      schema: longSchema,
      name: `${'ü'.repeat(30)}${composite ? 'two' : 'one'}`,
      columns: [...columns, { name: 'v', pg: 'int4', peerdb: 'Int32', double: 'Int32' }, { name: 'h', pg: 'text', peerdb: 'String', double: 'String' }],
      key: columns.map((c) => c.name),
    };
    const s = scenario(on, clickhouseDatabase, current);
    const keyText = ['a|b', 'a', 'b|c', '', '1:x', 'ü 😀', `q"'\\`, 'NULL'];
    /** The key of a row as the report shows it. */
    const keyOf = (a: number, k: string) => (composite ? `${a} / ${k}` : k);
    const where = (a: number, k: string) => `${composite ? `a = ${a} AND ` : ''}k = ${pg.escapeLiteral(k)}`;

    it('finds a faithful copy equal and then exactly the rows changed on either side', async () => {
      await s.create(table);
      const values = keyText.flatMap((k, i) => (composite ? [[1, k, i], [2, k, i]] : [[0, k, i]]));
      for (const [a, k, v] of values) {
        await postgres.query(
          `INSERT INTO ${pgTable(table)} (${composite ? 'a, ' : ''}k, v, h) VALUES (${composite ? `${Number(a)}, ` : ''}$1, $2, $3)`,
          [k, v, `h ${String(k)}`],
        );
      }
      await postgres.query(
        `INSERT INTO ${pgTable(table)} (${composite ? 'a, ' : ''}k, v, h) SELECT ${composite ? 'g % 7, ' : ''}'row ' || g, g, 'h' FROM generate_series(1, 2000) AS g`,
      );
      await s.snapshot(table);
      const equal = await s.diff(table);
      expect(equal.totals).toEqual({ missing: 0, extra: 0, changed: 0 });
      expect(equal.differences).toEqual([]);

      const a = composite ? 1 : 0;
      await postgres.query(`UPDATE ${pgTable(table)} SET v = -1 WHERE ${where(a, 'a|b')}`);
      await postgres.query(`DELETE FROM ${pgTable(table)} WHERE ${where(a, 'b|c')}`);
      await s.changeInClickHouse(table, where(a, 'a'), { h: "'a|'" });
      await s.changeInClickHouse(table, where(a, ''), { k: "'a|b|c'" });
      await s.deleteInClickHouse(table, where(a, '1:x'));
      await s.changeInClickHouse(table, `k = 'row 1234'`, { v: '0' });
      const report = await s.diff(table);
      const want = [
        { key: keyOf(a, 'a|b'), kind: 'changed', columns: ['v'] },
        { key: keyOf(a, 'b|c'), kind: 'extra' },
        { key: keyOf(a, 'a'), kind: 'changed', columns: ['h'] },
        { key: keyOf(a, 'a|b|c'), kind: 'extra' },
        { key: keyOf(a, '1:x'), kind: 'missing' },
        { key: keyOf(composite ? 1234 % 7 : 0, 'row 1234'), kind: 'changed', columns: ['v'] },
      ];
      expect(found(report)).toEqual(expected(want));
      expect(report.totals).toEqual(totals(want));
    });
  });

  // Each adversarial name that PostgreSQL keeps whole (63 bytes, with room for the second column's suffix).
  it.each(adversarialNames.filter((name) => Buffer.byteLength(name) <= 60).map((name) => [nameLabel(name), name]))(
    'diffs a table named %s, its key and its other column named alike',
    async (_label, name) => {
      const table: Table = {
        schema,
        name,
        columns: [
          { name, pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true },
          { name: `${name} ·`, pg: 'text', peerdb: 'String', double: 'String' },
        ],
        key: [name],
      };
      const s = scenario(on, clickhouseDatabase, current);
      await s.create(table);
      await postgres.query(`INSERT INTO ${pgTable(table)} VALUES (1, $1), (2, $1), (3, NULL)`, [name]);
      await s.snapshot(table);
      expect((await s.diff(table)).totals).toEqual({ missing: 0, extra: 0, changed: 0 });
      await postgres.query(`UPDATE ${pgTable(table)} SET ${pg.escapeIdentifier(`${name} ·`)} = $1 WHERE ${pg.escapeIdentifier(name)} = 2`, [`${name}!`]);
      await s.changeInClickHouse(table, `${pg.escapeIdentifier(name)} = 3`, { [name]: '4' });
      const report = await s.diff(table);
      expect(found(report)).toEqual(expected([{ key: 2, kind: 'changed', columns: [`${name} ·`] }, { key: 4, kind: 'extra' }]));
      expect(report.differences[0]!.key).toEqual({ [name]: '2' });
      expect(report.differences[0]!.values).toEqual({ [`${name} ·`]: { postgres: `${name}!`, clickhouse: name } });
    },
  );

  it('diffs integer keys spread over the whole bigint range (by the hash of the key, as they cannot be subtracted)', async () => {
    const table: Table = {
      schema,
      name: 'wide keys',
      columns: [{ name: 'id', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true }, { name: 'v', pg: 'text', peerdb: 'String', double: 'String' }],
      key: ['id'],
    };
    const s = scenario(on, clickhouseDatabase, current);
    await s.create(table);
    await postgres.query(
      `INSERT INTO ${pgTable(table)} VALUES (-9223372036854775808, 'min'), (-5, 'a'), (0, 'b'), (7, 'c'), (9223372036854775807, 'max')`,
    );
    await s.snapshot(table);
    expect((await s.diff(table)).totals).toEqual({ missing: 0, extra: 0, changed: 0 });
    await postgres.query(`UPDATE ${pgTable(table)} SET v = 'MAX' WHERE id = 9223372036854775807`);
    await postgres.query(`DELETE FROM ${pgTable(table)} WHERE id = -9223372036854775808`);
    expect(found(await s.diff(table))).toEqual(
      expected([{ key: '-9223372036854775808', kind: 'extra' }, { key: '9223372036854775807', kind: 'changed', columns: ['v'] }]),
    );
  });

  it('diffs a table of 120 columns', async () => {
    const columns: Column[] = Array.from({ length: 120 }, (_, i) => ({ name: `v${i}`, pg: 'int4', peerdb: 'Int32', double: 'Int32' }));
    const table: Table = { schema, name: 'wide', columns: [{ name: 'id', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true }, ...columns], key: ['id'] };
    const s = scenario(on, clickhouseDatabase, current);
    await s.create(table);
    await postgres.query(`INSERT INTO ${pgTable(table)} SELECT g, ${columns.map((_, i) => `g + ${i}`).join(', ')} FROM generate_series(1, 100) AS g`);
    await s.snapshot(table);
    expect((await s.diff(table)).totals).toEqual({ missing: 0, extra: 0, changed: 0 });
    await postgres.query(`UPDATE ${pgTable(table)} SET v119 = 0 WHERE id = 50`);
    expect(found(await s.diff(table))).toEqual(expected([{ key: 50, kind: 'changed', columns: ['v119'] }]));
  });

  describe('a table of 50,000 rows', () => {
    const table: Table = {
      schema,
      name: 'big table',
      columns: [
        { name: 'id', pg: 'bigint', peerdb: 'Int64', double: 'Int64', notNull: true },
        { name: 'v', pg: 'int4', peerdb: 'Int32', double: 'Int32' },
        { name: 't', pg: 'text', peerdb: 'String', double: 'String' },
        { name: 'ts', pg: 'timestamptz', peerdb: 'DateTime64(6)', double: 'DateTime' },
        { name: 'f', pg: 'float8', peerdb: 'Float64', double: 'Float64' },
      ],
      key: ['id'],
    };
    const s = scenario(on, clickhouseDatabase, current);
    const ROWS = 50_000;

    beforeAll(async () => {
      await s.create(table);
      // The same rows on both sides from the same formulas: one microsecond more per row where time keeps them.
      await postgres.query(
        `INSERT INTO ${pgTable(table)} SELECT g, (g * 7919) % 100000, 'row ' || g,
                timestamptz '2020-01-01 00:00:00+00' + g * interval '${current ? '1.000001' : '1'} second', g / 8.0
           FROM generate_series(1, ${ROWS}) AS g`,
      );
      const ts = current
        ? 'fromUnixTimestamp64Micro(toInt64(1577836800000000 + id * 1000001))'
        : 'toDateTime(1577836800 + id)';
      await on().command(
        `INSERT INTO ${qualifiedTable(clickhouseDatabase, table.name)} (id, v, t, ts, f, _peerdb_is_deleted, _peerdb_version)
         SELECT id, toInt32((id * 7919) % 100000), concat('row ', toString(id)), ${ts}, id / 8, 0, 1
           FROM (SELECT toInt64(number + 1) AS id FROM system.numbers LIMIT ${ROWS})`,
      );
    });

    it('finds it equal', async () => {
      const report = await s.diff(table);
      expect(report.totals).toEqual({ missing: 0, extra: 0, changed: 0 });
      expect(report.rowsCovered).toBe(ROWS);
    });

    it('finds a handful of differences spread over it, bisecting down to them', async () => {
      await postgres.query(`UPDATE ${pgTable(table)} SET v = v + 1 WHERE id IN (1, 12345, 49999)`);
      await postgres.query(`UPDATE ${pgTable(table)} SET ts = ts + interval '${current ? '1 microsecond' : '1 second'}' WHERE id = 20000`);
      await postgres.query(`DELETE FROM ${pgTable(table)} WHERE id = 25000`);
      await postgres.query(`INSERT INTO ${pgTable(table)} VALUES (50001, 1, 'new', now(), 0), (60000, 2, 'new', now(), 0)`);
      await s.changeInClickHouse(table, 'id = 777', { t: "'row 778'" });
      await s.changeInClickHouse(table, 'id = 40000', { f: '5000.000000000001' });
      await s.deleteInClickHouse(table, 'id = 33333');
      await s.changeInClickHouse(table, 'id = 2', { id: '0' });
      await s.changeInClickHouse(table, 'id = 3', { id: '70000' });
      const want = [
        { key: 1, kind: 'changed', columns: ['v'] },
        { key: 12345, kind: 'changed', columns: ['v'] },
        { key: 49999, kind: 'changed', columns: ['v'] },
        { key: 20000, kind: 'changed', columns: ['ts'] },
        { key: 777, kind: 'changed', columns: ['t'] },
        { key: 40000, kind: 'changed', columns: ['f'] },
        { key: 25000, kind: 'extra' },
        { key: 33333, kind: 'missing' },
        { key: 50001, kind: 'missing' },
        { key: 60000, kind: 'missing' },
        { key: 0, kind: 'extra' },
        { key: 70000, kind: 'extra' },
      ];
      // The defaults, then first-level segments of ~8,000 rows bisected down to leaves of at most 50.
      const plain = await s.diff(table);
      expect(found(plain)).toEqual(expected(want));
      const progress: number[] = [];
      const bisected = await s.diff(table, { segmentRows: 8000, leafRows: 50, onProgress: (p) => progress.push(p.segments) });
      expect(found(bisected)).toEqual(expected(want));
      expect(bisected.totals).toEqual(totals(want));
      // More than one level: the first (about 9 segments) and deeper ones.
      expect(progress.length).toBeGreaterThan(2);
      expect(bisected.segments).toBeGreaterThan(progress[0]!);
    });
  });
});
