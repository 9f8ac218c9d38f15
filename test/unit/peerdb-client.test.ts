import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../lib/circuit-breaker.js';
import { freePort } from '../../lib/free-port.js';
import { PeerDbClient, errorFor, isPeerDbOutage } from '../../lib/peerdb/client.js';
import { CircuitOpen, PeerDbInvalidRequest, PeerDbUnavailable } from '../../lib/workflow-safe/peerdb-errors.js';
import { defaultKnobs, startPeerDbDouble, type PeerDbDouble } from '../peerdb-double/index.js';
import { unreachableClickHouse } from '../support/unreachable.js';

/** The PeerDB double without peers or mirrors: what the client does with PeerDB's answers needs no database. */
let peerdb: PeerDbDouble;

const breakerSettings = { failureThreshold: 3, successThreshold: 2, timeoutMs: 500 };
const clientFor = (baseUrl: string, breaker = new CircuitBreaker('peerdb_api', breakerSettings, isPeerDbOutage)) => ({
  breaker,
  client: new PeerDbClient({ baseUrl, requestTimeoutMs: 300, dropTimeoutMs: 300, breaker }),
});

beforeAll(async () => {
  peerdb = await startPeerDbDouble({ clickhouse: unreachableClickHouse, transitionMs: 20 });
});
afterAll(async () => {
  await peerdb.close();
});
afterEach(() => {
  Object.assign(peerdb.knobs, defaultKnobs());
});

describe('PeerDB Flow API client', () => {
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
    // Time passing is the behaviour here: the breaker lets a trial request through once its timeout has run out.
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
});
