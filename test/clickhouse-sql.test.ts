import crypto from 'node:crypto';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qualifiedTable, quoteIdentifier, quoteString } from '../lib/clickhouse-sql.js';
import { adversarialNames, nameLabel } from './support/adversarial-names.js';
import { testServers } from './support/servers.js';

describe('ClickHouse quoting, against the real ClickHouse', () => {
  const server = testServers().clickhouse;
  const database = `echodb_test_${crypto.randomBytes(6).toString('hex')} with 'quotes'`;
  let clickhouse: ClickHouseClient;

  beforeAll(async () => {
    clickhouse = createClient({ url: server.url, username: server.user, password: server.password });
    await clickhouse.command({ query: `CREATE DATABASE ${quoteIdentifier(database)}` });
  });

  afterAll(async () => {
    await clickhouse.command({ query: `DROP DATABASE IF EXISTS ${quoteIdentifier(database)}` });
    await clickhouse.close();
  });

  async function rows<T>(query: string): Promise<T[]> {
    return (await clickhouse.query({ query, format: 'JSONEachRow' })).json<T>();
  }

  it.each(adversarialNames.map((name) => [nameLabel(name), name]))(
    'creates a table named %s, lists it under that exact name and round-trips a value',
    async (_label, name) => {
      const table = qualifiedTable(database, name);
      const value = `${name}\0${name}`;
      await clickhouse.command({ query: `CREATE TABLE ${table} (value String) ENGINE = Memory` });
      await clickhouse.command({ query: `INSERT INTO ${table} VALUES (${quoteString(value)})` });

      const listed = await rows<{ name: string }>(
        `SELECT name FROM system.tables WHERE database = ${quoteString(database)} AND name = ${quoteString(name)}`,
      );
      expect(listed).toEqual([{ name }]);
      expect(await rows<{ value: string }>(`SELECT value FROM ${table}`)).toEqual([{ value }]);
      expect(await rows<{ value: string }>(`SELECT ${quoteString(value)} AS value`)).toEqual([{ value }]);

      await clickhouse.command({ query: `DROP TABLE ${table}` });
    },
  );

  it('leaves nothing behind that the names did not ask for', async () => {
    expect(await rows<{ name: string }>(`SELECT name FROM system.tables WHERE database = ${quoteString(database)}`))
      .toEqual([]);
    expect(await rows<{ name: string }>(`SELECT name FROM system.databases WHERE name = ${quoteString(database)}`))
      .toEqual([{ name: database }]);
  });
});
