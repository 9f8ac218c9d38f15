/**
 * The parts of the PeerDB double's contract that need no peer and no mirror: its answers to what it does not know
 * and its knobs. The rest, with real PostgreSQL and ClickHouse behind it, is test/peerdb-double.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultKnobs, startPeerDbDouble, type PeerDbDouble } from '../peerdb-double/index.js';
import { unreachableClickHouse } from '../support/unreachable.js';
import { until } from '../support/until.js';

let double: PeerDbDouble;

beforeAll(async () => {
  double = await startPeerDbDouble({ clickhouse: unreachableClickHouse, transitionMs: 25 });
});
afterAll(async () => {
  await double?.close();
});
beforeEach(() => {
  Object.assign(double.knobs, defaultKnobs());
});

async function call<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(double.url + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('state changes and status: POST /v1/mirrors/state_change, /v1/mirrors/status', () => {
  const mirrorStatus = (flowJobName: string) => call('POST', '/v1/mirrors/status', { flowJobName, includeFlowInfo: true });
  const stateChange = (flowJobName: string, requestedFlowState: string) =>
    call('POST', '/v1/mirrors/state_change', { flowJobName, requestedFlowState });

  it('answers 404 "flow X not found" for a mirror it does not know', async () => {
    const notFound = { status: 404, body: { code: 5, message: 'flow ghost not found', details: [] } };
    expect(await mirrorStatus('ghost')).toEqual(notFound);
    expect(await stateChange('ghost', 'STATUS_PAUSED')).toEqual(notFound);
  });
});

describe('JSON encoding', () => {
  it('answers an unknown route 404 and a known route asked with another method 501, with grpc-gateway bodies', async () => {
    expect(await call('GET', '/v1/nothing/here')).toEqual({ status: 404, body: { code: 5, message: 'Not Found', details: [] } });
    expect(await call('GET', '/v1/mirrors/status')).toEqual({
      status: 501,
      body: { code: 12, message: 'Method Not Allowed', details: [] },
    });
  });
});

describe('knobs', () => {
  it('failUntil answers 503 UNAVAILABLE until the time passes, and errorRate 1 answers 503 to everything', async () => {
    double.knobs.failUntil = Date.now() + 150;
    expect(await call('GET', '/v1/mirrors/names')).toMatchObject({ status: 503, body: { code: 14 } });
    // Time passing is the behaviour here: failUntil is a deadline.
    await sleep(170);
    expect((await call('GET', '/v1/mirrors/names')).status).toBe(200);
    double.knobs.errorRate = 1;
    expect((await call('GET', '/v1/mirrors/names')).status).toBe(503);
  });

  it('hang accepts requests but never answers them, so a client times out', async () => {
    double.knobs.hang = true;
    await expect(fetch(`${double.url}/v1/mirrors/list`, { signal: AbortSignal.timeout(200) })).rejects.toThrow(/timeout/i);
    expect(double.requests.at(-1)).toMatchObject({ method: 'GET', path: '/v1/mirrors/list', status: undefined });
    double.knobs.hang = false;
    expect((await call('GET', '/v1/mirrors/list')).status).toBe(200);
  });

  it('latencyMs delays every answer', async () => {
    double.knobs.latencyMs = 150;
    const started = Date.now();
    expect((await call('GET', '/v1/mirrors/names')).status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('logs every request in arrival order with its method, path, parsed body and final status', async () => {
    const from = double.requests.length;
    await call('POST', '/v1/mirrors/status', { flowJobName: 'ghost' });
    await call('GET', '/v1/mirrors/names');
    const malformed = await fetch(`${double.url}/v1/mirrors/status`, { method: 'POST', body: '{not json' });
    expect(malformed.status).toBe(400);
    const logged = double.requests.slice(from);
    expect(logged.map(({ at: _at, ...entry }) => entry)).toEqual([
      { method: 'POST', path: '/v1/mirrors/status', body: { flowJobName: 'ghost' }, status: 404 },
      { method: 'GET', path: '/v1/mirrors/names', body: undefined, status: 200 },
      { method: 'POST', path: '/v1/mirrors/status', body: undefined, status: 400 },
    ]);
    const times = logged.map((entry) => entry.at.getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('close() ends hanging requests and stops the server', async () => {
    const other = await startPeerDbDouble({ clickhouse: unreachableClickHouse });
    other.knobs.hang = true;
    const hanging = fetch(`${other.url}/v1/mirrors/list`).then(
      () => 'answered',
      () => 'failed',
    );
    await until(() => Promise.resolve(other.requests.length), (count) => count > 0);
    const started = Date.now();
    await other.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await hanging).toBe('failed');
  });
});
