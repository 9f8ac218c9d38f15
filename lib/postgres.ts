import pg from 'pg';
import type { Config } from './config.js';

/** Connection settings for the source PostgreSQL, as the configuration describes it. */
export function postgresClientConfig(postgres: Config['postgres'], applicationName = 'echodb'): pg.ClientConfig {
  return {
    host: postgres.host,
    port: postgres.port,
    database: postgres.database,
    user: postgres.user,
    password: postgres.password,
    ssl: postgres.sslMode === 'disable' ? false : { rejectUnauthorized: postgres.sslMode === 'verify-full' },
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
