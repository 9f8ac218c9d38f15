import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config } from './config.js';
import { clickhouseHttpsAgent } from './tls.js';

/** Where EchoDB reaches ClickHouse's HTTP interface: `https://` with CLICKHOUSE_SECURE. */
export const clickhouseUrl = (clickhouse: Config['clickhouse']): string =>
  `${clickhouse.secure ? 'https' : 'http'}://${clickhouse.host}:${clickhouse.port}`;

/** The HTTP(S) client EchoDB counts rows and renames destination tables with. */
export function createClickHouseClient(clickhouse: Config['clickhouse']): ClickHouseClient {
  return createClient({
    url: clickhouseUrl(clickhouse),
    username: clickhouse.user,
    password: clickhouse.password,
    request_timeout: 30_000,
    // Every failure is thrown to EchoDB's code, which logs it with its context: no second line from the client.
    log: { level: ClickHouseLogLevel.OFF },
    ...(clickhouse.secure ? { http_agent: clickhouseHttpsAgent(clickhouse) } : {}),
  });
}
