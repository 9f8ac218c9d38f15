import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type pg from 'pg';
import type { ConnectionSettings, TlsFields } from './messages.js';

/**
 * How PeerDB sets up TLS for a peer, for the double's own connections with the peer's settings.
 *
 * PostgreSQL (flow/connectors/postgres/postgres.go NewPostgresConnFromConfig, flow/internal/postgres.go
 * PGMustUseTlsConnection, flow/pkg/common/tls.go CreateTlsConfig, at v0.37.4): TLS when requireTls, or when
 * disableTls is present and false, or when a rootCa is given; TLS 1.2 or later; the certificate is checked against
 * rootCa (else the system's CAs) and against tlsHost, else the host when it is a name, else (an IP address) the
 * chain only; skipCertVerification checks nothing. Without TLS, pgx's default sslmode=prefer would still try
 * TLS, without checking, and fall back to plain: the double connects plainly, which is stricter, never kinder.
 *
 * ClickHouse (flow/connectors/clickhouse/clickhouse.go buildTLSConfig, configureInlineTLS): TLS unless disableTls;
 * TLS 1.3 or later; the server name is tlsHost, else the host dialled (Go's tls.Dial); certificate and
 * privateKey together or not at all; rootCa else the system's CAs.
 */

/** PeerDB's message for TLS settings it cannot use, before any connection is tried. */
export class TlsSettingsError extends Error {}

const checkCa = (rootCa: string | undefined, message: string) => {
  if (rootCa === undefined) return;
  try {
    new crypto.X509Certificate(rootCa);
  } catch {
    throw new TlsSettingsError(message);
  }
};

const checkKeyPair = (certificate: string, privateKey: string, prefix: string) => {
  try {
    tls.createSecureContext({ cert: certificate, key: privateKey });
  } catch (error) {
    const reason = /mismatch/i.test((error as Error).message) ? 'tls: private key does not match public key' : 'tls: failed to find any PEM data';
    throw new TlsSettingsError(`${prefix}: ${reason}`);
  }
};

/** The server name to check the certificate against: Go's rules, in node's options. */
function identity(host: string, fields: TlsFields): Pick<tls.ConnectionOptions, 'servername' | 'checkServerIdentity'> {
  const name = fields.tlsHost !== '' ? fields.tlsHost : host;
  if (net.isIP(name) === 0) return { servername: name, checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert) };
  return fields.tlsHost !== '' ? { checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert) } : {};
}

/** node-postgres's `ssl` for a PostgreSQL peer, or false for a plain connection. */
export function postgresSsl({ host, tls: fields }: ConnectionSettings): false | tls.ConnectionOptions {
  const useTls = fields.requireTls || fields.disableTls === false || fields.rootCa !== undefined;
  if (!useTls) return false;
  const { certificate, privateKey } = fields;
  if (certificate !== undefined || privateKey !== undefined) {
    if (!certificate || !privateKey) {
      throw new TlsSettingsError('both certificate and private key must be provided for client certificate authentication');
    }
    checkKeyPair(certificate, privateKey, 'failed to parse provided client certificate and private key');
  }
  checkCa(fields.rootCa, 'failed to parse provided root CA');
  const options: tls.ConnectionOptions = {
    minVersion: 'TLSv1.2',
    ...(fields.rootCa === undefined ? {} : { ca: fields.rootCa }),
    ...(certificate && privateKey ? { cert: certificate, key: privateKey } : {}),
  };
  if (fields.skipCertVerification) return { ...options, rejectUnauthorized: false };
  // An IP address without tlsHost: the chain is verified, the name is not (verifyConnectionWithoutHostname).
  if (fields.tlsHost === '' && net.isIP(host) !== 0) return { ...options, checkServerIdentity: () => undefined };
  return { ...options, ...identity(host, fields) };
}

/** A node-postgres config for a PostgreSQL peer, as PeerDB connects to it. */
export function postgresConnection(settings: ConnectionSettings): pg.ClientConfig {
  const { host, port, user, password, database } = settings;
  return { host, port, user, password, database, ssl: postgresSsl(settings) };
}

/** TLS options for a ClickHouse peer's native port, or undefined for a plain connection. */
export function clickhouseTls({ host, tls: fields }: ConnectionSettings): tls.ConnectionOptions | undefined {
  if (fields.disableTls) return undefined;
  const { certificate, privateKey } = fields;
  if (certificate !== undefined || privateKey !== undefined) {
    if (certificate === undefined || privateKey === undefined) {
      throw new TlsSettingsError('both certificate and private key must be provided if using certificate-based authentication');
    }
    checkKeyPair(certificate, privateKey, 'failed to parse provided certificate');
  }
  checkCa(fields.rootCa, 'failed to parse provided root CA');
  return {
    minVersion: 'TLSv1.3',
    ...(fields.rootCa === undefined ? {} : { ca: fields.rootCa }),
    ...(certificate !== undefined && privateKey !== undefined ? { cert: certificate, key: privateKey } : {}),
    ...identity(host, fields),
  };
}
