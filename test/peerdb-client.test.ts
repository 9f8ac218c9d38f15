import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { PeerDbClient, isPeerDbOutage } from '../lib/peerdb/client.js';
import { defaultKnobs, startPeerDbDouble, type PeerDbDouble } from './peerdb-double/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createTestClickHouse, type TestClickHouse } from './support/clickhouse.js';
import { testServers } from './support/servers.js';

let peerdb: PeerDbDouble;
let database: TestDatabase;

const breakerSettings = { failureThreshold: 3, successThreshold: 2, timeoutMs: 500 };
const clientFor = (baseUrl: string, breaker = new CircuitBreaker('peerdb_api', breakerSettings, isPeerDbOutage)) => ({
  breaker,
  client: new PeerDbClient({ baseUrl, requestTimeoutMs: 300, dropTimeoutMs: 300, breaker }),
});

/** The destination database: PeerDB's ClickHouse peer logs in with it, so it must exist. */
let destination: TestClickHouse;

beforeAll(async () => {
  peerdb = await startPeerDbDouble({ clickhouse: testServers().clickhouse, transitionMs: 20 });
  database = await createTestDatabase();
  destination = await createTestClickHouse();
});
afterAll(async () => {
  await peerdb.close();
  await database.drop();
  await destination.drop();
});
afterEach(() => {
  Object.assign(peerdb.knobs, defaultKnobs());
});

async function createPeers(client: PeerDbClient): Promise<void> {
  const { host, port, user, password, database: name } = database.settings;
  await client.createOrUpdatePeer({ name: 'source', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: name } });
  const clickhouse = testServers().clickhouse;
  await client.createOrUpdatePeer({
    name: 'target',
    type: 'CLICKHOUSE',
    clickhouseConfig: {
      host: new URL(clickhouse.url).hostname,
      port: clickhouse.nativePort,
      user: clickhouse.user,
      password: clickhouse.password,
      database: destination.database,
      disableTls: true,
    },
  });
}

describe('PeerDB Flow API client', () => {
  it('treats creating an existing mirror as done, and dropping a missing one too', async () => {
    const { client } = clientFor(peerdb.url);
    await createPeers(client);
    const sql = await database.connect();
    await sql.query('CREATE TABLE public.t (id int PRIMARY KEY)');
    const config = {
      flowJobName: 'client_idempotent',
      sourceName: 'source',
      destinationName: 'target',
      tableMappings: [{ sourceTableIdentifier: 'public.t', destinationTableIdentifier: 't' }],
      doInitialSnapshot: false,
    };

    expect(await client.createCdcMirror(config)).toBe('created');
    expect(await client.createCdcMirror(config)).toBe('exists');
    await peerdb.waitForStatus('client_idempotent', 'STATUS_RUNNING');
    expect(await client.dropMirror('client_idempotent')).toBe('dropping');
    await expect.poll(() => client.mirrorStatus('client_idempotent')).toBeNull();
    expect(await client.dropMirror('client_idempotent')).toBe('gone');
  });

  it('reads the light status (the state alone) for polling, and the full one with the table mappings', async () => {
    const { client } = clientFor(peerdb.url);
    await createPeers(client);
    const sql = await database.connect();
    await sql.query('CREATE TABLE public.light (id int PRIMARY KEY)');
    await client.createCdcMirror({
      flowJobName: 'client_light',
      sourceName: 'source',
      destinationName: 'target',
      tableMappings: [{ sourceTableIdentifier: 'public.light', destinationTableIdentifier: 'light' }],
      doInitialSnapshot: false,
    });
    await peerdb.waitForStatus('client_light', 'STATUS_RUNNING');
    const from = peerdb.requests.length;
    expect(await client.mirrorState('client_light')).toBe('STATUS_RUNNING');
    expect((await client.mirrorStatus('client_light'))?.cdcStatus?.config?.tableMappings).toHaveLength(1);
    expect(peerdb.requests.slice(from).map((r) => (r.body as { includeFlowInfo: boolean }).includeFlowInfo)).toEqual([false, true]);
    expect(await client.mirrorState('never_created')).toBeNull();
    await sql.end();
  });
});

describe('what PeerDB\'s answers mean (errorFor)', () => {
  it('answers "dropping" to a create PeerDB refuses while the previous mirror of the name is still being dropped', async () => {
    const { client } = clientFor(peerdb.url);
    await createPeers(client);
    const sql = await database.connect();
    await sql.query('CREATE TABLE public.again (id int PRIMARY KEY)');
    const config = {
      flowJobName: 'client_again',
      sourceName: 'source',
      destinationName: 'target',
      tableMappings: [{ sourceTableIdentifier: 'public.again', destinationTableIdentifier: 'again' }],
      doInitialSnapshot: false,
    };
    await client.createCdcMirror(config);
    await peerdb.waitForStatus('client_again', 'STATUS_RUNNING');
    peerdb.knobs.dropLingerMs = 2000;
    await client.dropMirror('client_again');
    await expect.poll(() => client.mirrorState('client_again')).toBeNull();
    expect(await client.createCdcMirror(config)).toBe('dropping');
    await sql.end();
  });
});
