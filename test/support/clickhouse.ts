import crypto from 'node:crypto';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { countLiveRows } from '../../lib/clickhouse-sql.js';
import type { ClickHouseSettings } from '../servers/index.js';
import { testServers } from './servers.js';

export interface TestClickHouse {
  client: ClickHouseClient;
  database: string;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Live rows of a destination table, as EchoDB counts them. */
  liveCount(table: string): Promise<number>;
  tables(): Promise<string[]>;
  drop(): Promise<void>;
}

/** A fresh database on the test ClickHouse. */
export async function createTestClickHouse(
  { url, user, password, ca }: ClickHouseSettings = testServers().clickhouse,
): Promise<TestClickHouse> {
  const database = `echodb_test_${crypto.randomBytes(6).toString('hex')}`;
  // Tests expect some queries to fail (a table not there yet): no error log for each.
  const client = createClient({
    url,
    username: user,
    password,
    log: { level: ClickHouseLogLevel.OFF },
    ...(ca === undefined ? {} : { tls: { ca_cert: Buffer.from(ca, 'utf8') } }),
  });
  await client.command({ query: `CREATE DATABASE ${database}` });
  const parsed = new URL(url);
  return {
    client,
    database,
    host: parsed.hostname,
    port: Number(parsed.port),
    user,
    password,
    async liveCount(table) {
      const result = await client.query({
        query: countLiveRows(database, table),
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ n: string }>();
      return Number(row?.n);
    },
    async tables() {
      const result = await client.query({
        query: `SELECT name FROM system.tables WHERE database = '${database}' ORDER BY name`,
        format: 'JSONEachRow',
      });
      return (await result.json<{ name: string }>()).map((row) => row.name);
    },
    async drop() {
      await client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      await client.close();
    },
  };
}
