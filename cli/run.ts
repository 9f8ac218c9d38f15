import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { createBreakers } from '../lib/circuit-breaker.js';
import { createClickHouseClient } from '../lib/clickhouse.js';
import type { Config } from '../lib/config.js';
import { freePort } from '../lib/free-port.js';
import { createLogger, temporalLogger, type Logger } from '../lib/logger.js';
import { createMetrics } from '../lib/metrics.js';
import { PeerDbClient } from '../lib/peerdb/client.js';
import { createPostgresPool } from '../lib/postgres.js';
import { ensureVerifyAllSchedule } from '../lib/verify-all-schedule.js';
import { describeCleanupSchedule, ensureCleanupSchedule } from '../lib/cleanup-schedule.js';
import { AdvisoryLockLease } from '../listener/advisory-lock-lease.js';
import { DdlListener } from '../listener/ddl-listener.js';
import { Leadership, type LeaderLease } from '../listener/leader-election.js';
import { RedisLease } from '../listener/redis-lease.js';
import { SlotMonitor } from '../listener/slot-monitor.js';
import { assertSchemaNotNewer, installedSchemaVersion } from '../sql/migrations.js';

export const ROLES = {
  worker: 'the Temporal worker: mirror, verify, verify-all and reconcile workflows',
  listener: 'leader-elected: drains the outbox into mirror workflows, and watches the replication slots',
  api: 'HTTP: /health, /ready, /metrics, /metrics/prometheus, /verify, /verify-all, /diff, /mirrors, /events',
} as const;
export type Role = keyof typeof ROLES;

/** Redis when REDIS_HOST is set, else a PostgreSQL advisory lock. */
function leaderLease(config: Config): LeaderLease {
  return config.redis
    ? new RedisLease(config.redis, config.workerId, config.leaderElection.ttlMs)
    : new AdvisoryLockLease(config.postgres, config.workerId);
}

/**
 * Installs Temporal's runtime for the worker: its log lines go through EchoDB's logger, its metrics to a
 * Prometheus exporter on a free loopback port (served again by the api role at /metrics/prometheus), and
 * signals are left to `echodb run`, which stops every role in order. Returns the exporter's URL.
 */
async function installTemporalRuntime(logger: Logger, reserved: readonly number[]): Promise<string> {
  const { Runtime } = await import('@temporalio/worker');
  // Not one of the api role's ports, which it binds later: the OS may hand out one just released.
  let port = await freePort();
  while (reserved.includes(port)) port = await freePort();
  const address = `127.0.0.1:${port}`;
  Runtime.install({
    logger: temporalLogger(logger),
    shutdownSignals: [],
    telemetryOptions: { metrics: { prometheus: { bindAddress: address } } },
  });
  return `http://${address}/metrics`;
}

/**
 * Runs the roles in this process until SIGINT or SIGTERM, then stops them gracefully: the api stops answering,
 * the listener finishes its batch and hands leadership over, the worker finishes its tasks. Resolves when
 * everything is closed. The roles share one logger, one set of metrics and one pair of circuit breakers.
 */
export async function runRoles(config: Config, roles: readonly Role[]): Promise<void> {
  const logger = createLogger(config);
  const metrics = createMetrics();
  const breakers = createBreakers(config, logger);
  metrics.watchBreakers(breakers.peerdb, breakers.postgres);
  const stops: (() => Promise<void>)[] = [];
  const running: Promise<void>[] = [];
  // Connected on first use: the listener and the api start, and report, while Temporal is away.
  const connection = Connection.lazy({ address: config.temporal.address });
  const temporal = new Client({ connection, namespace: config.temporal.namespace });
  const postgres = createPostgresPool(config.postgres, `echodb:${config.workerId}`);
  // A newer release's tables: refuse to run at all. An unreachable database is waited out by each role instead.
  const unanswered = new Promise<null>((resolve) => setTimeout(resolve, 3000, null).unref());
  const installed = await Promise.race([installedSchemaVersion(postgres).catch(() => null), unanswered]);
  try {
    assertSchemaNotNewer(installed);
  } catch (error) {
    await postgres.end();
    throw error;
  }

  let worker: Awaited<ReturnType<typeof import('../workers/worker.js').createEchoWorker>> | undefined;
  let sdkMetricsUrl: string | undefined;
  if (roles.includes('worker')) {
    sdkMetricsUrl = await installTemporalRuntime(logger, [config.api.healthPort, config.consistencyChecker.port]);
    const { createEchoWorker } = await import('../workers/worker.js');
    worker = await createEchoWorker(config, { breakers, temporal });
    running.push(worker.run());
    stops.push(() => Promise.resolve(worker!.shutdown()));
    logger.info(
      `run: worker ${config.workerId} on task queue "${config.temporal.taskQueue}" of namespace ` +
        `"${config.temporal.namespace}" at ${config.temporal.address}`,
    );
    // Every replica makes sure of the schedules; a failure leaves the one there is (or none) and is reported.
    ensureVerifyAllSchedule(temporal, config).then(
      (outcome) => logger.info(`run: verify-all schedule ${outcome}`),
      (error: unknown) => logger.error({ err: error }, `run: could not create or update the verify-all schedule: ${String(error)}`),
    );
    ensureCleanupSchedule(temporal, config).then(
      (outcome) => logger.info(`run: ${describeCleanupSchedule(config, outcome)}`),
      (error: unknown) => logger.error({ err: error }, `run: could not create, update or delete the cleanup schedule: ${String(error)}`),
    );
  }

  let leadership: Leadership | undefined;
  if (roles.includes('listener')) {
    leadership = new Leadership(leaderLease(config), { workerId: config.workerId, ...config.leaderElection, logger });
    metrics.watchLeadership(() => leadership!.state().isLeader);
    leadership.onChange(() => metrics.leadershipChanges.inc());
    const listener = new DdlListener({ config, postgres, temporal, leadership, logger, metrics });
    await listener.start();
    const slotMonitor = new SlotMonitor({ config, query: (text, values) => postgres.query(text, values), leadership, logger });
    slotMonitor.start();
    let stopped = () => {};
    running.push(Promise.race([listener.failed, new Promise<void>((resolve) => (stopped = resolve))]));
    stops.push(async () => {
      await slotMonitor.stop();
      await listener.stop();
      stopped();
    });
  }

  if (roles.includes('api')) {
    const { startApi } = await import('../api/server.js');
    const clickhouse = createClickHouseClient(config.clickhouse);
    const redis = config.redis && new Redis({
      ...config.redis,
      connectionName: `echodb-api:${config.workerId}`,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    redis?.on('error', () => undefined); // readiness reports it
    const api = await startApi({
      config,
      logger,
      metrics,
      breakers,
      roles,
      postgres,
      query: (text, values) => breakers.postgres.execute(() => postgres.query(text, values)),
      clickhouse,
      temporal,
      peerdb: PeerDbClient.fromConfig(config.peerdb, breakers.peerdb),
      redis,
      ...(leadership && { leadership }),
      ...(worker && { workerState: () => worker.worker.getState() }),
      ...(sdkMetricsUrl !== undefined && { sdkMetricsUrl }),
    });
    let stopped = () => {};
    running.push(new Promise<void>((resolve) => (stopped = resolve)));
    stops.push(async () => {
      await api.close();
      redis?.disconnect();
      await clickhouse.close().catch(() => undefined);
      stopped();
    });
  }

  let stopping: Promise<unknown> | undefined;
  const stop = () => {
    stopping ??= Promise.allSettled(stops.map((stopRole) => stopRole()));
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stop());
  try {
    // Whichever role fails first (the listener after MAX_RECONNECT_ATTEMPTS) takes the others down with it.
    await Promise.race(running);
    await Promise.all(running);
  } finally {
    await stop();
    await Promise.allSettled([postgres.end(), connection.close()]);
  }
}
