import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import { PeerDbClient, isPeerDbOutage } from '../lib/peerdb/client.js';
import { CircuitOpen, PeerDbInvalidRequest, PeerDbUnavailable } from '../lib/peerdb/errors.js';
import { freePort } from '../lib/local-servers/ports.js';
import { startPeerDbDouble, type PeerDbDouble } from './peerdb-double/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

let peerdb: PeerDbDouble;
let database: TestDatabase;

const breakerSettings = { failureThreshold: 3, successThreshold: 2, timeoutMs: 500 };
const clientFor = (baseUrl: string, breaker = new CircuitBreaker('peerdb_api', breakerSettings, isPeerDbOutage)) => ({
  breaker,
  client: new PeerDbClient({ baseUrl, requestTimeoutMs: 300, breaker }),
});

beforeAll(async () => {
  peerdb = await startPeerDbDouble({ clickhouse: inject('servers').clickhouse, transitionMs: 20 });
  database = await createTestDatabase();
});
afterAll(async () => {
  await peerdb.close();
  await database.drop();
});
afterEach(() => {
  Object.assign(peerdb.knobs, { latencyMs: 0, errorRate: 0, failUntil: undefined, failNext: undefined, hang: false, stuck: false });
});

async function createPeers(client: PeerDbClient): Promise<void> {
  const { host, port, user, password, database: name } = database.settings;
  await client.createOrUpdatePeer({ name: 'source', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: name } });
  const clickhouse = new URL(inject('servers').clickhouse.url);
  await client.createOrUpdatePeer({
    name: 'target',
    type: 'CLICKHOUSE',
    clickhouseConfig: { host: clickhouse.hostname, port: 9000, user: 'default', password: '', database: 'client_test', disableTls: true },
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

  it('sends only field names of the Flow API contract', async () => {
    const { client } = clientFor(peerdb.url);
    await client.pauseMirror('no_such_mirror').catch(() => undefined);
    const request = peerdb.requests.at(-1);
    expect(request?.path).toBe('/v1/mirrors/state_change');
    expect(request?.body).toEqual({ flowJobName: 'no_such_mirror', requestedFlowState: 'STATUS_PAUSED' });
  });

  it('types errors by meaning: 400 is invalid, 5xx, timeouts and refused connections are outages', async () => {
    const { client } = clientFor(peerdb.url);
    peerdb.knobs.failNext = { count: 1, status: 400 };
    await expect(client.listMirrors()).rejects.toBeInstanceOf(PeerDbInvalidRequest);

    peerdb.knobs.failNext = { count: 1, status: 503 };
    await expect(client.listMirrors()).rejects.toBeInstanceOf(PeerDbUnavailable);

    peerdb.knobs.hang = true;
    await expect(client.listMirrors()).rejects.toThrow(/no answer within 300 ms/);
    peerdb.knobs.hang = false;

    const closed = clientFor(`http://127.0.0.1:${await freePort()}`).client;
    await expect(closed.listMirrors()).rejects.toThrow(PeerDbUnavailable);
  });

  it('opens the breaker after consecutive outages, fails fast while open, and closes after enough successes', async () => {
    const { client, breaker } = clientFor(peerdb.url);
    peerdb.knobs.failUntil = Date.now() + 60_000;
    for (let i = 0; i < breakerSettings.failureThreshold; i++) {
      await expect(client.listMirrors()).rejects.toBeInstanceOf(PeerDbUnavailable);
    }
    expect(breaker.snapshot()).toEqual({ state: 'open', failures: 3 });

    const sent = peerdb.requests.length;
    const error = await client.listMirrors().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpen);
    expect((error as CircuitOpen).retryAfterMs).toBeGreaterThan(0);
    expect((error as CircuitOpen).retryAfterMs).toBeLessThanOrEqual(breakerSettings.timeoutMs);
    expect(peerdb.requests.length).toBe(sent);

    peerdb.knobs.failUntil = undefined;
    await new Promise((resolve) => setTimeout(resolve, breakerSettings.timeoutMs + 50));
    await client.listMirrors();
    expect(breaker.snapshot().state).toBe('half_open');
    await client.listMirrors();
    expect(breaker.snapshot()).toEqual({ state: 'closed', failures: 0 });
  });

  it('does not count a 400 or a 404 against PeerDB\'s health', async () => {
    const { client, breaker } = clientFor(peerdb.url);
    for (let i = 0; i < 5; i++) {
      peerdb.knobs.failNext = { count: 1, status: 400 };
      await expect(client.listMirrors()).rejects.toBeInstanceOf(PeerDbInvalidRequest);
      expect(await client.mirrorStatus('never_created')).toBeNull();
    }
    expect(breaker.snapshot()).toEqual({ state: 'closed', failures: 0 });
  });
});
