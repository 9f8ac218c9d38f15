import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { installCapture, readMigrations, uninstallCapture, NotSuperuserError, SchemaTooNew } from '../sql/migrations.js';
import { startPeerDbDouble, type PeerDbDouble } from './peerdb-double/index.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { postgresEnv, runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testServers } from './support/servers.js';

/** Every schema, relation, function (with its body), type and event trigger of the database. */
async function catalogSnapshot(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ entry: string }>(`
    SELECT 'schema ' || nspname AS entry FROM pg_namespace
    UNION ALL
    SELECT 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname <> 'pg_toast'
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p
    UNION ALL
    SELECT 'type ' || t.oid::regtype::text FROM pg_type t
    UNION ALL
    SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtenabled::text FROM pg_event_trigger
    ORDER BY 1`);
  return rows.map((row) => row.entry);
}

let database: TestDatabase;
let db: pg.Client;

beforeEach(async () => {
  database = await createTestDatabase();
  db = await database.connect();
});

afterEach(async () => {
  await database.drop();
});

describe('echodb setup (installCapture)', () => {
  it('applies every numbered migration once, in order, and records them', async () => {
    const applied = await installCapture(db);

    const expected = readMigrations().map((m) => m.version);
    expect(applied.map((m) => m.version)).toEqual(expected);
    const { rows } = await db.query<{ version: number }>('SELECT version FROM echodb.schema_migrations ORDER BY version');
    expect(rows.map((row) => row.version)).toEqual(expected);
    const { rows: triggers } = await db.query<{ evtname: string }>('SELECT evtname FROM pg_event_trigger ORDER BY 1');
    expect(triggers.map((t) => t.evtname)).toEqual([
      'peerdb_auto_mirror_alter_trigger',
      'peerdb_auto_mirror_drop_trigger',
      'peerdb_auto_mirror_trigger',
    ]);
  });

  it('is a no-op the second time', async () => {
    await installCapture(db);
    await db.query('CREATE TABLE recorded (id int)');
    const before = await catalogSnapshot(db);
    const { rows: eventsBefore } = await db.query('SELECT * FROM echodb.ddl_events');

    const applied = await installCapture(db);

    expect(applied).toEqual([]);
    expect(await catalogSnapshot(db)).toEqual(before);
    expect((await db.query('SELECT * FROM echodb.ddl_events')).rows).toEqual(eventsBefore);
  });

  it('lets two replicas run setup at once: one applies, the other finds nothing to do', async () => {
    const other = await database.connect();
    const results = await Promise.all([installCapture(db), installCapture(other)]);

    const counts = results.map((applied) => applied.length).sort();
    expect(counts).toEqual([0, readMigrations().length]);
  });

  it('refuses a role that is not a superuser, saying why', async () => {
    const role = `plain_${Date.now()}`;
    await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'plain'`);
    try {
      const plain = await database.connect({ user: role, password: 'plain' });
      await expect(installCapture(plain)).rejects.toThrow(NotSuperuserError);
      await expect(installCapture(plain)).rejects.toThrow(/is not a superuser: installing EchoDB's event triggers needs one/);
      await plain.end();
      const { rowCount } = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'echodb'");
      expect(rowCount).toBe(0);
    } finally {
      await db.query(`DROP ROLE ${role}`);
    }
  });
});

describe("a database whose EchoDB tables a newer release installed", () => {
  let newer: TestDatabase;
  let client: pg.Client;
  const known = Math.max(...readMigrations().map((m) => m.version));
  const message = `EchoDB's tables in this database are at migration ${known + 1}, newer than this release's ${known}: ` +
    'a newer EchoDB installed them; run that release (or newer), not this one';

  beforeAll(async () => {
    newer = await createTestDatabase();
    client = await newer.connect();
    await installCapture(client);
    await client.query("INSERT INTO echodb.schema_migrations (version, name) VALUES ($1, 'from_the_future')", [known + 1]);
  });
  afterAll(async () => {
    await newer?.drop();
  });

  it('is refused by setup, which changes nothing, and by run, with exit code 79', async () => {
    await expect(installCapture(client)).rejects.toThrow(SchemaTooNew);
    const setup = await runCli(['setup', '--no-peers', '--no-schedule'], postgresEnv(newer.settings));
    expect(setup).toMatchObject({ code: 79, stderr: `echodb: ${message}\n` });
    const run = await runCli(['run', '--roles', 'api'], postgresEnv(newer.settings));
    expect(run).toMatchObject({ code: 79, stderr: `echodb: ${message}\n` });
    const { rows } = await client.query<{ version: number }>('SELECT max(version) AS version FROM echodb.schema_migrations');
    expect(rows[0]?.version).toBe(known + 1);
  });
});

describe('echodb uninstall (uninstallCapture)', () => {
  it('removes everything setup installed and nothing else', async () => {
    await db.query('CREATE SCHEMA app');
    await db.query('CREATE TABLE app.customers (id int PRIMARY KEY)');
    await db.query('CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$');
    const beforeSetup = await catalogSnapshot(db);

    await installCapture(db);
    await db.query('CREATE TABLE app.orders (id int)');
    await db.query('DROP TABLE app.orders');
    await uninstallCapture(db);

    expect(await catalogSnapshot(db)).toEqual(beforeSetup);
  });

  it('is harmless where nothing is installed, and setup works again afterwards', async () => {
    await uninstallCapture(db);
    await installCapture(db);
    await uninstallCapture(db);
    const applied = await installCapture(db);

    expect(applied).toHaveLength(readMigrations().length);
    await db.query('CREATE TABLE reinstalled (id int)');
    const { rows } = await db.query<{ table_name: string }>('SELECT table_name FROM echodb.ddl_events');
    expect(rows).toEqual([{ table_name: 'reinstalled' }]);
  });

  it('fails loudly instead of dropping what a user built on top of the outbox', async () => {
    await installCapture(db);
    await db.query('CREATE VIEW public.ddl_report AS SELECT id FROM echodb.ddl_events');

    await expect(uninstallCapture(db)).rejects.toThrow(/depend/);

    const { rowCount } = await db.query("SELECT 1 FROM pg_views WHERE viewname = 'ddl_report'");
    expect(rowCount).toBe(1);
    const { rows } = await db.query<{ count: string }>('SELECT count(*) FROM pg_event_trigger');
    expect(rows[0]?.count).toBe('3');
  });
});

describe('echodb setup (the CLI) and the PeerDB peers', () => {
  let peerdb: PeerDbDouble;

  let proxy: TcpProxy;
  /** The destination database: setup creates it, as PeerDB's ClickHouse peer logs in with it. One per test. */
  let analytics: string;

  beforeAll(async () => {
    peerdb = await startPeerDbDouble({ clickhouse: testServers().clickhouse });
    proxy = await startTcpProxy(testServers().postgres); // the server, whichever database a test makes
  });

  afterAll(async () => {
    await peerdb?.close();
    await proxy?.close();
  });

  beforeEach(() => {
    peerdb.requests.length = 0;
    analytics = `analytics_${Math.random().toString(16).slice(2, 10)}`;
  });

  afterEach(async () => {
    const { url, user, password } = testServers().clickhouse;
    await fetch(`${url}/?query=${encodeURIComponent(`DROP DATABASE IF EXISTS ${analytics}`)}`, {
      method: 'POST',
      headers: { 'X-ClickHouse-User': user, 'X-ClickHouse-Key': password },
    });
  });

  /**
   * A compose-like deployment: PeerDB reaches PostgreSQL at another address than EchoDB does (a proxy's port here,
   * `postgres:5432` there), and ClickHouse at its native port. PeerDB validates each peer by connecting to it.
   */
  const deployment = () => {
    const clickhouse = testServers().clickhouse;
    return {
      ...postgresEnv(database.settings),
      POSTGRES_PEER_HOST: '127.0.0.1',
      POSTGRES_PEER_PORT: String(proxy.port),
      CLICKHOUSE_HOST: '127.0.0.1',
      CLICKHOUSE_PORT: new URL(clickhouse.url).port,
      CLICKHOUSE_PEER_HOST: '127.0.0.1',
      CLICKHOUSE_PEER_PORT: String(clickhouse.nativePort),
      CLICKHOUSE_DB: analytics,
      CLICKHOUSE_USER: clickhouse.user,
      CLICKHOUSE_PASSWORD: clickhouse.password,
      SOURCE_PEER_NAME: 'shop_pg',
      TARGET_PEER_NAME: 'shop_ch',
      PEERDB_API_URL: peerdb.url,
    };
  };
  const peerCreations = () => peerdb.requests.filter((request) => request.path === '/v1/peers/create');

  it('creates the source and the destination peer through the Flow API, after the SQL, and updates them when run again', async () => {
    const { settings } = database;

    const first = await runCli(['setup', '--no-schedule'], deployment());
    const clickhouse = testServers().clickhouse;

    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(/^setup: applied 001_outbox, /),
      `setup: created ClickHouse database "${analytics}" on ${clickhouse.url}`,
      `setup: PeerDB peers shop_pg (POSTGRES ${settings.user}@127.0.0.1:${proxy.port}/${settings.database}) and ` +
        `shop_ch (CLICKHOUSE ${clickhouse.user}@127.0.0.1:${clickhouse.nativePort}/${analytics}) created or updated`,
    ]);
    expect(first.stdout).not.toContain(clickhouse.password);
    expect(peerCreations().map((request) => [request.status, request.body])).toEqual([
      [200, {
        peer: {
          name: 'shop_pg',
          type: 'POSTGRES',
          postgresConfig: {
            host: '127.0.0.1',
            port: proxy.port,
            user: settings.user,
            password: settings.password,
            database: settings.database,
            requireTls: false,
          },
        },
        allowUpdate: true,
      }],
      [200, {
        peer: {
          name: 'shop_ch',
          type: 'CLICKHOUSE',
          clickhouseConfig: {
            host: '127.0.0.1',
            port: clickhouse.nativePort,
            user: clickhouse.user,
            password: clickhouse.password,
            database: analytics,
            disableTls: true,
          },
        },
        allowUpdate: true,
      }],
    ]);

    const again = await runCli(['setup', '--no-schedule'], { ...deployment(), POSTGRES_PEER_PORT: String(database.settings.port) });
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(again.stdout).toMatch(/is up to date/);
    expect(again.stdout).toContain('setup: PeerDB peers shop_pg (POSTGRES');
    expect(peerCreations()).toHaveLength(4);
    expect(peerCreations()[2]?.body).toMatchObject({ peer: { postgresConfig: { port: database.settings.port } }, allowUpdate: true });
  });

  it('fails after the SQL when PeerDB cannot reach the database a peer names, saying where PeerDB looked', async () => {
    await proxy.refuse();
    try {
      const result = await runCli(['setup', '--no-schedule'], deployment());
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`POSTGRES peer shop_pg was invalidated: failed to create connection`);
      expect(result.stderr).toContain('connection refused');
      expect(result.stderr).toContain('at the address its containers use (POSTGRES_PEER_HOST/_PORT, CLICKHOUSE_PEER_HOST/_PORT)');
    } finally {
      await proxy.accept();
    }
  });

  it('leaves PeerDB alone with --no-peers', async () => {
    const result = await runCli(['setup', '--no-schedule', '--no-peers'], deployment());

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).not.toContain('peers');
    expect(peerdb.requests).toEqual([]);
  });

  it('fails after the SQL when PeerDB is out of reach, saying what to do', async () => {
    const result = await runCli(['setup', '--no-schedule'], { ...deployment(), PEERDB_API_URL: 'http://127.0.0.1:1' });

    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^setup: applied 001_outbox, /);
    expect(result.stderr).toMatch(
      /^echodb: could not create the peers through PeerDB's Flow API at http:\/\/127\.0\.0\.1:1: .*; the SQL is installed: run setup again once PeerDB is reachable, or pass --no-peers/,
    );
    const { rowCount } = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'echodb'");
    expect(rowCount).toBe(1);
  });
});
