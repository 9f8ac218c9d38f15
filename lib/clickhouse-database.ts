import type { ClickHouseClient } from '@clickhouse/client';
import { createDatabase, databaseExists } from './clickhouse-sql.js';

/**
 * Makes sure the destination database exists, as PeerDB needs it to (its ClickHouse peer connects with it as the
 * default database, and the server refuses an unknown one). Creates it only when it is missing, so that a user
 * without CREATE DATABASE can still run setup against a database made for it. Returns whether it created it.
 */
export async function ensureClickHouseDatabase(clickhouse: ClickHouseClient, database: string): Promise<boolean> {
  const result = await clickhouse.query({
    query: databaseExists(database),
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ n: string | number }>();
  if (Number(row?.n) > 0) return false;
  await clickhouse.command({ query: createDatabase(database) });
  return true;
}
