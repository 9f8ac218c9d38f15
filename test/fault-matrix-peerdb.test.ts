/**
 * The fault matrix for PeerDB's own failure modes (v0.37.4), as the double reproduces them: each case is one way
 * real PeerDB keeps a mirror where it is, refuses, or answers differently than an optimistic client expects, and
 * each ends in the shared end-state check (test/support/end-state.ts), which also looks for replication slots and
 * publications left behind.
 */
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startVerifyAll } from '../api/verification.js';
import { mirrorNameFor, namingRules } from '../lib/naming.js';
import { defaultKnobs, type RequestLogEntry } from './peerdb-double/index.js';
import type { MirrorEditBody } from './support/end-state.js';
import { expectConverged } from './support/end-state.js';
import type { EchoStack } from './support/echo-stack.js';
import { createTables, ownStack, sleep } from './support/fault-helpers.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';
import { until } from './support/until.js';
import { itWithDouble } from './support/peerdb-under-test.js';

/** Short deadlines: a wait looks at its tables every 2 s and ends 6 s after its last progress. */
const FAST_WAITS = { MIRROR_STALL_TIMEOUT: '6', DESTINATION_CLAIM_WAIT: '30' };

const bodyOf = (request: RequestLogEntry) => (request.body ?? {}) as MirrorEditBody;
/** The successful state changes that sent these tables to a mirror. */
const additionsOf = (requests: RequestLogEntry[], source: string) =>
  requests.filter(
    (r) =>
      r.path === '/v1/mirrors/state_change' &&
      r.status === 200 &&
      (bodyOf(r).flowConfigUpdate?.cdcFlowConfigUpdate?.additionalTables ?? []).some((m) => m.sourceTableIdentifier === source),
  );

async function operations(sql: pg.Client, mirror: string): Promise<string[]> {
  const { rows } = await sql.query<{ operation: string; result: string; tables: string[] }>(
    'SELECT operation, result, tables FROM echodb.mirror_operations WHERE mirror = $1 ORDER BY id',
    [mirror],
  );
  return rows.map((r) => `${r.operation} ${r.result} ${[...r.tables].sort().join(',')}`);
}

const mirrorOf = (stack: EchoStack, table: string, schema = stack.schema) =>
  mirrorNameFor({ schema, table }, namingRules(stack.config));

/** A POST to the Flow API under test, as EchoDB's client would send it. */
async function flowApi<T>(peerdb: EchoStack['peerdb'], path: string, body: unknown): Promise<T> {
  const response = await fetch(`${peerdb.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await response.json()) as T;
}

/** Waits until a session waits for a lock in a statement LIKE `statement`. */
async function untilLockWait(sql: pg.Client, statement: string): Promise<void> {
  const waiting = async () =>
    (await sql.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1", [statement])).rows;
  expect(await until(waiting, (rows) => rows.length > 0, 30_000)).not.toEqual([]);
}

const mirroredTables = (stack: EchoStack) =>
  stack.peerdb.mirrors().flatMap((m) => m.tables.map((t) => t.sourceTableIdentifier)).sort();

describe('PeerDB keeps a mirror where it is', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  itWithDouble('1. cancels a table addition PeerDB can never finish (a table dropped after EchoDB sent it), and adds the tables that exist', async () => {
    const { sql, schema, peerdb } = stack;
    await createTables(sql, schema, ['kept_0', 'kept_1']);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    const mirror = mirrorOf(stack, 'kept_0');
    await stack.waitForVerification('kept_1');

    // PeerDB reads the change 5 s after it answered: time to drop a table it is about to add, even on a busy machine.
    peerdb.knobs.signalDelayMs = 5000;
    try {
      await createTables(sql, schema, ['stays', 'lost']);
      await stack.dispatchPending();
      await until(() => Promise.resolve(additionsOf(peerdb.requests, `${schema}.lost`).length), (n) => n > 0, 30_000);
      await sql.query(`DROP TABLE ${schema}.lost`);
    } finally {
      peerdb.knobs.signalDelayMs = defaultKnobs().signalDelayMs;
    }
    // As PeerDB does, ALTER PUBLICATION ... ADD TABLE failed and was retried, in SNAPSHOT, until EchoDB cancelled.
    const logs = async () =>
      (await flowApi<{ errors: { errorMessage: string }[] }>(peerdb, '/v1/mirrors/logs', { flowJobName: mirror, level: 'error', numPerPage: 50 }))
        .errors.map((e) => e.errorMessage);
    expect(await until(logs, (messages) => messages.some((m) => /failed to alter publication: .*lost.* does not exist/.test(m)), 30_000)).not.toEqual([]);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });

    expect((await stack.waitForVerification('stays'))[0]?.status).toBe('match');
    expect(mirroredTables(stack)).toEqual([`${schema}.kept_0`, `${schema}.kept_1`, `${schema}.stays`]);
    expect(peerdb.requests.filter((r) => r.path === '/v1/flows/cdc/cancel_table_addition' && r.status === 200)).toHaveLength(1);
    expect(await operations(sql, mirror)).toEqual([
      `create succeeded ${schema}.kept_0,${schema}.kept_1`,
      `cancel_addition succeeded ${schema}.lost`,
      `add_tables succeeded ${schema}.stays`,
    ]);
  }, 120_000);

  itWithDouble('1. keeps track of a table PeerDB kept when it cancelled an addition (its load had completed), and takes it out once gone', async () => {
    const { sql, schema, peerdb } = stack;
    const mirror = mirrorOf(stack, 'kept_0');
    // One table loads, the other's load fails and is retried: the mirror stays in SNAPSHOT meanwhile.
    peerdb.knobs.snapshotFails = [`${schema}.slow_load`];
    try {
      await createTables(sql, schema, ['loaded', 'slow_load']);
      await stack.dispatchPending();
      const loadedDone = async () => {
        const status = await flowApi<{ cdcStatus?: { snapshotStatus?: { clones?: { sourceTable: string; fetchCompleted: boolean }[] } } }>(
          peerdb,
          '/v1/mirrors/status',
          { flowJobName: mirror, includeFlowInfo: true },
        );
        return (status.cdcStatus?.snapshotStatus?.clones ?? []).some((c) => c.sourceTable === `${schema}.loaded` && c.fetchCompleted);
      };
      await until(loadedDone, Boolean, 30_000);
      // Dropped once loaded: EchoDB cancels the addition, and PeerDB keeps the table whose load completed.
      const cancels = () => peerdb.requests.filter((r) => r.path === '/v1/flows/cdc/cancel_table_addition' && r.status === 200).length;
      const before = cancels();
      await sql.query(`DROP TABLE ${schema}.loaded`);
      await until(() => Promise.resolve(cancels()), (n) => n > before, 30_000);
      expect(mirroredTables(stack)).toContain(`${schema}.loaded`);
    } finally {
      peerdb.knobs.snapshotFails = [];
    }
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).toEqual([`${schema}.kept_0`, `${schema}.kept_1`, `${schema}.slow_load`, `${schema}.stays`]);
  }, 120_000);

  it('2. leaves a table without a primary key out, with the reason, never breaking its UPDATEs; mirrors it once it has a key, and takes it out when it loses it', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.keyless (id int, note text)`);
    await sql.query(`INSERT INTO ${schema}.keyless VALUES (1, 'a'), (2, 'b')`);
    await stack.dispatchPending();
    const reason = async () =>
      (await sql.query<{ reason: string }>('SELECT reason FROM echodb.unmirrored_tables WHERE schema_name = $1 AND table_name = $2', [schema, 'keyless']))
        .rows[0]?.reason;
    expect(await until(reason, (r) => r !== undefined, 30_000)).toMatch(/^has no primary key and no REPLICA IDENTITY FULL/);
    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).not.toContain(`${schema}.keyless`);
    // Not in a publication: PostgreSQL takes its UPDATEs.
    await sql.query(`UPDATE ${schema}.keyless SET note = 'c' WHERE id = 1`);
    const { rows } = await sql.query<{ skip_reason: string }>(
      "SELECT skip_reason FROM echodb.ddl_events WHERE schema_name = $1 AND table_name = 'keyless' ORDER BY id",
      [schema],
    );
    expect(rows[0]?.skip_reason).toMatch(/no primary key/);

    // Its next ALTER TABLE is an event: with a key, it goes in.
    await sql.query(`ALTER TABLE ${schema}.keyless ADD PRIMARY KEY (id)`);
    await stack.dispatchPending();
    expect((await stack.waitForVerification('keyless'))[0]).toMatchObject({ status: 'match', postgres_count: '2' });
    expect(mirroredTables(stack)).toContain(`${schema}.keyless`);
    expect(await reason()).toBeUndefined();
    await expectConverged(stack, { requireRunning: true });

    // Losing the key again is an ALTER TABLE too: the table leaves its mirror before its writers are refused.
    await sql.query(`ALTER TABLE ${schema}.keyless DROP CONSTRAINT keyless_pkey`);
    await stack.dispatchPending();
    expect(await until(reason, (r) => r !== undefined, 30_000)).toMatch(/^has no primary key/);
    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).not.toContain(`${schema}.keyless`);
    await sql.query(`UPDATE ${schema}.keyless SET note = 'd'`);
  }, 120_000);
});

describe('a mirror that does not move', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  itWithDouble('never waits for ever: past MIRROR_STALL_TIMEOUT it says why where an operator looks, and fails the edit; reconcile finishes it later', async () => {
    const { sql, schema, peerdb } = stack;
    await createTables(sql, schema, ['before']);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    const mirror = mirrorOf(stack, 'before');
    // PeerDB takes the pause and never finishes it: STATUS_PAUSING for good.
    peerdb.knobs.stuck = true;
    try {
      await createTables(sql, schema, ['held']);
      await stack.dispatchPending();
      // While it waits, echodb.mirror_waits says on what (/mirrors and /metrics read it).
      const waiting = await until(
        async () => (await sql.query<{ state: string; operation: string }>('SELECT state, operation FROM echodb.mirror_waits WHERE mirror = $1', [mirror])).rows[0],
        (row) => row?.state === 'STATUS_PAUSING',
        30_000,
      );
      expect(waiting?.operation).toBe('add_tables');
      const failed = await until(
        async () => (await sql.query<{ error: string }>("SELECT error FROM echodb.mirror_operations WHERE mirror = $1 AND result = 'failed'", [mirror])).rows,
        (rows) => rows.length > 0,
        30_000,
      );
      // PeerDB answers, but the mirror does not move: past the deadline the edit fails with the diagnosis.
      expect(failed[0]?.error).toMatch(new RegExp(`^MirrorStalled: mirror ${mirror} has been STATUS_PAUSING for \\d+ s without progress`));
      const logged = stack.worker.logEntries().find((entry) => entry.msg === 'mirror wait stalled');
      expect(logged).toMatchObject({ mirror, operation: 'add_tables', event_ids: [expect.any(String)] });
      await until(
        async () => (await sql.query('SELECT 1 FROM echodb.mirror_waits WHERE mirror = $1', [mirror])).rowCount,
        (count) => count === 0,
        10_000,
      );
    } finally {
      peerdb.knobs.stuck = false;
    }
    // The failed add left `held` out; reconcile (it runs with verify-all and at each leader change) adds it.
    const report = await (await startVerifyAll(stack)).result();
    expect(report.reconcile?.added).toEqual([{ mirror, table: `${schema}.held` }]);
    await expectConverged(stack, { requireRunning: true });
  }, 120_000);
});

describe('PeerDB keeps a new mirror in SETUP', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  itWithDouble('2. drops a mirror whose create stays in SETUP (a table lost its key after EchoDB looked) and creates it again without that table', async () => {
    const { sql, schema, peerdb } = stack;
    await sql.query(`CREATE TABLE ${schema}.wedge_ok (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.wedge_nokey (id int CONSTRAINT wedge_nokey_pk PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.wedge_ok SELECT generate_series(1, 3)`);
    peerdb.knobs.stuck = true;
    try {
      await stack.dispatchPending();
      await until(() => Promise.resolve(peerdb.requests.some((r) => r.path === '/v1/flows/cdc/create' && r.status === 200)), Boolean, 30_000);
      await sql.query(`ALTER TABLE ${schema}.wedge_nokey DROP CONSTRAINT wedge_nokey_pk`);
    } finally {
      peerdb.knobs.stuck = false;
    }
    const mirror = mirrorOf(stack, 'wedge_ok');
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });

    expect(mirroredTables(stack)).toEqual([`${schema}.wedge_ok`]);
    expect(await operations(sql, mirror)).toEqual([
      `drop succeeded ${schema}.wedge_nokey,${schema}.wedge_ok`,
      `create succeeded ${schema}.wedge_ok`,
    ]);
    const { rows } = await sql.query('SELECT reason FROM echodb.unmirrored_tables WHERE table_name = $1', ['wedge_nokey']);
    expect(rows).toHaveLength(1);
    expect((await stack.waitForVerification('wedge_ok'))[0]?.status).toBe('match');
  }, 120_000);
});

describe('PeerDB keeps a new mirror in SNAPSHOT', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  it('1. drops a mirror whose create stays in SNAPSHOT (a table dropped before PeerDB created the publication) and creates it again without that table', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.snap_ok (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.snap_gone (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.snap_ok SELECT generate_series(1, 3)`);
    const mirror = mirrorOf(stack, 'snap_ok');
    // Held by a transaction, `snap_gone` keeps PeerDB's CREATE PUBLICATION waiting; then it is dropped, and PeerDB
    // retries the publication (SetupReplication) a minute apart while the mirror shows STATUS_SNAPSHOT.
    const locker = await stack.database.connect();
    try {
      await locker.query(`BEGIN; LOCK TABLE ${schema}.snap_gone IN ACCESS EXCLUSIVE MODE`);
      await stack.dispatchPending();
      await untilLockWait(sql, 'CREATE PUBLICATION%');
      await locker.query(`DROP TABLE ${schema}.snap_gone`);
      await locker.query('COMMIT');
    } finally {
      await locker.end();
    }
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });

    expect(mirroredTables(stack)).toEqual([`${schema}.snap_ok`]);
    expect(await until(() => operations(sql, mirror), (ops) => ops.length >= 2, 30_000)).toEqual([
      `drop succeeded ${schema}.snap_gone,${schema}.snap_ok`,
      `create succeeded ${schema}.snap_ok`,
    ]);
    expect((await stack.waitForVerification('snap_ok'))[0]?.status).toBe('match');
  }, 120_000);
});

describe('a create whose answer is lost', () => {
  let stack: EchoStack;
  // Time enough between the lost answer and the activity's retry to drop the table.
  ownStack((started) => (stack = started), { ...FAST_WAITS, RETRY_DELAY: '3' });

  itWithDouble('drops the mirror PeerDB made when its only table is renamed by the next attempt, then mirrors the new name', async () => {
    const { sql, schema } = stack;
    const creates = () => stack.peerdb.requests.filter((r) => r.path === '/v1/flows/cdc/create');
    await sql.query(`CREATE TABLE ${schema}.lost_answer (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.lost_answer SELECT generate_series(1, 4)`);
    const mirror = mirrorOf(stack, 'lost_answer');
    // PeerDB creates the mirror, and every answer to it and to the client's retries is lost until the breaker
    // opens (PEERDB_FAILURE_THRESHOLD, 3 here): the activity's attempt fails with the mirror made.
    stack.peerdb.knobs.loseAnswers = { path: '/v1/flows/cdc/create', count: 100 };
    await stack.dispatchPending();
    await until(() => Promise.resolve(creates()), (requests) => requests.length >= 3, 30_000);
    expect(stack.peerdb.mirrors().map((m) => m.name)).toContain(mirror);
    // Before the next attempt (RETRY_DELAY later) the table takes another name (the 10-minute soak's case).
    await sql.query(`ALTER TABLE ${schema}.lost_answer RENAME TO lost_renamed`);
    stack.peerdb.knobs.loseAnswers = undefined;
    await stack.dispatchPending();

    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).toEqual([`${schema}.lost_renamed`]);
    expect((await stack.waitForVerification('lost_renamed'))[0]?.status).toBe('match');
  }, 120_000);
});

describe('MISSING_REPLICA_IDENTITY=set-full', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), { ...FAST_WAITS, MISSING_REPLICA_IDENTITY: 'set-full' });

  it('2. gives a table without a key REPLICA IDENTITY FULL and mirrors it; its UPDATEs still work', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.full_identity (at timestamptz, what text)`);
    await sql.query(`INSERT INTO ${schema}.full_identity SELECT now() + g * interval '1 s', 'event ' || g FROM generate_series(1, 4) g`);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).toEqual([`${schema}.full_identity`]);
    const { rows } = await sql.query<{ identity: string }>(
      `SELECT relreplident AS identity FROM pg_class WHERE oid = '${schema}.full_identity'::regclass`,
    );
    expect(rows[0]?.identity).toBe('f');
    await sql.query(`UPDATE ${schema}.full_identity SET what = 'changed'`);
    expect((await stack.waitForVerification('full_identity'))[0]).toMatchObject({ status: 'match', postgres_count: '4' });

    // A long transaction reading the next one: the ALTER gives up its lock wait after 3 s and is tried again, so
    // it never queues for long in front of the table's other readers; it lands once the transaction ends.
    await sql.query(`CREATE TABLE ${schema}.busy (at timestamptz)`);
    const reader = await stack.database.connect();
    await reader.query(`BEGIN; SELECT count(*) FROM ${schema}.busy`);
    let longestWaitMs = 0;
    try {
      await stack.dispatchPending();
      for (const end = Date.now() + 10_000; Date.now() < end; await sleep(250)) {
        const { rows } = await sql.query<{ ms: number }>(
          `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start) * 1000), 0)::float8 AS ms
             FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%REPLICA IDENTITY FULL%'`,
        );
        longestWaitMs = Math.max(longestWaitMs, rows[0]!.ms);
      }
      expect(longestWaitMs).toBeGreaterThan(0);
      expect(longestWaitMs).toBeLessThan(4000);
    } finally {
      await reader.query('COMMIT');
    }
    await expectConverged(stack, { requireRunning: true });
    expect(mirroredTables(stack)).toEqual([`${schema}.busy`, `${schema}.full_identity`]);
  }, 120_000);
});

describe('PeerDB cannot reach PostgreSQL for a while', () => {
  let stack: EchoStack;
  /** PostgreSQL as PeerDB reaches it (POSTGRES_PEER_PORT); EchoDB reaches it directly. */
  let proxy: TcpProxy;
  ownStack(
    (started) => (stack = started),
    (schema) => ({
      ...FAST_WAITS,
      SYNC_SCHEMA: `${schema},${schema}_b`,
      POSTGRES_PEER_HOST: '127.0.0.1',
      POSTGRES_PEER_PORT: String(proxy.port),
    }),
    {
      beforeSetup: async (sql, schema) => {
        await sql.query(`CREATE SCHEMA ${schema}_b`);
        const { host, port } = sql as unknown as { host: string; port: number };
        proxy = await startTcpProxy({ host, port });
      },
    },
  );
  afterAll(() => proxy?.close());

  itWithDouble('3. and 4. waits out peers PeerDB cannot validate (400) and a create it cannot validate (500 invalid mirror), as outages', async () => {
    const { sql, schema, peerdb } = stack;
    await proxy.refuse();
    try {
      await createTables(sql, schema, ['reached_late']);
      await stack.dispatchPending();
      // peers/create connects to the database: FailedPrecondition, HTTP 400, more than once.
      await until(
        () => Promise.resolve(peerdb.requests.filter((r) => r.path === '/v1/peers/create' && r.status === 400).length),
        (n) => n >= 2,
        30_000,
      );
    } finally {
      await proxy.accept();
    }
    await expectConverged(stack, { requireRunning: true });

    // A second schema's mirror: PeerDB can reach the database while EchoDB ensures the peers, and no longer when
    // it validates the create (each request takes 1 s here, so the test can cut in between).
    const from = peerdb.requests.length;
    peerdb.knobs.latencyMs = 1000;
    try {
      await createTables(sql, `${schema}_b`, ['second_mirror']);
      await stack.dispatchPending();
      await until(() => Promise.resolve(peerdb.requests.slice(from).some((r) => r.path === '/v1/flows/cdc/create')), Boolean, 30_000);
      await proxy.refuse();
      const refused = await until(
        () => Promise.resolve(peerdb.requests.slice(from).filter((r) => r.path === '/v1/flows/cdc/create' && r.status === 500)),
        (requests) => requests.length >= 2,
        30_000,
      );
      expect(refused.length).toBeGreaterThanOrEqual(2);
    } finally {
      peerdb.knobs.latencyMs = 0;
      await proxy.accept();
    }
    // Maintenance mode: creates are 500, state changes 503; waited out too.
    peerdb.knobs.maintenance = true;
    const beforeMaintenance = peerdb.requests.length;
    await createTables(sql, schema, ['during_maintenance']);
    await stack.dispatchPending();
    // Until EchoDB has met the maintenance mode, more than once.
    await until(
      () => Promise.resolve(peerdb.requests.slice(beforeMaintenance).filter((r) => r.status === 500 || r.status === 503).length),
      (refused) => refused > 1,
      30_000,
    );
    peerdb.knobs.maintenance = false;
    await expectConverged(stack, { schemas: [schema, `${schema}_b`], requireRunning: true });
    const { rows } = await sql.query("SELECT operation, error FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows).toEqual([]);
  }, 150_000);
});

describe('one change per edit, read lightly', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  itWithDouble('5. and 8. sends a change to a paused mirror once, as one signal, even when PeerDB reads it late, and polls without flow info', async () => {
    const { sql, schema, peerdb } = stack;
    await createTables(sql, schema, ['first']);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    const from = peerdb.requests.length;
    // PeerDB answers before its workflow reads the signal; here it reads it 1 s later (several of EchoDB's polls).
    peerdb.knobs.signalDelayMs = 1000;
    try {
      await createTables(sql, schema, ['second', 'third']);
      await stack.dispatchPending();
      await expectConverged(stack, { requireRunning: true });
    } finally {
      peerdb.knobs.signalDelayMs = defaultKnobs().signalDelayMs;
    }
    const during = peerdb.requests.slice(from);
    const changes = during.filter((r) => r.path === '/v1/mirrors/state_change' && bodyOf(r).flowConfigUpdate !== undefined);
    expect(changes.map((r) => [r.status, bodyOf(r).requestedFlowState])).toEqual([[200, 'STATUS_PAUSED']]);
    expect(additionsOf(during, `${schema}.second`)).toHaveLength(1);
    // Status: a few calls with includeFlowInfo (at each decision), the polling without.
    const statuses = during.filter((r) => r.path === '/v1/mirrors/status');
    const heavy = statuses.filter((r) => (r.body as { includeFlowInfo?: boolean }).includeFlowInfo === true);
    expect(statuses.length - heavy.length).toBeGreaterThan(heavy.length);
    expect(heavy.length).toBeLessThanOrEqual(8);
  }, 90_000);
});

describe('drops and creates as PeerDB times them', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  itWithDouble('6. drops a failed mirror once, however long PeerDB takes within the request, without opening the breaker', async () => {
    const { sql, schema, peerdb } = stack;
    peerdb.knobs.snapshotFails = [`${schema}.failing_load`];
    // Longer than PEERDB_REQUEST_TIMEOUT (2 s): PeerDB drops a failed mirror within the request.
    peerdb.knobs.failedDropMs = 5000;
    const mirror = mirrorOf(stack, 'failing_load');
    try {
      await createTables(sql, schema, ['failing_load']);
      await sql.query(`INSERT INTO ${schema}.failing_load SELECT generate_series(1, 4)`);
      await stack.dispatchPending();
      const drop = await until(
        () => Promise.resolve(peerdb.requests.find((r) => r.path === '/v1/mirrors/state_change' && bodyOf(r).requestedFlowState === 'STATUS_TERMINATING')),
        (request) => request !== undefined,
        30_000,
      );
      // The next create of it loads fine.
      peerdb.knobs.snapshotFails = [];
      await until(() => Promise.resolve(drop!.status), (status) => status === 200, 30_000);
    } finally {
      peerdb.knobs.snapshotFails = [];
      peerdb.knobs.failedDropMs = defaultKnobs().failedDropMs;
    }
    await expectConverged(stack, { requireRunning: true });
    expect((await stack.waitForVerification('failing_load'))[0]).toMatchObject({ status: 'match', postgres_count: '4' });
    const drops = peerdb.requests.filter((r) => r.path === '/v1/mirrors/state_change' && bodyOf(r).requestedFlowState === 'STATUS_TERMINATING');
    expect(drops.map((r) => r.status)).toEqual([200]);
    expect(stack.worker.lines.some((line) => line.includes('circuit breaker peerdb_api is open'))).toBe(false);
    expect(await operations(sql, mirror)).toEqual([
      `drop succeeded ${schema}.failing_load`,
      `create succeeded ${schema}.failing_load`,
    ]);
  }, 120_000);

  itWithDouble('7. creates a mirror again right after dropping it, waiting while PeerDB answers 409 "workflow already exists for flow"', async () => {
    const { sql, schema, peerdb } = stack;
    await sql.query(`DROP TABLE ${schema}.failing_load`);
    await createTables(sql, schema, ['replacement']);
    // After the drop's 404, PeerDB's workflow ends 3 s later: the create in between is refused.
    peerdb.knobs.dropLingerMs = 3000;
    const from = peerdb.requests.length;
    try {
      await stack.dispatchPending();
      await expectConverged(stack, { requireRunning: true });
    } finally {
      peerdb.knobs.dropLingerMs = defaultKnobs().dropLingerMs;
    }
    const creates = peerdb.requests.slice(from).filter((r) => r.path === '/v1/flows/cdc/create');
    expect(creates.at(-1)?.status).toBe(200);
    expect(creates.some((r) => r.status === 409)).toBe(true);
    expect(mirroredTables(stack)).toEqual([`${schema}.replacement`]);
    const { rows } = await sql.query("SELECT operation, error FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows).toEqual([]);
  }, 120_000);
});

describe('names PeerDB reduces', () => {
  let stack: EchoStack;
  ownStack((started) => (stack = started), FAST_WAITS);

  it('9. mirrors two tables whose clone job names collide (clones run one at a time, as EchoDB leaves PeerDB\'s default)', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}."clone-name" (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}."clone_name" (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}."clone-name" SELECT generate_series(1, 2)`);
    await sql.query(`INSERT INTO ${schema}."clone_name" SELECT generate_series(1, 3)`);
    await stack.dispatchPending();
    await expectConverged(stack, { requireRunning: true });
    expect((await stack.waitForVerification('clone-name'))[0]).toMatchObject({ status: 'match', postgres_count: '2' });
    expect((await stack.waitForVerification('clone_name'))[0]).toMatchObject({ status: 'match', postgres_count: '3' });
  }, 90_000);
});

describe('a table moved between two watched schemas', () => {
  let stack: EchoStack;
  ownStack(
    (started) => (stack = started),
    (schema) => ({ ...FAST_WAITS, SYNC_SCHEMA: `${schema},${schema}_b` }),
    { beforeSetup: (sql, schema) => sql.query(`CREATE SCHEMA ${schema}_b`).then(() => undefined) },
  );

  it('10. lands in the other schema\'s mirror once the first releases its ClickHouse table, without reconcile', async () => {
    const { sql, schema } = stack;
    const schemas = [schema, `${schema}_b`];
    await createTables(sql, schema, ['moved', 'stays']);
    await sql.query(`INSERT INTO ${schema}.moved SELECT generate_series(1, 6)`);
    await stack.dispatchPending();
    await expectConverged(stack, { schemas, requireRunning: true });
    await stack.waitForVerification('moved');

    await sql.query(`ALTER TABLE ${schema}.moved SET SCHEMA ${schema}_b`);
    await stack.dispatchPending();
    await expectConverged(stack, { schemas, requireRunning: true });
    expect(mirroredTables(stack)).toEqual([`${schema}.stays`, `${schema}_b.moved`]);
    const { rows } = await sql.query("SELECT operation, error FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows).toEqual([]);
    const verified = async () =>
      (await sql.query<{ status: string; postgres_count: string }>(
        'SELECT status, postgres_count FROM echodb.verifications WHERE schema_name = $1 AND table_name = $2',
        [`${schema}_b`, 'moved'],
      )).rows;
    expect((await until(verified, (rows) => rows.length > 0, 30_000))[0]).toEqual({ status: 'match', postgres_count: '6' });
  }, 120_000);

  it('10. records no failure for a table that moved to the other schema, whose mirror claimed the destination, between its inspection and its claim', async () => {
    const { sql, schema } = stack;
    const schemas = [schema, `${schema}_b`];
    await createTables(sql, schema, ['anchor_a']);
    await createTables(sql, `${schema}_b`, ['anchor_b']);
    await stack.dispatchPending();
    await expectConverged(stack, { schemas, requireRunning: true });

    // The other schema's claim of `quick`, not yet committed: the first mirror's claim waits on it.
    const otherMirror = mirrorOf(stack, 'quick', `${schema}_b`);
    const claimer = await stack.database.connect();
    try {
      await claimer.query('BEGIN');
      await claimer.query('INSERT INTO echodb.destination_claims (destination, source, mirror) VALUES ($1, $2, $3)', [
        'quick',
        `${schema}_b.quick`,
        otherMirror,
      ]);
      await createTables(sql, schema, ['quick']);
      await stack.dispatchPending();
      await untilLockWait(sql, '%destination_claims%');
      // Inspected, not yet claimed: it moves, and the other schema's claim lands first.
      await sql.query(`ALTER TABLE ${schema}.quick SET SCHEMA ${schema}_b`);
      await claimer.query('COMMIT');
    } finally {
      await claimer.end();
    }
    await stack.dispatchPending();
    await expectConverged(stack, { schemas, requireRunning: true });
    expect(mirroredTables(stack)).toContain(`${schema}_b.quick`);
    const { rows } = await sql.query("SELECT operation, error FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows).toEqual([]);
  }, 120_000);

  itWithDouble('10. records no failure for a table that moved back while the other schema\'s mirror waited for its destination', async () => {
    const { sql, schema, peerdb } = stack;
    const schemas = [schema, `${schema}_b`];
    await createTables(sql, schema, ['back']);
    await stack.dispatchPending();
    await expectConverged(stack, { schemas, requireRunning: true });

    // PeerDB reads state changes late, so the first mirror takes seconds to let `back` go.
    peerdb.knobs.signalDelayMs = 4000;
    try {
      const since = Date.now();
      await sql.query(`ALTER TABLE ${schema}.back SET SCHEMA ${schema}_b`);
      await stack.dispatchPending();
      await stack.worker.waitForLine(/waiting for ClickHouse destinations held by tables that left/, 30_000, since);
      // Back where it was: its holder exists again, and the waiting table is gone.
      await sql.query(`ALTER TABLE ${schema}_b.back SET SCHEMA ${schema}`);
      await stack.dispatchPending();
      await expectConverged(stack, { schemas, requireRunning: true });
    } finally {
      peerdb.knobs.signalDelayMs = defaultKnobs().signalDelayMs;
    }
    expect(mirroredTables(stack)).toContain(`${schema}.back`);
    const { rows } = await sql.query("SELECT operation, error FROM echodb.mirror_operations WHERE result = 'failed'");
    expect(rows).toEqual([]);
  }, 120_000);
});

