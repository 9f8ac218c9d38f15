import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { postgresBinDir } from './binaries.js';
import { ManagedProcess, isRoot } from './managed-process.js';
import { freePort } from '../../lib/free-port.js';
import { chownTo, randomSecret } from './files.js';
import type { TestCertificates } from './certificates.js';

export interface PostgresSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Set when the server accepts TLS only: node-postgres's `ssl`, trusting the server's CA. */
  ssl?: { ca: string };
}

const OS_USER = 'postgres';
// Not `echodb`: with search_path "$user", public, that role's unqualified tables would land in EchoDB's schema.
const SUPERUSER = 'postgres';

/**
 * A throwaway PostgreSQL cluster: superuser `postgres` with a password, wal_level=logical, loopback only. With
 * `tls`, ssl=on and pg_hba.conf accepts TLS connections only (hostssl; hostnossl is rejected).
 */
export async function startPostgres(
  dir: string,
  options: { tls?: TestCertificates } = {},
): Promise<{ settings: PostgresSettings; process: ManagedProcess }> {
  const bin = postgresBinDir();
  fs.mkdirSync(dir, { recursive: true });
  const dataDir = path.join(dir, 'data');
  const password = randomSecret();
  const passwordFile = path.join(dir, 'password');
  fs.writeFileSync(passwordFile, password, { mode: 0o600 });
  const tlsArgs: string[] = [];
  if (options.tls) {
    // The server's own copies: PostgreSQL wants its key owned by its user and readable by no one else.
    fs.copyFileSync(options.tls.serverCertFile, path.join(dir, 'server.pem'));
    fs.copyFileSync(options.tls.serverKeyFile, path.join(dir, 'server.key'));
    fs.chmodSync(path.join(dir, 'server.key'), 0o600);
    fs.writeFileSync(path.join(dir, 'pg_hba.conf'), [
      'local all all scram-sha-256',
      'hostssl all all 127.0.0.1/32 scram-sha-256',
      'hostssl replication all 127.0.0.1/32 scram-sha-256',
      'hostnossl all all 0.0.0.0/0 reject',
      '',
    ].join('\n'));
    tlsArgs.push('-c', 'ssl=on', '-c', `ssl_cert_file=${path.join(dir, 'server.pem')}`,
      '-c', `ssl_key_file=${path.join(dir, 'server.key')}`, '-c', `hba_file=${path.join(dir, 'pg_hba.conf')}`);
  }
  if (isRoot()) chownTo(dir, OS_USER);

  const initdbArgs = ['-D', dataDir, '-U', SUPERUSER, '--pwfile', passwordFile, '--auth', 'scram-sha-256',
    '-E', 'UTF8', '--locale', 'C', '--no-sync', '--no-instructions'];
  const [initdb, args] = isRoot()
    ? ['runuser', ['-u', OS_USER, '--', path.join(bin, 'initdb'), ...initdbArgs]]
    : [path.join(bin, 'initdb'), initdbArgs];
  try {
    execFileSync(initdb, args, { stdio: 'pipe' });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${stderr || String(error)}`, { cause: error });
  }

  const port = await freePort();
  const process = new ManagedProcess({
    name: 'PostgreSQL',
    command: path.join(bin, 'postgres'),
    args: [
      '-D', dataDir, '-p', String(port), '-k', dir,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'wal_level=logical',
      // Each PeerDB mirror holds a logical slot (the PeerDB double creates them for real): room for the
      // benchmark's 1,000 tables under per-table.
      '-c', 'max_replication_slots=1100',
      '-c', 'max_wal_senders=20',
      '-c', 'max_connections=200',
      // Durability is pointless for a throwaway cluster and costs seconds per test run.
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
      ...tlsArgs,
    ],
    runAs: OS_USER,
    logFile: path.join(dir, 'postgres.log'),
  });
  const settings: PostgresSettings = {
    host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres',
    ...(options.tls ? { ssl: { ca: options.tls.ca } } : {}),
  };
  await process.waitUntilReady(() => canQuery(settings), 30_000);
  return { settings, process };
}

async function canQuery(settings: PostgresSettings): Promise<boolean> {
  const client = new pg.Client({ ...settings, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}
