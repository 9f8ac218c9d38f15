import crypto from 'node:crypto';
import pg from 'pg';
import type { PostgresSettings } from '../servers/index.js';
import { testServers } from './servers.js';

export interface TestDatabase {
  settings: PostgresSettings;
  /** A new connection to this database (as the superuser unless other credentials are given); closed by drop(). */
  connect(credentials?: { user: string; password: string }): Promise<pg.Client>;
  drop(): Promise<void>;
}

/** A fresh database on the test PostgreSQL, so that each test file starts from an empty catalog. */
export async function createTestDatabase(server: PostgresSettings = testServers().postgres): Promise<TestDatabase> {
  const name = `echodb_test_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(server);
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const settings: PostgresSettings = { ...server, database: name };
  const clients: pg.Client[] = [];
  return {
    settings,
    async connect(credentials) {
      const client = new pg.Client({ ...settings, ...credentials });
      await client.connect();
      clients.push(client);
      return client;
    },
    async drop() {
      await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
      const cleanup = new pg.Client(server);
      await cleanup.connect();
      try {
        // A logical replication slot keeps its database from being dropped: one a PeerDB left behind goes first.
        await cleanup.query(
          'SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active',
          [name],
        );
        await cleanup.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}

export interface Notification {
  channel: string;
  payload: { id: number; operation: string; schema: string; table: string };
}

/** LISTENs on EchoDB's channels and keeps what arrives, in order. */
export async function listenForDdlEvents(client: pg.Client) {
  const received: Notification[] = [];
  client.on('notification', (message) => {
    received.push({ channel: message.channel, payload: JSON.parse(message.payload ?? 'null') as Notification['payload'] });
  });
  await client.query('LISTEN peerdb_create_mirror; LISTEN peerdb_drop_mirror');
  return {
    received,
    stop: async (): Promise<void> => {
      await client.query('UNLISTEN *');
    },
    /** Waits until `count` notifications in all have arrived, and returns them. */
    async waitForCount(count: number, timeoutMs = 5000): Promise<Notification[]> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`${received.length} notifications after ${timeoutMs} ms, expected ${count}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return received.slice(0, count);
    },
  };
}
