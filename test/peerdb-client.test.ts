import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CircuitBreaker } from '../lib/circuit-breaker.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PeerDbClient, errorFor, isPeerDbOutage } from '../lib/peerdb/client.js';
import { CircuitOpen, PeerDbInvalidRequest, PeerDbUnavailable } from '../lib/workflow-safe/peerdb-errors.js';
import { freePort } from '../lib/free-port.js';
import { defaultKnobs, startPeerDbDouble, type PeerDbDouble } from './peerdb-double/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { createTestClickHouse, type TestClickHouse } from './support/clickhouse.js';

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
  peerdb = await startPeerDbDouble({ clickhouse: inject('servers').clickhouse, transitionMs: 20 });
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
  const clickhouse = inject('servers').clickhouse;
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

  it('sends a change to a paused mirror as the current state (PAUSED) with the update: one signal', async () => {
    const { client } = clientFor(peerdb.url);
    await client.updatePausedMirror('no_such_mirror', { additionalTables: [], removedTables: [] }).catch(() => undefined);
    expect(peerdb.requests.at(-1)?.body).toEqual({
      flowJobName: 'no_such_mirror',
      requestedFlowState: 'STATUS_PAUSED',
      flowConfigUpdate: { cdcFlowConfigUpdate: { additionalTables: [], removedTables: [] } },
    });
  });
});

describe('what PeerDB\'s answers mean (errorFor)', () => {
  const classify = (status: number, message: string) => errorFor(status, message, message).constructor.name;

  it('tells a database PeerDB cannot reach (an outage to wait out) from a request no retry fixes', () => {
    // flow/cmd/validate_peer.go: a peer that does not answer
    expect(classify(400, 'POSTGRES peer pg was invalidated: failed to create connection: failed to connect to `user=x database=y`: pg:5432: dial error: dial tcp 10.0.0.5:5432: connect: connection refused')).toBe('PeerUnreachable');
    expect(classify(400, 'CLICKHOUSE peer ch was invalidated: failed to open connection to ClickHouse peer: dial tcp: lookup clickhouse: no such host')).toBe('PeerUnreachable');
    // flow/cmd/handler.go CreateCDCFlow wraps validation failures in 500 Internal "invalid mirror"
    expect(classify(500, 'invalid mirror: rpc error: code = FailedPrecondition desc = failed to create source connector: failed to create connection: failed to connect to `user=x database=y`: pg:5432: dial error: i/o timeout')).toBe('PeerUnreachable');
    expect(classify(500, 'invalid mirror: rpc error: code = Unavailable desc = PeerDB is under maintenance. Please retry in a few minutes')).toBe('PeerDbUnavailable');
    // ... and what a retry cannot fix
    expect(classify(400, 'POSTGRES peer pg was invalidated: failed to create connection: failed to connect to `user=x database=y`: pg:5432: FATAL: password authentication failed for user "x" (SQLSTATE 28P01)')).toBe('PeerDbInvalidRequest');
    expect(classify(500, 'invalid mirror: rpc error: code = FailedPrecondition desc = source tables do not exist: public.gone')).toBe('PeerDbInvalidRequest');
    expect(classify(500, 'invalid mirror: rpc error: code = FailedPrecondition desc = failed to validate destination connector ch: table t exists and is not empty')).toBe('PeerDbInvalidRequest');
    expect(classify(409, 'workflow already exists for flow: m')).toBe('MirrorAlreadyExists');
    expect(classify(503, 'PeerDB is under maintenance. Please retry in a few minutes')).toBe('PeerDbUnavailable');
  });

  it('takes a 200 answer with status FAILED (flow/connectors/utils/peers.go) for the failure it is', async () => {
    const server = http.createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ status: 'FAILED', message: 'invalid config for POSTGRES peer pg: <nil>' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { client } = clientFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const peer = { name: 'pg', type: 'POSTGRES' as const, postgresConfig: { host: 'h', port: 1, user: 'u', password: 'p', database: 'd' } };
      await expect(client.createOrUpdatePeer(peer)).rejects.toThrow(/200 FAILED invalid config for POSTGRES peer pg/);
      await expect(client.createOrUpdatePeer(peer)).rejects.toBeInstanceOf(PeerDbInvalidRequest);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

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
