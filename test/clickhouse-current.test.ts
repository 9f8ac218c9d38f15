/**
 * Every statement EchoDB sends to ClickHouse (the builders of lib/clickhouse-sql.ts), run on the ClickHouse 18.16
 * the tests start and on current ClickHouse (chdb, in-process), against PeerDB-shaped destination tables whose
 * names are the adversarial ones: the destination check, the live row count (FINAL, deleted rows left out), the
 * rename aside, the drop, the readiness query, setup's database check and creation, and the batched count of many
 * tables in one statement. None needs a version
 * switch: each builder has one text for both. Only the test's own CREATE TABLE differs (18.16 has no DateTime64).
 */
import crypto from 'node:crypto';
import { ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  countLiveRows,
  countLiveRowsOfEach,
  createDatabase,
  databaseExists,
  dropTable,
  existsTable,
  qualifiedTable,
  quoteIdentifier,
  quoteString,
  readinessQuery,
  renameTable,
} from '../lib/clickhouse-sql.js';
import { destinationNameLimit, droppedTableName } from '../lib/naming.js';
import { adversarialNames, nameLabel } from './support/adversarial-names.js';
import { startChdb } from './support/chdb.js';
import { testServers } from './support/servers.js';

/** The oldest ClickHouse that counts as current here: PeerDB's CI tests 25.8 LTS and newer. */
const CURRENT_MAJOR = 25;
/** When a table leaves its mirror, in the tests: the rename-aside name is droppedTableName(table, AT). */
const AT = new Date('2025-01-02T03:04:05Z');

/** One ClickHouse, as the tests drive it: statements that answer rows, and statements that answer nothing. */
interface Target {
  version(): Promise<string>;
  rows<T>(sql: string): Promise<T[]>;
  command(sql: string): Promise<void>;
  /**
   * CREATE TABLE for a destination table as PeerDB makes it (flow/connectors/clickhouse/normalize.go,
   * generateCreateTableSQLForNormalizedTable) for a source table (id bigint PRIMARY KEY, name text), with the
   * default syncedAtColName and no softDeleteColName.
   */
  peerDbTable(database: string, table: string): string;
  close(): Promise<void>;
}

const SOURCE_COLUMNS = '`id` Int64, `name` String, ';
const PEERDB_COLUMNS = '`_peerdb_is_deleted` UInt8, `_peerdb_version` UInt64';

/** The harness's ClickHouse (18.16), through the client EchoDB uses. */
function harnessClickHouse(): Target {
  const { url, user, password } = testServers().clickhouse;
  const client = createClient({ url, username: user, password, log: { level: ClickHouseLogLevel.OFF } });
  const rows = async <T>(sql: string) => (await client.query({ query: sql, format: 'JSONEachRow' })).json<T>();
  return {
    async version() {
      return (await rows<{ v: string }>('SELECT version() AS v'))[0]?.v ?? '?';
    },
    rows,
    async command(sql) {
      await client.command({ query: sql });
    },
    // 18.16 has no DateTime64 (PeerDB's synced-at type): the same column as DateTime. PRIMARY KEY as PeerDB gives it.
    peerDbTable: (database, table) =>
      `CREATE TABLE IF NOT EXISTS ${qualifiedTable(database, table)} (${SOURCE_COLUMNS}`
      + `\`_peerdb_synced_at\` DateTime DEFAULT now(), ${PEERDB_COLUMNS}) `
      + 'ENGINE = ReplacingMergeTree(`_peerdb_version`) PRIMARY KEY (`id`) ORDER BY (`id`)',
    close: () => client.close(),
  };
}

/** Current ClickHouse: chdb in one Python process for the whole file. Fails (never skips) without chdb. */
async function currentClickHouse(): Promise<Target> {
  const chdb = await startChdb();
  console.log(`chdb ${chdb.versions.chdb} (python3): ClickHouse ${chdb.versions.clickhouse}`);
  const rows = async <T>(sql: string) =>
    (await chdb.query(sql, 'JSONEachRow'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as T);
  return {
    version: () => Promise.resolve(chdb.versions.clickhouse),
    rows,
    async command(sql) {
      await chdb.query(sql);
    },
    // Exactly PeerDB's text, the database added.
    peerDbTable: (database, table) =>
      `CREATE TABLE IF NOT EXISTS ${qualifiedTable(database, table)} (${SOURCE_COLUMNS}`
      + `\`_peerdb_synced_at\` DateTime64(9) DEFAULT now64(), ${PEERDB_COLUMNS}) `
      + 'ENGINE = ReplacingMergeTree(`_peerdb_version`) PRIMARY KEY (`id`) ORDER BY (`id`)',
    close: () => chdb.close(),
  };
}

/**
 * Two inserts, so two parts until a merge: ids 1-5 at version 1, then id 2 deleted, id 3 updated and id 6 added at
 * version 2. Live: 1, 3, 4, 5, 6.
 */
const LIVE_ROWS = 5;
const insertRows = (table: string, value: string) => [
  `INSERT INTO ${table} (id, name, _peerdb_is_deleted, _peerdb_version) VALUES `
    + [1, 2, 3, 4, 5].map((id) => `(${id}, ${quoteString(value)}, 0, 1)`).join(', '),
  `INSERT INTO ${table} (id, name, _peerdb_is_deleted, _peerdb_version) VALUES `
    + `(2, ${quoteString(value)}, 1, 2), (3, ${quoteString(`${value} updated`)}, 0, 2), (6, ${quoteString(value)}, 0, 2)`,
];

describe.each([
  { label: 'ClickHouse 18.16 (the test harness)', open: () => Promise.resolve(harnessClickHouse()), current: false },
  { label: 'current ClickHouse (chdb)', open: currentClickHouse, current: true },
])('EchoDB statements on $label', ({ label, open, current }) => {
  // A quote in it, and as short in ClickHouse's file names as EchoDB's default `default` (7 characters there):
  // current ClickHouse takes longer database names off the longest table name (destinationNameLimit).
  const database = `e'${crypto.randomBytes(2).toString('hex')}`;
  let target: Target | undefined;
  const on = (): Target => {
    if (!target) throw new Error('the ClickHouse under test did not start');
    return target;
  };

  // What the activities read from the answers (mirror-activities.ts tableExists, verify-activities.ts countRows).
  async function exists(table: string): Promise<boolean>;
  async function exists(inDatabase: string, table: string): Promise<boolean>;
  async function exists(...args: [string] | [string, string]): Promise<boolean> {
    const [inDatabase, table] = args.length === 2 ? args : [database, args[0]];
    const rows = await on().rows<{ result: number | string }>(existsTable(inDatabase, table));
    expect(rows).toHaveLength(1);
    expect(Object.keys(rows[0]!)).toEqual(['result']);
    return Number(rows[0]!.result) === 1;
  }
  async function liveRows(table: string): Promise<number> {
    const rows = await on().rows<{ n: number | string }>(countLiveRows(database, table));
    expect(rows).toHaveLength(1);
    expect(Object.keys(rows[0]!)).toEqual(['n']);
    return Number(rows[0]!.n);
  }
  async function createPeerDbTable(table: string, value: string): Promise<void> {
    await on().command(on().peerDbTable(database, table));
    for (const insert of insertRows(qualifiedTable(database, table), value)) await on().command(insert);
  }
  const listed = async () =>
    (await on().rows<{ name: string }>(`SELECT name FROM system.tables WHERE database = ${quoteString(database)}`))
      .map((row) => row.name);

  beforeAll(async () => {
    target = await open();
    await target.command(`CREATE DATABASE ${quoteIdentifier(database)}`);
  });

  afterAll(async () => {
    if (!target) return;
    await target.command(`DROP DATABASE IF EXISTS ${quoteIdentifier(database)}`);
    await target.close();
  });

  it(current ? `is ClickHouse ${CURRENT_MAJOR} or later` : 'tells its version', async () => {
    const version = await on().version();
    console.log(`${label}: ClickHouse ${version}`);
    if (current) expect(Number(version.split('.')[0]), `ClickHouse ${version}`).toBeGreaterThanOrEqual(CURRENT_MAJOR);
    else expect(version).toMatch(/^\d+\.\d+/);
  });

  it('answers the readiness query with one row', async () => {
    expect(await on().rows(readinessQuery())).toHaveLength(1);
  });

  it.each(adversarialNames.map((name) => [nameLabel(name), name]))(
    'checks, counts, renames aside and drops the PeerDB table %s',
    async (_label, name) => {
      const renamed = droppedTableName(name, AT);
      expect(await exists(name)).toBe(false);
      await createPeerDbTable(name, name);
      expect(await exists(name)).toBe(true);

      // FINAL keeps each id's newest version, then the deleted id 2 is left out; without FINAL more rows show.
      expect(await liveRows(name)).toBe(LIVE_ROWS);
      const [raw] = await on().rows<{ n: string | number }>(`SELECT count() AS n FROM ${qualifiedTable(database, name)}`);
      expect(Number(raw?.n)).toBeGreaterThan(LIVE_ROWS);

      expect(await exists(renamed)).toBe(false);
      await on().command(renameTable(database, name, renamed));
      expect(await exists(name)).toBe(false);
      expect(await exists(renamed)).toBe(true);
      expect(await liveRows(renamed)).toBe(LIVE_ROWS);
      expect(
        await on().rows(`SELECT name FROM ${qualifiedTable(database, renamed)} FINAL WHERE id = 3`),
      ).toEqual([{ name: `${name} updated` }]);

      await on().command(dropTable(database, renamed));
      expect(await exists(renamed)).toBe(false);
      await on().command(dropTable(database, renamed)); // already gone: nothing happens
      await on().command(dropTable(database, name)); // never there under this name now
      expect(await listed()).toEqual([]);
    },
  );

  it.each(adversarialNames.map((name) => [nameLabel(name), name]))(
    'checks for and creates the database %s',
    async (_label, name) => {
      const wanted = `${name}_${crypto.randomBytes(4).toString('hex')}`;
      const present = async () => {
        const rows = await on().rows<{ n: number | string }>(databaseExists(wanted));
        expect(rows).toHaveLength(1);
        expect(Object.keys(rows[0]!)).toEqual(['n']);
        return Number(rows[0]!.n);
      };
      expect(await present()).toBe(0);
      await on().command(createDatabase(wanted));
      try {
        expect(await present()).toBe(1);
        await on().command(createDatabase(wanted)); // already there: nothing happens
        // A one-letter table: current ClickHouse leaves a table name 213 less the database's (destinationNameLimit).
        await on().command(on().peerDbTable(wanted, 't'));
        expect(await exists(wanted, 't')).toBe(true);
      } finally {
        await on().command(`DROP DATABASE ${quoteIdentifier(wanted)}`);
      }
      expect(await present()).toBe(0);
    },
  );

  // Current ClickHouse refuses a table name longer, in its file names, than 213 less the database name's length
  // there (computeMaxTableNameLength: metadata_dropped/<db>.<table>.<uuid>.sql must fit in 255), on CREATE and on
  // RENAME alike; 18.16 has no such rule. EchoDB fits destination and rename-aside names to destinationNameLimit.
  it('renames aside a long destination in a database with a long name, within what ClickHouse takes there', async () => {
    const longDatabase = `echodb_current_${crypto.randomBytes(6).toString('hex')}`;
    const name = 'o'.repeat(180);
    const limit = destinationNameLimit(longDatabase);
    const renamed = droppedTableName(name, AT, limit);
    expect(renamed).toHaveLength(limit);
    await on().command(`CREATE DATABASE ${quoteIdentifier(longDatabase)}`);
    try {
      await on().command(on().peerDbTable(longDatabase, name));
      if (current) {
        // What the limit guards against: the name a database-blind 200-character limit gives.
        await expect(on().command(renameTable(longDatabase, name, droppedTableName(name, AT)))).rejects.toThrow(
          `The max length of table name for database ${longDatabase} is 186`,
        );
      }
      await on().command(renameTable(longDatabase, name, renamed));
      expect(await exists(longDatabase, renamed)).toBe(true);
    } finally {
      await on().command(`DROP DATABASE ${quoteIdentifier(longDatabase)}`);
    }
  });

  it('counts many PeerDB tables in one statement, each as countLiveRows counts it, whatever their names', async () => {
    for (const name of adversarialNames) await createPeerDbTable(name, name);
    await on().command(on().peerDbTable(database, 'empty'));
    // Past 255 tables, so that the index needs more than a UInt8 in some branches and not in others.
    const tables = Array.from({ length: 300 }, (_, i) => (i % 7 === 3 ? 'empty' : adversarialNames[i % adversarialNames.length]!));
    try {
      const rows = await on().rows<{ i: number | string; n: number | string }>(countLiveRowsOfEach(database, tables));
      expect(rows).toHaveLength(tables.length);
      expect(Object.keys(rows[0]!).sort()).toEqual(['i', 'n']);
      const counts = new Map(rows.map((row) => [Number(row.i), Number(row.n)]));
      expect(tables.map((_, i) => counts.get(i))).toEqual(tables.map((table) => (table === 'empty' ? 0 : LIVE_ROWS)));

      // One missing table fails the whole statement (EchoDB then counts each table alone): never a count of 0.
      await expect(on().rows(countLiveRowsOfEach(database, ['plain', 'not there']))).rejects.toThrow(/not there|doesn't exist|does not exist|UNKNOWN_TABLE/i);
    } finally {
      for (const name of [...adversarialNames, 'empty']) await on().command(dropTable(database, name));
    }
    expect(await listed()).toEqual([]);
  });

  it('fails to count a table that is not there (never a count of 0)', async () => {
    await expect(liveRows('not there')).rejects.toThrow(/not there|doesn't exist|does not exist|UNKNOWN_TABLE/i);
  });

  it('refuses to rename onto a table that exists, moving nothing', async () => {
    await createPeerDbTable('leaving', 'a');
    await on().command(on().peerDbTable(database, 'taken'));
    await expect(on().command(renameTable(database, 'leaving', 'taken'))).rejects.toThrow(/exist/i);
    expect(await liveRows('leaving')).toBe(LIVE_ROWS);
    expect(await liveRows('taken')).toBe(0);
    await on().command(dropTable(database, 'leaving'));
    await on().command(dropTable(database, 'taken'));
  });

  it('drops the data with the table: a table created again under its name is empty', async () => {
    await createPeerDbTable('again', 'a');
    await on().command(dropTable(database, 'again'));
    await on().command(on().peerDbTable(database, 'again'));
    expect(await liveRows('again')).toBe(0);
    await on().command(dropTable(database, 'again'));
    expect(await listed()).toEqual([]);
  });
});
