import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config } from './config.js';

/** The HTTP client EchoDB counts rows and renames destination tables with. */
export function createClickHouseClient(clickhouse: Config['clickhouse']): ClickHouseClient {
  return createClient({
    url: `http://${clickhouse.host}:${clickhouse.port}`,
    username: clickhouse.user,
    password: clickhouse.password,
    request_timeout: 30_000,
  });
}
