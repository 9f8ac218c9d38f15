/**
 * One text form per value, computed in SQL on each side, so that a PostgreSQL row and its ClickHouse copy hash
 * alike exactly when PeerDB carried every compared value faithfully. Each pair of column types (PostgreSQL's, and
 * the ClickHouse type PeerDB or the operator gave the destination) has one rule; a pair without a rule is left out
 * and named with the reason, never compared loosely.
 *
 * The forms: integers in decimal; numeric without trailing zeros; booleans 1/0; dates as days and timestamps as
 * seconds (or milli-, micro-, nanoseconds, the precision the ClickHouse column keeps) since 1970 UTC, truncated;
 * floats as their IEEE bits; text, uuid and PostgreSQL's array text as `<bytes>:<text>`, so that no value can
 * run into the next (JSON is left out: PeerDB writes its own encoding of it). NULL is `N` where ClickHouse keeps
 * NULL; in a column that is not Nullable, PeerDB stores the type's default for NULL (flow/model/qvalue/dwh.go: the
 * epoch for time types), so PostgreSQL's NULL takes the default's form. Every expression here uses functions that
 * ClickHouse 18.16 and current ClickHouse both have.
 */
import pg from 'pg';
import { quoteIdentifier } from '../clickhouse-sql.js';

/** A source column, from PostgreSQL's catalog (domains resolved to their base type). */
export interface PostgresColumn {
  name: string;
  /** pg_type.typname of the (base) type, e.g. int8, _text. */
  type: string;
  /** pg_type.typtype: e for enums. */
  kind: string;
  /** The element type of an array, else null. */
  element: string | null;
  /** format_type(), for messages. */
  display: string;
  /** NOT NULL: its form needs no NULL case on PostgreSQL's side. */
  notNull?: boolean;
}

/** A destination column, from ClickHouse's system.columns. */
export interface ClickHouseColumn {
  name: string;
  type: string;
}

/** How one column is compared: an expression per side giving its text form, never NULL. */
export interface ComparedColumn {
  name: string;
  postgres: string;
  clickhouse: string;
}

/** A column the diff does not compare, and why. */
export interface ExcludedColumn {
  name: string;
  reason: string;
}

export type ColumnRule = ComparedColumn | ExcludedColumn;

export const isCompared = (rule: ColumnRule): rule is ComparedColumn => 'postgres' in rule;

/** The ClickHouse type inside Nullable(...) and LowCardinality(...), and whether NULL is kept. */
export function unwrapClickHouseType(type: string): { base: string; nullable: boolean } {
  let base = type.trim();
  let nullable = false;
  for (;;) {
    const wrapper = /^(Nullable|LowCardinality)\((.*)\)$/.exec(base);
    if (!wrapper) return { base, nullable };
    if (wrapper[1] === 'Nullable') nullable = true;
    base = wrapper[2]!.trim();
  }
}

const INTEGERS = new Set(['int2', 'int4', 'int8']);
const TEXTS = new Set(['text', 'varchar', 'name', 'citext', 'xml']);
const JSONS = new Set(['json', 'jsonb']);
const TIMESTAMPS = new Set(['timestamp', 'timestamptz']);
const isClickHouseInteger = (base: string) => /^U?Int(8|16|32|64|128|256)$/.test(base);
const isClickHouseString = (base: string) => base === 'String' || /^FixedString\(\d+\)$/.test(base);

/** `<bytes>:<text>`, NULL for NULL. */
const prefixedPostgres = (text: string) => `(octet_length(${text})::text || ':' || ${text})`;
const prefixedClickHouse = (text: string) => `concat(toString(length(${text})), ':', ${text})`;

/** Drops a decimal's trailing zeros (and then a trailing point), as PostgreSQL's trim_scale does. */
const trimmedDecimal = (text: string) => `if(position(${text}, '.') > 0, replaceRegexpOne(${text}, '\\\\.?0+$', ''), ${text})`;

/**
 * An infinite date or timestamp is NULL: no ClickHouse value holds it, and PeerDB stores NULL for it, or the epoch
 * where the column is not Nullable (qvalue_convert.go, DefaultTime), which is the form of NULL there.
 */
const finite = (column: string, form: string) => `CASE WHEN isfinite(${column}) THEN ${form} END`;

/**
 * Ticks since 1970 at each precision ClickHouse keeps. Whole seconds come from date_part's float8, whose fraction
 * cannot round up to the next second (its step is well under a microsecond for any year PostgreSQL has) and which
 * is several times cheaper than extract's numeric; finer precisions need numeric's exact digits.
 */
const TICKS: Record<number, { postgres: (c: string) => string; clickhouse: string }> = {
  0: { postgres: (c) => `floor(date_part('epoch', ${c}))::bigint::text`, clickhouse: 'toUnixTimestamp' },
  3: { postgres: (c) => `floor(extract(epoch FROM ${c}) * 1000)::bigint::text`, clickhouse: 'toUnixTimestamp64Milli' },
  6: { postgres: (c) => `floor(extract(epoch FROM ${c}) * 1000000)::bigint::text`, clickhouse: 'toUnixTimestamp64Micro' },
  9: { postgres: (c) => `floor(extract(epoch FROM ${c}) * 1000000000)::bigint::text`, clickhouse: 'toUnixTimestamp64Nano' },
};

interface Forms {
  postgres: (column: string) => string;
  clickhouse: (column: string) => string;
  /** The text form of what ClickHouse stores for NULL in a column of this type that is not Nullable. */
  defaultForm: string | null;
  /** The PostgreSQL form is NULL for some values that are not: those PeerDB stores as NULL. */
  storesNull?: boolean;
}

/** The rule for one pair of types, or the reason there is none. */
function formsFor(source: PostgresColumn, base: string): Forms | string {
  const { type } = source;
  if (INTEGERS.has(type) && isClickHouseInteger(base)) {
    return { postgres: (c) => `${c}::text`, clickhouse: (c) => `toString(${c})`, defaultForm: '0' };
  }
  if (type === 'numeric' && (/^Decimal(\d+)?\(/.test(base) || isClickHouseString(base))) {
    // No Decimal holds NaN or an infinity: PeerDB stores NULL, or 0 where not Nullable (validNumericToDecimal).
    // `c = c + 1` holds for exactly those (and needs no 'Infinity' literal, which PostgreSQL 13 and older refuse).
    const decimal = base.startsWith('Decimal');
    return {
      postgres: (c) => (decimal ? `CASE WHEN ${c} = ${c} + 1 THEN NULL ELSE trim_scale(${c})::text END` : `trim_scale(${c})::text`),
      clickhouse: (c) => trimmedDecimal(decimal ? `toString(${c})` : c),
      // A String keeps '' for NULL.
      defaultForm: decimal ? '0' : '',
      storesNull: decimal,
    };
  }
  if ((JSONS.has(type) || JSONS.has(source.element ?? '')) && isClickHouseString(base)) {
    return `${source.display} in a ClickHouse ${base}: PeerDB re-encodes JSON (Go's json.Marshal: keys sorted, spaces dropped, numbers as doubles), so its text is not PostgreSQL's`;
  }
  if ((TEXTS.has(type) || type === 'bpchar' || source.kind === 'e' || type === 'uuid') && isClickHouseString(base)) {
    // bpchar's own output keeps the padding that a cast to text strips; PeerDB receives the output.
    const text = (c: string) => (type === 'bpchar' ? `bpcharout(${c})::text` : `${c}::text`);
    return { postgres: (c) => prefixedPostgres(text(c)), clickhouse: (c) => prefixedClickHouse(c), defaultForm: '0:' };
  }
  if ((source.kind === 'e' && /^Enum(8|16)\(/.test(base)) || (type === 'uuid' && base === 'UUID')) {
    const zero = base === 'UUID' ? '36:00000000-0000-0000-0000-000000000000' : null;
    return {
      postgres: (c) => prefixedPostgres(`${c}::text`),
      clickhouse: (c) => prefixedClickHouse(`toString(${c})`),
      defaultForm: zero,
    };
  }
  if (type === 'bool' && (base === 'UInt8' || base === 'Bool')) {
    return { postgres: (c) => `${c}::int::text`, clickhouse: (c) => `toString(toUInt8(${c}))`, defaultForm: '0' };
  }
  if (type === 'date' && (base === 'Date' || base === 'Date32')) {
    return {
      postgres: (c) => finite(c, `(${c} - DATE '1970-01-01')::text`),
      clickhouse: (c) => `toString(toInt32(${c}))`,
      defaultForm: '0',
      storesNull: true,
    };
  }
  if (TIMESTAMPS.has(type)) {
    const precision = base.startsWith('DateTime64(') ? Number(/^DateTime64\((\d+)/.exec(base)?.[1]) : /^DateTime(\(|$)/.test(base) ? 0 : NaN;
    const ticks = TICKS[precision];
    if (!ticks) return `${source.display} in a ClickHouse ${base}: only DateTime and DateTime64 of precision 3, 6 or 9 are compared`;
    return {
      postgres: (c) => finite(c, ticks.postgres(c)),
      clickhouse: (c) => `toString(${ticks.clickhouse}(${c}))`,
      defaultForm: '0',
      storesNull: true,
    };
  }
  if ((type === 'float8' && base === 'Float64') || (type === 'float4' && base === 'Float32')) {
    const [send, bits, width] = type === 'float8' ? ['float8send', 64, 'Int64'] : ['float4send', 32, 'Int32'];
    return {
      postgres: (c) => `('x' || encode(${send}(${c}), 'hex'))::bit(${bits})::${bits === 64 ? 'bigint' : 'int'}::text`,
      clickhouse: (c) => `toString(reinterpretAs${width}(reinterpretAsString(${c})))`,
      defaultForm: '0',
    };
  }
  if (type === 'float4' && base === 'Float64') {
    // A real widened from its shortest text, as a client that reads the text and parses a double stores it.
    return {
      postgres: (c) => `('x' || encode(float8send(${c}::text::float8), 'hex'))::bit(64)::bigint::text`,
      clickhouse: (c) => `toString(reinterpretAsInt64(reinterpretAsString(${c})))`,
      defaultForm: '0',
    };
  }
  if (source.element !== null) return arrayForms(source, base);
  return `${source.display} in a ClickHouse ${base}: no common text form for this pair of types`;
}

/**
 * Arrays: PostgreSQL's array text in a String; integer and text arrays in ClickHouse Arrays, whose elements PeerDB
 * never makes Nullable: it stores a NULL element as 0 or '' (ArrayCastElements, convertToString).
 */
function arrayForms(source: PostgresColumn, base: string): Forms | string {
  const element = source.element!;
  if (isClickHouseString(base)) {
    return { postgres: (c) => prefixedPostgres(`${c}::text`), clickhouse: (c) => prefixedClickHouse(c), defaultForm: '0:' };
  }
  const inner = /^Array\((.*)\)$/.exec(base)?.[1];
  const elements = inner === undefined ? undefined : unwrapClickHouseType(inner);
  if (elements && INTEGERS.has(element) && isClickHouseInteger(elements.base)) {
    return {
      postgres: (c) => `('[' || array_to_string(${c}, ',', ${elements.nullable ? "'NULL'" : "'0'"}) || ']')`,
      clickhouse: (c) => `toString(${c})`,
      defaultForm: '[]',
    };
  }
  if (elements && TEXTS.has(element) && isClickHouseString(elements.base)) {
    const nullElement = elements.nullable ? 'N' : '0:';
    return {
      postgres: (c) =>
        `CASE WHEN ${c} IS NULL THEN NULL ELSE array_to_string(ARRAY(SELECT coalesce(octet_length(x)::text || ':' || x, '${nullElement}') FROM unnest(${c}) AS x), ',') END`,
      clickhouse: (c) => `arrayStringConcat(arrayMap(x -> ${elements.nullable ? `ifNull(${prefixedClickHouse('x')}, 'N')` : prefixedClickHouse('x')}, ${c}), ',')`,
      defaultForm: '',
    };
  }
  return `${source.display} in a ClickHouse ${base}: only integer and text arrays are compared`;
}

/** The rule for one column present on both sides. */
export function columnRule(source: PostgresColumn, destination: ClickHouseColumn): ColumnRule {
  const { base, nullable } = unwrapClickHouseType(destination.type);
  const forms = formsFor(source, base);
  if (typeof forms === 'string') return { name: source.name, reason: forms };
  const pgColumn = pg.escapeIdentifier(source.name);
  const chColumn = quoteIdentifier(destination.name);
  const postgresForm = (nullForm: string) =>
    source.notNull && !forms.storesNull ? forms.postgres(pgColumn) : `coalesce(${forms.postgres(pgColumn)}, ${pg.escapeLiteral(nullForm)})`;
  if (nullable) return { name: source.name, postgres: postgresForm('N'), clickhouse: `ifNull(${forms.clickhouse(chColumn)}, 'N')` };
  if (forms.defaultForm === null) {
    return { name: source.name, reason: `${source.display} in a ClickHouse ${base} that is not Nullable: NULL has no known stored form` };
  }
  return { name: source.name, postgres: postgresForm(forms.defaultForm), clickhouse: forms.clickhouse(chColumn) };
}
