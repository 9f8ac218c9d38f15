import type { temporal } from '@temporalio/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { mirrorWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { until } from './support/until.js';
import { recordingHistories, saveHistory } from './support/histories.js';
import { itWithDouble } from './support/peerdb-under-test.js';

const quote = pg.escapeIdentifier;

/** The Flow API requests of one kind the double received, e.g. creates. */
function requests(stack: EchoStack, path: string, predicate: (body: Record<string, unknown>) => boolean = () => true) {
  return stack.peerdb.requests.filter(
    (r) => r.path === path && (r.status ?? 0) < 300 && predicate((r.body ?? {}) as Record<string, unknown>),
  );
}

const tableAdditions = (stack: EchoStack) =>
  requests(stack, '/v1/mirrors/state_change', (body) => JSON.stringify(body).includes('additionalTables'));

/** The creates and table additions that put `schema.table` into a mirror. */
const requestsAdding = (stack: EchoStack, table: string) =>
  [...requests(stack, '/v1/flows/cdc/create'), ...tableAdditions(stack)].filter((r) =>
    JSON.stringify(r.body).includes(`"${stack.schema}.${table}"`),
  );

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/**
 * The workflow has done all it does about the last signal it received: a workflow task completed after it, and no
 * workflow task, activity, timer or child workflow is open. A run that received no signal started after it: the run
 * before handled it, and continued as new only then.
 */
function handledLastSignal(history: temporal.api.history.v1.IHistory): boolean {
  const all = history.events ?? [];
  const signal = all.findLastIndex((event) => event.workflowExecutionSignaledEventAttributes);
  if (signal === -1) return true;
  const events = all.slice(signal + 1);
  const count = (has: (event: HistoryEvent) => unknown) => events.filter(has).length;
  // Opened before the signal and closed after it counts below 0: what matters is that nothing is open.
  const open = [
    count((e) => e.workflowTaskScheduledEventAttributes) -
      count((e) => e.workflowTaskCompletedEventAttributes || e.workflowTaskFailedEventAttributes || e.workflowTaskTimedOutEventAttributes),
    count((e) => e.activityTaskScheduledEventAttributes) -
      count((e) => e.activityTaskCompletedEventAttributes || e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes),
    count((e) => e.timerStartedEventAttributes) - count((e) => e.timerFiredEventAttributes || e.timerCanceledEventAttributes),
    count((e) => e.startChildWorkflowExecutionInitiatedEventAttributes) -
      count((e) => e.childWorkflowExecutionCompletedEventAttributes || e.childWorkflowExecutionFailedEventAttributes ||
        e.startChildWorkflowExecutionFailedEventAttributes || e.childWorkflowExecutionTimedOutEventAttributes ||
        e.childWorkflowExecutionCanceledEventAttributes || e.childWorkflowExecutionTerminatedEventAttributes),
  ];
  return count((e) => e.workflowTaskCompletedEventAttributes) > 0 && open.every((n) => n <= 0);
}

/**
 * Makes sure the schema's mirror exists, with `base` in it, for a test about what happens to a mirror that runs
 * (an edit, not a create), whichever tests ran before it.
 */
async function ensureMirror(stack: EchoStack): Promise<void> {
  await stack.sql.query(`CREATE TABLE IF NOT EXISTS ${stack.schema}.base (id int PRIMARY KEY)`);
  await stack.dispatchPending();
  await stack.waitForVerification('base');
}

/** With ECHODB_RECORD_HISTORIES=1, keeps this run's histories as replay fixtures (test/replay.test.ts). */
async function recordHistories(stack: EchoStack, name: string, verifiedTable?: string): Promise<void> {
  if (!recordingHistories) return;
  const mirror = stack.peerdb.mirrors()[0]?.name ?? `echodb_${stack.schema}`;
  // The run that did the most: the latest may have just continued as new, with nothing in it yet.
  const runs = [];
  for await (const run of stack.temporal.workflow.list({ query: `WorkflowId = '${mirrorWorkflowId(mirror)}'` })) runs.push(run);
  const longest = runs.sort((a, b) => b.historyLength - a.historyLength)[0];
  await saveHistory(stack.temporal, mirrorWorkflowId(mirror), `mirror-${name}`, { runId: longest?.runId });
  if (verifiedTable) {
    const [verification] = await stack.verifications(verifiedTable);
    if (!verification) return;
    // Recorded by its batch (verifyTablesWorkflow), or by a verify workflow of its own that a batch started.
    const batch = verification.workflow_id.startsWith('echodb-verify-tables:')
      ? verification.workflow_id
      : (await stack.temporal.workflow.getHandle(verification.workflow_id).describe()).parentExecution?.workflowId;
    if (batch !== verification.workflow_id) await saveHistory(stack.temporal, verification.workflow_id, `verify-${name}`);
    if (batch) await saveHistory(stack.temporal, batch, `verify-tables-${name}`);
  }
}

/** One EchoDB stack for the enclosing describe block: started before its tests, closed (histories kept) after. */
function withEchoStack(
  options: { history: string; verifiedTable?: string; overrides?: Parameters<typeof startEchoStack>[0] },
  use: (stack: EchoStack) => void,
): void {
  let stack: EchoStack | undefined;
  beforeAll(async () => {
    stack = await startEchoStack(options.overrides);
    use(stack);
  });
  afterAll(async () => {
    if (!stack) return;
    await recordHistories(stack, options.history, options.verifiedTable);
    await stack.close();
  });
}

describe('per-schema strategy (the default)', () => {
  let stack: EchoStack;
  let mirror: string;

  // A second watched schema, for tables whose names meet this one's.
  const overrides = (schema: string) => ({ SYNC_SCHEMA: `${schema},${schema}_b` });
  withEchoStack({ history: 'per-schema', verifiedTable: 'drifting', overrides }, (started) => {
    stack = started;
    mirror = `echodb_${started.schema}`;
  });

  it('mirrors a created table and verifies it with equal counts', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.customers (id bigint PRIMARY KEY, name text)`);
    await sql.query(`INSERT INTO ${schema}.customers SELECT g, 'c' || g FROM generate_series(1, 250) g`);
    await stack.dispatchPending();

    const [verification] = await stack.waitForVerification('customers');
    expect(verification).toMatchObject({
      mirror,
      destination: 'customers',
      status: 'match',
      postgres_count: '250',
      clickhouse_count: '250',
    });
    expect(await stack.clickhouse.liveCount('customers')).toBe(250);
    const state = await stack.mirrorState(mirror);
    expect(state.tables.map((t) => t.table)).toContain('customers');
    expect(requests(stack, '/v1/flows/cdc/create', (body) => JSON.stringify(body).includes(`"${mirror}"`))).toHaveLength(1);
    expect(requestsAdding(stack, 'customers')).toHaveLength(1);
  });

  it('coalesces tables created within the window into one edit, on one replication slot', async () => {
    const { sql, schema } = stack;
    await ensureMirror(stack);
    const editsBefore = tableAdditions(stack).length;
    await sql.query(`CREATE TABLE ${schema}.invoices (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.payments (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    await stack.waitForVerification('invoices');
    await stack.waitForVerification('payments');
    const edits = tableAdditions(stack).slice(editsBefore);
    expect(edits).toHaveLength(1);
    expect(JSON.stringify(edits[0]?.body)).toContain('invoices');
    expect(JSON.stringify(edits[0]?.body)).toContain('payments');
    expect(stack.peerdb.slotNames()).toEqual([`peerflow_slot_${mirror}`]);
  });

  it('applies the same event delivered twice once', async () => {
    const { sql, schema } = stack;
    await ensureMirror(stack);
    await sql.query(`CREATE TABLE ${schema}.twice (id int PRIMARY KEY)`);
    const editsBefore = tableAdditions(stack).length;
    const [event] = (await sql.query("SELECT * FROM echodb.ddl_events WHERE status = 'pending'")).rows as { id: string }[];
    await stack.dispatchPending();
    await sql.query("UPDATE echodb.ddl_events SET status = 'pending' WHERE id = $1", [event?.id]);
    await stack.dispatchPending();

    await stack.waitForVerification('twice');
    // Until the workflow has handled the second delivery, whatever it did for it.
    await until(() => stack.temporal.workflow.getHandle(mirrorWorkflowId(mirror)).fetchHistory(), handledLastSignal);
    expect(tableAdditions(stack).slice(editsBefore)).toHaveLength(1);
    expect(await stack.verifications('twice')).toHaveLength(1);
  });

  it('takes a dropped table out of its mirror and renames its destination aside', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.retired (id int PRIMARY KEY)`);
    await stack.dispatchPending();
    await stack.waitForVerification('retired');
    await sql.query(`DROP TABLE ${schema}.retired`);
    await stack.dispatchPending();

    await until(() => stack.mirrorState(mirror), (state) => !state.tables.some((t) => t.table === 'retired'));
    const mirrorTables = stack.peerdb.mirrors().find((m) => m.name === mirror)?.tables ?? [];
    expect(mirrorTables.map((t) => t.sourceTableIdentifier)).not.toContain(`${schema}.retired`);
    const tables = await until(() => stack.clickhouse.tables(), (names) => !names.includes('retired'));
    expect(tables.filter((name) => /^retired_dropped_\d{14}$/.test(name))).toHaveLength(1);
  });

  it('ends create, drop, create of one name with the new table mirrored once, from a fresh snapshot', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.phoenix (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.phoenix SELECT generate_series(1, 10)`);
    await sql.query(`DROP TABLE ${schema}.phoenix`);
    await sql.query(`CREATE TABLE ${schema}.phoenix (id int PRIMARY KEY, note text)`);
    await sql.query(`INSERT INTO ${schema}.phoenix SELECT generate_series(1, 3)`);
    await stack.dispatchPending();

    const [verification] = await stack.waitForVerification('phoenix');
    expect(verification).toMatchObject({ status: 'match', postgres_count: '3', clickhouse_count: '3' });
    const state = await stack.mirrorState(mirror);
    expect(state.tables.filter((t) => t.table === 'phoenix')).toHaveLength(1);
  });

  it('reports a real mismatch with both counts after retrying it', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.drifting (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.drifting SELECT generate_series(1, 5)`);
    await stack.dispatchPending();
    // The double copies snapshots but does no CDC: rows inserted after the snapshot never reach ClickHouse.
    await until(() => stack.clickhouse.liveCount('drifting').catch(() => -1), (n) => n === 5);
    await sql.query(`INSERT INTO ${schema}.drifting SELECT generate_series(6, 8)`);

    const [verification] = await stack.waitForVerification('drifting');
    expect(verification).toMatchObject({
      status: 'mismatch',
      postgres_count: '8',
      clickhouse_count: '5',
      attempts: 3,
    });
  });

  it('mirrors tables with adversarial names end to end', async () => {
    const { sql, schema } = stack;
    const names = ['Mixed Case', 'with "quotes"', 'ünïcødé_表', 'select', "it's", 'x'.repeat(63)];
    for (const name of names) {
      await sql.query(`CREATE TABLE ${schema}.${quote(name)} (id int PRIMARY KEY)`);
      await sql.query(`INSERT INTO ${schema}.${quote(name)} VALUES (1), (2)`);
    }
    await stack.dispatchPending();

    for (const name of names) {
      const [verification] = await stack.waitForVerification(name);
      expect(verification).toMatchObject({ status: 'match', postgres_count: '2', clickhouse_count: '2', destination: name });
    }
    expect(await stack.clickhouse.tables()).toEqual(expect.arrayContaining(names));
  });

  it('refuses, before creating anything, a second source table that would land in the same ClickHouse table', async () => {
    const { sql, schema } = stack;
    const other = `${schema}_b`;
    await sql.query(`CREATE TABLE ${schema}.accounts (id int PRIMARY KEY)`);
    await sql.query(`INSERT INTO ${schema}.accounts SELECT generate_series(1, 7)`);
    await stack.dispatchPending();
    await stack.waitForVerification('accounts');
    await sql.query(`CREATE SCHEMA ${other}`);
    await sql.query(`CREATE TABLE ${other}.accounts (id int PRIMARY KEY)`);
    const createsBefore = requests(stack, '/v1/flows/cdc/create').length;
    await stack.dispatchPending();

    const { rows } = await until(
      () => sql.query<{ mirror: string; error: string }>(
        "SELECT mirror, error FROM echodb.mirror_operations WHERE result = 'failed' AND $1 = ANY(tables)",
        [`${other}.accounts`],
      ),
      (result) => result.rows.length > 0,
    );
    expect(rows[0]?.mirror).toBe(`echodb_${other}`);
    expect(rows[0]?.error).toContain(`NameCollision: ClickHouse table accounts already receives ${schema}.accounts`);
    expect(requests(stack, '/v1/flows/cdc/create')).toHaveLength(createsBefore);
    expect(await stack.clickhouse.liveCount('accounts')).toBe(7);
  });

  it('lets the Temporal UI find the workflows of a mirror and of a table by search attribute', async () => {
    const { temporal, schema, sql } = stack;
    await ensureMirror(stack);
    await sql.query(`CREATE TABLE ${schema}.findable (id int PRIMARY KEY)`);
    await stack.dispatchPending();
    await stack.waitForVerification('findable');
    const list = async (query: string) => {
      const ids: string[] = [];
      for await (const execution of temporal.workflow.list({ query })) ids.push(execution.workflowId);
      return ids;
    };
    const ofMirror = await until(() => list(`EchoDbMirror = '${mirror}'`), (ids) => ids.length > 1);
    expect(ofMirror).toContain(`echodb-mirror:${mirror}`);
    // Each edit's tables are verified by a batch workflow, named after its first table.
    expect(ofMirror.filter((id) => id.startsWith(`echodb-verify-tables:${mirror}:`)).length).toBeGreaterThan(1);
    // The batch that verified the table, and the mirror's workflow while the table is the last it changed.
    const ofTable = await until(() => list(`EchoDbTables = '${schema}.findable'`), (ids) => ids.some((id) => id.startsWith('echodb-verify')));
    expect(ofTable.filter((id) => id.startsWith('echodb-verify'))).toEqual([
      expect.stringMatching(new RegExp(`^echodb-verify-tables:${mirror}:\\d+:${schema}\\.findable$`)),
    ]);
    expect(ofTable.filter((id) => !id.startsWith('echodb-verify')).every((id) => id === `echodb-mirror:${mirror}`)).toBe(true);
  });

  it('leaves out a table whose name PeerDB cannot take (a dot), and mirrors the rest', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}."dotted.name" (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.after_dotted (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    await stack.waitForVerification('after_dotted');
    const state = await stack.mirrorState(mirror);
    expect(state.tables.map((t) => t.table)).not.toContain('dotted.name');
    expect(await stack.verifications('dotted.name')).toEqual([]);
  });

  it('continues as new when Temporal suggests it, carrying its tables into the next run', async () => {
    // The test server suggests continue-as-new after 150 events (test/servers/temporal.ts): tables are added, a
    // few at a time, until the mirror's workflow has continued as new.
    const { sql, schema } = stack;
    await ensureMirror(stack);
    const continuedRuns = async () => {
      let count = 0;
      for await (const execution of stack.temporal.workflow.list({ query: `WorkflowId = 'echodb-mirror:${mirror}'` })) {
        if (execution.status.name === 'CONTINUED_AS_NEW') count++;
      }
      return count;
    };
    const added: string[] = [];
    for (let round = 0; round < 10 && (added.length === 0 || (await continuedRuns()) === 0); round++) {
      const names = [1, 2, 3].map((n) => `carried_${round}_${n}`);
      for (const name of names) await sql.query(`CREATE TABLE ${schema}.${name} (id int PRIMARY KEY)`);
      await stack.dispatchPending();
      for (const name of names) await stack.waitForVerification(name);
      added.push(...names);
    }
    expect(await until(continuedRuns, (count) => count > 0)).toBeGreaterThan(0);
    const state = await stack.mirrorState(mirror);
    expect(state.tables.map((t) => t.table)).toEqual(expect.arrayContaining(['base', ...added]));
    expect(state.exists).toBe(true);
  });
});

describe('per-table strategy (the original behaviour)', () => {
  let stack: EchoStack;

  withEchoStack({ history: 'per-table', overrides: { MIRROR_STRATEGY: 'per-table' } }, (started) => (stack = started));

  it('gives each table its own mirror named <table>_mirror, and drops the mirror with the table', async () => {
    const { sql, schema } = stack;
    const table = `orders_${schema.slice(2)}`;
    await sql.query(`CREATE TABLE ${schema}.${table} (id int PRIMARY KEY)`);
    await sql.query(`CREATE TABLE ${schema}.${table}_items (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    await stack.waitForVerification(table);
    await stack.waitForVerification(`${table}_items`);
    expect(stack.peerdb.mirrors().map((m) => m.name).sort()).toEqual([`${table}_items_mirror`, `${table}_mirror`]);
    expect(stack.peerdb.slotNames()).toHaveLength(2);

    await sql.query(`DROP TABLE ${schema}.${table}_items`);
    await stack.dispatchPending();
    await until(() => Promise.resolve(stack.peerdb.mirrors().map((m) => m.name)), (names) => names.length === 1);
    expect(stack.peerdb.mirrors().map((m) => m.name)).toEqual([`${table}_mirror`]);
  });
});

describe('when PeerDB misbehaves', () => {
  let stack: EchoStack;
  let mirror: string;

  withEchoStack({ history: 'peerdb-errors', verifiedTable: 'patient' }, (started) => {
    stack = started;
    mirror = `echodb_${started.schema}`;
  });

  itWithDouble('retries through 503s, opening and then closing the breaker, without duplicating the operation', async () => {
    const { sql, schema, peerdb } = stack;
    // Counted, not timed: three in a row open the breaker (PEERDB_FAILURE_THRESHOLD) however late the calls come.
    peerdb.knobs.failNext = { count: 3, status: 503 };
    await sql.query(`CREATE TABLE ${schema}.patient (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    await stack.worker.waitForLine(/circuit breaker peerdb_api is open/, 10_000);
    const [verification] = await stack.waitForVerification('patient', 1, 60_000);
    expect(verification?.status).toBe('match');
    const transitions = stack.worker.logEntries().filter((entry) => entry.msg.startsWith('circuit breaker peerdb_api'));
    expect(transitions[0]).toMatchObject({ msg: 'circuit breaker peerdb_api is open', breaker: 'peerdb_api', state: 'open' });
    expect(transitions.at(-1)?.msg).toBe('circuit breaker peerdb_api is closed');
    expect(requestsAdding(stack, 'patient')).toHaveLength(1);
    const failed = peerdb.requests.filter((r) => r.status === 503).length;
    expect(failed).toBe(3);
  });

  itWithDouble('records a 400 as a failed operation without a retry storm', async () => {
    const { sql, schema, peerdb } = stack;
    await ensureMirror(stack);
    const before = peerdb.requests.length;
    peerdb.knobs.failNext = { count: 1, status: 400 };
    await sql.query(`CREATE TABLE ${schema}.rejected (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    const { rows } = await until(
      () => sql.query<{ operation: string; result: string; error: string }>(
        "SELECT operation, result, error FROM echodb.mirror_operations WHERE result = 'failed' AND $1 = ANY(tables)",
        [`${schema}.rejected`],
      ),
      (result) => result.rows.length > 0,
    );
    expect(rows[0]).toMatchObject({ operation: 'add_tables', result: 'failed' });
    expect(rows[0]?.error).toMatch(/PeerDbInvalidRequest/);
    // Time passing is what is checked: no request is sent again in the next moments (a retry would come within 1 s).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const rejectedRequests = peerdb.requests.slice(before).filter((r) => r.status === 400);
    expect(rejectedRequests).toHaveLength(1);
    const state = await stack.mirrorState(mirror);
    expect(state.tables.map((t) => t.table)).not.toContain('rejected');
  });
});

describe('verification when ClickHouse cannot be reached', () => {
  let stack: EchoStack;

  // EchoDB's own ClickHouse connection points at a closed port; PeerDB (the double) still reaches ClickHouse.
  withEchoStack(
    { history: 'clickhouse-unreachable', verifiedTable: 'unreachable', overrides: { CLICKHOUSE_PORT: '1' } },
    (started) => (stack = started),
  );

  it('records an error with no ClickHouse count, never a count of 0', async () => {
    const { sql, schema } = stack;
    await sql.query(`CREATE TABLE ${schema}.unreachable (id int PRIMARY KEY)`);
    await stack.dispatchPending();

    const [verification] = await stack.waitForVerification('unreachable', 1, 60_000);
    expect(verification).toMatchObject({ status: 'error', postgres_count: null, clickhouse_count: null });
    expect(verification?.error).toMatch(/ECONNREFUSED|connect/i);
  });
});

describe('DESTINATION_ON_DROP', () => {
  for (const policy of ['keep', 'drop'] as const) {
    describe(policy, () => {
      let stack: EchoStack;
      withEchoStack({ history: `on-drop-${policy}`, overrides: { DESTINATION_ON_DROP: policy } }, (started) => (stack = started));

      it(`${policy === 'keep' ? 'keeps' : 'drops'} the ClickHouse table of a dropped table, and a re-created table snapshots afresh`, async () => {
        const { sql, schema } = stack;
        await sql.query(`CREATE TABLE ${schema}.ledger (id int PRIMARY KEY)`);
        await sql.query(`INSERT INTO ${schema}.ledger SELECT generate_series(1, 4)`);
        await sql.query(`CREATE TABLE ${schema}.other (id int PRIMARY KEY)`);
        await stack.dispatchPending();
        await stack.waitForVerification('ledger');

        await sql.query(`DROP TABLE ${schema}.ledger`);
        await stack.dispatchPending();
        const afterDrop = await until(
          () => stack.mirrorState(`echodb_${schema}`),
          (state) => !state.tables.some((t) => t.table === 'ledger'),
        );
        expect(afterDrop.tables.map((t) => t.table)).toEqual(['other']);
        if (policy === 'keep') expect(await stack.clickhouse.liveCount('ledger')).toBe(4);
        else await until(() => stack.clickhouse.tables(), (names) => !names.includes('ledger'));

        await sql.query(`CREATE TABLE ${schema}.ledger (id int PRIMARY KEY)`);
        await sql.query(`INSERT INTO ${schema}.ledger SELECT generate_series(1, 2)`);
        await stack.dispatchPending();
        const [, second] = await stack.waitForVerification('ledger', 2);
        expect(second).toMatchObject({ status: 'match', postgres_count: '2', clickhouse_count: '2' });
        const aside = (await stack.clickhouse.tables()).filter((name) => name.startsWith('ledger_dropped_'));
        expect(aside).toHaveLength(policy === 'keep' ? 1 : 0);
      });
    });
  }
});
