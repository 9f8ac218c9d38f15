import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedProcess } from './servers/managed-process.js';
import { freePorts } from '../lib/free-port.js';
import { startTemporal } from './servers/temporal.js';
import { Client, Connection } from '@temporalio/client';
import { namingRules } from '../lib/naming.js';
import { tableFilter } from '../lib/table-filter.js';
import { dispatchRows } from '../listener/dispatch.js';
import { runCli } from './support/cli.js';
import { startEchoProcess, type EchoProcess } from './support/echo-process.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { until } from './support/until.js';
import { testServers } from './support/servers.js';

/** A table name with everything PostgreSQL allows and URLs, SQL and shells dislike. */
const ODD = 'Odd "name"; ü & ?x=1';

/** The shapes the API answers, as far as the tests read them. */
interface ErrorBody { error: string }
interface Health { worker_id: string }
interface Check { ok: boolean; error?: string }
interface Readiness { ready: boolean; checks: Record<'postgres' | 'clickhouse' | 'temporal' | 'redis' | 'peerdb', Check>; failed: string[] }
interface MetricsJson { is_leader: boolean; mirrors_created: number; mirrors_dropped: number; mirrors_failed: number; uptime_seconds: number }
interface Verification { table: string; match: boolean; timestamp: string }
interface Pending { poll: string; workflow_id: string }
interface VerifyAll { summary: unknown; results: Verification[]; reconcile: unknown; workflow_id: string }
interface Waiting { operation: string; tables: string[]; state: string; stalled: boolean; diagnosis: string | null }
interface Mirrors {
  mirrors: { mirror: string; tables: { name: string }[]; waiting: Waiting | null; unmirrored: { table: string; reason: string }[] }[];
}
interface Events { events: { id: number; status: string; table: string }[]; next: string }

let stack: EchoStack;
let api: string;
let checkerPort: number;
const others: EchoProcess[] = [];

async function get(path: string, headers: Record<string, string> = {}, base = api) {
  const response = await fetch(`${base}${path}`, { headers });
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type') ?? '', text, json: <T = Record<string, unknown>>() => JSON.parse(text) as T };
}

const verifyPath = (table: string, extra = '') =>
  `/verify?${new URLSearchParams({ schema: stack.schema, table }).toString()}${extra}`;

/** Another replica with only the api role, configured like the stack but for `env`. */
async function startApiReplica(env: Record<string, string>): Promise<{ url: string; process: EchoProcess }> {
  const [port, otherPort] = await freePorts(2);
  const replica = await startEchoProcess(
    { ...stack.env, WORKER_ID: `api-${port}`, HEALTH_PORT: String(port), CONSISTENCY_CHECKER_PORT: String(otherPort), ...env },
    ['api'],
  );
  others.push(replica);
  return { url: `http://127.0.0.1:${port}`, process: replica };
}

beforeAll(async () => {
  const { redis } = testServers();
  const [healthPort, port] = await freePorts(2);
  checkerPort = port!;
  stack = await startEchoStack(
    {
      HEALTH_PORT: String(healthPort),
      CONSISTENCY_CHECKER_PORT: String(checkerPort),
      REDIS_HOST: redis.host,
      REDIS_PORT: String(redis.port),
      REDIS_PASSWORD: redis.password,
      LEADER_ELECTION_TTL: '3',
      LEADER_ELECTION_INTERVAL: '1',
      OUTBOX_POLL_INTERVAL: '1',
      API_VERIFY_WAIT: '20',
    },
    testServers(),
    { roles: ['worker', 'listener', 'api'] },
  );
  api = `http://127.0.0.1:${healthPort}`;
  const { sql, schema } = stack;
  await sql.query(`CREATE TABLE ${schema}.users (id int PRIMARY KEY, name text)`);
  await sql.query(`INSERT INTO ${schema}.users SELECT g, 'u' || g FROM generate_series(1, 5) g`);
  await sql.query(`CREATE TABLE ${schema}.${sql.escapeIdentifier(ODD)} (id int PRIMARY KEY)`);
  await sql.query(`INSERT INTO ${schema}.${sql.escapeIdentifier(ODD)} VALUES (1), (2)`);
  // The listener of the `echodb run` process dispatches them; their verifications prove them mirrored.
  await stack.waitForVerification('users', 1, 60_000);
  await stack.waitForVerification(ODD, 1, 60_000);
  // What every test may count on: `users` differs between PostgreSQL (7 rows) and ClickHouse (5), as the double
  // does no CDC and rows written after the snapshot never reach ClickHouse; ODD matches; public.unwatched is
  // outside SYNC_SCHEMA.
  await sql.query(`INSERT INTO ${schema}.users VALUES (6, 'late'), (7, 'late')`);
  await sql.query('CREATE TABLE public.unwatched (id int)');
}, 180_000);

afterAll(async () => {
  await Promise.all(others.map((replica) => replica.stop()));
  await stack?.close();
});

describe('GET /health and /ready', () => {
  it('answers /health with the replica and its roles, without a token', async () => {
    const response = await get('/health');
    expect(response.status).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'ok',
      worker_id: stack.env.WORKER_ID,
      roles: ['worker', 'listener', 'api'],
      worker_state: 'RUNNING',
    });
  });

  it('serves the same API on CONSISTENCY_CHECKER_PORT, as the original consistency checker did', async () => {
    const response = await get('/health', {}, `http://127.0.0.1:${checkerPort}`);
    expect(response.status).toBe(200);
    expect(response.json<Health>().worker_id).toBe(stack.env.WORKER_ID);
  });

  it('is ready when PostgreSQL, ClickHouse, Temporal, Redis and PeerDB all answer', async () => {
    const response = await get('/ready');
    expect(response.status).toBe(200);
    const body = response.json<Readiness>();
    expect(body.ready).toBe(true);
    expect(Object.keys(body.checks).sort()).toEqual(['clickhouse', 'peerdb', 'postgres', 'redis', 'temporal']);
    for (const check of Object.values(body.checks)) expect(check).toMatchObject({ ok: true });
    expect(body.failed).toEqual([]);
  });

  it('answers 503 naming each dependency that failed, and why; starts and answers while Temporal is away', async () => {
    const [closed] = await freePorts(1);
    const replica = await startApiReplica({
      PEERDB_API_URL: `http://127.0.0.1:${closed}`,
      CLICKHOUSE_PASSWORD: 'wrong-password',
      REDIS_PORT: String(closed),
      TEMPORAL_ADDRESS: `127.0.0.1:${closed}`,
    });
    const response = await get('/ready', {}, replica.url);
    expect(response.status).toBe(503);
    const body = response.json<Readiness>();
    expect(body.ready).toBe(false);
    expect(body.checks.postgres.ok).toBe(true);
    expect(body.failed.map((line: string) => line.split(':')[0]).sort()).toEqual(['clickhouse', 'peerdb', 'redis', 'temporal']);
    expect(body.checks.clickhouse.error).toMatch(/password|Authentication/i);

    // What needs no PeerDB still answers; the mirrors' PeerDB state says why it is missing.
    const { mirrors } = (await get('/mirrors', {}, replica.url)).json<Mirrors>();
    expect(mirrors[0]).toMatchObject({ mirror: `echodb_${stack.schema}`, peerdb: { state: null, error: expect.stringMatching(/^PeerDB: /) as unknown } });
    // Verification needs Temporal: a 503 that says so, not a hang.
    const verify = await get(verifyPath('users'), {}, replica.url);
    expect(verify.status).toBe(503);
    expect(verify.json<ErrorBody>().error).toMatch(/^Temporal unavailable: /);
  });

  it('answers 503 while PostgreSQL is unreachable, and /metrics says it is not connected', async () => {
    const [closed] = await freePorts(1);
    const replica = await startApiReplica({ POSTGRES_PORT: String(closed) });
    const ready = await get('/ready', {}, replica.url);
    expect(ready.status).toBe(503);
    expect(ready.json<Readiness>().failed).toEqual([expect.stringMatching(/^postgres: .*ECONNREFUSED/) as unknown]);
    const metrics = (await get('/metrics', {}, replica.url)).json<Record<string, unknown>>();
    expect(metrics).toMatchObject({ running: true, connected: false, mirrors_created: null, mirrors_failed: null });
    expect(metrics.last_error).toMatch(/^PostgreSQL: /);
    const events = await get('/events', {}, replica.url);
    expect(events.status).toBe(503);
    expect(events.json<ErrorBody>().error).toMatch(/^unavailable: /);
  });
});

describe('GET /metrics', () => {
  it("answers the original manual's JSON, mirror counts from durable state", async () => {
    await until(async () => (await get('/metrics')).json<MetricsJson>().is_leader, (isLeader) => isLeader === true, 15_000);
    const body = (await get('/metrics')).json<MetricsJson>();
    const { rows } = await stack.sql.query<{ created: string; failed: string }>(
      `SELECT count(*) FILTER (WHERE operation = 'create' AND result = 'succeeded') AS created,
              count(*) FILTER (WHERE result = 'failed') AS failed FROM echodb.mirror_operations`,
    );
    expect(Object.keys(body).sort()).toEqual([
      'circuit_breakers', 'connected', 'is_leader', 'last_error', 'mirrors_created', 'mirrors_dropped',
      'mirrors_failed', 'roles', 'running', 'uptime_seconds', 'worker_id',
    ]);
    expect(body).toMatchObject({
      running: true,
      connected: true,
      worker_id: stack.env.WORKER_ID,
      is_leader: true,
      mirrors_created: Number(rows[0]!.created),
      mirrors_dropped: 0,
      mirrors_failed: Number(rows[0]!.failed),
      last_error: null,
      circuit_breakers: {
        peerdb_api: { state: 'closed', failures: 0 },
        postgres_connection: { state: 'closed', failures: 0 },
      },
    });
    expect(body.mirrors_created).toBeGreaterThanOrEqual(1);
    expect(body.uptime_seconds).toEqual(expect.any(Number));
  });

  it('gives the same mirror counts on every replica, leader or not', async () => {
    const replica = await startApiReplica({});
    const [mine, theirs] = await Promise.all([get('/metrics'), get('/metrics', {}, replica.url)]);
    const counts = (body: MetricsJson) => [body.mirrors_created, body.mirrors_dropped, body.mirrors_failed];
    expect(counts(theirs.json<MetricsJson>())).toEqual(counts(mine.json<MetricsJson>()));
    expect(theirs.json<MetricsJson>().is_leader).toBe(false);
  });

  it('serves Prometheus text that a Prometheus parser reads, with EchoDB\'s and the Temporal SDK\'s metrics', async () => {
    const response = await get('/metrics/prometheus');
    expect(response.status).toBe(200);
    expect(response.type).toMatch(/^text\/plain/);
    const families = new Map(parsePrometheusTextFormat(response.text).map((family) => [family.name, family]));
    const value = (name: string, labels: Record<string, string> = {}) =>
      Number(families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);

    expect(value('echodb_events_dispatched_total', { outcome: 'dispatched' })).toBeGreaterThanOrEqual(2);
    const latency = families.get('echodb_ddl_dispatch_latency_seconds');
    expect(latency?.type).toBe('HISTOGRAM');
    expect(Number(latency?.metrics[0]?.count)).toBeGreaterThanOrEqual(2);
    expect(value('echodb_outbox_backlog_events')).toBe(0);
    expect(value('echodb_outbox_oldest_pending_age_seconds')).toBe(0);
    expect(value('echodb_mirror_operations', { operation: 'create', result: 'succeeded' })).toBeGreaterThanOrEqual(1);
    expect(value('echodb_verifications', { status: 'match' })).toBeGreaterThanOrEqual(2);
    expect(value('echodb_mirrored_tables')).toBe(2);
    expect(value('echodb_is_leader')).toBe(1);
    expect(value('echodb_circuit_breaker_state', { breaker: 'peerdb_api', state: 'closed' })).toBe(1);
    expect(value('echodb_circuit_breaker_state', { breaker: 'postgres_connection', state: 'open' })).toBe(0);
    expect(families.has('echodb_process_resident_memory_bytes')).toBe(true);
    // The SDK's own, from its exporter in this process: e.g. workflow task and poll figures.
    expect([...families.keys()].filter((name) => name.startsWith('temporal_')).length).toBeGreaterThan(3);
  });
});

describe('GET /verify', () => {
  it("verifies a table and answers the original manual's JSON, with the workflow id", async () => {
    const response = await get(verifyPath(ODD));
    expect(response.status).toBe(200);
    expect(response.json()).toMatchObject({
      table: `"${stack.schema}"."${ODD.replaceAll('"', '""')}"`,
      postgres_count: 2,
      clickhouse_count: 2,
      match: true,
      difference: 0,
      status: 'match',
      mirror: `echodb_${stack.schema}`,
      workflow_id: expect.stringMatching(/^echodb-verify:.*:on-demand:/) as unknown,
    });
    expect(new Date(response.json<Verification>().timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('reports a mismatch with both counts and the difference', async () => {
    const response = await get(verifyPath('users'));
    expect(response.status).toBe(200);
    expect(response.json()).toMatchObject({
      table: `${stack.schema}.users`,
      postgres_count: 7,
      clickhouse_count: 5,
      match: false,
      difference: 2,
      status: 'mismatch',
      attempts: 3,
    });
  });

  it('answers 202 with a URL to poll when the result takes longer than the wait', async () => {
    const response = await get(verifyPath('users', '&wait=0'));
    expect(response.status).toBe(202);
    const { poll, workflow_id: workflowId } = response.json<Pending>();
    expect(poll).toMatch(/^\/verifications\//);
    const polled = await until(() => get(poll), (answer) => answer.status !== 202, 30_000);
    expect(polled.status).toBe(200);
    const result = polled.json();
    expect(result).toMatchObject({ table: `${stack.schema}.users`, postgres_count: 7, clickhouse_count: 5, workflow_id: workflowId });
  });

  it('answers /verifications/<id> of the batch that verified a table with it, with every table of the batch', async () => {
    // The first verification of a table is the one its mirror's edit started: a batch verify.
    const [first] = await stack.verifications(ODD);
    expect(first?.workflow_id).toMatch(/^echodb-verify-tables:/);
    const response = await get(`/verifications/${encodeURIComponent(first!.workflow_id)}`);
    expect(response.status).toBe(200);
    const body = response.json<{ workflow_id: string; results: Verification[] }>();
    expect(body.workflow_id).toBe(first!.workflow_id);
    expect(body.results).toContainEqual(expect.objectContaining({ table: `"${stack.schema}"."${ODD.replaceAll('"', '""')}"`, match: true }));
  });

  it('answers 404 for a table that does not exist or is in no mirror', async () => {
    const missing = await get(verifyPath('no_such_table'));
    expect(missing.status).toBe(404);
    expect(missing.json<ErrorBody>().error).toBe(`PostgreSQL has no table ${stack.schema}.no_such_table`);

    const unwatched = await get(`/verify?schema=public&table=unwatched`);
    expect(unwatched.status).toBe(404);
    expect(unwatched.json<ErrorBody>().error).toMatch(/^table public.unwatched is in no mirror/);
    expect((await get('/verifications/not-a-verification')).status).toBe(404);
    const noDiff = await get(`/diff?schema=${stack.schema}&table=no_such_table`);
    expect(noDiff.status).toBe(404);
    expect(noDiff.json<ErrorBody>().error).toBe(`PostgreSQL has no table ${stack.schema}.no_such_table`);
  });

  it('answers 400 with the reason for a missing or malformed parameter', async () => {
    const cases: [string, RegExp][] = [
      [`/verify?schema=${stack.schema}`, /^table: required/],
      [`/verify?schema=a&schema=b&table=users`, /^schema: give it once/],
      [`/verify?schema=${stack.schema}&table=${'x'.repeat(64)}`, /^table: longer than PostgreSQL's 63-byte names/],
      [`/verify?schema=${stack.schema}&table=users&wait=soon`, /^wait: "soon" is not a number of seconds/],
      [`/verify?schema=${stack.schema}&tabel=users`, /^unknown parameter tabel/],
      [`/diff?table=users`, /^schema: required/],
      [`/diff?schema=${stack.schema}&table=users&wait=-1`, /^wait: "-1" is not a number of seconds/],
      [`/diff?schema=${stack.schema}&table=users&rows=10`, /^unknown parameter rows/],
      ['/events?status=lost', /^status: "lost" is not one of pending, dispatched, skipped$/],
      ['/events?limit=0', /^limit: "0" is not an integer from 1 to 1000/],
    ];
    for (const [path, reason] of cases) {
      const response = await get(path);
      expect(response.status, path).toBe(400);
      expect(response.json<ErrorBody>().error, path).toMatch(reason);
    }
  });
});

describe('GET /verify-all, /mirrors, /events', () => {
  it('verifies every mirrored table after a reconcile and answers with a summary', async () => {
    const response = await get('/verify-all');
    expect(response.status).toBe(200);
    const body = response.json<VerifyAll>();
    expect(body.summary).toEqual({ tables: 2, matched: 1, mismatched: 1, errors: 0, match: false });
    expect(body.results.map((r: { table: string; match: boolean }) => [r.table, r.match]).sort()).toEqual([
      [`"${stack.schema}"."${ODD.replaceAll('"', '""')}"`, true],
      [`${stack.schema}.users`, false],
    ]);
    expect(body.reconcile).toMatchObject({ added: [], removed: [] });
    expect(body.workflow_id).toBe(`echodb-verify-all:${stack.env.TEMPORAL_TASK_QUEUE}`);
  });

  it('answers /verify-all with 202 and a URL to poll when it takes longer than the wait', async () => {
    const response = await get('/verify-all?wait=0');
    expect(response.status).toBe(202);
    const { poll } = response.json<Pending>();
    const polled = await until(() => get(poll), (answer) => answer.status !== 202, 30_000);
    expect(polled.status).toBe(200);
    expect(polled.json<VerifyAll>().summary).toEqual({ tables: 2, matched: 1, mismatched: 1, errors: 0, match: false });
  });

  it('lists each mirror with its tables, its PeerDB state and each table\'s last verification', async () => {
    const { mirrors } = (await get('/mirrors')).json<Mirrors>();
    expect(mirrors).toHaveLength(1);
    expect(mirrors[0]).toMatchObject({
      mirror: `echodb_${stack.schema}`,
      peerdb: { state: 'STATUS_RUNNING', error: null },
      last_operation: { result: 'succeeded' },
    });
    const users = mirrors[0]?.tables.find((t) => t.name === 'users');
    expect(users).toMatchObject({
      table: `${stack.schema}.users`,
      schema: stack.schema,
      destination: 'users',
      last_verification: { status: 'mismatch', postgres_count: 7, clickhouse_count: 5, match: false, difference: 2 },
    });
  });

  it('lists the outbox newest first, filtered by status, page by page', async () => {
    const all = (await get('/events?status=dispatched')).json<Events>();
    expect(all.events.length).toBeGreaterThanOrEqual(2);
    expect(all.events.every((e: { status: string }) => e.status === 'dispatched')).toBe(true);
    const ids = all.events.map((e: { id: number }) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    expect(all.events).toContainEqual(
      expect.objectContaining({ operation: 'create', schema: stack.schema, table: 'users', handled_by: stack.env.WORKER_ID }),
    );
    const first = (await get('/events?status=dispatched&limit=1')).json<Events>();
    expect(first.events).toHaveLength(1);
    const second = (await get(first.next)).json<Events>();
    expect(second.events[0]?.id).toBeLessThan(first.events[0]!.id);
    const skipped = await until(
      async () => (await get('/events?status=skipped')).json<Events>().events.map((e: { table: string }) => e.table),
      (tables) => tables.includes('unwatched'),
    );
    expect(skipped).toContain('unwatched');
  });

  it('answers 404 with JSON for an unknown path', async () => {
    const response = await get('/nothing-here');
    expect(response.status).toBe(404);
    expect(response.json<ErrorBody>().error).toBe('no route GET /nothing-here');
  });
});

describe('API_TOKEN', () => {
  it('asks every endpoint but /health and /ready for the bearer token', async () => {
    const replica = await startApiReplica({ API_TOKEN: 's3cret token' });
    expect((await get('/health', {}, replica.url)).status).toBe(200);
    expect((await get('/ready', {}, replica.url)).status).toBe(200);
    for (const path of ['/metrics', '/metrics/prometheus', '/mirrors', '/events', verifyPath('users')]) {
      const refused = await get(path, {}, replica.url);
      expect(refused.status, path).toBe(401);
      expect(refused.json<ErrorBody>().error).toMatch(/Authorization: Bearer/);
      expect((await get(path, { authorization: 'Bearer wrong' }, replica.url)).status, path).toBe(401);
    }
    const allowed = await get('/metrics', { authorization: 'Bearer s3cret token' }, replica.url);
    expect(allowed.status).toBe(200);
    expect(allowed.json<Health>().worker_id).toBe(replica.process.logEntries()[0]?.worker_id);
  });

  it('asks for none when API_TOKEN is unset', async () => {
    expect((await get('/mirrors')).status).toBe(200);
  });
});

describe('the CLI against a running deployment', () => {
  it('verify prints the counts and exits 0 on a match, 3 on a mismatch, 1 for an unknown table', async () => {
    const odd = await runCli(['verify', `${stack.schema}."${ODD.replaceAll('"', '""')}"`], stack.env);
    expect(odd.stderr).toBe('');
    expect(odd.code).toBe(0);
    expect(odd.stdout).toMatch(/^verify: ".*" match: PostgreSQL 2, ClickHouse 2 \(workflow echodb-verify:/);

    const users = await runCli(['verify', `${stack.schema}.USERS`, '--json'], stack.env);
    expect(users.code).toBe(3);
    expect(JSON.parse(users.stdout) as unknown).toMatchObject({ table: `${stack.schema}.users`, match: false, difference: 2 });

    const missing = await runCli(['verify', `${stack.schema}.nope`], stack.env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`PostgreSQL has no table ${stack.schema}.nope`);

    const malformed = await runCli(['verify', 'no-schema'], stack.env);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('expected schema.table');
  });

  it('verify-all prints the summary and what did not match, and exits 3', async () => {
    const result = await runCli(['verify-all'], stack.env);
    expect(result.code).toBe(3);
    expect(result.stdout).toContain('verify-all: 2 tables: 1 match, 1 mismatch, 0 error(s)');
    expect(result.stdout).toContain(`${stack.schema}.users mismatch: PostgreSQL 7, ClickHouse 5, difference 2`);
  });

  it('status shows the leader, the backlog, the mirrors and the latest verifications', async () => {
    const result = await runCli(['status'], stack.env);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^leader: +${stack.env.WORKER_ID} \\(Redis lease, \\d+ s left\\)$`));
    expect(lines[1]).toBe('outbox:  0 pending');
    expect(lines[2]).toBe('mirrors: 1 mirror(s), 2 table(s)');
    expect(lines[3]).toMatch(new RegExp(`^  echodb_${stack.schema}  STATUS_RUNNING  2 table\\(s\\)  last: \\w+ succeeded`));
    expect(result.stdout).toMatch(new RegExp(`mismatch  ${stack.schema}.users  PostgreSQL 7, ClickHouse 5`));

    const json = JSON.parse((await runCli(['status', '--json'], stack.env)).stdout) as unknown;
    expect(json).toMatchObject({ leader: { worker_id: stack.env.WORKER_ID, backend: 'redis' }, outbox: { pending: 0 } });
  });
});

describe('logging', () => {
  it('writes one JSON object per line, with the worker id, and workflow and event ids where there are some', () => {
    const entries = stack.worker.logEntries();
    const json = stack.worker.lines.filter((line) => line.startsWith('{'));
    expect(entries.length).toBe(json.length);
    expect(entries.every((entry) => entry.worker_id === stack.env.WORKER_ID)).toBe(true);
    const dispatched = entries.find((entry) => entry.msg === 'listener: event dispatched' && entry.table === 'users');
    expect(dispatched).toMatchObject({ level: 'info', event_id: expect.any(Number) as unknown, workflow_id: `echodb-mirror:echodb_${stack.schema}` });
    // Temporal's own lines about a workflow's tasks carry its id.
    expect(entries.some((entry) => typeof entry.workflow_id === 'string' && entry.workflow_id.startsWith('echodb-'))).toBe(true);
  });

  it("appends every line to LOG_FILE too, and listens where the original manual's HEALTH_CHECK_HOST says", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-log-'));
    try {
      const logFile = path.join(dir, 'not-yet', 'echodb.log');
      const replica = await startApiReplica({ LOG_FILE: logFile, HEALTH_CHECK_HOST: '127.0.0.1', LOG_LEVEL: 'INFO' });
      expect((await get('/health', {}, replica.url)).status).toBe(200);
      const written = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
      expect(written.map((entry) => entry.msg)).toContainEqual(expect.stringMatching(/^api: listening on 127\.0\.0\.1:\d+ and port \d+$/));
      await replica.process.stop();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what a mirror waits for in PeerDB, and the tables left out', () => {
  it('shows a wait in /mirrors, status and Prometheus while it lasts, and a table without a key with its reason', async () => {
    const { sql, schema, peerdb } = stack;
    const mirror = `echodb_${schema}`;
    const prometheus = async (name: string, labels: Record<string, string> = {}) => {
      const families = parsePrometheusTextFormat((await get('/metrics/prometheus')).text);
      const family = families.find((f) => f.name === name);
      return family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value;
    };
    await sql.query(`CREATE TABLE ${schema}.no_key (id int, note text)`);
    const leftOut = await until(
      async () => (await get('/mirrors')).json<Mirrors>().mirrors[0]?.unmirrored ?? [],
      (tables) => tables.length > 0,
      30_000,
    );
    expect(leftOut.map(({ table }) => table)).toEqual([`${schema}.no_key`]);
    expect(leftOut[0]?.reason).toMatch(/^has no primary key/);
    expect(Number(await prometheus('echodb_unmirrored_tables'))).toBe(1);
    const events = (await get('/events?status=dispatched')).json<{ events: { table: string; skip_reason: string | null }[] }>().events;
    expect(events.find((e) => e.table === 'no_key')?.skip_reason).toMatch(/^has no primary key/);

    // The edit that adds `waits` pauses the mirror; PeerDB holds it PAUSING.
    peerdb.knobs.stuck = true;
    try {
      await sql.query(`CREATE TABLE ${schema}.waits (id int PRIMARY KEY)`);
      const waiting = await until(
        async () => (await get('/mirrors')).json<Mirrors>().mirrors[0]?.waiting,
        (wait) => wait?.state === 'STATUS_PAUSING',
        30_000,
      );
      expect(waiting).toMatchObject({ operation: 'add_tables', tables: [`${schema}.waits`], stalled: false, diagnosis: null });
      expect(Number(await prometheus('echodb_mirror_wait_seconds', { mirror, operation: 'add_tables' }))).toBeGreaterThanOrEqual(0);
      expect(Number(await prometheus('echodb_mirror_wait_stalled', { mirror }))).toBe(0);
      const status = await runCli(['status'], stack.env);
      expect(status.stdout).toMatch(/^ {4}waiting: add_tables since \S+, PeerDB STATUS_PAUSING$/m);
      expect(status.stdout).toMatch(new RegExp(`^ {4}not mirrored: ${schema}.no_key: has no primary key`, 'm'));
    } finally {
      peerdb.knobs.stuck = false;
    }
    await until(async () => (await get('/mirrors')).json<Mirrors>().mirrors[0]?.waiting, (wait) => wait === null, 30_000);
    expect(await prometheus('echodb_mirror_wait_seconds', { mirror })).toBeUndefined();
    await stack.waitForVerification('waits', 1, 30_000);

    // The other tests count on the mirror's two tables alone.
    await sql.query(`DROP TABLE ${schema}.waits`);
    await until(() => stack.mirrorState(mirror), (state) => !state.tables.some((t) => t.table === 'waits'), 30_000);
  }, 90_000);
});


describe("a Temporal that has never seen EchoDB (no search attributes)", () => {
  const servers: ManagedProcess[] = [];
  const directories: string[] = [];
  async function bareTemporal(searchAttributes: Record<string, string> = {}): Promise<Record<string, string>> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echodb-bare-temporal-'));
    directories.push(dir);
    const { settings, process } = await startTemporal(dir, { searchAttributes });
    servers.push(process);
    return { TEMPORAL_ADDRESS: settings.address, TEMPORAL_NAMESPACE: settings.namespace };
  }
  afterAll(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    for (const dir of directories) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is not ready and runs no worker until setup registers them; setup does it once', async () => {
    const temporal = await bareTemporal();
    const missing = 'EchoDbMirror, EchoDbSchema, EchoDbTables, EchoDbEventId';
    const replica = await startApiReplica(temporal);
    const ready = await get('/ready', {}, replica.url);
    expect(ready.status).toBe(503);
    expect(ready.json<Readiness>().failed).toEqual([
      expect.stringMatching(new RegExp(`^temporal: Temporal namespace default lacks EchoDB's search attributes ${missing}: run echodb setup`)),
    ]);
    await expect(startEchoProcess({ ...stack.env, ...temporal }, ['worker'])).rejects.toThrow(
      new RegExp(`the worker cannot start: Temporal namespace default lacks EchoDB's search attributes ${missing}`),
    );
    // The listener's dispatch is refused: the outbox row keeps Temporal's own words, not the SDK's summary.
    const connection = await Connection.connect({ address: temporal.TEMPORAL_ADDRESS! });
    try {
      const context = {
        client: new Client({ connection, namespace: 'default' }),
        taskQueue: stack.config.temporal.taskQueue,
        naming: namingRules(stack.config),
        destinationTemplate: '{table}',
      };
      const row = { id: '1', operation: 'create' as const, schema_name: stack.schema, table_name: 'refused', old_schema_name: null, old_table_name: null };
      const outcomes = await dispatchRows(context, [row], tableFilter(stack.config.sync));
      expect(outcomes).toHaveLength(1);
      expect(outcomes[0]).toMatchObject({ id: '1', status: 'failed' });
      expect(outcomes[0]?.status === 'failed' && outcomes[0].error).toMatch(/^Namespace default has no mapping defined for search attribute EchoDb\w+$/);
    } finally {
      await connection.close();
    }

    const first = await runCli(['setup', '--no-peers'], { ...stack.env, ...temporal });
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toContain(`setup: search attributes ${missing} registered in Temporal namespace default`);
    const again = await runCli(['setup', '--no-peers'], { ...stack.env, ...temporal });
    expect(again.stdout).toContain("setup: Temporal namespace default has EchoDB's search attributes");
    expect((await get('/ready', {}, replica.url)).status).toBe(200);
  }, 120_000);

  it('stops setup with the commands to run when Temporal refuses to register them', async () => {
    // SQL visibility holds 3 Int attributes: with 3 others there, Temporal refuses EchoDbEventId.
    const temporal = await bareTemporal({ OtherInt1: 'Int', OtherInt2: 'Int', OtherInt3: 'Int' });
    const refused = await runCli(['setup', '--no-peers'], { ...stack.env, ...temporal });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Temporal refused to register EchoDB's search attributes in namespace default \(.*cannot have more than 3 search attribute of type Int.*\)/);
    for (const [name, type] of [['EchoDbMirror', 'Keyword'], ['EchoDbSchema', 'Keyword'], ['EchoDbTables', 'KeywordList'], ['EchoDbEventId', 'Int']]) {
      expect(refused.stderr).toContain(`temporal operator search-attribute create --namespace default --name ${name} --type ${type}`);
    }
  }, 120_000);

  it('stops setup, and is not ready, when an attribute of EchoDB\'s name has another type', async () => {
    const temporal = await bareTemporal({ EchoDbMirror: 'Text' });
    const refused = await runCli(['setup', '--no-peers'], { ...stack.env, ...temporal });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Temporal namespace default has search attributes of another type: EchoDbMirror \(TEXT, needs KEYWORD\)/);
    const replica = await startApiReplica(temporal);
    const ready = await get('/ready', {}, replica.url);
    expect(ready.status).toBe(503);
    expect(ready.json<Readiness>().failed).toEqual([
      expect.stringMatching(/^temporal: Temporal namespace default lacks EchoDB's search attributes EchoDbSchema, EchoDbTables, EchoDbEventId and has search attributes of another type: EchoDbMirror \(TEXT, needs KEYWORD\)/),
    ]);
  }, 120_000);
});
