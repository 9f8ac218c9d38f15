import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { loadConfig, type Config } from '../lib/config.js';
import { startLocalServers, type LocalServers } from '../test/servers/index.js';
import { freePort } from '../lib/free-port.js';
import { mirrorNameFor, namingRules } from '../lib/naming.js';
import { reconcileWorkflowId } from '../lib/workflow-safe/workflow-ids.js';
import { ensureVerifyAllSchedule } from '../lib/verify-all-schedule.js';
import { installCapture } from '../sql/migrations.js';
import { startPeerDbDouble } from '../test/peerdb-double/index.js';
import { DemoProgress } from './demo-progress.js';

const SAMPLE_TABLE = { schema: 'public', table: 'orders' };
// One transaction: the test double copies a table's rows once, when the table joins the mirror (it does no CDC).
const SAMPLE_SQL = [
  'BEGIN',
  'CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(10,2))',
  "INSERT INTO orders VALUES (1, 'Ada', 12.50), (2, 'Grace', 99.00), (3, 'Linus', 7.25)",
  'COMMIT',
];
const ROLES = 'worker,listener,api';
const say = (line: string) => console.log(`demo: ${line}`);
/** Never keeps the process alive by itself: a wait raced against something else must not delay the exit. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** SIGINT and SIGTERM ask the demo to stop; it then stops everything in order instead of dying at once. */
function stopRequests() {
  let requested = false;
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  const onSignal = () => {
    requested = true;
    resolve();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  return {
    get requested() {
      return requested;
    },
    promise,
    dispose: () => void process.off('SIGINT', onSignal).off('SIGTERM', onSignal),
  };
}

/** The environment of the demo's `echodb run`: the local servers, the test double, short delays. */
function echoEnvironment(servers: LocalServers, peerdbUrl: string, apiPort: number): Record<string, string> {
  const { postgres, redis, clickhouse, temporal } = servers.settings;
  const clickhouseUrl = new URL(clickhouse.url);
  return {
    POSTGRES_HOST: postgres.host,
    POSTGRES_PORT: String(postgres.port),
    POSTGRES_DB: postgres.database,
    POSTGRES_USER: postgres.user,
    POSTGRES_PASSWORD: postgres.password,
    REDIS_HOST: redis.host,
    REDIS_PORT: String(redis.port),
    REDIS_PASSWORD: redis.password,
    CLICKHOUSE_HOST: clickhouseUrl.hostname,
    CLICKHOUSE_PORT: clickhouseUrl.port,
    CLICKHOUSE_USER: clickhouse.user,
    CLICKHOUSE_PASSWORD: clickhouse.password,
    CLICKHOUSE_PEER_PORT: String(clickhouse.nativePort),
    PEERDB_API_URL: peerdbUrl,
    SYNC_SCHEMA: SAMPLE_TABLE.schema,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TEMPORAL_TASK_QUEUE: 'echodb',
    WORKER_ID: 'demo',
    HEALTH_PORT: String(apiPort),
    CONSISTENCY_CHECKER_PORT: String(apiPort),
    OUTBOX_POLL_INTERVAL: '1',
    COALESCE_WINDOW: '0.5',
    VERIFY_DELAY: '1',
    VERIFY_INTERVAL: '2',
  };
}

/**
 * `echodb run` with all roles, as a child process in its own process group (so that Ctrl-C reaches the demo
 * alone, which stops it in order), its log lines in a file.
 */
function startEcho(env: Record<string, string>, logFile: string) {
  const entry = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './echodb.ts' : './echodb.js', import.meta.url));
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [...process.execArgv, entry, 'run', '--roles', ROLES], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ECHODB_ENV_FILE: '/nonexistent/.env', ...env },
    detached: true,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  let exitCode: number | string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitCode = code ?? signal ?? undefined;
      resolve();
    });
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
  };
  return {
    pid: child.pid!,
    get exitCode() {
      return exitCode;
    },
    /** SIGTERM (graceful: work in hand is finished), then SIGKILL after 20 s. */
    async stop() {
      if (exitCode === undefined) signalGroup('SIGTERM');
      if ((await Promise.race([exited.then(() => 'exited'), sleep(20_000)])) !== 'exited') signalGroup('SIGKILL');
      await exited;
    },
  };
}

async function workerRunning(apiUrl: string): Promise<boolean> {
  try {
    const health = (await (await fetch(`${apiUrl}/health`)).json()) as { worker_state?: string };
    return health.worker_state === 'RUNNING';
  } catch {
    return false;
  }
}

async function reconciled(client: Client, taskQueue: string): Promise<boolean> {
  try {
    const { status } = await client.workflow.getHandle(reconcileWorkflowId(taskQueue)).describe();
    return status.name === 'COMPLETED';
  } catch {
    return false; // not started yet
  }
}

function logTail(logFile: string, lines = 15): string {
  return fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

function printAddresses(config: Config, servers: LocalServers, apiUrl: string, logFile: string): void {
  const { postgres, temporal } = servers.settings;
  const mirror = mirrorNameFor(SAMPLE_TABLE, namingRules(config));
  const workflows = `${temporal.uiUrl}/namespaces/${temporal.namespace}/workflows`;
  const psqlUrl = `postgresql://${postgres.user}:${postgres.password}@${postgres.host}:${postgres.port}/${postgres.database}`;
  console.log(
    [
      '',
      `Temporal UI   ${workflows}`,
      `              ${workflows}?query=${encodeURIComponent(`EchoDbMirror="${mirror}"`)}  (mirror ${mirror})`,
      `HTTP API      curl ${apiUrl}/metrics`,
      `              curl '${apiUrl}/verify?schema=${SAMPLE_TABLE.schema}&table=${SAMPLE_TABLE.table}'`,
      `PostgreSQL    psql '${psqlUrl}'`,
      `EchoDB's log  ${logFile}`,
      '',
    ].join('\n'),
  );
}

/**
 * The whole flow on one machine, without Docker: throwaway PostgreSQL, Redis, ClickHouse and Temporal (with its
 * Web UI), the PeerDB test double, EchoDB with all its roles. Creates a sample table and prints what EchoDB does
 * with it; then, unless `exit`, keeps running and prints what it does with the user's own tables until Ctrl-C.
 * Everything is stopped and the temporary directory removed at the end.
 */
export async function runDemo(options: { exit?: boolean } = {}): Promise<void> {
  const stop = stopRequests();
  const cleanups: (() => Promise<unknown>)[] = [];
  let dir: string | undefined;
  try {
    say('starting PostgreSQL, Redis, ClickHouse and Temporal (with its Web UI) on free loopback ports ...');
    const startedAt = Date.now();
    const servers = await startLocalServers({ temporalUi: true, handleSignals: false });
    cleanups.push(() => servers.stop());
    dir = servers.dir;
    say(`servers ready in ${((Date.now() - startedAt) / 1000).toFixed(1)} s, in ${dir}`);
    if (stop.requested) return;

    const peerdb = await startPeerDbDouble({ clickhouse: servers.settings.clickhouse });
    cleanups.push(() => peerdb.close());
    say(`PeerDB test double at ${peerdb.url}`);
    say("  PeerDB test double: follows PeerDB's Flow API and copies initial snapshots; it does no CDC");

    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const env = echoEnvironment(servers, peerdb.url, apiPort);
    const config = loadConfig({ envFile: false, env });
    const sql = new pg.Client(servers.settings.postgres);
    await sql.connect();
    cleanups.push(() => sql.end());
    const applied = await installCapture(sql);
    const temporal = await Connection.connect({ address: config.temporal.address });
    cleanups.push(() => temporal.close());
    const client = new Client({ connection: temporal, namespace: config.temporal.namespace });
    const schedule = await ensureVerifyAllSchedule(client, config);
    say(`setup: applied ${applied.map((m) => m.name).join(', ')}; verify-all schedule ${schedule}`);

    const logFile = path.join(dir, 'echodb.log');
    const echo = startEcho(env, logFile);
    servers.killAlong(echo.pid);
    cleanups.push(() => echo.stop());
    say(`echodb run --roles ${ROLES}: starting (log: ${logFile})`);
    // Ready when the worker runs and the new leader's reconcile is done: the sample table then goes the usual
    // way, through the outbox, instead of being found by that reconcile.
    const ready = async () => (await workerRunning(apiUrl)) && (await reconciled(client, config.temporal.taskQueue));
    for (const deadline = Date.now() + 90_000; !(await ready()); await sleep(200)) {
      if (stop.requested) return;
      if (echo.exitCode !== undefined) throw new Error(`echodb run exited (${echo.exitCode}):\n${logTail(logFile)}`);
      if (Date.now() > deadline) throw new Error(`echodb run not ready after 90 s:\n${logTail(logFile)}`);
    }
    say(`echodb run: worker, listener (leader) and API running; the API at ${apiUrl}`);

    const progress = new DemoProgress(sql, console.log);
    for (const statement of SAMPLE_SQL) console.log(`sql> ${statement}`);
    for (const statement of SAMPLE_SQL) await sql.query(statement);
    const verified = () => progress.verifications.find((v) => v.schema_name === SAMPLE_TABLE.schema && v.table_name === SAMPLE_TABLE.table);
    for (const deadline = Date.now() + 60_000; !verified(); await Promise.race([sleep(250), stop.promise])) {
      if (stop.requested) return;
      if (Date.now() > deadline) throw new Error(`no verification of ${SAMPLE_TABLE.table} after 60 s; see ${logFile}`);
      await progress.printNew();
    }
    const sample = verified()!;
    if (sample.status !== 'match') throw new Error(`the sample table's verification found ${sample.status}; see ${logFile}`);

    printAddresses(config, servers, apiUrl, logFile);
    if (options.exit) return;
    console.log(
      `Create tables in schema ${SAMPLE_TABLE.schema} with psql: each one's event, mirror edit and verification print here.\n` +
        'The test double copies a table once, when it joins the mirror: fill it in the same transaction, e.g.\n' +
        "  BEGIN; CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'pen'); COMMIT;\n" +
        'Ctrl-C stops everything.',
    );
    while (!stop.requested) {
      await progress.printNew();
      await Promise.race([sleep(500), stop.promise]);
    }
  } finally {
    say('stopping ...');
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    stop.dispose();
    if (dir !== undefined) say(`stopped; EchoDB, the test double and the servers are down, ${dir} is removed`);
  }
}
