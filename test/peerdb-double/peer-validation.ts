import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import type { ConnectionSettings, Peer } from './messages.js';
import { clickhouseTls, postgresConnection } from './tls.js';

/** ValidatePeer gives a PostgreSQL peer 15 seconds (flow/cmd/validate_peer.go). */
const VALIDATE_DEADLINE_MS = 15_000;

/**
 * PeerDB's ValidatePeer (flow/cmd/validate_peer.go), which peers/create runs unless disableValidation: it
 * connects to the database and runs the connector's checks. Returns PeerDB's message when the peer is invalid
 * (its handler answers FailedPrecondition, HTTP 400), undefined when it is valid. An unreachable database and a
 * wrong password fail alike; only the message says which.
 *
 * PostgreSQL: a real connection with the peer's settings, TLS as PeerDB sets it up (tls.ts), then ValidateCheck's
 * version 12 or later. ClickHouse: PeerDB's clickhouse-go connects to host:port with the native protocol, over TLS
 * unless disableTls (tls.ts), and pings; the double does the native protocol's handshake (Hello) with the peer's
 * user, password and database, which the server checks as it does clickhouse-go's.
 */
export async function peerProblem(peer: Peer): Promise<string | undefined> {
  if (peer.type === 'POSTGRES') {
    const config = peer.postgresConfig;
    let client: pg.Client;
    try {
      client = new pg.Client({ ...postgresConnection(config), connectionTimeoutMillis: VALIDATE_DEADLINE_MS });
    } catch (error) {
      return `POSTGRES peer ${peer.name} was invalidated: failed to create connection: ${(error as Error).message}`;
    }
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
    await nativeHandshake(config);
    return undefined;
  } catch (error) {
    return `CLICKHOUSE peer ${peer.name} was invalidated: failed to open connection to ClickHouse peer: ${describe(error)}`;
  }
}

/** How NewPostgresConnector reports a connection that failed (pgx's message, wrapped). */
export function connectionError(config: ConnectionSettings, error: unknown): string {
  return `failed to create connection: failed to connect to \`user=${config.user} database=${config.database}\`: ${config.host}:${config.port}: ${describe(error)}`;
}

/** A protocol revision that every ClickHouse since 18 answers (and that asks for no addendum after Hello). */
const CLIENT_REVISION = 54213;

const varUInt = (value: number) => {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return Buffer.from(bytes);
};
const binaryString = (text: string) => {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([varUInt(bytes.length), bytes]);
};

/** Reads a VarUInt and a string from `buffer` at `offset`; undefined until enough bytes have arrived. */
function readVarUInt(buffer: Buffer, offset: number): [number, number] | undefined {
  let value = 0;
  for (let shift = 0, at = offset; at < buffer.length; shift += 7, at += 1) {
    value += (buffer[at]! & 0x7f) * 2 ** shift;
    if ((buffer[at]! & 0x80) === 0) return [value, at + 1];
  }
  return undefined;
}
function readString(buffer: Buffer, offset: number): [string, number] | undefined {
  const length = readVarUInt(buffer, offset);
  if (length === undefined || length[1] + length[0] > buffer.length) return undefined;
  return [buffer.toString('utf8', length[1], length[1] + length[0]), length[1] + length[0]];
}

/**
 * The native protocol's Hello with the peer's credentials and database, over TLS unless disableTls: resolves on
 * the server's Hello, rejects with the server's exception (`code: 516, message: ...`, as clickhouse-go words it),
 * a TLS failure, or a connection closed before an answer.
 */
function nativeHandshake(config: ConnectionSettings): Promise<void> {
  const tlsOptions = clickhouseTls(config);
  const hello = Buffer.concat([
    varUInt(0), binaryString('PeerDB test double'), varUInt(1), varUInt(0), varUInt(CLIENT_REVISION),
    binaryString(config.database), binaryString(config.user), binaryString(config.password),
  ]);
  return new Promise((resolve, reject) => {
    const socket = tlsOptions === undefined
      ? net.connect({ host: config.host, port: config.port })
      : tls.connect({ host: config.host, port: config.port, ...tlsOptions });
    socket.setTimeout(VALIDATE_DEADLINE_MS);
    let received = Buffer.alloc(0);
    const finish = (error?: Error) => {
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.once(tlsOptions === undefined ? 'connect' : 'secureConnect', () => socket.write(hello));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const packet = readVarUInt(received, 0);
      if (packet === undefined) return;
      if (packet[0] === 0) return finish();
      if (packet[0] !== 2) return finish(new Error(`[handshake] unexpected packet [${packet[0]}] from server`));
      if (received.length < packet[1] + 4) return;
      const code = received.readInt32LE(packet[1]);
      const name = readString(received, packet[1] + 4);
      const message = name && readString(received, name[1]);
      if (message) finish(new Error(`code: ${code}, message: ${message[0]}`));
    });
    socket.once('timeout', () => finish(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const { host, port } = config;
      finish(error.code === 'ECONNREFUSED' ? new Error(`dial tcp ${host}:${port}: connect: connection refused`) : error);
    });
    socket.once('end', () => finish(new Error('[handshake] EOF')));
  });
}

/** An error as Go's network errors read: `dial error: connect: connection refused`, or the server's message. */
function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'dial error: dial tcp: connect: connection refused';
  if (code === 'ENOTFOUND') return 'hostname resolving error: lookup: no such host';
  if (code === 'ETIMEDOUT' || /timeout/i.test((error as Error).message)) return 'dial error: i/o timeout';
  // Go's crypto/tls words for a certificate it refuses.
  if (code === 'SELF_SIGNED_CERT_IN_CHAIN' || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `tls: failed to verify certificate: x509: ${(error as Error).message}`;
  return (error as Error).message;
}
