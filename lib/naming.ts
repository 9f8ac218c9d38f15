/**
 * The names EchoDB derives from the tables it acts on: PeerDB mirror names, ClickHouse destination tables, the
 * source table identifiers PeerDB is given. The same table always gives the same
 * names. Node-only (node:crypto); workflow code takes table identifiers and workflow IDs from
 * lib/workflow-safe/workflow-ids.ts.
 */
import { createHash } from 'node:crypto';
import type { Config } from './config.js';
import { qualifiedName, type TableName } from './workflow-safe/workflow-ids.js';

export interface NamingRules {
  readonly strategy: 'per-schema' | 'per-table';
  /** MIRROR_NAME_TEMPLATE; unset means the strategy's default. */
  readonly nameTemplate?: string | undefined;
  readonly watchedSchemas: readonly string[];
}

/** So that PeerDB's slot `peerflow_slot_<mirror>` stays within PostgreSQL's 63-byte identifier limit. */
export const MIRROR_NAME_MAX_LENGTH = 63 - 'peerflow_slot_'.length;

/**
 * The longest ClickHouse table name EchoDB produces, measured as ClickHouse writes it into file names (every byte
 * other than A-Z, a-z, 0-9 and _ becomes %XX): 18.16 fails with "File name too long" on a name of 60 emoji.
 */
export const DESTINATION_NAME_MAX_LENGTH = 200;

/**
 * The longest table name ClickHouse takes in `database`: current ClickHouse (computeMaxTableNameLength) leaves a
 * table name 213 less the database name's length in file names (test/clickhouse-current.test.ts measures it on
 * 26.9), and some releases 9 less again; 18.16 has no such rule. At least 40, so that a hash still fits.
 */
export function destinationNameLimit(database: string): number {
  return Math.max(40, Math.min(DESTINATION_NAME_MAX_LENGTH, 204 - fileNameLength(database)));
}

const HASH_LENGTH = 8;

export function namingRules(config: Config): NamingRules {
  return {
    strategy: config.mirror.strategy,
    nameTemplate: config.mirror.nameTemplate,
    watchedSchemas: config.sync.schemas,
  };
}

/** PeerDB's rule for mirror names, and EchoDB's length limit. */
export function isValidMirrorName(name: string): boolean {
  return /^[a-z_][a-z0-9_]*$/.test(name) && name.length <= MIRROR_NAME_MAX_LENGTH;
}

/**
 * The PeerDB mirror that holds `table`. Whatever the names, the result is a valid mirror name; when making it
 * valid changed the text (case, characters, length), a hash of the text is appended so that `Orders` and
 * `orders` still get different mirrors.
 */
export function mirrorNameFor(table: TableName, rules: NamingRules): string {
  const wanted = substitute(rules.nameTemplate ?? defaultMirrorNameTemplate(rules), table);
  const lowered = wanted.toLowerCase().replace(/[^a-z0-9_]/gu, '_');
  const name = /^[0-9]/.test(lowered) ? `_${lowered}` : lowered;
  if (name === wanted && isValidMirrorName(name)) return name;
  return `${name.slice(0, MIRROR_NAME_MAX_LENGTH - HASH_LENGTH - 1)}_${shortHash(wanted)}`;
}

function defaultMirrorNameTemplate({ strategy, watchedSchemas }: NamingRules): string {
  if (strategy === 'per-schema') return 'echodb_{schema}';
  // The original EchoDB's names, with the schema added only where equal table names could meet.
  return new Set(watchedSchemas).size > 1 ? '{schema}_{table}_mirror' : '{table}_mirror';
}

/**
 * The ClickHouse table `table` is mirrored into (DESTINATION_TABLE_TEMPLATE, default `{table}`), kept exactly
 * as named: PeerDB backtick-quotes it whole, so any character, a dot included, is part of the name. Only a name
 * too long for ClickHouse's files is shortened, with a hash.
 */
export function destinationTableFor(table: TableName, template = '{table}', maxLength = DESTINATION_NAME_MAX_LENGTH): string {
  return fitFileName(substitute(template, table), maxLength);
}

/** `<destination>_dropped_<YYYYMMDDHHMMSS, UTC>`, where DESTINATION_ON_DROP=rename keeps a dropped table's data. */
export function droppedTableName(destination: string, at: Date, maxLength = DESTINATION_NAME_MAX_LENGTH): string {
  if (Number.isNaN(at.getTime())) throw new RangeError('droppedTableName needs a valid date');
  const two = (value: number) => String(value).padStart(2, '0');
  const stamp = String(at.getUTCFullYear()).padStart(4, '0') + two(at.getUTCMonth() + 1) + two(at.getUTCDate())
    + two(at.getUTCHours()) + two(at.getUTCMinutes()) + two(at.getUTCSeconds());
  const suffix = `_dropped_${stamp}`;
  return fitFileName(destination, maxLength - suffix.length) + suffix;
}

/** Why PeerDB cannot mirror a table of this name, or undefined when it can. */
export function peerDbNameProblem({ schema, table }: TableName): string | undefined {
  if (schema.includes('.') || table.includes('.')) {
    return 'PeerDB cannot mirror a table whose schema or table name contains a dot '
      + '(it splits its source table identifier at the dot)';
  }
  return undefined;
}

export interface PlannedNames {
  table: TableName;
  mirror: string;
  destination: string;
}

export interface NameCollision {
  /** `destination`: one ClickHouse table for several source tables; `mirror`: see planNames. */
  kind: 'destination' | 'mirror';
  name: string;
  tables: TableName[];
}

export interface NamePlan {
  entries: PlannedNames[];
  collisions: NameCollision[];
  /** Tables PeerDB cannot take (peerDbNameProblem); they still have entries. */
  unsupported: { table: TableName; problem: string }[];
}

/**
 * The names of every table, and the conflicts among them, before anything is created: two source tables with
 * one ClickHouse table; under per-table, two source tables with one mirror; under per-schema, two schemas with
 * one mirror (its `tables` then holds the first table of each schema).
 */
export function planNames(
  tables: readonly TableName[],
  rules: NamingRules,
  destinationTemplate = '{table}',
): NamePlan {
  const entries = tables.map((table) => ({
    table,
    mirror: mirrorNameFor(table, rules),
    destination: destinationTableFor(table, destinationTemplate),
  }));
  const unsupported = tables.flatMap((table) => {
    const problem = peerDbNameProblem(table);
    return problem === undefined ? [] : [{ table, problem }];
  });
  // A NUL byte cannot occur in a PostgreSQL name, so these keys are unambiguous.
  const tableKey = ({ schema, table }: TableName) => `${schema}\0${table}`;
  const ownerKey = rules.strategy === 'per-table' ? tableKey : ({ schema }: TableName) => schema;
  const collisions = [
    ...sharedNames('destination', entries, (entry) => entry.destination, tableKey),
    ...sharedNames('mirror', entries, (entry) => entry.mirror, ownerKey),
  ];
  return { entries, collisions, unsupported };
}

/** Names that entries of more than one owner share; per name, each owner's first table. */
function sharedNames(
  kind: NameCollision['kind'],
  entries: readonly PlannedNames[],
  nameOf: (entry: PlannedNames) => string,
  ownerOf: (table: TableName) => string,
): NameCollision[] {
  const owners = new Map<string, Map<string, TableName>>();
  for (const entry of entries) {
    const name = nameOf(entry);
    const byOwner = owners.get(name) ?? new Map<string, TableName>();
    owners.set(name, byOwner);
    const owner = ownerOf(entry.table);
    if (!byOwner.has(owner)) byOwner.set(owner, entry.table);
  }
  return [...owners]
    .filter(([, byOwner]) => byOwner.size > 1)
    .map(([name, byOwner]) => ({ kind, name, tables: [...byOwner.values()] }));
}

/** One line for an operator, whatever characters the names hold. */
export function describeCollision({ kind, name, tables }: NameCollision): string {
  const listed = tables.map(qualifiedName).join(', ');
  const text = kind === 'destination'
    ? `ClickHouse table ${JSON.stringify(name)} would receive ${tables.length} source tables (${listed}); `
      + 'change DESTINATION_TABLE_TEMPLATE or exclude all but one of them'
    : `mirror ${JSON.stringify(name)} would be shared by ${tables.length} source tables that must not share one `
      + `(${listed}); change MIRROR_NAME_TEMPLATE or exclude all but one of them`;
  return text.replace(
    // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
    /[\u0000-\u001f\u007f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** {schema} and {table} replaced in one pass, so that a name containing "{table}" is not substituted again. */
function substitute(template: string, { schema, table }: TableName): string {
  return template.replace(/\{(schema|table)\}/g, (_placeholder, key) => (key === 'schema' ? schema : table));
}

/** `name`, or when its file name is longer than `max`, its beginning and a hash of the whole. */
function fitFileName(name: string, max: number): string {
  if (fileNameLength(name) <= max) return name;
  let kept = '';
  let length = HASH_LENGTH + 1;
  for (const char of name) {
    length += fileNameLength(char);
    if (length > max) break;
    kept += char;
  }
  return `${kept}_${shortHash(name)}`;
}

/** The length of `name` in ClickHouse's file names (escapeForFileName): bytes other than \w take three. */
function fileNameLength(name: string): number {
  let length = 0;
  for (const byte of new TextEncoder().encode(name)) length += isWordByte(byte) ? 1 : 3;
  return length;
}

const isWordByte = (byte: number) =>
  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x5f;

/** The first 8 hex digits of the SHA-256 of the UTF-8 text (`printf %s TEXT | sha256sum` shows the same). */
export function shortHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, HASH_LENGTH);
}
