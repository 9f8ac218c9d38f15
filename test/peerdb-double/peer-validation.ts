import net from 'node:net';
import pg from 'pg';
import type { ConnectionSettings, Peer } from './messages.js';

/** ValidatePeer gives a PostgreSQL peer 15 seconds (flow/cmd/validate_peer.go). */
const VALIDATE_DEADLINE_MS = 15_000;

/**
 * PeerDB's ValidatePeer (flow/cmd/validate_peer.go), which peers/create runs unless disableValidation: it
 * connects to the database and runs the connector's checks. Returns PeerDB's message when the peer is invalid
 * (its handler answers FailedPrecondition, HTTP 400), undefined when it is valid. An unreachable database and a
 * wrong password fail alike; only the message says which.
 *
 * PostgreSQL: a real connection with the peer's settings (NewPostgresConnector, then ValidateCheck: version 12 or
 * later). ClickHouse: PeerDB speaks the native protocol to host:port, which the double cannot: it dials host:port
 * (reachability), then checks the credentials with the HTTP interface it writes to (`checkClickHouse`).
 */
export async function peerProblem(
  peer: Peer,
  checkClickHouse: (settings: ConnectionSettings) => Promise<void>,
): Promise<string | undefined> {
  if (peer.type === 'POSTGRES') {
    const config = peer.postgresConfig;
    const client = new pg.Client({ ...config, connectionTimeoutMillis: VALIDATE_DEADLINE_MS });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      return `POSTGRES peer ${peer.name} was invalidated: ${connectionError(config, error)}`;
    }
    try {
      const { rows } = await client.query<{ version: number }>(`SELECT current_setting('server_version_num')::int / 10000 AS version`);
      const version = rows[0]!.version;
      if (version < 12) return `failed to validate peer ${peer.name}: postgres must be of PG12 or above. Current version: ${version}`;
      return undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  const config = peer.clickhouseConfig;
  try {
    await dial(config.host, config.port);
    await checkClickHouse(config);
    return undefined;
  } catch (error) {
    return `CLICKHOUSE peer ${peer.name} was invalidated: failed to open connection to ClickHouse peer: ${describe(error)}`;
  }
}

/** How NewPostgresConnector reports a connection that failed (pgx's message, wrapped). */
export function connectionError(config: ConnectionSettings, error: unknown): string {
  return `failed to create connection: failed to connect to \`user=${config.user} database=${config.database}\`: ${config.host}:${config.port}: ${describe(error)}`;
}

function dial(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: VALIDATE_DEADLINE_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(new Error(`dial tcp ${host}:${port}: i/o timeout`));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      reject(new Error(error.code === 'ECONNREFUSED' ? `dial tcp ${host}:${port}: connect: connection refused` : `dial tcp ${host}:${port}: ${error.message}`));
    });
  });
}

/** An error as Go's network errors read: `dial error: connect: connection refused`, or the server's message. */
function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'dial error: dial tcp: connect: connection refused';
  if (code === 'ENOTFOUND') return 'hostname resolving error: lookup: no such host';
  if (code === 'ETIMEDOUT' || /timeout/i.test((error as Error).message)) return 'dial error: i/o timeout';
  return (error as Error).message;
}
