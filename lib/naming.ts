/**
 * The names EchoDB derives from the tables it acts on: PeerDB mirror names, ClickHouse destination tables, the
 * source table identifiers PeerDB is given, and Temporal workflow IDs. The same table always gives the same
 * names. Pure, and free of Node built-ins (the hash below is plain code), so that workflow code may import it.
 */
import type { Config } from './config.js';

export interface TableName {
  readonly schema: string;
  readonly table: string;
}

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

/**
 * The `sourceTableIdentifier` EchoDB sends PeerDB: `schema.table`, unquoted whatever the names. PeerDB splits it
 * at the dot, looks both parts up verbatim in the catalog and quotes them itself (flow/pkg/common/identifiers.go
 * ParseTableIdentifier), so quotes here would become part of the names. A name holding a dot cannot be given to
 * PeerDB at all: see peerDbNameProblem.
 */
export function sourceTableIdentifier({ schema, table }: TableName): string {
  return `${schema}.${table}`;
}

/** The table a sourceTableIdentifier names, split at the first dot as PeerDB splits it. */
export function parseSourceTableIdentifier(identifier: string): TableName {
  const dot = identifier.indexOf('.');
  if (dot < 0) throw new Error(`not a schema.table identifier: ${JSON.stringify(identifier)}`);
  return { schema: identifier.slice(0, dot), table: identifier.slice(dot + 1) };
}

/** Why PeerDB cannot mirror a table of this name, or undefined when it can. */
export function peerDbNameProblem({ schema, table }: TableName): string | undefined {
  if (schema.includes('.') || table.includes('.')) {
    return 'PeerDB cannot mirror a table whose schema or table name contains a dot '
      + '(it splits its source table identifier at the dot)';
  }
  return undefined;
}

/**
 * The table in PostgreSQL's quoting, unambiguous whatever the names: `schema.table` when both parts are simple
 * lower-case names, else both parts double-quoted (`"sch.ema"."Ta""ble"`). For IDs, logs and messages; SQL
 * quotes every name (pg.escapeIdentifier).
 */
export function qualifiedName({ schema, table }: TableName): string {
  const simple = /^[a-z_][a-z0-9_$]*$/;
  if (simple.test(schema) && simple.test(table)) return `${schema}.${table}`;
  const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
  return `${quote(schema)}.${quote(table)}`;
}

// Temporal workflow IDs: derived from what the workflow acts on, never random, so that a duplicate start or signal
// lands on the same workflow. EchoDB's own prefix keeps them apart from PeerDB's `<mirror>-peerflow`.

export function mirrorWorkflowId(mirror: string): string {
  return `echodb-mirror:${mirror}`;
}

/**
 * One reconcile at a time per deployment (its task queue): a second request while one runs joins it.
 */
export function reconcileWorkflowId(taskQueue: string): string {
  return `echodb-reconcile:${taskQueue}`;
}

export function verifyWorkflowId(mirror: string, table: TableName, eventId: string): string {
  return `echodb-verify:${mirror}:${eventId}:${qualifiedName(table)}`;
}

/** On-demand verify-all: one at a time per deployment; a second request while one runs joins it. */
export function verifyAllWorkflowId(taskQueue: string): string {
  return `echodb-verify-all:${taskQueue}`;
}

/** The verify-all schedule (schedule IDs are a namespace of their own, apart from workflow IDs). */
export function verifyAllScheduleId(taskQueue: string): string {
  return `echodb-verify-all:${taskQueue}`;
}

/** The workflow ID the schedule starts its runs with; Temporal appends each run's scheduled time. */
export function scheduledVerifyAllWorkflowId(taskQueue: string): string {
  return `echodb-verify-all-scheduled:${taskQueue}`;
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
  return sha256Hex(text).slice(0, HASH_LENGTH);
}

// SHA-256 (FIPS 180-4), since node:crypto is out of reach of workflow code.

const INITIAL_HASH = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const ROUND_CONSTANTS = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

const rotateRight = (word: number, bits: number) => (word >>> bits) | (word << (32 - bits));

function sha256Hex(text: string): string {
  const bytes = new TextEncoder().encode(text);
  const blocks = new Uint8Array(Math.ceil((bytes.length + 9) / 64) * 64);
  blocks.set(bytes);
  blocks[bytes.length] = 0x80;
  const input = new DataView(blocks.buffer);
  input.setUint32(blocks.length - 8, Math.floor(bytes.length / 2 ** 29));
  input.setUint32(blocks.length - 4, (bytes.length * 8) >>> 0);

  const hash = new DataView(new ArrayBuffer(32));
  INITIAL_HASH.forEach((word, index) => hash.setUint32(index * 4, word));
  const schedule = new DataView(new ArrayBuffer(256));
  const word = (index: number) => schedule.getUint32(index * 4);
  for (let block = 0; block < blocks.length; block += 64) {
    for (let index = 0; index < 64; index++) {
      if (index < 16) {
        schedule.setUint32(index * 4, input.getUint32(block + index * 4));
        continue;
      }
      const w15 = word(index - 15);
      const w2 = word(index - 2);
      const s0 = rotateRight(w15, 7) ^ rotateRight(w15, 18) ^ (w15 >>> 3);
      const s1 = rotateRight(w2, 17) ^ rotateRight(w2, 19) ^ (w2 >>> 10);
      schedule.setUint32(index * 4, (word(index - 16) + s0 + word(index - 7) + s1) >>> 0);
    }
    const state = Array.from({ length: 8 }, (_, index) => hash.getUint32(index * 4));
    let [a, b, c, d, e, f, g, h] = state as [number, number, number, number, number, number, number, number];
    for (const [index, constant] of ROUND_CONSTANTS.entries()) {
      const sum1 = rotateRight(e, 6) ^ rotateRight(e, 11) ^ rotateRight(e, 25);
      const choice = (e & f) ^ (~e & g);
      const temp1 = (h + sum1 + choice + constant + word(index)) >>> 0;
      const sum0 = rotateRight(a, 2) ^ rotateRight(a, 13) ^ rotateRight(a, 22);
      const majority = (a & b) ^ (a & c) ^ (b & c);
      const temp2 = (sum0 + majority) >>> 0;
      [h, g, f, e, d, c, b, a] = [g, f, e, (d + temp1) >>> 0, c, b, a, (temp1 + temp2) >>> 0];
    }
    [a, b, c, d, e, f, g, h].forEach((value, index) => hash.setUint32(index * 4, hash.getUint32(index * 4) + value));
  }
  return Array.from(new Uint8Array(hash.buffer), (byte) => byte.toString(16).padStart(2, '0')).join('');
}
