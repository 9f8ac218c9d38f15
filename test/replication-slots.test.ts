// Replication-slot health on the real PostgreSQL: the slots and publications are the ones the PeerDB double made
// for EchoDB's mirrors (as PeerDB does: peerflow_slot_<mirror>, peerflow_pub_<mirror>) and holds active while a
// mirror runs (activeSlots), WAL is really written behind them, and what /metrics/prometheus, /mirrors, `echodb status`, `echodb slots` and the leader's log say is read
// from a running `echodb run`.
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../lib/free-port.js';
import { mirrorNameFor, namingRules } from '../lib/naming.js';
import { dropOrphans, readReplicationHealth } from '../lib/replication-slots.js';
import { pgRecvlogicalBinary, SlotPulls } from './peerdb-double/slot-pull.js';
import { runCli } from './support/cli.js';
import { seriesSelector, testRules } from './support/promtool.js';
import { startEchoStack, type EchoStack } from './support/echo-stack.js';
import { until } from './support/until.js';

let stack: EchoStack;
let api: string;
const mirrorOf = (table: string) => mirrorNameFor({ schema: stack.schema, table }, namingRules(stack.config));
const slotOf = (table: string) => `peerflow_slot_${mirrorOf(table)}`;
const pulls = new SlotPulls(pgRecvlogicalBinary());

/** The series of one metric for one slot, from a scrape of /metrics/prometheus. */
async function scrape(): Promise<((name: string, labels?: Record<string, string>) => number | undefined) & { text: string }> {
  const text = await (await fetch(`${api}/metrics/prometheus`)).text();
  const families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family.metrics]));
  const metric = (name: string, labels: Record<string, string> = {}) => {
    const sample = families.get(name)?.find((m) => Object.entries(labels).every(([key, value]) => m.labels?.[key] === value));
    return sample === undefined ? undefined : Number(sample.value);
  };
  return Object.assign(metric, { text });
}

/**
 * Runs the alert rules (deploy/prometheus/echodb-rules.yml) with promtool on what one scrape of EchoDB gave, as if
 * every scrape for 20 minutes had found the same (an inactive slot's age growing a minute a minute, as it does),
 * and checks, for each alert named, whether it fires at the end for a series with these labels.
 */
async function expectAlerts(scrapeText: string, alerts: { alert: string; labels: Record<string, string>; firing: boolean }[]): Promise<void> {
  const series: string[] = [];
  for (const family of parsePrometheusTextFormat(scrapeText)) {
    if (!family.name.startsWith('echodb_') || family.type === 'HISTOGRAM' || family.type === 'SUMMARY') continue;
    for (const sample of family.metrics) {
      const value = Number(sample.value);
      if (!Number.isFinite(value)) continue;
      const step = family.name === 'echodb_replication_slot_inactive_seconds' && value > 0 ? 60 : 0;
      const selector = seriesSelector(family.name, { ...sample.labels, job: 'echodb', instance: 'echodb-1:8080' });
      series.push(`      - series: '${selector}'\n        values: '${value}+${step}x20'`);
    }
  }
  const checks = alerts.map(({ alert, labels, firing }) =>
    `      - expr: 'count(${seriesSelector('ALERTS', { alertname: alert, alertstate: 'firing', ...labels })})'\n` +
      `        eval_time: 20m\n        exp_samples: ${firing ? "[{labels: '{}', value: 1}]" : '[]'}`,
  );
  const result = await testRules(
    ['evaluation_interval: 1m', 'tests:', '  - interval: 1m', '    input_series:', ...series, '    promql_expr_test:', ...checks].join('\n'),
  );
  expect(result.code, result.stderr).toBe(0);
}

/** Writes at least `megabytes` of WAL (rows into `table`); returns how many bytes of WAL that was. */
async function writeWal(table: string, megabytes: number): Promise<number> {
  const lsn = async () => (await stack.sql.query<{ lsn: string }>('SELECT pg_current_wal_lsn() AS lsn')).rows[0]!.lsn;
  const start = await lsn();
  for (let written = 0; written < megabytes * 1024 * 1024;) {
    await stack.sql.query(
      `INSERT INTO ${stack.schema}.${table} (id, note) SELECT g, repeat('x', 1000) FROM generate_series($1::int, $1::int + 999) g`,
      [Math.floor(Math.random() * 2e9)],
    );
    const { rows } = await stack.sql.query<{ bytes: number }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::float8 AS bytes', [start]);
    written = rows[0]!.bytes;
  }
  const { rows } = await stack.sql.query<{ bytes: number }>('SELECT pg_wal_lsn_diff($2, $1)::float8 AS bytes', [start, await lsn()]);
  return rows[0]!.bytes;
}

async function slotActive(slot: string): Promise<boolean | undefined> {
  const { rows } = await stack.sql.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  return rows[0]?.active;
}

/**
 * A walsender on a slot the double does not hold (an orphan's: as if a PeerDB worker still streamed from it),
 * started by the double's own pull (pg_recvlogical). Resolves once PostgreSQL shows the slot active.
 */
async function holdActive(slot: string, publication: string): Promise<void> {
  const { host, port, user, password, database } = stack.database.settings;
  const tls = { requireTls: false, disableTls: true, skipCertVerification: false, rootCa: undefined, tlsHost: '', certificate: undefined, privateKey: undefined };
  pulls.hold(slot, () => ({ settings: { host, port, user, password, database, tls }, names: { slot, publication } }), {
    retryDelayMs: () => 100,
    onError: () => undefined,
  });
  await until(() => slotActive(slot), (active) => active === true);
}

beforeAll(async () => {
  const [healthPort, checkerPort] = await freePorts(2);
  stack = await startEchoStack(
    {
      MIRROR_STRATEGY: 'per-table',
      HEALTH_PORT: String(healthPort),
      CONSISTENCY_CHECKER_PORT: String(checkerPort),
      LEADER_ELECTION_TTL: '3',
      LEADER_ELECTION_INTERVAL: '1',
      OUTBOX_POLL_INTERVAL: '1',
      SLOT_CHECK_INTERVAL: '0.5',
      SLOT_WAL_WARN_MB: '16',
      SLOT_INACTIVE_WARN_SECONDS: '1',
    },
    undefined,
    { roles: ['worker', 'listener', 'api'], activeSlots: true },
  );
  api = `http://127.0.0.1:${healthPort}`;
  for (const table of ['orders', 'old', 'old2']) {
    await stack.sql.query(`CREATE TABLE ${stack.schema}.${table} (id int PRIMARY KEY, note text)`);
    await stack.waitForVerification(table, 1, 60_000);
  }
}, 180_000);

afterAll(async () => {
  await pulls.releaseAll();
  await stack?.close();
});

/** What an operator does in PeerDB's UI: pause or resume the mirror (the Flow API's state_change). */
async function changeState(mirror: string, requestedFlowState: 'STATUS_PAUSED' | 'STATUS_RUNNING'): Promise<void> {
  const response = await fetch(`${stack.peerdb.url}/v1/mirrors/state_change`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ flowJobName: mirror, requestedFlowState }),
  });
  expect(response.status).toBe(200);
}

describe('the health of a mirror\'s slot', () => {
  it('is active while the mirror runs: PeerDB streams from it and confirms what it read', async () => {
    const labels = { mirror: mirrorOf('orders'), slot: slotOf('orders') };
    const running = await until(scrape, (metric) => metric('echodb_replication_slot_active', labels) === 1);
    expect(running('echodb_replication_slot_inactive_seconds', labels)).toBe(0);
    expect(running('echodb_replication_slot_wal_status', { ...labels, wal_status: 'reserved' })).toBe(1);
    expect(running('echodb_replication_slot_wal_status', { ...labels, wal_status: 'lost' })).toBe(0);
    expect(running('echodb_replication_publication_tables', { mirror: labels.mirror, publication: `peerflow_pub_${labels.mirror}` })).toBe(1);
    expect(running('echodb_replication_orphans', { kind: 'slot' })).toBe(0);
    expect(running('echodb_replication_slots_readable')).toBe(1);
    const written = await writeWal('orders', 1);
    await until(scrape, (metric) => metric('echodb_replication_slot_confirmed_lag_bytes', labels)! < written);
  });

  it('paused, is inactive and keeps the WAL written since, in the metrics, /mirrors, status and the leader\'s log', async () => {
    const slot = slotOf('orders');
    const labels = { mirror: mirrorOf('orders'), slot };
    const pausedAt = Date.now();
    await changeState(labels.mirror, 'STATUS_PAUSED');
    const before = await until(scrape, (metric) => metric('echodb_replication_slot_active', labels) === 0 && metric('echodb_replication_slot_inactive_seconds', labels)! > 0);
    const unconfirmed = before('echodb_replication_slot_confirmed_lag_bytes', labels)!;

    const written = await writeWal('orders', 20);
    const after = await scrape();
    // Nothing confirms anything now: every byte written since stays behind confirmed_flush_lsn, and restart_lsn is
    // never ahead of it.
    const lag = after('echodb_replication_slot_confirmed_lag_bytes', labels)!;
    expect(lag - unconfirmed).toBeGreaterThanOrEqual(written);
    expect(after('echodb_replication_slot_retained_wal_bytes', labels)).toBeGreaterThanOrEqual(lag);
    expect(after('echodb_replication_slot_inactive_seconds', labels)).toBeGreaterThan(before('echodb_replication_slot_inactive_seconds', labels)!);
    // The alert rules fire on these very series: the slot stays inactive, but keeps far less than 5000 MiB.
    await expectAlerts(after.text, [
      { alert: 'EchoDbSlotInactive', labels, firing: true },
      { alert: 'EchoDbSlotWalRetainedHigh', labels, firing: false },
      { alert: 'EchoDbSlotNearInvalidation', labels, firing: false },
      { alert: 'EchoDbSlotLost', labels, firing: false },
      { alert: 'EchoDbReplicationOrphans', labels: {}, firing: false },
      { alert: 'EchoDbNoLeader', labels: {}, firing: false },
    ]);

    const mirrors = (await (await fetch(`${api}/mirrors`)).json()) as {
      mirrors: { mirror: string; replication: { slot: Record<string, unknown>; publication: Record<string, unknown> } }[];
      orphans: { slots: unknown[]; publications: unknown[] };
    };
    const replication = mirrors.mirrors.find((m) => m.mirror === labels.mirror)!.replication;
    expect(replication.slot).toMatchObject({ slot, owner: 'mirror', active: false, active_pid: null, wal_status: 'reserved' });
    expect(replication.slot.confirmed_lag_bytes).toBeGreaterThanOrEqual(lag);
    expect(new Date(replication.slot.inactive_since as string).getTime()).toBeGreaterThanOrEqual(pausedAt - 1000);
    expect(replication.publication).toMatchObject({ publication: `peerflow_pub_${labels.mirror}`, owner: 'mirror', tables: 1 });
    expect(mirrors.orphans).toEqual({ slots: [], publications: [] });

    const status = await runCli(['status'], stack.env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`slot ${slot}  mirror ${labels.mirror}  INACTIVE since \\S+ \\(\\d+ s\\)  WAL retained \\d+\\.\\d MiB`));
    const json = JSON.parse((await runCli(['status', '--json'], stack.env)).stdout) as { mirrors: { mirror: string; replication: { slot: { active: boolean } } }[] };
    expect(json.mirrors.find((m) => m.mirror === labels.mirror)!.replication.slot.active).toBe(false);

    // The leader warned: inactive past SLOT_INACTIVE_WARN_SECONDS (1), and past SLOT_WAL_WARN_MB (16); once each.
    await stack.worker.waitForLine(new RegExp(`slots: ${slot} of mirror \\S+ passed SLOT_WAL_WARN_MB`), 10_000, pausedAt);
    await stack.worker.waitForLine(new RegExp(`slots: ${slot} of mirror \\S+ has been inactive since`), 10_000, pausedAt);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // three more looks of the leader
    const warned = (text: string) => stack.worker.lines.filter((line, i) => stack.worker.lineTimes[i]! >= pausedAt && line.includes(`"level":"warn"`) && line.includes(text));
    expect(warned(`${slot} of mirror ${labels.mirror} passed SLOT_WAL_WARN_MB`)).toHaveLength(1);
    expect(warned(`${slot} of mirror ${labels.mirror} has been inactive since`)).toHaveLength(1);

    const resumedAt = Date.now();
    await changeState(labels.mirror, 'STATUS_RUNNING');
    const resumed = await until(scrape, (metric) => metric('echodb_replication_slot_active', labels) === 1);
    expect(resumed('echodb_replication_slot_inactive_seconds', labels)).toBe(0);
    await stack.worker.waitForLine(new RegExp(`slots: ${slot} is active again`), 10_000, resumedAt);
    // PeerDB reads what was written while it was away, and confirms it.
    await until(scrape, (metric) => metric('echodb_replication_slot_confirmed_lag_bytes', labels)! < written, 30_000);
  });
});

describe('orphans', () => {
  it('are found, listed, and dropped only after confirmation; a slot that is active, a mirror\'s, or not EchoDB\'s is never dropped', async () => {
    const { sql } = stack;
    // EchoDB drops the mirrors of `old` and `old2`; the double drops their slots and publications, as PeerDB does.
    await sql.query(`DROP TABLE ${stack.schema}.old, ${stack.schema}.old2`);
    const dropped = [mirrorOf('old'), mirrorOf('old2')];
    await until(
      () => sql.query("SELECT mirror FROM echodb.mirror_operations WHERE operation = 'drop' AND result = 'succeeded' AND mirror = ANY($1)", [dropped]),
      ({ rows }) => rows.length === 2,
      60_000,
    );
    await until(() => sql.query('SELECT slot_name FROM pg_replication_slots WHERE slot_name = ANY($1)', [dropped.map((m) => `peerflow_slot_${m}`)]), ({ rows }) => rows.length === 0);
    // What a PeerDB whose clean-up never ran leaves behind (its catalog restored, a worker lost mid-drop): the
    // slot and publication of a mirror that no longer exists. And one of a mirror EchoDB never had.
    for (const mirror of [...dropped, 'someone_elses']) {
      await sql.query(`CREATE PUBLICATION ${pg.escapeIdentifier(`peerflow_pub_${mirror}`)}`);
      await sql.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`peerflow_slot_${mirror}`]);
    }
    const [inactive, active] = dropped;
    await holdActive(`peerflow_slot_${active}`, `peerflow_pub_${active}`);

    // Both orphans counted, and the leader has seen the inactive one inactive.
    const metric = await until(
      scrape,
      (m) => m('echodb_replication_orphans', { kind: 'slot' }) === 2 && m('echodb_replication_slot_inactive_seconds', { slot: `peerflow_slot_${inactive}` })! > 0,
    );
    expect(metric('echodb_replication_orphans', { kind: 'publication' })).toBe(2);
    // Orphans have their slot series too; a slot EchoDB never had has none.
    expect(metric('echodb_replication_slot_active', { slot: `peerflow_slot_${active}` })).toBe(1);
    expect(metric('echodb_replication_slot_active', { slot: 'peerflow_slot_someone_elses' })).toBeUndefined();
    await expectAlerts(metric.text, [
      { alert: 'EchoDbReplicationOrphans', labels: { kind: 'slot' }, firing: true },
      { alert: 'EchoDbReplicationOrphans', labels: { kind: 'publication' }, firing: true },
      { alert: 'EchoDbSlotInactive', labels: { slot: `peerflow_slot_${inactive}` }, firing: true },
      { alert: 'EchoDbSlotInactive', labels: { slot: `peerflow_slot_${active}` }, firing: false },
    ]);
    await stack.worker.waitForLine(new RegExp(`slots: peerflow_slot_${inactive} is an orphan \\(EchoDB dropped mirror ${inactive} at`), 10_000);

    const listed = await runCli(['slots'], stack.env);
    expect(listed.code).toBe(3);
    expect(listed.stdout).toContain('replication: 4 slot(s), 4 publication(s); 4 orphan(s)');
    expect(listed.stdout).toMatch(new RegExp(`slot peerflow_slot_${inactive}  ORPHAN: EchoDB dropped mirror ${inactive} at \\S+  INACTIVE`));
    expect(listed.stdout).toContain("slot peerflow_slot_someone_elses  not EchoDB's: EchoDB never had a mirror someone_elses");
    expect(listed.stdout).toContain(`slot ${slotOf('orders')}  mirror ${mirrorOf('orders')}`);

    // No answer (a closed standard input, as from cron): nothing goes.
    const unconfirmed = await runCli(['slots', '--drop-orphans'], stack.env);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stdout).toContain(`Drop these 4? Their WAL is then released for good. [y/N] slots: nothing dropped`);
    expect((await readReplicationHealth((text, values) => sql.query(text, values))).slots).toHaveLength(4);

    const confirmed = await runCli(['slots', '--drop-orphans'], stack.env, 60_000, 'y\n');
    expect(confirmed.stdout).toMatch(new RegExp(`dropped slot peerflow_slot_${inactive} \\(EchoDB dropped mirror ${inactive} at \\S+; it held \\S+ \\S+ of WAL\\)`));
    expect(confirmed.stdout).toMatch(new RegExp(`kept slot peerflow_slot_${active}: active \\(walsender pid \\d+\\)`));
    expect(confirmed.stdout).toContain(`dropped publication peerflow_pub_${active}`);
    expect(confirmed.code).toBe(1);
    const left = async () => (await sql.query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'peerflow%' AND database = current_database() ORDER BY 1")).rows.map((r) => r.slot_name);
    expect(await left()).toEqual([`peerflow_slot_${active}`, slotOf('orders'), 'peerflow_slot_someone_elses'].sort());

    // Let go of it, and it goes too.
    await pulls.release(`peerflow_slot_${active}`);
    const rest = await runCli(['slots', '--drop-orphans', '--yes', '--json'], stack.env);
    expect(rest.code).toBe(0);
    expect(JSON.parse(rest.stdout)).toEqual({ dropped: [expect.objectContaining({ kind: 'slot', name: `peerflow_slot_${active}`, dropped: true })] });
    expect(await left()).toEqual([slotOf('orders'), 'peerflow_slot_someone_elses'].sort());
    expect((await runCli(['slots', '--drop-orphans', '--yes'], stack.env)).stdout).toContain('slots: no orphan to drop');

    const records = await sql.query<{ kind: string; name: string; mirror: string; dropped_by: string }>(
      'SELECT kind, name, mirror, dropped_by FROM echodb.dropped_orphans ORDER BY id',
    );
    // The first run dropped the slot it could, then both publications; the second the slot it had kept.
    expect(records.rows.map(({ kind, name, mirror }) => `${kind} ${name} ${mirror}`)).toEqual([
      `slot peerflow_slot_${inactive} ${inactive}`,
      ...[active, inactive].sort().map((m) => `publication peerflow_pub_${m} ${m}`),
      `slot peerflow_slot_${active} ${active}`,
    ]);
    for (const { dropped_by: by } of records.rows) expect(by).toMatch(/^postgres \(echodb slots on .+\)$/);
    const cleared = await until(scrape, (m) => m('echodb_replication_orphans', { kind: 'slot' }) === 0);
    expect(cleared('echodb_replication_orphans', { kind: 'publication' })).toBe(0);
    await sql.query("SELECT pg_drop_replication_slot('peerflow_slot_someone_elses')");
    await sql.query('DROP PUBLICATION peerflow_pub_someone_elses');
  });

  it('are kept while PeerDB still lists their mirror, and by a role that may not drop them', async () => {
    const { sql, database } = stack;
    const mirror = `gone_${Date.now()}`;
    await sql.query(
      `INSERT INTO echodb.mirror_operations (operation_key, mirror, operation, result, workflow_id)
       VALUES ($1, $2, 'drop', 'succeeded', 'test')`,
      [`test:${mirror}`, mirror],
    );
    await sql.query(`CREATE PUBLICATION ${pg.escapeIdentifier(`peerflow_pub_${mirror}`)}`);
    await sql.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [`peerflow_slot_${mirror}`]);
    const kept = await dropOrphans((text, values) => sql.query(text, values), new Set([mirror]));
    expect(kept.map(({ kind, dropped, reason }) => [kind, dropped, reason])).toEqual([
      ['slot', false, `PeerDB still has mirror ${mirror}`],
      ['publication', false, `PeerDB still has mirror ${mirror}`],
    ]);

    // A role with no attribute and no grant but on EchoDB's own tables reads it all, and may drop nothing.
    const role = `slot_reader_${Date.now()}`;
    await sql.query(`CREATE ROLE ${role} LOGIN PASSWORD 'reader' NOSUPERUSER NOREPLICATION`);
    await sql.query(`GRANT USAGE ON SCHEMA echodb TO ${role}`);
    await sql.query(`GRANT SELECT ON echodb.slot_observations, echodb.destination_claims, echodb.mirror_waits, echodb.mirror_operations TO ${role}`);
    await sql.query(`GRANT INSERT ON echodb.dropped_orphans TO ${role}`);
    const reader = new pg.Client({ ...database.settings, user: role, password: 'reader' });
    await reader.connect();
    try {
      const health = await readReplicationHealth((text, values) => reader.query(text, values));
      const asSuperuser = await readReplicationHealth((text, values) => sql.query(text, values));
      expect(health.slots.map(({ slot, owner, retainedBytes }) => [slot, owner, retainedBytes !== null])).toEqual(
        asSuperuser.slots.map(({ slot, owner }) => [slot, owner, true]),
      );
      expect(health.slots.find((s) => s.mirror === mirror)!.owner).toBe('orphan');
      const refused = await dropOrphans((text, values) => reader.query(text, values), new Set());
      expect(refused.map(({ kind, dropped, reason }) => [kind, dropped, reason.split(':')[0]])).toEqual([
        ['slot', false, 'not allowed'],
        ['publication', false, 'not allowed'],
      ]);
      expect(refused[0]!.reason).toContain('the REPLICATION attribute');
    } finally {
      await reader.end();
      await sql.query("SELECT pg_drop_replication_slot($1)", [`peerflow_slot_${mirror}`]);
      await sql.query(`DROP PUBLICATION ${pg.escapeIdentifier(`peerflow_pub_${mirror}`)}`);
      await sql.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});
