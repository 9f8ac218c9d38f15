import crypto from 'node:crypto';
import fs from 'node:fs';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { defaultKnobs, startPeerDbDouble, type FlowStatus, type PeerDbDouble } from './peerdb-double/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testServers } from './support/servers.js';

const TRANSITION_MS = 25;
/** PeerDB's 1-minute retries take 60 ms here. */
const TIME_SCALE = 0.001;

interface ContractField {
  json: string;
  type: string;
  repeated?: boolean;
  map?: string;
  oneof?: string;
}
const contract = JSON.parse(
  fs.readFileSync(new URL('./peerdb-double/peerdb-flow-api.json', import.meta.url), 'utf8'),
) as { messages: Record<string, Record<string, ContractField> | 'well-known'>; enums: Record<string, string[]> };

interface ErrorJson {
  code: number;
  message: string;
  details: unknown[];
}
interface TableMappingJson {
  sourceTableIdentifier: string;
  destinationTableIdentifier: string;
}
interface MirrorStatusJson {
  flowJobName: string;
  currentFlowState: FlowStatus;
  createdAt: string;
  cdcStatus?: {
    config: { tableMappings: TableMappingJson[]; env: Record<string, string> };
    rowsSynced: string;
  };
}
interface ListMirrorsJson {
  mirrors: { id: string; name: string; workflowId: string; createdAt: number; status: FlowStatus }[];
}

let database: TestDatabase;
let source: pg.Client;
let clickhouse: ClickHouseClient;
let double: PeerDbDouble;
const chDatabase = `peerdb_double_${crypto.randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  database = await createTestDatabase();
  source = await database.connect();
  const servers = testServers();
  clickhouse = createClient({
    url: servers.clickhouse.url,
    username: servers.clickhouse.user,
    password: servers.clickhouse.password,
  });
  // PeerDB's ClickHouse peer logs in with its database, which must exist (echodb setup makes it).
  await clickhouse.command({ query: `CREATE DATABASE ${backtick(chDatabase)}` });
  double = await startPeerDbDouble({ clickhouse: servers.clickhouse, transitionMs: TRANSITION_MS, timeScale: TIME_SCALE });
  const { host, port, user, password } = database.settings;
  await expectOk(
    call('POST', '/v1/peers/create', {
      peer: { name: 'pg', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: database.settings.database } },
      allowUpdate: true,
    }),
  );
  await expectOk(
    call('POST', '/v1/peers/create', {
      peer: {
        name: 'ch',
        type: 'CLICKHOUSE',
        clickhouseConfig: {
          host: '127.0.0.1',
          port: servers.clickhouse.nativePort,
          user: servers.clickhouse.user,
          password: servers.clickhouse.password,
          database: chDatabase,
          disableTls: true,
        },
      },
      allowUpdate: true,
    }),
  );
});

afterAll(async () => {
  await double?.close();
  await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${backtick(chDatabase)}` });
  await clickhouse?.close();
  await database?.drop();
});

beforeEach(() => {
  Object.assign(double.knobs, defaultKnobs());
});

async function call<T = unknown>(
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  target: PeerDbDouble = double,
): Promise<{ status: number; body: T }> {
  const response = await fetch(target.url + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

async function expectOk<T>(request: Promise<{ status: number; body: T }>): Promise<T> {
  const { status, body } = await request;
  expect(status, JSON.stringify(body)).toBe(200);
  return body;
}

/** The test database as a POSTGRES peer. */
function pgPeer(name: string) {
  const { host, port, user, password, database: databaseName } = database.settings;
  return { name, type: 'POSTGRES', postgresConfig: { host, port, user, password, database: databaseName } };
}

/** The test ClickHouse as a CLICKHOUSE peer, at its native port as PeerDB dials it. */
function chPeer(name: string) {
  const { nativePort, user, password } = testServers().clickhouse;
  return { name, type: 'CLICKHOUSE', clickhouseConfig: { host: '127.0.0.1', port: nativePort, user, password, database: chDatabase, disableTls: true } };
}

/** The peers `pg` and `ch` on another double. */
async function createPeers(target: PeerDbDouble): Promise<void> {
  for (const peer of [pgPeer('pg'), chPeer('ch')]) await expectOk(call('POST', '/v1/peers/create', { peer, allowUpdate: true }, target));
}

/** Polls `read` until `done` holds (5 s at most). */
async function until<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`still ${JSON.stringify(value)} after ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** The logical replication slots of the test database, as PostgreSQL has them. */
async function sourceSlots(): Promise<{ slot_name: string; plugin: string }[]> {
  const { rows } = await source.query<{ slot_name: string; plugin: string }>(
    'SELECT slot_name, plugin FROM pg_replication_slots WHERE database = current_database() ORDER BY slot_name',
  );
  return rows;
}

/** `schema.table` of each table in the publication, sorted; [] when the publication does not exist. */
async function publicationTables(publication: string): Promise<string[]> {
  const { rows } = await source.query<{ name: string }>(
    "SELECT schemaname || '.' || tablename AS name FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
    [publication],
  );
  return rows.map((row) => row.name);
}

function mapping(sourceTableIdentifier: string, destinationTableIdentifier: string) {
  return { sourceTableIdentifier, destinationTableIdentifier, exclude: [], engine: 'CH_ENGINE_REPLACING_MERGE_TREE' };
}

function createMirror(
  flowJobName: string,
  tableMappings: ReturnType<typeof mapping>[],
  extra: Record<string, unknown> = {},
): Promise<{ status: number; body: { workflowId: string } & ErrorJson }> {
  return call('POST', '/v1/flows/cdc/create', {
    connectionConfigs: { flowJobName, sourceName: 'pg', destinationName: 'ch', tableMappings, doInitialSnapshot: true, ...extra },
    attachToExisting: false,
  });
}

function mirrorStatus(flowJobName: string) {
  return call<MirrorStatusJson & ErrorJson>('POST', '/v1/mirrors/status', { flowJobName, includeFlowInfo: true });
}

function stateChange(flowJobName: string, requestedFlowState: string, cdcFlowConfigUpdate?: Record<string, unknown>) {
  return call<ErrorJson>('POST', '/v1/mirrors/state_change', {
    flowJobName,
    requestedFlowState,
    ...(cdcFlowConfigUpdate ? { flowConfigUpdate: { cdcFlowConfigUpdate } } : {}),
  });
}

/** The statuses the mirror passes through (consecutive repeats collapsed) until it reaches `final`. */
async function statusesUntil(name: string, final: FlowStatus): Promise<(FlowStatus | undefined)[]> {
  const seen: (FlowStatus | undefined)[] = [];
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = double.mirrors().find((mirror) => mirror.name === name)?.status;
    if (seen.at(-1) !== status) seen.push(status);
    if (status === final) return seen;
    if (Date.now() > deadline) throw new Error(`${name} went ${seen.join(' -> ')}, never ${final}`);
    await sleep(2);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function backtick(name: string): string {
  return '`' + name.replace(/\\/g, '\\\\').replace(/`/g, '\\`') + '`';
}

function chString(value: string): string {
  return "'" + value.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

async function chRows<T>(query: string): Promise<T[]> {
  return (await clickhouse.query({ query, format: 'JSONEachRow' })).json<T>();
}

/** The live row count, as PeerDB's own tests take it. */
async function liveCount(table: string): Promise<number> {
  const [row] = await chRows<{ n: string }>(
    `SELECT count() AS n FROM ${backtick(chDatabase)}.${backtick(table)} FINAL WHERE _peerdb_is_deleted = 0`,
  );
  return Number(row?.n);
}

async function chTable(table: string) {
  const [row] = await chRows<{ engine: string; sorting_key: string; engine_full: string }>(
    `SELECT engine, sorting_key, engine_full FROM system.tables WHERE database = ${chString(chDatabase)} AND name = ${chString(table)}`,
  );
  return row;
}

async function chColumns(table: string): Promise<[string, string][]> {
  const rows = await chRows<{ name: string; type: string }>(
    `SELECT name, type FROM system.columns WHERE database = ${chString(chDatabase)} AND table = ${chString(table)}`,
  );
  return rows.map((row) => [row.name, row.type]);
}

/** A source table `name` in public with an integer primary key and `rows` rows. */
async function sourceTable(name: string, rows: number): Promise<string> {
  await source.query(`CREATE TABLE public.${name} (id int PRIMARY KEY, label text)`);
  await source.query(`INSERT INTO public.${name} SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`);
  return `public.${name}`;
}

/** Checks a response against the contract: only its JSON names, every non-oneof field present, values of their type. */
function expectContractShape(value: unknown, message: string, path: string = message): void {
  const fields = contract.messages[message];
  if (fields === undefined || fields === 'well-known') throw new Error(`${message} is not a message of the contract`);
  expect(value, path).toBeTypeOf('object');
  const object = value as Record<string, unknown>;
  const byJsonName = new Map(Object.values(fields).map((field) => [field.json, field]));
  for (const key of Object.keys(object)) expect(byJsonName.has(key), `${path}.${key} is not a field of ${message}`).toBe(true);
  for (const field of byJsonName.values()) {
    const fieldPath = `${path}.${field.json}`;
    if (!(field.json in object)) {
      expect(field.oneof, `${fieldPath} is missing (grpc-gateway emits default values)`).toBeDefined();
      continue;
    }
    const fieldValue = object[field.json];
    if (field.map) {
      expect(fieldValue, fieldPath).toBeTypeOf('object');
    } else if (field.repeated) {
      expect(Array.isArray(fieldValue), `${fieldPath} is a list`).toBe(true);
      (fieldValue as unknown[]).forEach((item, i) => expectContractValue(item, field.type, `${fieldPath}[${i}]`));
    } else {
      expectContractValue(fieldValue, field.type, fieldPath);
    }
  }
}

function expectContractValue(value: unknown, type: string, path: string): void {
  if (type === 'google.protobuf.Timestamp') {
    expect(value, path).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  } else if (contract.messages[type] !== undefined) {
    if (value !== null) expectContractShape(value, type, path);
  } else if (contract.enums[type] !== undefined) {
    expect(contract.enums[type], path).toContain(value);
  } else if (['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'].includes(type)) {
    expect(value, `${path} (64-bit integers are JSON strings)`).toMatch(/^-?\d+$/);
  } else if (type === 'string') {
    expect(value, path).toBeTypeOf('string');
  } else if (type === 'bool') {
    expect(value, path).toBeTypeOf('boolean');
  } else {
    expect(value, path).toBeTypeOf('number');
  }
}

describe('peers: POST /v1/peers/create', () => {
  it('validates a peer by connecting to it: an unreachable or misconfigured database is a 400 and changes nothing', async () => {
    await sourceTable('peer_probe', 1);
    await expectOk(call('POST', '/v1/peers/create', { peer: pgPeer('pg_valid'), allowUpdate: true }));

    const { host, user, password } = database.settings;
    const unreachable = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { name: 'pg_valid', type: 'POSTGRES', postgresConfig: { host, port: 1, user, password, database: 'x' } },
      allowUpdate: true,
    });
    expect(unreachable.status).toBe(400);
    expect(unreachable.body).toMatchObject({ code: 9 });
    expect(unreachable.body.message).toMatch(/^POSTGRES peer pg_valid was invalidated: failed to create connection: .*connection refused/);
    const noDatabase = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { ...pgPeer('pg_valid'), postgresConfig: { ...pgPeer('pg_valid').postgresConfig, database: 'no_such_database' } },
      allowUpdate: true,
    });
    expect(noDatabase.status).toBe(400);
    expect(noDatabase.body.message).toContain('database "no_such_database" does not exist');
    const { nativePort } = testServers().clickhouse;
    const badLogin = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { ...chPeer('ch_bad'), clickhouseConfig: { ...chPeer('ch_bad').clickhouseConfig, password: 'wrong' } },
    });
    expect(badLogin.status).toBe(400);
    expect(badLogin.body.message).toMatch(/^CLICKHOUSE peer ch_bad was invalidated: failed to open connection to ClickHouse peer: code: \d+, message: /);
    // clickhouse-go logs in with the peer's database: the server refuses one that does not exist.
    const noChDatabase = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { ...chPeer('ch_bad'), clickhouseConfig: { ...chPeer('ch_bad').clickhouseConfig, database: 'no_such_database' } },
    });
    expect(noChDatabase.status).toBe(400);
    expect(noChDatabase.body.message).toMatch(/code: 81, message: .*no_such_database/);
    const closedPort = await call<ErrorJson>('POST', '/v1/peers/validate', {
      peer: { ...chPeer('ch_closed'), clickhouseConfig: { ...chPeer('ch_closed').clickhouseConfig, port: 1 } },
    });
    expect(closedPort).toMatchObject({ status: 400, body: { code: 9 } });
    expect(closedPort.body.message).toContain('dial tcp 127.0.0.1:1: connect: connection refused');
    expect(await call('POST', '/v1/peers/validate', { peer: chPeer('ch_ok') })).toEqual({
      status: 200,
      body: { status: 'VALID', message: `CLICKHOUSE peer ch_ok is valid` },
    });
    expect(nativePort).toBeGreaterThan(0);

    const probe = (name: string) =>
      call<ErrorJson>('POST', '/v1/flows/cdc/create', {
        connectionConfigs: { flowJobName: name, sourceName: 'pg_valid', destinationName: 'ch', tableMappings: [mapping('public.peer_probe', name)] },
      });
    expect((await probe('peer_kept')).status).toBe(200);
  });

  it('keeps an existing peer when allowUpdate is false, still answering 200 CREATED, and replaces it when true (here without validation)', async () => {
    const table = await sourceTable('peer_update_probe', 1);
    await expectOk(call('POST', '/v1/peers/create', { peer: pgPeer('pg_update'), allowUpdate: false }));
    const elsewhere = { ...pgPeer('pg_update'), postgresConfig: { ...pgPeer('pg_update').postgresConfig, database: 'no_such_database' } };
    const ignored = await call('POST', '/v1/peers/create', { peer: elsewhere, allowUpdate: false, disableValidation: true });
    expect(ignored).toEqual({ status: 200, body: { status: 'CREATED', message: '' } });
    const probe = (name: string) =>
      call<ErrorJson>('POST', '/v1/flows/cdc/create', {
        connectionConfigs: { flowJobName: name, sourceName: 'pg_update', destinationName: 'ch', tableMappings: [mapping(table, name)] },
      });
    expect((await probe('peer_unchanged')).status).toBe(200);

    await expectOk(call('POST', '/v1/peers/create', { peer: elsewhere, allowUpdate: true, disableValidation: true }));
    const replaced = await probe('peer_replaced');
    expect(replaced.status).toBe(500);
    expect(replaced.body.message).toContain('invalid mirror: rpc error: code = FailedPrecondition desc = failed to create source connector');
  });

  it('rejects a peer without a name with 400, and a config that does not match its type with 400, or 200 FAILED without validation', async () => {
    const noName = await call<ErrorJson>('POST', '/v1/peers/create', { peer: { type: 'POSTGRES', postgresConfig: {} } });
    expect(noName).toEqual({ status: 400, body: { code: 3, message: 'no peer name provided', details: [] } });
    const noPeer = await call<ErrorJson>('POST', '/v1/peers/create', {});
    expect(noPeer.status).toBe(400);
    const wrongConfig = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { name: 'x', type: 'CLICKHOUSE', postgresConfig: {} },
    });
    expect(wrongConfig).toMatchObject({ status: 400, body: { code: 9 } });
    // flow/connectors/utils/peers.go CreatePeerNoValidate: a 200 that is a failure.
    const unvalidated = await call('POST', '/v1/peers/create', {
      peer: { name: 'x', type: 'CLICKHOUSE', postgresConfig: {} },
      disableValidation: true,
    });
    expect(unvalidated).toEqual({ status: 200, body: { status: 'FAILED', message: 'invalid config for CLICKHOUSE peer x: <nil>' } });
    const noType = await call<ErrorJson>('POST', '/v1/peers/create', { peer: { name: 'x', postgresConfig: {} } });
    expect(noType.status).toBe(400);
  });

  it('reads proto field names (snake_case) as grpc-gateway does, and leaves the keys of env maps alone', async () => {
    const { host, port, user, password } = database.settings;
    await expectOk(
      call('POST', '/v1/peers/create', {
        peer: { name: 'pg_snake', type: 'POSTGRES', postgres_config: { host, port, user, password, database: database.settings.database } },
        allow_update: true,
      }),
    );
    const table = await sourceTable('snake_case', 3);
    await expectOk(
      call('POST', '/v1/flows/cdc/create', {
        connection_configs: {
          flow_job_name: 'snake_case',
          source_name: 'pg_snake',
          destination_name: 'ch',
          table_mappings: [{ source_table_identifier: table, destination_table_identifier: 'snake_case' }],
          do_initial_snapshot: true,
          env: { PEERDB_SOME_SETTING: 'kept_as_sent' },
        },
        attach_to_existing: false,
      }),
    );
    await double.waitForStatus('snake_case', 'STATUS_RUNNING');
    const status = await expectOk(call<MirrorStatusJson>('POST', '/v1/mirrors/status', { flow_job_name: 'snake_case', include_flow_info: true }));
    expect(status.cdcStatus?.config.env).toEqual({ PEERDB_SOME_SETTING: 'kept_as_sent' });
    expect(await liveCount('snake_case')).toBe(3);
  });
});

describe('creating a mirror: POST /v1/flows/cdc/create', () => {
  it('answers <mirror>-peerflow, goes SETUP -> SNAPSHOT -> RUNNING and copies every row into a ReplacingMergeTree ordered by the primary key', async () => {
    await source.query(`CREATE TABLE public.orders (
      id bigint, region text, total numeric(10, 2), paid boolean, placed_at timestamptz, placed_local timestamp,
      day date, tags text[], doc jsonb, small smallint, ratio double precision, PRIMARY KEY (region, id))`);
    await source.query(`INSERT INTO public.orders
      SELECT g, 'r' || (g % 3), g / 100.0, g % 2 = 0, timestamptz '2024-03-01 12:00:00+02' + g * interval '1 second',
        timestamp '2024-03-01 12:00:00', date '2024-03-01', ARRAY['a', 'b'], jsonb_build_object('g', g), g % 100, g / 8.0
      FROM generate_series(1, 12345) g`);

    const created = await createMirror('orders', [mapping('public.orders', 'orders')], {
      syncedAtColName: '_PEERDB_SYNCED_AT',
      env: { PEERDB_NULLABLE: 'true' },
    });
    expect(created).toEqual({ status: 200, body: { workflowId: 'orders-peerflow' } });
    expect(await statusesUntil('orders', 'STATUS_RUNNING')).toEqual(['STATUS_SETUP', 'STATUS_SNAPSHOT', 'STATUS_RUNNING']);

    expect(await liveCount('orders')).toBe(12345);
    expect((await mirrorStatus('orders')).body.cdcStatus?.rowsSynced).toBe('12345');
    expect(await chTable('orders')).toEqual({
      engine: 'ReplacingMergeTree',
      sorting_key: 'region, id',
      engine_full: 'ReplacingMergeTree(_peerdb_version) ORDER BY (region, id) SETTINGS index_granularity = 8192',
    });
    expect(await chColumns('orders')).toEqual([
      ['id', 'Int64'],
      ['region', 'String'],
      ['total', 'Nullable(String)'],
      ['paid', 'Nullable(UInt8)'],
      ['placed_at', 'Nullable(DateTime)'],
      ['placed_local', 'Nullable(DateTime)'],
      ['day', 'Nullable(Date)'],
      ['tags', 'Nullable(String)'],
      ['doc', 'Nullable(String)'],
      ['small', 'Nullable(Int32)'],
      ['ratio', 'Nullable(Float64)'],
      ['_peerdb_synced_at', 'DateTime'],
      ['_peerdb_is_deleted', 'UInt8'],
      ['_peerdb_version', 'UInt64'],
    ]);
    const [row] = await chRows<Record<string, unknown>>(
      `SELECT * FROM ${backtick(chDatabase)}.orders FINAL WHERE id = 10`,
    );
    expect(row).toMatchObject({
      id: '10',
      region: 'r1',
      total: '0.10',
      paid: 1,
      placed_at: '2024-03-01 10:00:10',
      placed_local: '2024-03-01 12:00:00',
      day: '2024-03-01',
      tags: '{a,b}',
      doc: '{"g": 10}',
      small: 10,
      ratio: 1.25,
      _peerdb_is_deleted: 0,
      _peerdb_version: '1',
    });
  });

  it('keys a REPLICA IDENTITY FULL table without a primary key on every column, as PeerDB does, and uses the slot it is given', async () => {
    await source.query('CREATE TABLE public.events (at timestamptz, what text)');
    await source.query('ALTER TABLE public.events REPLICA IDENTITY FULL');
    await source.query(`INSERT INTO public.events SELECT timestamptz '2024-01-01' + g * interval '1 s', 'event ' || g FROM generate_series(1, 20) g`);
    await expectOk(createMirror('events', [mapping('public.events', 'events')], { replicationSlotName: 'events_slot' }));
    await double.waitForStatus('events', 'STATUS_RUNNING');
    expect((await chTable('events'))?.sorting_key).toBe('at, what');
    expect(await liveCount('events')).toBe(20);
    expect(double.slotNames()).toContain('events_slot');
    expect(await sourceSlots()).toContainEqual({ slot_name: 'events_slot', plugin: 'pgoutput' });
    expect(await publicationTables('peerflow_pub_events')).toEqual(['public.events']);
    expect(double.mirrors().find((mirror) => mirror.name === 'events')).toMatchObject({
      slotName: 'events_slot',
      publicationName: 'peerflow_pub_events',
      sourceName: 'pg',
      destinationName: 'ch',
    });
  });

  it('copies tables and columns named with quotes, spaces, backticks, backslashes, dots, unicode and capitals, the source named raw as PeerDB expects', async () => {
    const schema = 'Sch ema"ü';
    const table = 'Ta"ble `x` \\ Ä';
    const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
    await source.query(`CREATE SCHEMA ${q(schema)}`);
    await source.query(
      `CREATE TABLE ${q(schema)}.${q(table)} ("Id" int PRIMARY KEY, "wei""rd col" text, "back\`tick\\slash" int, "ünï" text, "dot.ted" text)`,
    );
    await source.query(`INSERT INTO ${q(schema)}.${q(table)} SELECT g, 'w' || g, g, 'ü' || g, 'd' || g FROM generate_series(1, 7) g`);
    const destination = 'Dest "tab" `le` \\ ü.x';

    await expectOk(createMirror('adversarial_names', [mapping(`${schema}.${table}`, destination)]));
    await double.waitForStatus('adversarial_names', 'STATUS_RUNNING');

    expect(await liveCount(destination)).toBe(7);
    expect((await chTable(destination))?.sorting_key).toBe('Id');
    expect((await chColumns(destination)).map(([name]) => name)).toEqual([
      'Id',
      'wei"rd col',
      'back`tick\\slash',
      'ünï',
      'dot.ted',
      '_peerdb_is_deleted',
      '_peerdb_version',
    ]);
    const [row] = await chRows<Record<string, unknown>>(`SELECT * FROM ${backtick(chDatabase)}.${backtick(destination)} WHERE Id = 3`);
    expect(row).toMatchObject({ Id: 3, 'wei"rd col': 'w3', 'back`tick\\slash': 3, ünï: 'ü3', 'dot.ted': 'd3' });
  });

  it('stores NULL as the type default unless the env sets PEERDB_NULLABLE, and adds the synced-at column only when syncedAtColName names it', async () => {
    await source.query('CREATE TABLE public.nulls (id int PRIMARY KEY, note text, amount int, at timestamptz)');
    await source.query('INSERT INTO public.nulls VALUES (1, NULL, NULL, NULL)');
    await expectOk(createMirror('nulls_default', [mapping('public.nulls', 'nulls_default')]));
    await expectOk(
      createMirror('nulls_nullable', [mapping('public.nulls', 'nulls_nullable')], {
        env: { PEERDB_NULLABLE: 'true' },
        syncedAtColName: '_PEERDB_SYNCED_AT',
      }),
    );
    await double.waitForStatus('nulls_default', 'STATUS_RUNNING');
    await double.waitForStatus('nulls_nullable', 'STATUS_RUNNING');

    expect(await chColumns('nulls_default')).toEqual([
      ['id', 'Int32'],
      ['note', 'String'],
      ['amount', 'Int32'],
      ['at', 'DateTime'],
      ['_peerdb_is_deleted', 'UInt8'],
      ['_peerdb_version', 'UInt64'],
    ]);
    expect(await chRows(`SELECT id, note, amount, at FROM ${backtick(chDatabase)}.nulls_default`)).toEqual([
      { id: 1, note: '', amount: 0, at: '0000-00-00 00:00:00' },
    ]);
    expect(await chColumns('nulls_nullable')).toEqual([
      ['id', 'Int32'],
      ['note', 'Nullable(String)'],
      ['amount', 'Nullable(Int32)'],
      ['at', 'Nullable(DateTime)'],
      ['_peerdb_synced_at', 'DateTime'],
      ['_peerdb_is_deleted', 'UInt8'],
      ['_peerdb_version', 'UInt64'],
    ]);
    const [row] = await chRows<Record<string, unknown>>(`SELECT * FROM ${backtick(chDatabase)}.nulls_nullable`);
    expect(row).toMatchObject({ id: 1, note: null, amount: null, at: null });
    expect(row?._peerdb_synced_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });

  it('refuses what PeerDB cannot name (a dot inside a name, no schema) and takes a quoted identifier literally, with 500 invalid mirror and nothing created', async () => {
    await source.query('CREATE TABLE public."ta.ble" (id int PRIMARY KEY)');
    const dotted = await createMirror('dotted', [mapping('public.ta.ble', 'dotted')]);
    expect(dotted.status).toBe(500);
    expect(dotted.body).toEqual({
      code: 13,
      message:
        'invalid mirror: rpc error: code = FailedPrecondition desc = failed to validate source connector pg: invalid source table identifier: invalid table name: public.ta.ble',
      details: [],
    });
    expect((await createMirror('no_schema', [mapping('orders', 'no_schema')])).body.message).toContain(
      'invalid table name: orders',
    );
    const quoted = await createMirror('quoted', [mapping('"public"."orders"', 'quoted')]);
    expect(quoted.status).toBe(500);
    expect(quoted.body.message).toBe(
      'invalid mirror: rpc error: code = FailedPrecondition desc = source tables do not exist: "public"."orders"',
    );
    for (const name of ['dotted', 'no_schema', 'quoted']) expect((await mirrorStatus(name)).status).toBe(404);
  });

  it('answers 409 "flow already exists" for a mirror that exists, and the workflow id with attachToExisting', async () => {
    const table = await sourceTable('duplicate', 2);
    await expectOk(createMirror('duplicate', [mapping(table, 'duplicate')]));
    const again = await createMirror('duplicate', [mapping(table, 'duplicate')]);
    expect(again).toEqual({ status: 409, body: { code: 6, message: 'flow already exists: duplicate', details: [] } });
    const attached = await call('POST', '/v1/flows/cdc/create', {
      connectionConfigs: { flowJobName: 'duplicate', sourceName: 'pg', destinationName: 'ch', tableMappings: [] },
      attachToExisting: true,
    });
    expect(attached).toEqual({ status: 200, body: { workflowId: 'duplicate-peerflow' } });
    expect(double.mirrors().filter((mirror) => mirror.name === 'duplicate')).toHaveLength(1);
  });

  it('answers an unknown destination or source peer with 500, as PeerDB does', async () => {
    const noDestination = await call<ErrorJson>('POST', '/v1/flows/cdc/create', {
      connectionConfigs: { flowJobName: 'no_peer', sourceName: 'pg', destinationName: 'nope', tableMappings: [] },
    });
    expect(noDestination).toEqual({
      status: 500,
      body: { code: 13, message: 'failed to get destination connector: peers not found: [nope]', details: [] },
    });
    const noSource = await call<ErrorJson>('POST', '/v1/flows/cdc/create', {
      connectionConfigs: { flowJobName: 'no_peer', sourceName: 'nope', destinationName: 'ch', tableMappings: [] },
    });
    expect(noSource.status).toBe(500);
    expect(noSource.body.message).toContain('failed to load source peer nope');
  });

  it('accepts a mirror name PeerDB cannot use (200), retries SetupReplication 20 times in STATUS_SNAPSHOT, then fails the mirror with the reason', async () => {
    const table = await sourceTable('bad_name', 1);
    // 20 attempts from a 1-minute first retry: 8.5 hours at PeerDB's pace, a second or two here.
    const fast = await startPeerDbDouble({ clickhouse: testServers().clickhouse, transitionMs: 5, timeScale: 0.00002 });
    try {
      await createPeers(fast);
      const created = await call('POST', '/v1/flows/cdc/create', {
        connectionConfigs: { flowJobName: 'Bad-Name', sourceName: 'pg', destinationName: 'ch', tableMappings: [mapping(table, 'bad_name')], doInitialSnapshot: true },
      }, fast);
      expect(created).toEqual({ status: 200, body: { workflowId: 'Bad-Name-peerflow' } });
      await until(() => fast.mirrors()[0]?.retrying, (retrying) => retrying !== undefined);
      expect(fast.mirrors()[0]).toMatchObject({
        status: 'STATUS_SNAPSHOT',
        retrying: 'SetupReplication (snapshot_flow.go setupReplication): invalid flow job name: `Bad-Name`, it should be ^[a-z_][a-z0-9_]*$',
      });
      await fast.waitForStatus('Bad-Name', 'STATUS_FAILED').catch(() => undefined);
      expect(fast.mirrors()[0]).toMatchObject({
        status: 'STATUS_FAILED',
        error: 'invalid flow job name: `Bad-Name`, it should be ^[a-z_][a-z0-9_]*$',
      });
      expect(fast.slotNames()).toEqual([]);
    } finally {
      await fast.close();
    }
  });

  it('creates the destination tables empty when doInitialSnapshot is false', async () => {
    const table = await sourceTable('no_snapshot', 5);
    await expectOk(createMirror('no_snapshot', [mapping(table, 'no_snapshot')], { doInitialSnapshot: false }));
    // SnapshotFlow still sets up the slot and publication (snapshot_flow.go), under STATUS_SNAPSHOT.
    expect(await statusesUntil('no_snapshot', 'STATUS_RUNNING')).toEqual(['STATUS_SETUP', 'STATUS_SNAPSHOT', 'STATUS_RUNNING']);
    expect(await liveCount('no_snapshot')).toBe(0);
  });

  it('refuses an initial snapshot into a non-empty destination table (500, mirror not created) unless the env allows it', async () => {
    const table = await sourceTable('non_empty', 4);
    await expectOk(createMirror('non_empty_first', [mapping(table, 'non_empty')]));
    await double.waitForStatus('non_empty_first', 'STATUS_RUNNING');

    const refused = await createMirror('non_empty_second', [mapping(table, 'non_empty')]);
    expect(refused.status).toBe(500);
    expect(refused.body.message).toBe(
      'invalid mirror: rpc error: code = FailedPrecondition desc = failed to validate destination connector ch: table non_empty exists and is not empty',
    );
    expect((await mirrorStatus('non_empty_second')).status).toBe(404);

    await expectOk(
      createMirror('non_empty_second', [mapping(table, 'non_empty')], {
        env: { PEERDB_CLICKHOUSE_INITIAL_LOAD_ALLOW_NON_EMPTY_TABLES: 'true' },
      }),
    );
    await double.waitForStatus('non_empty_second', 'STATUS_RUNNING');
    expect(await liveCount('non_empty')).toBe(4);
  });
});

describe('state changes and status: POST /v1/mirrors/state_change, /v1/mirrors/status', () => {
  it('pauses asynchronously (still RUNNING right after the request: the signal reaches the workflow a task later; then PAUSING, then PAUSED) and resumes', async () => {
    const table = await sourceTable('pausing', 1);
    await expectOk(createMirror('pausing', [mapping(table, 'pausing')]));
    await double.waitForStatus('pausing', 'STATUS_RUNNING');

    double.knobs.signalDelayMs = 100;
    expect(await stateChange('pausing', 'STATUS_PAUSED')).toEqual({ status: 200, body: {} });
    expect((await mirrorStatus('pausing')).body.currentFlowState).toBe('STATUS_RUNNING');
    expect(await statusesUntil('pausing', 'STATUS_PAUSED')).toEqual(['STATUS_RUNNING', 'STATUS_PAUSING', 'STATUS_PAUSED']);
    await expectOk(stateChange('pausing', 'STATUS_PAUSED'));
    expect((await mirrorStatus('pausing')).body.currentFlowState).toBe('STATUS_PAUSED');

    await expectOk(stateChange('pausing', 'STATUS_RUNNING'));
    expect(await statusesUntil('pausing', 'STATUS_RUNNING')).toEqual(['STATUS_PAUSED', 'STATUS_RUNNING']);
  });

  it('adds and removes tables of a paused mirror: SNAPSHOT for additions, MODIFYING for removals, then RUNNING; removed tables stay in ClickHouse', async () => {
    const first = await sourceTable('modify_first', 3);
    const second = await sourceTable('modify_second', 5);
    await expectOk(createMirror('modify', [mapping(first, 'modify_first')]));
    await double.waitForStatus('modify', 'STATUS_RUNNING');
    await expectOk(stateChange('modify', 'STATUS_PAUSED'));
    await double.waitForStatus('modify', 'STATUS_PAUSED');

    await expectOk(
      stateChange('modify', 'STATUS_RUNNING', {
        additionalTables: [mapping(second, 'modify_second')],
        removedTables: [mapping(first, 'modify_first')],
      }),
    );
    expect(await statusesUntil('modify', 'STATUS_RUNNING')).toEqual(['STATUS_PAUSED', 'STATUS_SNAPSHOT', 'STATUS_MODIFYING', 'STATUS_RUNNING']);

    const status = await mirrorStatus('modify');
    expect(status.body.cdcStatus?.config.tableMappings.map((m) => m.sourceTableIdentifier)).toEqual([second]);
    expect(status.body.cdcStatus?.rowsSynced).toBe('8');
    expect(await liveCount('modify_second')).toBe(5);
    expect(await liveCount('modify_first')).toBe(3);
  });

  it('creates added tables without copying their rows when skipInitialSnapshotForTableAdditions is set', async () => {
    const first = await sourceTable('skip_first', 1);
    const second = await sourceTable('skip_second', 4);
    await expectOk(createMirror('skip_snapshot', [mapping(first, 'skip_first')]));
    await double.waitForStatus('skip_snapshot', 'STATUS_RUNNING');
    await expectOk(stateChange('skip_snapshot', 'STATUS_PAUSED'));
    await double.waitForStatus('skip_snapshot', 'STATUS_PAUSED');
    await expectOk(
      stateChange('skip_snapshot', 'STATUS_RUNNING', {
        additionalTables: [mapping(second, 'skip_second')],
        skipInitialSnapshotForTableAdditions: true,
      }),
    );
    await double.waitForStatus('skip_snapshot', 'STATUS_RUNNING');
    expect(await liveCount('skip_second')).toBe(0);
    expect(double.mirrors().find((mirror) => mirror.name === 'skip_snapshot')?.tables).toHaveLength(2);
  });

  it('does not apply a table change sent while the mirror runs, but keeps it and applies it at the next pause, which then resumes by itself', async () => {
    const first = await sourceTable('pending_first', 1);
    const second = await sourceTable('pending_second', 2);
    await expectOk(createMirror('pending', [mapping(first, 'pending_first')]));
    await double.waitForStatus('pending', 'STATUS_RUNNING');

    await expectOk(stateChange('pending', 'STATUS_RUNNING', { additionalTables: [mapping(second, 'pending_second')] }));
    // Time passing is the behaviour: the change is not applied while the mirror runs, however long it waits.
    await sleep(4 * TRANSITION_MS);
    const running = await mirrorStatus('pending');
    expect(running.body.currentFlowState).toBe('STATUS_RUNNING');
    expect(running.body.cdcStatus?.config.tableMappings.map((m) => m.sourceTableIdentifier)).toEqual([first]);

    await expectOk(stateChange('pending', 'STATUS_PAUSED'));
    await until(() => double.mirrors().find((m) => m.name === 'pending')?.status, (status) => status !== 'STATUS_RUNNING');
    expect(await statusesUntil('pending', 'STATUS_RUNNING')).toEqual(['STATUS_PAUSING', 'STATUS_SNAPSHOT', 'STATUS_RUNNING']);
    expect(double.mirrors().find((mirror) => mirror.name === 'pending')?.tables.map((m) => m.sourceTableIdentifier)).toEqual([
      first,
      second,
    ]);
    expect(await liveCount('pending_second')).toBe(2);
  });

  it('fails a mirror whose initial load fails (its clone workflows are attempted once), and ignores a table change sent to it', async () => {
    const table = await sourceTable('failed_update', 1);
    double.knobs.snapshotFails = [table];
    await expectOk(createMirror('failed_update', [mapping(table, 'failed_update')]));
    await double.waitForStatus('failed_update', 'STATUS_FAILED').catch(() => undefined);
    expect(double.mirrors().find((mirror) => mirror.name === 'failed_update')?.error).toContain('failed to clone public.failed_update');
    await expectOk(stateChange('failed_update', 'STATUS_RUNNING', { removedTables: [mapping(table, 'failed_update')] }));
    await expectOk(stateChange('failed_update', 'STATUS_PAUSED'));
    // Time passing is the behaviour: a failed mirror ignores the change, however long it waits.
    await sleep(3 * TRANSITION_MS);
    expect(double.mirrors().find((mirror) => mirror.name === 'failed_update')).toMatchObject({
      status: 'STATUS_FAILED',
      tables: [{ sourceTableIdentifier: table }],
    });
  });

  it('loads tables one after the other in the mappings\' order: the first load that fails ends the snapshot, the tables before it loaded, none started after it', async () => {
    const first = await sourceTable('loads_first', 2);
    const failing = await sourceTable('fails_second', 1);
    const never = await sourceTable('never_third', 1);
    double.knobs.snapshotFails = [failing];
    await expectOk(createMirror('in_order', [mapping(first, 'loads_first'), mapping(failing, 'fails_second'), mapping(never, 'never_third')]));
    await double.waitForStatus('in_order', 'STATUS_FAILED').catch(() => undefined);
    const clones = (await mirrorStatus('in_order')).body as unknown as {
      cdcStatus: { snapshotStatus: { clones: { sourceTable: string; fetchCompleted: boolean; numRowsSynced: string }[] } };
    };
    expect(clones.cdcStatus.snapshotStatus.clones.map((c) => [c.sourceTable, c.fetchCompleted, c.numRowsSynced])).toEqual([
      [first, true, '2'],
      [failing, false, '0'],
    ]);
  });

  it('drops a mirror asynchronously: TERMINATING, then 404; the slot is released, the name free again and the ClickHouse table kept', async () => {
    const table = await sourceTable('dropped', 6);
    await expectOk(createMirror('dropped', [mapping(table, 'dropped')]));
    await double.waitForStatus('dropped', 'STATUS_RUNNING');
    expect(double.slotNames()).toContain('peerflow_slot_dropped');

    await expectOk(stateChange('dropped', 'STATUS_TERMINATING'));
    await until(async () => (await mirrorStatus('dropped')).body.currentFlowState, (state) => state === 'STATUS_TERMINATING');
    await until(async () => (await mirrorStatus('dropped')).status, (status) => status === 404);
    expect(double.slotNames()).not.toContain('peerflow_slot_dropped');
    expect(await liveCount('dropped')).toBe(6);
    expect((await call<{ names: string[] }>('GET', '/v1/mirrors/names')).body.names).toContain('dropped');

    // Its workflow still runs for a moment after the 404 (see "drops" below).
    await until(async () => (await createMirror('dropped', [mapping(table, 'dropped')], { doInitialSnapshot: false })).status, (status) => status === 200);
    await double.waitForStatus('dropped', 'STATUS_RUNNING');
  });

  it('answers 400 to a state it cannot move to, and 501 to a resync (not modelled), changing nothing', async () => {
    const table = await sourceTable('illegal', 1);
    await expectOk(createMirror('illegal', [mapping(table, 'illegal')]));
    await double.waitForStatus('illegal', 'STATUS_RUNNING');
    expect(await stateChange('illegal', 'STATUS_SETUP')).toEqual({
      status: 400,
      body: { code: 3, message: 'illegal state change requested: STATUS_SETUP, current state is: STATUS_RUNNING', details: [] },
    });
    expect((await stateChange('illegal', 'STATUS_BOGUS')).status).toBe(400);
    expect((await stateChange('illegal', 'STATUS_RESYNC')).status).toBe(501);
    expect((await mirrorStatus('illegal')).body.currentFlowState).toBe('STATUS_RUNNING');
  });

  it('includes cdcStatus only when includeFlowInfo is asked for, as PeerDB does', async () => {
    const table = await sourceTable('flow_info', 1);
    await expectOk(createMirror('flow_info', [mapping(table, 'flow_info')]));
    const bare = await expectOk(call<MirrorStatusJson>('POST', '/v1/mirrors/status', { flowJobName: 'flow_info' }));
    expect(Object.keys(bare).sort()).toEqual(['createdAt', 'currentFlowState', 'flowJobName']);
  });
});

describe('what PeerDB retries for ever, and the state it leaves a mirror in', () => {
  it('keeps a new mirror in STATUS_SETUP while a table has neither a primary key nor REPLICA IDENTITY FULL; a drop still works', async () => {
    await source.query('CREATE TABLE public.keyless (id int, note text)');
    await source.query("INSERT INTO public.keyless VALUES (1, 'a')");
    // Validation reads the table's schema, which a missing key does not break: the create is accepted.
    await expectOk(createMirror('keyless', [mapping('public.keyless', 'keyless')]));
    const view = await until(() => double.mirrors().find((m) => m.name === 'keyless'), (m) => m?.retrying !== undefined);
    expect(view).toMatchObject({
      status: 'STATUS_SETUP',
      retrying: 'EnsurePullability (setup_flow.go ensurePullability): failed to ensure pullability: table "public"."keyless" has no primary keys and does not have REPLICA IDENTITY FULL',
    });
    // Time passing is the behaviour: the mirror stays in SETUP for ever.
    await sleep(10 * TRANSITION_MS);
    expect((await mirrorStatus('keyless')).body.currentFlowState).toBe('STATUS_SETUP');
    expect((await sourceSlots()).map((slot) => slot.slot_name)).not.toContain('peerflow_slot_keyless');

    await expectOk(stateChange('keyless', 'STATUS_TERMINATING'));
    await until(async () => (await mirrorStatus('keyless')).status, (status) => status === 404);
  });

  it('refuses a table with REPLICA IDENTITY NOTHING at create: validation reads its schema (500 invalid mirror)', async () => {
    await source.query('CREATE TABLE public.nothing_identity (id int PRIMARY KEY)');
    await source.query('ALTER TABLE public.nothing_identity REPLICA IDENTITY NOTHING');
    const refused = await createMirror('nothing_identity', [mapping('public.nothing_identity', 'nothing_identity')]);
    expect(refused.status).toBe(500);
    expect(refused.body.message).toMatch(/^invalid mirror: rpc error: code = FailedPrecondition desc = failed to get source table schema: .*replica identity 'n'\/NOTHING/);
  });

  it('keeps a new mirror in STATUS_SETUP when a table is dropped after validation: "table does not exist" is retried', async () => {
    const table = await sourceTable('dropped_early', 2);
    double.knobs.stuck = true;
    await expectOk(createMirror('dropped_early', [mapping(table, 'dropped_early')]));
    await source.query('DROP TABLE public.dropped_early');
    double.knobs.stuck = false;
    const view = await until(() => double.mirrors().find((m) => m.name === 'dropped_early'), (m) => m?.retrying !== undefined);
    expect(view?.status).toBe('STATUS_SETUP');
    expect(view?.retrying).toContain('failed to ensure pullability: table does not exist');
    await expectOk(stateChange('dropped_early', 'STATUS_TERMINATING'));
  });

  it('keeps a mirror in STATUS_SNAPSHOT for ever when a table it is asked to add no longer exists; cancel_table_addition brings it back RUNNING', async () => {
    const kept = await sourceTable('cancel_kept', 2);
    await expectOk(createMirror('cancel', [mapping(kept, 'cancel_kept')]));
    await double.waitForStatus('cancel', 'STATUS_RUNNING');
    await expectOk(stateChange('cancel', 'STATUS_PAUSED'));
    await double.waitForStatus('cancel', 'STATUS_PAUSED');

    await expectOk(stateChange('cancel', 'STATUS_RUNNING', { additionalTables: [mapping('public.cancel_gone', 'cancel_gone')] }));
    const view = await until(() => double.mirrors().find((m) => m.name === 'cancel'), (m) => m?.retrying !== undefined);
    expect(view?.retrying).toMatch(/^AddTablesToPublication .*: failed to alter publication: relation "public.cancel_gone" does not exist$/);
    // Time passing is the behaviour: the mirror stays in SNAPSHOT for ever.
    await sleep(10 * TRANSITION_MS);
    const stuck = await mirrorStatus('cancel');
    expect(stuck.body.currentFlowState).toBe('STATUS_SNAPSHOT');
    const replicating = stuck.body.cdcStatus!.config.tableMappings;
    expect(replicating.map((m) => m.sourceTableIdentifier)).toEqual([kept, 'public.cancel_gone']);

    // The catalog's tables must all be named, or PeerDB refuses (it cannot clean up a removal).
    const partial = await call<ErrorJson>('POST', '/v1/flows/cdc/cancel_table_addition', {
      flowJobName: 'cancel',
      currentlyReplicatingTables: [],
      idempotencyKey: 'first',
    });
    expect(partial).toMatchObject({ status: 400, body: { code: 9 } });
    expect(partial.body.message).toContain('assume_table_removal_will_not_happen');

    const cancelled = await call<{ tablesAfterCancellation: TableMappingJson[] }>('POST', '/v1/flows/cdc/cancel_table_addition', {
      flowJobName: 'cancel',
      currentlyReplicatingTables: replicating,
      idempotencyKey: 'second',
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.tablesAfterCancellation.map((m) => m.sourceTableIdentifier)).toEqual([kept]);
    expect((await mirrorStatus('cancel')).body.currentFlowState).toBe('STATUS_RUNNING');
    expect(await publicationTables('peerflow_pub_cancel')).toEqual([kept]);
    const again = await call<ErrorJson>('POST', '/v1/flows/cdc/cancel_table_addition', {
      flowJobName: 'cancel',
      currentlyReplicatingTables: replicating,
      idempotencyKey: 'third',
    });
    expect(again).toEqual({
      status: 400,
      body: { code: 9, message: 'cannot cancel table addition for flow cancel in status STATUS_RUNNING', details: [] },
    });

    // The mirror takes edits again.
    const added = await sourceTable('cancel_added', 3);
    await expectOk(stateChange('cancel', 'STATUS_PAUSED'));
    await double.waitForStatus('cancel', 'STATUS_PAUSED');
    await expectOk(stateChange('cancel', 'STATUS_RUNNING', { additionalTables: [mapping(added, 'cancel_added')] }));
    await until(async () => (await mirrorStatus('cancel')).body.cdcStatus?.config.tableMappings.length, (n) => n === 2);
    await double.waitForStatus('cancel', 'STATUS_RUNNING');
    expect(await liveCount('cancel_added')).toBe(3);
    expect(await publicationTables('peerflow_pub_cancel')).toEqual([added, kept]);
  });

  it('adds a table without a key to a running mirror unchecked: it joins the publication, and PostgreSQL then rejects UPDATE and DELETE on it', async () => {
    const keyed = await sourceTable('publication_keyed', 1);
    await source.query('CREATE TABLE public.publication_keyless (id int, note text)');
    await source.query("INSERT INTO public.publication_keyless VALUES (1, 'a')");
    await expectOk(createMirror('publication', [mapping(keyed, 'publication_keyed')]));
    await double.waitForStatus('publication', 'STATUS_RUNNING');
    expect(await publicationTables('peerflow_pub_publication')).toEqual([keyed]);
    expect(await sourceSlots()).toContainEqual({ slot_name: 'peerflow_slot_publication', plugin: 'pgoutput' });

    await expectOk(stateChange('publication', 'STATUS_PAUSED'));
    await double.waitForStatus('publication', 'STATUS_PAUSED');
    await expectOk(
      stateChange('publication', 'STATUS_RUNNING', { additionalTables: [mapping('public.publication_keyless', 'publication_keyless')] }),
    );
    await until(async () => (await mirrorStatus('publication')).body.cdcStatus?.config.tableMappings.length, (n) => n === 2);
    await double.waitForStatus('publication', 'STATUS_RUNNING');
    expect(await publicationTables('peerflow_pub_publication')).toEqual([keyed, 'public.publication_keyless']);
    await expect(source.query("UPDATE public.publication_keyless SET note = 'b'")).rejects.toThrow(
      /cannot update table "publication_keyless" because it does not have a replica identity and publishes updates/,
    );
    await source.query("INSERT INTO public.publication_keyless VALUES (2, 'c')");

    await expectOk(stateChange('publication', 'STATUS_PAUSED'));
    await double.waitForStatus('publication', 'STATUS_PAUSED');
    await expectOk(
      stateChange('publication', 'STATUS_RUNNING', { removedTables: [mapping('public.publication_keyless', 'publication_keyless')] }),
    );
    await until(() => publicationTables('peerflow_pub_publication'), (tables) => tables.length === 1);
    await double.waitForStatus('publication', 'STATUS_RUNNING');
    await source.query("UPDATE public.publication_keyless SET note = 'd'");

    await expectOk(stateChange('publication', 'STATUS_TERMINATING'));
    await until(async () => (await mirrorStatus('publication')).status, (status) => status === 404);
    expect((await sourceSlots()).map((slot) => slot.slot_name)).not.toContain('peerflow_slot_publication');
    expect(await publicationTables('peerflow_pub_publication')).toEqual([]);
    const { rows } = await source.query("SELECT 1 FROM pg_publication WHERE pubname = 'peerflow_pub_publication'");
    expect(rows).toEqual([]);
  });
});

describe('signals: state changes answer before the mirror acts', () => {
  it('answers a resume with an update while the mirror is still PAUSED: the workflow reads the two signals a task later', async () => {
    const first = await sourceTable('signals_first', 1);
    const second = await sourceTable('signals_second', 2);
    await expectOk(createMirror('signals', [mapping(first, 'signals_first')]));
    await double.waitForStatus('signals', 'STATUS_RUNNING');
    await expectOk(stateChange('signals', 'STATUS_PAUSED'));
    await double.waitForStatus('signals', 'STATUS_PAUSED');
    double.knobs.signalDelayMs = 300;
    await expectOk(stateChange('signals', 'STATUS_RUNNING', { additionalTables: [mapping(second, 'signals_second')] }));
    expect((await mirrorStatus('signals')).body.currentFlowState).toBe('STATUS_PAUSED');
    expect(await statusesUntil('signals', 'STATUS_RUNNING')).toEqual(['STATUS_PAUSED', 'STATUS_SNAPSHOT', 'STATUS_RUNNING']);
    expect(await liveCount('signals_second')).toBe(2);
  });

  it('applies an update sent with STATUS_PAUSED to a paused mirror (one signal), which then resumes by itself', async () => {
    const first = await sourceTable('one_signal_first', 1);
    const second = await sourceTable('one_signal_second', 2);
    await expectOk(createMirror('one_signal', [mapping(first, 'one_signal_first')]));
    await double.waitForStatus('one_signal', 'STATUS_RUNNING');
    await expectOk(stateChange('one_signal', 'STATUS_PAUSED'));
    await double.waitForStatus('one_signal', 'STATUS_PAUSED');
    await expectOk(stateChange('one_signal', 'STATUS_PAUSED', { additionalTables: [mapping(second, 'one_signal_second')] }));
    expect(await statusesUntil('one_signal', 'STATUS_RUNNING')).toEqual(['STATUS_PAUSED', 'STATUS_SNAPSHOT', 'STATUS_RUNNING']);
    expect(double.mirrors().find((m) => m.name === 'one_signal')?.tables).toHaveLength(2);
  });

  it('loses an update that reaches the mirror while it snapshots added tables: SNAPSHOT does not read it, and nothing keeps it', async () => {
    const first = await sourceTable('lost_first', 1);
    const second = await sourceTable('lost_second', 1);
    const third = await sourceTable('lost_third', 1);
    await expectOk(createMirror('lost', [mapping(first, 'lost_first')]));
    await double.waitForStatus('lost', 'STATUS_RUNNING');
    await expectOk(stateChange('lost', 'STATUS_PAUSED'));
    await double.waitForStatus('lost', 'STATUS_PAUSED');
    double.knobs.stuck = true;
    await expectOk(stateChange('lost', 'STATUS_RUNNING', { additionalTables: [mapping(second, 'lost_second')] }));
    await until(async () => (await mirrorStatus('lost')).body.currentFlowState, (state) => state === 'STATUS_SNAPSHOT');
    await expectOk(stateChange('lost', 'STATUS_RUNNING', { additionalTables: [mapping(third, 'lost_third')] }));
    // Time passing is the behaviour: the update reaches the mirror (a task later) while it is still in SNAPSHOT.
    await sleep(3 * TRANSITION_MS);
    double.knobs.stuck = false;
    await double.waitForStatus('lost', 'STATUS_RUNNING');
    await expectOk(stateChange('lost', 'STATUS_PAUSED'));
    await double.waitForStatus('lost', 'STATUS_PAUSED');
    expect(double.mirrors().find((m) => m.name === 'lost')?.tables.map((m) => m.sourceTableIdentifier)).toEqual([first, second]);
  });
});

describe('drops', () => {
  it('drops a failed mirror within the request: TERMINATING meanwhile, gone (404) when the answer comes', async () => {
    const table = await sourceTable('failed_drop', 1);
    double.knobs.snapshotFails = [table];
    double.knobs.failedDropMs = 400;
    await expectOk(createMirror('failed_drop', [mapping(table, 'failed_drop')]));
    await double.waitForStatus('failed_drop', 'STATUS_FAILED').catch(() => undefined);
    const started = Date.now();
    const dropping = stateChange('failed_drop', 'STATUS_TERMINATING');
    await until(() => double.mirrors().find((m) => m.name === 'failed_drop')?.status, (status) => status === 'STATUS_TERMINATING');
    expect((await mirrorStatus('failed_drop')).body.currentFlowState).toBe('STATUS_TERMINATING');
    expect(await dropping).toEqual({ status: 200, body: {} });
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect((await mirrorStatus('failed_drop')).status).toBe(404);
    expect((await sourceSlots()).map((slot) => slot.slot_name)).not.toContain('peerflow_slot_failed_drop');
  });

  it('answers a create between a drop\'s 404 and the end of its workflow with 409 "workflow already exists for flow"', async () => {
    const table = await sourceTable('recreated', 1);
    await expectOk(createMirror('recreated', [mapping(table, 'recreated')]));
    await double.waitForStatus('recreated', 'STATUS_RUNNING');
    double.knobs.dropLingerMs = 500;
    await expectOk(stateChange('recreated', 'STATUS_TERMINATING'));
    await until(async () => (await mirrorStatus('recreated')).status, (status) => status === 404);
    expect(await createMirror('recreated', [mapping(table, 'recreated')], { doInitialSnapshot: false })).toEqual({
      status: 409,
      body: { code: 6, message: 'workflow already exists for flow: recreated', details: [] },
    });
    await until(async () => (await createMirror('recreated', [mapping(table, 'recreated')], { doInitialSnapshot: false })).status, (status) => status === 200);
    await double.waitForStatus('recreated', 'STATUS_RUNNING');
  });
});

describe('requests as grpc-gateway reads them for PeerDB v0.37', () => {
  it('accepts numeric enum values, and ignores excludeSnapshotStatus, a field v0.37.4 does not have', async () => {
    const table = await sourceTable('numeric_enum', 1);
    await expectOk(createMirror('numeric_enum', [mapping(table, 'numeric_enum')]));
    await double.waitForStatus('numeric_enum', 'STATUS_RUNNING');
    await expectOk(call('POST', '/v1/mirrors/state_change', { flowJobName: 'numeric_enum', requestedFlowState: 2 }));
    await double.waitForStatus('numeric_enum', 'STATUS_PAUSED');
    const status = await expectOk(
      call<MirrorStatusJson & { cdcStatus: { snapshotStatus: unknown } }>('POST', '/v1/mirrors/status', {
        flowJobName: 'numeric_enum',
        includeFlowInfo: true,
        excludeSnapshotStatus: true,
      }),
    );
    expect(status.cdcStatus.snapshotStatus).toMatchObject({ clones: [{ sourceTable: table, numRowsSynced: '1', consolidateCompleted: true }] });
  });

  it('answers creates with 500 "invalid mirror: ... Unavailable" and state changes with 503 in maintenance mode', async () => {
    const table = await sourceTable('maintenance', 1);
    double.knobs.maintenance = true;
    const refused = await createMirror('maintenance', [mapping(table, 'maintenance')]);
    expect(refused).toEqual({
      status: 500,
      body: {
        code: 13,
        message: 'invalid mirror: rpc error: code = Unavailable desc = PeerDB is under maintenance. Please retry in a few minutes',
        details: [],
      },
    });
    expect(await stateChange('ghost', 'STATUS_PAUSED')).toEqual({
      status: 503,
      body: { code: 14, message: 'PeerDB is under maintenance. Please retry in a few minutes', details: [] },
    });
  });

  it('fails a snapshot whose tables share a clone name when cloned in parallel, and not when cloned one at a time', async () => {
    await source.query('CREATE TABLE public."clone-name" (id int PRIMARY KEY)');
    await source.query('CREATE TABLE public."clone_name" (id int PRIMARY KEY)');
    const tables = [mapping('public.clone-name', 'clone_dash'), mapping('public.clone_name', 'clone_underscore')];
    await expectOk(createMirror('clones_parallel', tables, { snapshotNumTablesInParallel: 2 }));
    await double.waitForStatus('clones_parallel', 'STATUS_FAILED').catch(() => undefined);
    expect(double.mirrors().find((m) => m.name === 'clones_parallel')?.error).toMatch(/child workflow already started: clone_clones_parallel_public_clone_name_/);
    await expectOk(createMirror('clones_serial', tables.map((m) => ({ ...m, destinationTableIdentifier: `${m.destinationTableIdentifier}_serial` }))));
    await double.waitForStatus('clones_serial', 'STATUS_RUNNING');
  });
});

describe('JSON encoding', () => {
  it('names every response field as the contract does, emits default values, and writes 64-bit integers as strings', async () => {
    const table = await sourceTable('shape', 2);
    expectContractShape(await expectOk(call('POST', '/v1/peers/create', { peer: pgPeer('pg') })), 'peerdb_route.CreatePeerResponse');
    expectContractShape(await expectOk(createMirror('shape', [mapping(table, 'shape')])), 'peerdb_route.CreateCDCFlowResponse');
    await double.waitForStatus('shape', 'STATUS_RUNNING');
    const status = await expectOk(mirrorStatus('shape'));
    expectContractShape(status, 'peerdb_route.MirrorStatusResponse');
    expect(status.cdcStatus).toBeDefined();
    expect(status.cdcStatus?.rowsSynced).toBe('2');
    expectContractShape(await expectOk(call('GET', '/v1/mirrors/list')), 'peerdb_route.ListMirrorsResponse');
    expectContractShape(await expectOk(call('GET', '/v1/mirrors/names')), 'peerdb_route.ListMirrorNamesResponse');
    expectContractShape(await expectOk(stateChange('shape', 'STATUS_PAUSED')), 'peerdb_route.FlowStateChangeResponse');
  });

  it('lists live mirrors with int64 ids as strings and createdAt in Unix milliseconds, and every mirror name ever created', async () => {
    const before = Date.now();
    const table = await sourceTable('listed', 1);
    await expectOk(createMirror('listed', [mapping(table, 'listed')]));
    const { mirrors } = await expectOk(call<ListMirrorsJson>('GET', '/v1/mirrors/list'));
    const listed = mirrors.find((mirror) => mirror.name === 'listed');
    expect(listed).toMatchObject({ workflowId: 'listed-peerflow', status: 'STATUS_SETUP' });
    expect(listed?.id).toMatch(/^\d+$/);
    expect(listed?.createdAt).toBeGreaterThanOrEqual(before);
    expect(listed?.createdAt).toBeLessThanOrEqual(Date.now());
    const { names } = await expectOk(call<{ names: string[] }>('GET', '/v1/mirrors/names'));
    expect(names).toEqual([...names].sort());
    expect(names).toContain('listed');
  });
});

describe('knobs', () => {
  it('failNext answers its status to the next requests without side effects', async () => {
    const table = await sourceTable('fail_next', 1);
    double.knobs.failNext = { count: 2, status: 500 };
    const { host, port, user, password } = database.settings;
    const peer = await call<ErrorJson>('POST', '/v1/peers/create', {
      peer: { name: 'pg_fail_next', type: 'POSTGRES', postgresConfig: { host, port, user, password, database: database.settings.database } },
    });
    expect(peer.status).toBe(500);
    expect(peer.body).toMatchObject({ code: 13, details: [] });
    expect((await createMirror('fail_next', [mapping(table, 'fail_next')])).status).toBe(500);
    expect(double.knobs.failNext).toBeUndefined();

    expect((await mirrorStatus('fail_next')).status).toBe(404);
    const withPeer = await call<ErrorJson>('POST', '/v1/flows/cdc/create', {
      connectionConfigs: { flowJobName: 'fail_next', sourceName: 'pg_fail_next', destinationName: 'ch', tableMappings: [] },
    });
    expect(withPeer.body.message).toContain('failed to load source peer pg_fail_next');
  });

  it('stuck keeps asynchronous transitions from progressing: a pause stays STATUS_PAUSING until released', async () => {
    const table = await sourceTable('stuck', 1);
    await expectOk(createMirror('stuck', [mapping(table, 'stuck')]));
    await double.waitForStatus('stuck', 'STATUS_RUNNING');
    double.knobs.stuck = true;
    await expectOk(stateChange('stuck', 'STATUS_PAUSED'));
    // Time passing is the behaviour: a stuck mirror does not move on, however long it waits.
    await sleep(6 * TRANSITION_MS);
    expect((await mirrorStatus('stuck')).body.currentFlowState).toBe('STATUS_PAUSING');
    double.knobs.stuck = false;
    await double.waitForStatus('stuck', 'STATUS_PAUSED');
  });
});

describe('activeSlots: the slot held as PeerDB\'s CDC pull holds it', () => {
  interface SlotRow {
    active: boolean;
    active_pid: number | null;
    confirmed_flush_lsn: string;
    restart_lsn: string;
    /** pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn): the WAL the slot retains, in bytes. */
    retained: number;
  }

  /** The slot as pg_replication_slots has it; undefined when there is no such slot. */
  async function slotRow(slot: string): Promise<SlotRow | undefined> {
    const { rows } = await source.query<SlotRow>(
      `SELECT active, active_pid, confirmed_flush_lsn::text, restart_lsn::text,
              pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slot],
    );
    return rows[0];
  }

  /** Whether confirmed_flush_lsn of `slot` has reached `lsn`. */
  async function confirmedPast(slot: string, lsn: string): Promise<boolean> {
    const { rows } = await source.query<{ past: boolean }>(
      'SELECT confirmed_flush_lsn >= $2::pg_lsn AS past FROM pg_replication_slots WHERE slot_name = $1',
      [slot, lsn],
    );
    return rows[0]?.past === true;
  }

  /**
   * Where the WAL written so far ends. The insert position: the test server commits asynchronously
   * (synchronous_commit=off), so pg_current_wal_lsn(), the write position, lags behind a commit for a moment.
   */
  async function walEnd(): Promise<string> {
    const { rows } = await source.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    return rows[0]!.lsn;
  }

  async function publicationExists(publication: string): Promise<boolean> {
    const { rows } = await source.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication]);
    return rows.length > 0;
  }

  it('streams from a running mirror\'s slot and confirms it (active, confirmed_flush_lsn follows the WAL), starts again when the connection dies, lets go on pause (inactive, retaining WAL), takes it again on resume, and stops before the slot is dropped (drop, close())', async () => {
    const table = await sourceTable('active_slot', 3);
    const other = await sourceTable('active_slot_close', 1);
    // timeScale 0.001: PeerDB's 1-minute wait after a failed pull is 60 ms, the double's floor of 100 ms here.
    const pulling = await startPeerDbDouble({
      clickhouse: testServers().clickhouse,
      transitionMs: TRANSITION_MS,
      timeScale: TIME_SCALE,
      activeSlots: true,
    });
    const slot = 'peerflow_slot_active_slot';
    const logs = async () =>
      (await expectOk(call<{ errors: { errorMessage: string }[] }>('POST', '/v1/mirrors/logs', { flowJobName: 'active_slot', level: 'all', numPerPage: 10 }, pulling)))
        .errors.map((error) => error.errorMessage);
    try {
      await createPeers(pulling);
      for (const [name, source] of [['active_slot', table], ['active_slot_close', other]] as const) {
        await expectOk(call('POST', '/v1/flows/cdc/create', {
          connectionConfigs: { flowJobName: name, sourceName: 'pg', destinationName: 'ch', tableMappings: [mapping(source, name)], doInitialSnapshot: true },
        }, pulling));
      }
      await pulling.waitForStatus('active_slot', 'STATUS_RUNNING');
      const first = await until(() => slotRow(slot), (row) => row?.active === true);

      // Running: what is written to a mirrored table is streamed and confirmed.
      await source.query(`INSERT INTO ${table} VALUES (10, 'streamed')`);
      const written = await walEnd();
      await until(() => confirmedPast(slot, written), (past) => past, 10_000);
      expect(await confirmedPast(slot, first!.confirmed_flush_lsn)).toBe(true);
      expect((await slotRow(slot))!.confirmed_flush_lsn).not.toBe(first!.confirmed_flush_lsn);
      expect(await logs()).toEqual([]);

      // Its walsender killed (as when PostgreSQL restarts): the pull fails, is logged, and starts again.
      await source.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      await until(() => slotRow(slot), (row) => row?.active === true && row.active_pid !== first!.active_pid);
      expect(await logs()).toEqual([
        'unexpected termination of replication stream: FATAL: terminating connection due to administrator command',
      ]);

      // Paused: the client is gone before the mirror reports PAUSED, and the slot retains the WAL written since.
      await expectOk(call('POST', '/v1/mirrors/state_change', { flowJobName: 'active_slot', requestedFlowState: 'STATUS_PAUSED' }, pulling));
      await pulling.waitForStatus('active_slot', 'STATUS_PAUSED');
      const paused = (await slotRow(slot))!;
      expect(paused.active).toBe(false);
      await source.query(`INSERT INTO ${table} SELECT g, md5(g::text) FROM generate_series(100, 1099) g`);
      const writtenWhilePaused = await walEnd();
      const retaining = await until(() => slotRow(slot), (row) => row!.retained >= paused.retained + 1000 * 32);
      expect(retaining).toMatchObject({ active: false, restart_lsn: paused.restart_lsn, confirmed_flush_lsn: paused.confirmed_flush_lsn });

      // Resumed: a client streams again, from where the slot was, and confirms the WAL written meanwhile.
      await expectOk(call('POST', '/v1/mirrors/state_change', { flowJobName: 'active_slot', requestedFlowState: 'STATUS_RUNNING' }, pulling));
      await pulling.waitForStatus('active_slot', 'STATUS_RUNNING');
      await until(() => slotRow(slot), (row) => row?.active === true);
      await until(() => confirmedPast(slot, writtenWhilePaused), (past) => past, 10_000);

      // Dropped: the client stops first (PostgreSQL refuses to drop an active slot), then slot and publication go.
      await expectOk(call('POST', '/v1/mirrors/state_change', { flowJobName: 'active_slot', requestedFlowState: 'STATUS_TERMINATING' }, pulling));
      await until(() => Promise.resolve(pulling.mirrors().some((mirror) => mirror.name === 'active_slot')), (live) => !live);
      expect(await slotRow(slot)).toBeUndefined();
      expect(await publicationExists('peerflow_pub_active_slot')).toBe(false);
      expect(await logs()).toHaveLength(1);

      await until(() => slotRow('peerflow_slot_active_slot_close'), (row) => row?.active === true);
    } finally {
      await pulling.close();
    }
    // close() stops the running mirror's client before it drops the slot, which PostgreSQL would refuse otherwise.
    expect(await slotRow('peerflow_slot_active_slot_close')).toBeUndefined();
    expect(await publicationExists('peerflow_pub_active_slot_close')).toBe(false);
  });
});
