import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import pg from 'pg';
import type { RedisSettings, ServerSettings } from '../test/servers/index.js';
import { namingRules } from '../lib/naming.js';
import { createPostgresPool, postgresClientConfig } from '../lib/postgres.js';
import { tableFilter } from '../lib/table-filter.js';
import { AdvisoryLockLease } from '../listener/advisory-lock-lease.js';
import { dispatchRows } from '../listener/dispatch.js';
import { Leadership } from '../listener/leader-election.js';
import { pendingEvents, recordOutcomes } from '../listener/outbox.js';
import { LEADER_KEY, RedisLease } from '../listener/redis-lease.js';
import { startEchoProcess, type EchoProcess } from '../test/support/echo-process.js';
import { startEchoStack, type EchoStack } from '../test/support/echo-stack.js';
import { percentile, round } from './stats.js';

export type LeaseBackend = 'postgres' | 'redis';

export interface DispatchLatencyResult {
  backend: LeaseBackend;
  /** back-to-back: each CREATE TABLE as soon as the previous one returned; paced: `ratePerSecond` at most. */
  mode: 'back-to-back' | 'paced';
  /** false: the worker was stopped, so Temporal and the listener had the machine to themselves. */
  withWorker: boolean;
  ratePerSecond: number | null;
  events: number;
  /** How long issuing the statements took, and the rate that makes. */
  issueSeconds: number;
  achievedRatePerSecond: number;
  /** Distinct dispatched_at values: how many batches the listener recorded. */
  batches: number;
  commitToDispatchedMs: { p50: number; p99: number; max: number; mean: number };
}

export interface FailoverResult {
  backend: LeaseBackend;
  signal: 'SIGKILL' | 'SIGTERM';
  ttlSeconds: number;
  intervalSeconds: number;
  runs: number;
  /** From the signal to the follower's `is leader` line, as this process received it. */
  samplesMs: number[];
  medianMs: number;
  maxMs: number;
}

const redisEnv = (redis: RedisSettings): Record<string, string> => ({
  REDIS_HOST: redis.host,
  REDIS_PORT: String(redis.port),
  REDIS_PASSWORD: redis.password,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The Redis lease key is a fixed name: make sure no earlier run's leader (or a killed one's lease) lingers. */
async function clearRedisLease(redis: RedisSettings): Promise<void> {
  const client = new Redis(redis);
  try {
    await client.del(LEADER_KEY);
  } finally {
    client.disconnect();
  }
}

function leaseEnv(servers: ServerSettings, backend: LeaseBackend): Record<string, string> {
  return backend === 'redis' ? redisEnv(servers.redis) : {};
}

interface Row {
  table_name: string;
  status: string;
  dispatched_at: Date | null;
}

/** Waits until no row of this schema is pending any more; fails on a row that was not dispatched. */
async function waitDispatched(sql: pg.Client, schema: string, events: number, timeoutMs: number): Promise<Row[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await sql.query<Row>(
      'SELECT table_name, status, dispatched_at FROM echodb.ddl_events WHERE schema_name = $1 ORDER BY id',
      [schema],
    );
    const pending = rows.filter((row) => row.status === 'pending').length;
    if (rows.length >= events && pending === 0) {
      const other = rows.find((row) => row.status !== 'dispatched');
      if (other) throw new Error(`event for ${other.table_name} ended ${other.status}, not dispatched`);
      return rows;
    }
    if (Date.now() > deadline) throw new Error(`${pending} of ${rows.length} events still pending after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * One listener child process (leader of its own) and `events` CREATE TABLE statements in autocommit: the time
 * from each statement's return (its commit) to the dispatched_at the listener records once Temporal accepted
 * the signal. Back to back, or paced at `ratePerSecond`.
 */
async function measureDispatch(
  servers: ServerSettings,
  backend: LeaseBackend,
  mode: DispatchLatencyResult['mode'],
  withWorker: boolean,
  events: number,
  ratePerSecond: number,
): Promise<DispatchLatencyResult> {
  if (backend === 'redis') await clearRedisLease(servers.redis);
  const stack = await startEchoStack({ COALESCE_WINDOW: '5', PEERDB_REQUEST_TIMEOUT: '30' }, servers);
  let listener: EchoProcess | undefined;
  try {
    const { sql, schema } = stack;
    // Temporal accepts a signal whether or not a worker runs; without one the figure is the listener's path alone.
    if (!withWorker) await stack.worker.stop();
    listener = await startEchoProcess(
      { ...stack.env, ...leaseEnv(servers, backend), WORKER_ID: `bench-${backend}-${mode}`, OUTBOX_POLL_INTERVAL: '5' },
      ['listener'],
    );
    await listener.waitForLine(/is leader/, 60_000);
    // A new leader starts a reconcile workflow; let that settle before measuring.
    await listener.waitForLine(/reconcile .* started|could not start reconcile/, 30_000);
    await sleep(1000);

    const committedAt = new Map<string, number>();
    const intervalMs = 1000 / ratePerSecond;
    const start = Date.now();
    for (let n = 0; n < events; n++) {
      if (mode === 'paced') {
        const due = start + n * intervalMs;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      }
      await sql.query(`CREATE TABLE ${schema}.b_${n} (id int PRIMARY KEY)`);
      committedAt.set(`b_${n}`, Date.now());
    }
    const issueSeconds = (Date.now() - start) / 1000;

    const rows = await waitDispatched(sql, schema, events, 10 * 60_000);
    const latencies = rows.flatMap((row) => {
      const committed = committedAt.get(row.table_name);
      return committed === undefined || row.dispatched_at === null ? [] : [row.dispatched_at.getTime() - committed];
    });
    if (latencies.length !== events) throw new Error(`matched ${latencies.length} of ${events} events`);
    const batches = new Set(rows.map((row) => row.dispatched_at?.getTime())).size;
    return {
      backend,
      mode,
      withWorker,
      ratePerSecond: mode === 'paced' ? ratePerSecond : null,
      events,
      issueSeconds: round(issueSeconds, 1),
      achievedRatePerSecond: round(events / issueSeconds, 0),
      batches,
      commitToDispatchedMs: {
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: Math.max(...latencies),
        mean: round(latencies.reduce((a, b) => a + b, 0) / latencies.length, 1),
      },
    };
  } finally {
    await listener?.stop();
    await stack.close();
  }
}

export async function measureDispatchLatency(
  servers: ServerSettings,
  events: number,
  ratePerSecond: number,
  log: (message: string) => void = console.log,
): Promise<DispatchLatencyResult[]> {
  const results: DispatchLatencyResult[] = [];
  for (const backend of ['postgres', 'redis'] as const) {
    for (const [mode, withWorker] of [['back-to-back', true], ['paced', true], ['paced', false]] as const) {
      log(`bench listener: ${events} CREATE TABLE ${mode === 'paced' ? `at ${ratePerSecond}/s` : 'back to back'}, ` +
        `lease by ${backend}, ${withWorker ? 'worker mirroring the tables meanwhile' : 'worker stopped'} ...`);
      results.push(await measureDispatch(servers, backend, mode, withWorker, events, ratePerSecond));
    }
  }
  return results;
}

/**
 * Two listener replicas; `runs` times: the leader gets `signal`, and the time until the follower prints that it
 * leads is taken. A fresh replica then joins as the next follower, so each run sees a leader and one follower.
 */
async function measureFailoverCase(
  stack: EchoStack,
  servers: ServerSettings,
  backend: LeaseBackend,
  signal: FailoverResult['signal'],
  election: { ttlSeconds: number; intervalSeconds: number },
  runs: number,
): Promise<FailoverResult> {
  if (backend === 'redis') await clearRedisLease(servers.redis);
  const env = {
    ...stack.env,
    ...leaseEnv(servers, backend),
    LEADER_ELECTION_TTL: String(election.ttlSeconds),
    LEADER_ELECTION_INTERVAL: String(election.intervalSeconds),
    OUTBOX_POLL_INTERVAL: '1',
  };
  let replicas = 0;
  const started: EchoProcess[] = [];
  const startReplica = async () => {
    const replica = await startEchoProcess({ ...env, WORKER_ID: `bench-${backend}-${signal}-${replicas++}` }, ['listener']);
    started.push(replica);
    return replica;
  };
  const samples: number[] = [];
  try {
    let leader = await startReplica();
    await leader.waitForLine(/is leader/, 60_000);
    let follower = await startReplica();
    for (let run = 0; run < runs; run++) {
      // Let the follower settle into its campaign rhythm (and fail its first attempts) before the leader goes.
      await sleep(1500);
      if (follower.lines.some((line) => /is leader/.test(line))) throw new Error('the follower leads before the failover');
      const signalledAt = Date.now();
      if (signal === 'SIGKILL') leader.kill('SIGKILL');
      else void leader.stop();
      const timeoutMs = (election.ttlSeconds + election.intervalSeconds) * 1000 + 15_000;
      const { at } = await follower.waitForLine(/is leader/, timeoutMs, signalledAt);
      samples.push(at - signalledAt);
      await leader.exited;
      leader = follower;
      if (run < runs - 1) follower = await startReplica();
    }
  } finally {
    await Promise.all(started.map((replica) => replica.stop()));
  }
  return {
    backend,
    signal,
    ...election,
    runs,
    samplesMs: samples,
    medianMs: percentile(samples, 50),
    maxMs: Math.max(...samples),
  };
}

export async function measureFailover(
  servers: ServerSettings,
  runs: number,
  log: (message: string) => void = console.log,
): Promise<FailoverResult[]> {
  // Only the listeners matter here; the stack gives them a database with the triggers, and Temporal.
  const stack = await startEchoStack({}, servers);
  const results: FailoverResult[] = [];
  try {
    for (const backend of ['redis', 'postgres'] as const) {
      // SIGKILL: the lease must run out (Redis) or the dead session end (advisory lock), then a follower's
      // next attempt takes it; short TTL and interval keep each run within seconds.
      log(`bench listener: failover after SIGKILL, lease by ${backend}, TTL 3 s / interval 1 s, ${runs} runs ...`);
      results.push(await measureFailoverCase(stack, servers, backend, 'SIGKILL', { ttlSeconds: 3, intervalSeconds: 1 }, runs));
      // SIGTERM: the leader releases the lease and notifies; the project's default TTL and interval.
      log(`bench listener: failover after SIGTERM, lease by ${backend}, TTL 30 s / interval 10 s, ${runs} runs ...`);
      results.push(await measureFailoverCase(stack, servers, backend, 'SIGTERM', { ttlSeconds: 30, intervalSeconds: 10 }, runs));
    }
  } finally {
    await stack.close();
  }
  return results;
}

export interface DispatchStepsResult {
  backend: LeaseBackend;
  events: number;
  /** Per lone event, in this process: the listener's drain steps, timed one by one. */
  stepsMs: Record<DispatchStep, { p50: number; p99: number; max: number }>;
}

type DispatchStep =
  | 'commit -> NOTIFY received'
  | 'pendingEvents'
  | 'confirm (lease renew)'
  | 'dispatchRows (signalWithStart)'
  | 'recordOutcomes'
  | 'commit -> dispatched_at';

/**
 * Where a lone event's time goes: the steps of DdlListener.drain (listener/ddl-listener.ts) run here, in this
 * process, with the same functions and a lease of the given backend, against a stack's worker and Temporal.
 * Each CREATE TABLE waits until the previous event is recorded, and statements are at most `ratePerSecond`.
 */
export async function measureDispatchSteps(
  servers: ServerSettings,
  backend: LeaseBackend,
  events: number,
  ratePerSecond: number,
): Promise<DispatchStepsResult> {
  if (backend === 'redis') await clearRedisLease(servers.redis);
  const stack = await startEchoStack({ COALESCE_WINDOW: '5', PEERDB_REQUEST_TIMEOUT: '30' }, servers);
  const { config, sql, schema } = stack;
  const workerId = `bench-steps-${backend}`;
  const connection = await Connection.connect({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const pool = createPostgresPool(config.postgres, `echodb-listener:${workerId}`);
  const notifications = new pg.Client(postgresClientConfig(config.postgres, `echodb-listener:${workerId}`));
  const lease = backend === 'redis'
    ? new RedisLease({ ...servers.redis, db: 0 }, workerId, config.leaderElection.ttlMs)
    : new AdvisoryLockLease(config.postgres, workerId);
  const leadership = new Leadership(lease, { workerId, ...config.leaderElection, logger: pino({ level: 'silent' }) });
  try {
    await notifications.connect();
    let notified: (() => void) | undefined;
    notifications.on('notification', () => notified?.());
    await notifications.query('LISTEN peerdb_create_mirror');
    leadership.start();
    for (let i = 0; !leadership.state().isLeader; i++) {
      if (i > 100) throw new Error('the probe never took the lease');
      await sleep(100);
    }
    const context = {
      client: temporal,
      taskQueue: config.temporal.taskQueue,
      naming: namingRules(config),
      destinationTemplate: config.mirror.destinationTableTemplate,
    };
    const filter = tableFilter(config.sync);
    const samples: Record<DispatchStep, number[]> = {
      'commit -> NOTIFY received': [],
      'pendingEvents': [],
      'confirm (lease renew)': [],
      'dispatchRows (signalWithStart)': [],
      'recordOutcomes': [],
      'commit -> dispatched_at': [],
    };
    // The first signalWithStart starts the mirror workflow; the rest signal it while it runs.
    const warmUp = 10;
    const intervalMs = 1000 / ratePerSecond;
    let due = Date.now();
    for (let n = 0; n < events + warmUp; n++) {
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      due = Date.now() + intervalMs;
      const arrived = new Promise<number>((resolve) => (notified = () => resolve(performance.now())));
      await sql.query(`CREATE TABLE ${schema}.p_${n} (id int PRIMARY KEY)`);
      const t0 = performance.now();
      const t1 = await arrived;
      const rows = await pendingEvents(pool, config.outbox.batchSize);
      const t2 = performance.now();
      if (!(await leadership.confirm())) throw new Error('the probe lost the lease');
      const t3 = performance.now();
      const outcomes = await dispatchRows(context, rows, filter, () => !leadership.holds());
      const t4 = performance.now();
      await recordOutcomes(pool, outcomes, workerId, new Date());
      const t5 = performance.now();
      if (rows.length !== 1 || outcomes[0]?.status !== 'dispatched') {
        throw new Error(`expected one dispatched event, got ${JSON.stringify(outcomes)}`);
      }
      if (n < warmUp) continue;
      samples['commit -> NOTIFY received'].push(t1 - t0);
      samples.pendingEvents.push(t2 - t1);
      samples['confirm (lease renew)'].push(t3 - t2);
      samples['dispatchRows (signalWithStart)'].push(t4 - t3);
      samples.recordOutcomes.push(t5 - t4);
      samples['commit -> dispatched_at'].push(t4 - t0);
    }
    const summary = (sample: number[]) => ({
      p50: round(percentile(sample, 50), 2),
      p99: round(percentile(sample, 99), 2),
      max: round(Math.max(...sample), 2),
    });
    return {
      backend,
      events,
      stepsMs: Object.fromEntries(Object.entries(samples).map(([step, sample]) => [step, summary(sample)])) as
        DispatchStepsResult['stepsMs'],
    };
  } finally {
    await leadership.stop();
    await notifications.end().catch(() => undefined);
    await pool.end().catch(() => undefined);
    await connection.close();
    await stack.close();
  }
}
