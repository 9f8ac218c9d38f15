/**
 * lib/row-diff/normalise.ts without a server: which pairs of PostgreSQL and ClickHouse types are compared and which
 * are left out (and why), what PostgreSQL's NULL stands for in a column that is or is not Nullable, and the quoting
 * of column names on both sides. test/row-diff.test.ts runs the forms on PostgreSQL and both ClickHouse versions.
 */
import { describe, expect, it } from 'vitest';
import {
  columnRule,
  isCompared,
  unwrapClickHouseType,
  type ColumnRule,
  type ComparedColumn,
  type PostgresColumn,
} from '../../lib/row-diff/normalise.js';

/** A source column as catalog.ts reads it: `type` is pg_type.typname, `display` format_type()'s text. */
function source(type: string, display = type, extra: Partial<PostgresColumn> = {}): PostgresColumn {
  const element = type.startsWith('_') ? type.slice(1) : null;
  return { name: 'c', type, kind: 'b', element, display, ...extra };
}
const rule = (column: PostgresColumn, clickhouseType: string, name = column.name): ColumnRule =>
  columnRule(column, { name, type: clickhouseType });
function compared(column: PostgresColumn, clickhouseType: string): ComparedColumn {
  const result = rule(column, clickhouseType);
  if (!isCompared(result)) throw new Error(`expected ${column.display} in ${clickhouseType} to be compared: ${result.reason}`);
  return result;
}
function reason(column: PostgresColumn, clickhouseType: string): string {
  const result = rule(column, clickhouseType);
  if (isCompared(result)) throw new Error(`expected ${column.display} in ${clickhouseType} to be left out`);
  return result.reason;
}
/** The form PostgreSQL's NULL takes: the literal of the outermost coalesce(form, '...'), or null without one. */
function nullForm(column: ComparedColumn): string | null {
  const match = /^coalesce\(.*, '((?:[^']|'')*)'\)$/s.exec(column.postgres);
  return match ? match[1]!.replaceAll("''", "'") : null;
}

describe('unwrapClickHouseType', () => {
  it.each([
    ['Int64', 'Int64', false],
    ['Nullable(Int64)', 'Int64', true],
    ['LowCardinality(String)', 'String', false],
    ['LowCardinality(Nullable(String))', 'String', true],
    ['Nullable(DateTime64(6))', 'DateTime64(6)', true],
    ['Nullable(Decimal(76, 38))', 'Decimal(76, 38)', true],
    [' Nullable( Date32 ) ', 'Date32', true],
    // An array is never Nullable itself; its elements may be, which the array rules look at.
    ['Array(Nullable(Int64))', 'Array(Nullable(Int64))', false],
    ['Array(LowCardinality(String))', 'Array(LowCardinality(String))', false],
  ])('%s is %s, Nullable: %s', (type, base, nullable) => {
    expect(unwrapClickHouseType(type)).toEqual({ base, nullable });
  });
});

describe('columnRule: the pairs left out, with the reason', () => {
  it.each([
    ['bytea', 'bytea', 'String', /^bytea in a ClickHouse String: no common text form/],
    ['time', 'time without time zone', 'DateTime64(6)', /^time without time zone in a ClickHouse DateTime64\(6\): no common text form/],
    ['time', 'time without time zone', 'String', /^time without time zone in a ClickHouse String/],
    ['interval', 'interval', 'String', /^interval in a ClickHouse String: no common text form/],
    ['float8', 'double precision', 'Float32', /^double precision in a ClickHouse Float32/],
    ['float8', 'double precision', 'String', /^double precision in a ClickHouse String/],
    ['timestamp', 'timestamp without time zone', 'DateTime64(4)', /DateTime64\(4\): only DateTime and DateTime64 of precision 3, 6 or 9/],
    ['timestamptz', 'timestamp with time zone', 'String', /^timestamp with time zone in a ClickHouse String: only DateTime and DateTime64/],
    ['date', 'date', 'DateTime', /^date in a ClickHouse DateTime: no common text form/],
    ['int8', 'bigint', 'String', /^bigint in a ClickHouse String/],
    ['numeric', 'numeric', 'Float64', /^numeric in a ClickHouse Float64/],
    ['bool', 'boolean', 'String', /^boolean in a ClickHouse String/],
    ['hstore', 'hstore', 'String', /^hstore in a ClickHouse String/],
    // PeerDB writes Go's encoding of JSON: keys sorted, no spaces, numbers as doubles; not PostgreSQL's text.
    ['json', 'json', 'String', /^json in a ClickHouse String: PeerDB re-encodes JSON/],
    ['jsonb', 'jsonb', 'Nullable(String)', /^jsonb in a ClickHouse String: PeerDB re-encodes JSON/],
    ['_jsonb', 'jsonb[]', 'String', /^jsonb\[\] in a ClickHouse String: PeerDB re-encodes JSON/],
    ['_float8', 'double precision[]', 'Array(Float64)', /^double precision\[\] in a ClickHouse Array\(Float64\): only integer and text arrays/],
    ['_int8', 'bigint[]', 'Array(String)', /only integer and text arrays/],
    ['_text', 'text[]', 'Array(Int64)', /only integer and text arrays/],
  ])('%s (%s) in a %s', (type, display, clickhouseType, why) => {
    expect(reason(source(type, display), clickhouseType)).toMatch(why);
  });

  it('leaves out an enum in a ClickHouse Enum that is not Nullable: what ClickHouse stores for NULL is unknown', () => {
    const mood = source('mood', 'mood', { kind: 'e' });
    expect(reason(mood, "Enum8('happy' = 1, 'sad' = 2)")).toMatch(/^mood in a ClickHouse Enum8\(.*\) that is not Nullable: NULL has no known stored form/);
    expect(compared(mood, "Nullable(Enum8('happy' = 1, 'sad' = 2))").clickhouse).toBe(
      "ifNull(concat(toString(length(toString(`c`))), ':', toString(`c`)), 'N')",
    );
  });

  it('names the column left out by its own name', () => {
    expect(rule(source('bytea', 'bytea', { name: 'we"ird' }), 'String')).toEqual({
      name: 'we"ird',
      reason: 'bytea in a ClickHouse String: no common text form for this pair of types',
    });
  });
});

describe('columnRule: the pairs compared', () => {
  // Every pair the PeerDB double (18.16) or PeerDB (current ClickHouse) makes, with the form of NULL where the
  // destination is not Nullable: the type's default as ClickHouse stores it.
  it.each([
    ['int2', 'Int16', '0'],
    ['int2', 'Int32', '0'],
    ['int4', 'Int32', '0'],
    ['int8', 'Int64', '0'],
    ['numeric', 'Decimal(12, 2)', '0'],
    ['numeric', 'Decimal(76, 38)', '0'],
    // The double, and PeerDB with PEERDB_CLICKHOUSE_UNBOUNDED_NUMERIC_AS_STRING: a String keeps '' for NULL.
    ['numeric', 'String', ''],
    ['text', 'String', '0:'],
    ['varchar', 'String', '0:'],
    ['bpchar', 'String', '0:'],
    ['uuid', 'String', '0:'],
    ['uuid', 'UUID', '36:00000000-0000-0000-0000-000000000000'],
    ['bool', 'Bool', '0'],
    ['bool', 'UInt8', '0'],
    ['date', 'Date', '0'],
    ['date', 'Date32', '0'],
    ['timestamp', 'DateTime', '0'],
    ['timestamp', 'DateTime64(6)', '0'],
    ['timestamptz', 'DateTime64(6)', '0'],
    ['timestamptz', 'DateTime64(3)', '0'],
    ['timestamptz', 'DateTime64(9)', '0'],
    ['float4', 'Float32', '0'],
    ['float4', 'Float64', '0'],
    ['float8', 'Float64', '0'],
    ['_int8', 'Array(Int64)', '[]'],
    ['_int2', 'Array(Int16)', '[]'],
    ['_text', 'Array(String)', ''],
    ['_int8', 'String', '0:'],
    ['_text', 'String', '0:'],
  ])('%s in a %s: NULL is %j where not Nullable, N where Nullable', (type, clickhouseType, defaultForm) => {
    const notNullable = compared(source(type), clickhouseType);
    expect(nullForm(notNullable)).toBe(defaultForm);
    expect(notNullable.clickhouse).not.toMatch(/^ifNull\(/);
    const nullable = compared(source(type), `Nullable(${clickhouseType})`);
    expect(nullForm(nullable)).toBe('N');
    expect(nullable.clickhouse).toMatch(/^ifNull\(.*, 'N'\)$/s);
  });

  it('compares an enum in a String or a LowCardinality(String), and text in a FixedString', () => {
    const mood = source('mood', 'mood', { kind: 'e' });
    expect(nullForm(compared(mood, 'String'))).toBe('0:');
    expect(nullForm(compared(mood, 'LowCardinality(String)'))).toBe('0:');
    expect(nullForm(compared(mood, 'LowCardinality(Nullable(String))'))).toBe('N');
    expect(nullForm(compared(source('text'), 'FixedString(16)'))).toBe('0:');
  });

  it('writes the simple forms as expected on both sides', () => {
    expect(compared(source('int8'), 'Int64')).toEqual({ name: 'c', postgres: `coalesce("c"::text, '0')`, clickhouse: 'toString(`c`)' });
    expect(compared(source('int8'), 'Nullable(Int64)')).toEqual({
      name: 'c',
      postgres: `coalesce("c"::text, 'N')`,
      clickhouse: "ifNull(toString(`c`), 'N')",
    });
    expect(compared(source('text'), 'String')).toEqual({
      name: 'c',
      postgres: `coalesce((octet_length("c"::text)::text || ':' || "c"::text), '0:')`,
      clickhouse: "concat(toString(length(`c`)), ':', `c`)",
    });
    // bpchar's output keeps its padding, as PeerDB receives it.
    expect(compared(source('bpchar', 'character(5)'), 'String').postgres).toContain('bpcharout("c")::text');
  });

  it('needs no NULL case for a NOT NULL source column, unless the form itself is NULL for some values', () => {
    const notNull = { notNull: true };
    expect(compared(source('int8', 'bigint', notNull), 'Int64').postgres).toBe('"c"::text');
    expect(compared(source('text', 'text', notNull), 'Nullable(String)').postgres).toBe(`(octet_length("c"::text)::text || ':' || "c"::text)`);
    // Infinite dates and timestamps, and NaN or infinite numerics in a Decimal, are NULL: PeerDB stores NULL for
    // them, or the default where not Nullable.
    for (const [type, clickhouseType] of [
      ['date', 'Date32'],
      ['timestamp', 'DateTime64(6)'],
      ['timestamptz', 'DateTime'],
      ['numeric', 'Decimal(76, 38)'],
    ] as const) {
      expect(nullForm(compared(source(type, type, notNull), clickhouseType))).toBe('0');
      expect(nullForm(compared(source(type, type, notNull), `Nullable(${clickhouseType})`))).toBe('N');
    }
  });

  it('gives infinite dates and timestamps, and non-finite numerics in a Decimal, the form of NULL', () => {
    expect(compared(source('date'), 'Date32').postgres).toBe(`coalesce(CASE WHEN isfinite("c") THEN ("c" - DATE '1970-01-01')::text END, '0')`);
    expect(compared(source('timestamptz'), 'Nullable(DateTime64(6))').postgres).toBe(
      `coalesce(CASE WHEN isfinite("c") THEN floor(extract(epoch FROM "c") * 1000000)::bigint::text END, 'N')`,
    );
    expect(compared(source('numeric'), 'Decimal(12, 2)').postgres).toBe(`coalesce(CASE WHEN "c" = "c" + 1 THEN NULL ELSE trim_scale("c")::text END, '0')`);
    // A String keeps PostgreSQL's text, NaN included.
    expect(compared(source('numeric'), 'String').postgres).toBe(`coalesce(trim_scale("c")::text, '')`);
  });

  it('writes a NULL array element as PeerDB stores it: 0 or an empty string, or NULL where elements are Nullable', () => {
    expect(compared(source('_int8'), 'Array(Int64)').postgres).toContain(`array_to_string("c", ',', '0')`);
    expect(compared(source('_int8'), 'Array(Nullable(Int64))').postgres).toContain(`array_to_string("c", ',', 'NULL')`);
    expect(compared(source('_text'), 'Array(String)').postgres).toContain(`|| x, '0:')`);
    const nullableElements = compared(source('_text'), 'Array(Nullable(String))');
    expect(nullableElements.postgres).toContain(`|| x, 'N')`);
    expect(nullableElements.clickhouse).toContain("ifNull(concat(toString(length(x)), ':', x), 'N')");
    expect(compared(source('_varchar'), 'Array(LowCardinality(String))').clickhouse).toBe(
      "arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), `c`), ',')",
    );
  });
});

describe('columnRule: names', () => {
  const awkward = [
    'we"ird',
    "it's",
    'back`tick',
    'back\\slash',
    'dot.ted name',
    'pipe|colon:',
    'ünïcødé 注文 😀',
    'new\nline',
    `${'ü'.repeat(31)}x`,
    // The diff's own aliases and ClickHouse function names.
    'k',
    'h',
    'c0',
    'segment',
    'sum',
    'toString',
  ];

  it.each(awkward.map((name) => [JSON.stringify(name), name]))('quotes the column %s on both sides', (_label, name) => {
    const quotedPostgres = `"${name.replaceAll('"', '""')}"`;
    const quotedClickHouse = `\`${name.replaceAll('\\', '\\\\').replaceAll('`', '\\`')}\``;
    for (const [type, clickhouseType] of [
      ['int4', 'Int32'],
      ['text', 'Nullable(String)'],
      ['timestamptz', 'DateTime64(6)'],
      ['_text', 'Array(String)'],
      ['float8', 'Float64'],
    ] as const) {
      const column = compared(source(type, type, { name }), clickhouseType);
      expect(column.name).toBe(name);
      expect(column.postgres).toContain(quotedPostgres);
      expect(column.clickhouse).toContain(quotedClickHouse);
      // Nothing but the quoted name: take it out, and the name is nowhere left (names that are words aside).
      if (/[^a-z0-9]/i.test(name)) {
        expect(column.postgres.replaceAll(quotedPostgres, '')).not.toContain(name);
        expect(column.clickhouse.replaceAll(quotedClickHouse, '')).not.toContain(name);
      }
    }
  });

  it('reads the destination column by its own name', () => {
    const column = compared(source('int4', 'integer', { name: 'Source' }), 'Int32');
    expect(column.clickhouse).toBe('toString(`Source`)');
    expect(columnRule(source('int4', 'integer', { name: 'Source' }), { name: 'Other', type: 'Int32' })).toMatchObject({
      name: 'Source',
      clickhouse: 'toString(`Other`)',
    });
  });
});
