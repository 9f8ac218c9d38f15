import pg from 'pg';
import type { Config } from './config.js';
import { postgresSsl } from './tls.js';

/** Connection settings for the source PostgreSQL, as the configuration describes it. */
export function postgresClientConfig(postgres: Config['postgres'], applicationName = 'echodb'): pg.ClientConfig {
  return {
    host: postgres.host,
    port: postgres.port,
    database: postgres.database,
    user: postgres.user,
    password: postgres.password,
    ssl: postgresSsl(postgres),
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  };
}

/** Runs `work` with one connected client and always closes it. */
export async function withPostgresClient<T>(
  postgres: Config['postgres'],
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(postgresClientConfig(postgres));
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export function createPostgresPool(postgres: Config['postgres'], applicationName = 'echodb'): pg.Pool {
  const pool = new pg.Pool({ ...postgresClientConfig(postgres, applicationName), max: 5 });
  pool.on('error', () => undefined); // an idle client's broken connection: the next query reports it
  return pool;
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);

/**
 * Whether an error says PostgreSQL itself is unavailable (connection refused or lost, shutting down, too many
 * connections), as opposed to a statement that failed on a healthy server.
 */
export function isPostgresOutage(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (CONNECTION_ERROR_CODES.has(code)) return true;
    if (code.startsWith('08') || code === '53300' || code === '57P01' || code === '57P02' || code === '57P03') {
      return true;
    }
  }
  return typeof message === 'string' && /Connection terminated|connection timeout|timeout exceeded when trying to connect/i.test(message);
}
