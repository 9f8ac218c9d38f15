/**
 * TLS material from the configuration's PEM files, for EchoDB's own clients and for PeerDB's peers. The files
 * were checked to be readable at start-up; they are read when a client or a peer is made, so that a renewed
 * certificate is picked up by the next connection.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import type { Config } from './config.js';

const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file, 'utf8'));

/** The CA, client certificate and key of one side, as PEM text (absent when not configured). */
export function tlsMaterial(side: { caFile?: string | undefined; certFile?: string | undefined; keyFile?: string | undefined }) {
  return { ca: read(side.caFile), cert: read(side.certFile), key: read(side.keyFile) };
}

/** node-postgres's `ssl`: libpq's sslmode, with the configured CA and client certificate. */
export function postgresSsl(postgres: Config['postgres']): false | ConnectionOptions {
  if (postgres.sslMode === 'disable') return false;
  const { ca, cert, key } = tlsMaterial(postgres);
  return {
    // require: encrypted, certificate unchecked (libpq's meaning); verify-full: chain and host name checked.
    rejectUnauthorized: postgres.sslMode === 'verify-full',
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key }),
  };
}

/** The agent of EchoDB's HTTPS client to ClickHouse: the configured CA, client certificate and server name. */
export function clickhouseHttpsAgent(clickhouse: Config['clickhouse']): https.Agent {
  const { ca, cert, key } = tlsMaterial(clickhouse);
  return new https.Agent({
    keepAlive: true,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert, key }),
    ...(clickhouse.tlsServerName === undefined ? {} : { servername: clickhouse.tlsServerName }),
  });
}

const CERTIFICATE_REFUSED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * What to check when a connection failed for a TLS reason, naming the variables; empty for other failures. The
 * error's own words stay in front of it.
 */
export function tlsHint(error: unknown, side: 'POSTGRES' | 'CLICKHOUSE'): string {
  const { code, message = '' } = (error ?? {}) as { code?: string; message?: string };
  if (code !== undefined && CERTIFICATE_REFUSED.has(code)) {
    const name = side === 'CLICKHOUSE' ? ', and CLICKHOUSE_TLS_SERVER_NAME when the certificate names another host' : '';
    return ` (the server's TLS certificate was refused: ${side}_CA_FILE must name the CA that signed it${name})`;
  }
  if (side === 'POSTGRES' && /does not support SSL/i.test(message)) {
    return ' (the server does not accept TLS: set POSTGRES_SSLMODE=disable, or turn ssl on in the server)';
  }
  if (side === 'POSTGRES' && /no encryption/i.test(message)) {
    return ' (the server accepts TLS connections only: set POSTGRES_SSLMODE=require or verify-full)';
  }
  if (side === 'CLICKHOUSE' && (code === 'EPROTO' || /wrong version number|packet length too long/i.test(message))) {
    return ' (no TLS on this port: check CLICKHOUSE_SECURE and CLICKHOUSE_PORT)';
  }
  if (side === 'CLICKHOUSE' && (code === 'ECONNRESET' || /socket hang up/i.test(message))) {
    return ' (the connection was closed at once: if this port accepts TLS only, set CLICKHOUSE_SECURE=true)';
  }
  return '';
}
