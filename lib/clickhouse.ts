import { ClickHouseError, ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Config } from './config.js';
import { clickhouseHttpsAgent } from './tls.js';

/** Where EchoDB reaches ClickHouse's HTTP interface: `https://` with CLICKHOUSE_SECURE. */
export const clickhouseUrl = (clickhouse: Config['clickhouse']): string =>
  `${clickhouse.secure ? 'https' : 'http'}://${clickhouse.host}:${clickhouse.port}`;

/**
 * The HTTP(S) client EchoDB counts rows and renames destination tables with; the row diff's, whose scans of large
 * tables take longer, with DIFF_QUERY_TIMEOUT as `requestTimeoutMs`.
 */
export function createClickHouseClient(clickhouse: Config['clickhouse'], requestTimeoutMs = 30_000): ClickHouseClient {
  return createClient({
    url: clickhouseUrl(clickhouse),
    username: clickhouse.user,
    password: clickhouse.password,
    request_timeout: requestTimeoutMs,
    // Every failure is thrown to EchoDB's code, which logs it with its context: no second line from the client.
    log: { level: ClickHouseLogLevel.OFF },
    ...(clickhouse.secure ? { http_agent: clickhouseHttpsAgent(clickhouse) } : {}),
  });
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/**
 * Whether an error says ClickHouse could not be reached (refused, reset, no such host), as opposed to a statement
 * that ClickHouse answered with an error (a table it does not have, say) or that ran past the request timeout.
 */
export function isClickHouseOutage(error: unknown): boolean {
  if (error instanceof ClickHouseError) return false;
  const { code } = (error ?? {}) as { code?: unknown };
  return typeof code === 'string' && CONNECTION_ERROR_CODES.has(code);
}
