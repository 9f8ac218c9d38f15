import { Client, Connection } from '@temporalio/client';
import type { Config } from './config.js';

/** A Temporal client on the configured server and namespace for the length of `use`; the connection is closed after. */
export async function withTemporalClient<T>(config: Config['temporal'], use: (client: Client) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: config.address });
  try {
    return await use(new Client({ connection, namespace: config.namespace }));
  } finally {
    await connection.close();
  }
}
