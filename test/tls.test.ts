import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, type TestCertificates } from './servers/certificates.js';
import { startClickHouse } from './servers/clickhouse.js';
import type { ServerSettings } from './servers/index.js';
import type { ManagedProcess } from './servers/managed-process.js';
import { startPostgres } from './servers/postgres.js';
import { freePorts } from '../lib/free-port.js';
import { startPeerDbDouble, type PeerDbDouble } from './peerdb-double/index.js';
import { runCli } from './support/cli.js';
import { startEchoProcess } from './support/echo-process.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { until } from './support/until.js';
import { testServers } from './support/servers.js';

// A PostgreSQL (ssl=on, pg_hba hostssl only) and a ClickHouse 18.16 (https_port and tcp_port_secure only) that
// accept nothing but TLS, with certificates this file makes with openssl: EchoDB must do all of its work over TLS.

let dir: string;
let certs: TestCertificates;
let servers: ServerSettings;
const processes: ManagedProcess[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-tls-'));
  fs.chmodSync(dir, 0o755); // the postgres and clickhouse OS users reach their subdirectories
  certs = makeTestCertificates(path.join(dir, 'certs'));
  const [postgres, clickhouse] = await Promise.all([
    startPostgres(path.join(dir, 'postgres'), { tls: certs }),
    startClickHouse(path.join(dir, 'clickhouse'), { tls: certs }),
  ]);
  processes.push(postgres.process, clickhouse.process);
  const shared = testServers();
  servers = { postgres: postgres.settings, clickhouse: clickhouse.settings, temporal: shared.temporal, redis: shared.redis };
}, 120_000);

afterAll(async () => {
  await Promise.all(processes.map((process) => process.stop()));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The TLS settings of both servers, as a user sets them: CA files, a client certificate, the certificate's name. */
const tlsEnv = () => ({
  POSTGRES_SSLMODE: 'verify-full',
  POSTGRES_CA_FILE: certs.caFile,
  CLICKHOUSE_SECURE: 'true',
  CLICKHOUSE_CA_FILE: certs.caFile,
  CLICKHOUSE_CERT_FILE: certs.clientCertFile,
  CLICKHOUSE_KEY_FILE: certs.clientKeyFile,
  // The servers listen on 127.0.0.1; the certificate also names localhost, which is what is checked.
  CLICKHOUSE_TLS_SERVER_NAME: 'localhost',
});

describe('setup against servers that accept TLS only, configured with the original manual’s variable names', () => {
  let database: TestDatabase;
  let peerdb: PeerDbDouble;
  const chDatabase = `manual_${Math.random().toString(16).slice(2, 10)}`;

  beforeAll(async () => {
    database = await createTestDatabase(servers.postgres);
    peerdb = await startPeerDbDouble({ clickhouse: servers.clickhouse });
  });
  afterAll(async () => {
    await peerdb?.close();
    await database?.drop();
  });

  /** A .env as the original manual writes it (CLICKHOUSE_DATABASE, CLICKHOUSE_NATIVE_PORT, TEMPORAL_HOST/PORT). */
  const writeEnvFile = (extra: Record<string, string> = {}) => {
    const { host, port, user, password } = servers.postgres;
    const [temporalHost, temporalPort] = servers.temporal.address.split(':');
    const clickhouse = servers.clickhouse;
    const values: Record<string, string> = {
      POSTGRES_HOST: host,
      POSTGRES_PORT: String(port),
      POSTGRES_USER: user,
      POSTGRES_PASSWORD: password,
      POSTGRES_DB: database.settings.database,
      CLICKHOUSE_HOST: '127.0.0.1',
      CLICKHOUSE_PORT: new URL(clickhouse.url).port,
      CLICKHOUSE_NATIVE_PORT: String(clickhouse.nativePort),
      CLICKHOUSE_DATABASE: chDatabase,
      CLICKHOUSE_USER: clickhouse.user,
      CLICKHOUSE_PASSWORD: clickhouse.password,
      TEMPORAL_HOST: temporalHost!,
      TEMPORAL_PORT: temporalPort!,
      TEMPORAL_NAMESPACE: servers.temporal.namespace,
      PEERDB_API_URL: peerdb.url,
      SOURCE_PEER_NAME: 'manual_pg',
      TARGET_PEER_NAME: 'manual_ch',
      ...tlsEnv(),
      ...extra,
    };
    const file = path.join(dir, `env-${Math.random().toString(16).slice(2)}`);
    fs.writeFileSync(file, Object.entries(values).map(([name, value]) => `${name}=${value}`).join('\n'));
    return { ECHODB_ENV_FILE: file };
  };

  it('installs the SQL, creates the database the manual names in ClickHouse, and gives PeerDB peers with TLS', async () => {
    const result = await runCli(['setup', '--no-schedule'], writeEnvFile());

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`setup: created ClickHouse database "${chDatabase}" on https://127.0.0.1:`);
    expect(result.stdout).toContain(`manual_ch (CLICKHOUSE ${servers.clickhouse.user}@127.0.0.1:${servers.clickhouse.nativePort}/${chDatabase})`);
    const created = peerdb.requests.filter((request) => request.path === '/v1/peers/create' && request.status === 200);
    const bodies = created.map((request) => (request.body as { peer: Record<string, Record<string, unknown>> }).peer);
    expect(bodies[0]?.postgresConfig).toMatchObject({ requireTls: true, rootCa: certs.ca });
    expect(bodies[0]?.postgresConfig).not.toHaveProperty('skipCertVerification');
    expect(bodies[1]?.clickhouseConfig).toMatchObject({
      database: chDatabase,
      disableTls: false,
      rootCa: certs.ca,
      certificate: fs.readFileSync(certs.clientCertFile, 'utf8'),
      privateKey: fs.readFileSync(certs.clientKeyFile, 'utf8'),
      tlsHost: 'localhost',
    });
  });

  it('stops with the reason and the variable to check when the CA is not the one that signed ClickHouse’s certificate', async () => {
    const result = await runCli(['setup', '--no-schedule'], writeEnvFile({ CLICKHOUSE_CA_FILE: certs.otherCaFile }));

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^echodb: could not make sure database "manual_\w+" exists on ClickHouse at https:\/\/127\.0\.0\.1:\d+: unable to verify the first certificate[^(]* \(the server's TLS certificate was refused: CLICKHOUSE_CA_FILE must name the CA that signed it/m,
    );
  });

  it('stops with the reason and the variable to check when PostgreSQL’s certificate is not signed by the CA given', async () => {
    const result = await runCli(['setup', '--no-schedule'], writeEnvFile({ POSTGRES_CA_FILE: certs.otherCaFile }));

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/could not install the SQL in database "echodb_test_\w+" on 127\.0\.0\.1:\d+ as "postgres": unable to verify the first certificate[^(]* \(the server's TLS certificate was refused: POSTGRES_CA_FILE must name the CA/);
  });

  it('says the server wants TLS when POSTGRES_SSLMODE is disable', async () => {
    const result = await runCli(['setup', '--no-schedule'], writeEnvFile({ POSTGRES_SSLMODE: 'disable', POSTGRES_CA_FILE: '' }));

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no encryption \(the server accepts TLS connections only: set POSTGRES_SSLMODE=require or verify-full\)/);
  });

  it('is refused by PeerDB when its peer carries a CA that did not sign the server’s certificate (PeerDB checks it too)', async () => {
    const other = fs.readFileSync(certs.otherCaFile, 'utf8');
    const { host, port, user, password } = servers.postgres;
    const post = (peer: unknown) =>
      fetch(`${peerdb.url}/v1/peers/validate`, { method: 'POST', body: JSON.stringify({ peer }), headers: { 'content-type': 'application/json' } })
        .then(async (response) => ({ status: response.status, body: (await response.json()) as { message?: string } }));
    const clickhouse = servers.clickhouse;
    const chPeer = { host: '127.0.0.1', port: clickhouse.nativePort, user: clickhouse.user, password: clickhouse.password, database: 'default' };

    const wrongCa = await post({ name: 'ch_tls', type: 'CLICKHOUSE', clickhouseConfig: { ...chPeer, disableTls: false, rootCa: other } });
    const plain = await post({ name: 'ch_tls', type: 'CLICKHOUSE', clickhouseConfig: { ...chPeer, disableTls: true } });
    const valid = await post({ name: 'ch_tls', type: 'CLICKHOUSE', clickhouseConfig: { ...chPeer, disableTls: false, rootCa: certs.ca } });
    const pgWrongCa = await post({
      name: 'pg_tls', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: 'postgres', requireTls: true, rootCa: other },
    });
    const pgPlain = await post({ name: 'pg_tls', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: 'postgres' } });

    expect(wrongCa.body.message).toContain('x509: certificate signed by unknown authority');
    expect(plain.body.message).toMatch(/^CLICKHOUSE peer ch_tls was invalidated: failed to open connection to ClickHouse peer: /);
    expect(valid).toMatchObject({ status: 200 });
    expect(pgWrongCa.body.message).toMatch(/^POSTGRES peer pg_tls was invalidated: .*x509: certificate signed by unknown authority/);
    expect(pgPlain.body.message).toMatch(/no encryption/);
    expect([wrongCa.status, plain.status, pgWrongCa.status, pgPlain.status]).toEqual([400, 400, 400, 400]);
  });
});

describe('the mirror lifecycle with PostgreSQL and ClickHouse over TLS only', () => {
  let stack: EchoStack;

  beforeAll(async () => {
    const [healthPort, checkerPort] = await freePorts(2);
    const ports = { HEALTH_PORT: String(healthPort), CONSISTENCY_CHECKER_PORT: String(checkerPort) };
    stack = await startEchoStack({ ...tlsEnv(), ...ports }, servers, { roles: ['worker', 'listener', 'api'] });
  }, 120_000);
  afterAll(async () => {
    await stack?.close();
  });

  it('captures, mirrors, verifies, renames and drops a table; /ready reports every dependency reached', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.orders (id bigint PRIMARY KEY, note text)`);
    await sql.query(`INSERT INTO ${schema}.orders SELECT g, 'n' || g FROM generate_series(1, 120) g`);

    const [verification] = await stack.waitForVerification('orders', 1, 60_000);
    expect(verification).toMatchObject({ status: 'match', postgres_count: '120', clickhouse_count: '120' });
    expect(await stack.clickhouse.liveCount('orders')).toBe(120);

    await sql.query(`ALTER TABLE ${schema}.orders RENAME TO orders_v2`);
    await stack.waitForVerification('orders_v2', 1, 60_000);
    await sql.query(`DROP TABLE ${schema}.orders_v2`);
    const tables = await until(() => stack.clickhouse.tables(), (names) => names.some((name) => /^orders_v2_dropped_\d{14}$/.test(name)), 60_000);
    expect(tables).not.toContain('orders_v2');

    const ready = await fetch(`http://127.0.0.1:${stack.env.HEALTH_PORT}/ready`);
    const body = (await ready.json()) as { checks: Record<string, { ok: boolean; error?: string }> };
    expect(body.checks.postgres).toMatchObject({ ok: true });
    expect(body.checks.clickhouse).toMatchObject({ ok: true });
    expect(ready.status).toBe(200);
  });

  it('is not ready with a CA that did not sign the servers’ certificates, and says which variables to check', async () => {
    const [healthPort, checkerPort] = await freePorts(2);
    const api = await startEchoProcess({
      ...stack.env,
      HEALTH_PORT: String(healthPort),
      CONSISTENCY_CHECKER_PORT: String(checkerPort),
      POSTGRES_CA_FILE: certs.otherCaFile,
      CLICKHOUSE_CA_FILE: certs.otherCaFile,
    }, ['api']);
    try {
      const ready = await fetch(`http://127.0.0.1:${healthPort}/ready`);
      const body = (await ready.json()) as { failed: string[] };
      expect(ready.status).toBe(503);
      expect(body.failed).toEqual(expect.arrayContaining([
        expect.stringMatching(/^postgres: .*certificate.* \(the server's TLS certificate was refused: POSTGRES_CA_FILE must name the CA that signed it\)$/),
        expect.stringMatching(/^clickhouse: .*certificate.* \(the server's TLS certificate was refused: CLICKHOUSE_CA_FILE must name the CA that signed it/),
      ]));
    } finally {
      await api.stop();
    }
  });
});

