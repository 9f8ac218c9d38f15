import { Client, Connection } from '@temporalio/client';
import type { Config } from '../lib/config.js';
import { createPostgresPool } from '../lib/postgres.js';
import { AdvisoryLockLease } from '../listener/advisory-lock-lease.js';
import { DdlListener } from '../listener/ddl-listener.js';
import { Leadership, type LeaderLease } from '../listener/leader-election.js';
import { RedisLease } from '../listener/redis-lease.js';

export const ROLES = {
  worker: 'the Temporal worker: mirror, verify and reconcile workflows',
  listener: 'leader-elected: drains the outbox into mirror workflows',
} as const;
export type Role = keyof typeof ROLES;

const log = (message: string) => console.log(message);

/** Redis when REDIS_HOST is set, else a PostgreSQL advisory lock. */
function leaderLease(config: Config): LeaderLease {
  return config.redis
    ? new RedisLease(config.redis, config.workerId, config.leaderElection.ttlMs)
    : new AdvisoryLockLease(config.postgres, config.workerId);
}

/**
 * Runs the roles in this process until SIGINT or SIGTERM, then stops them gracefully: the listener finishes its
 * batch and hands leadership over, the worker finishes its tasks. Resolves when everything is closed.
 */
export async function runRoles(config: Config, roles: readonly Role[]): Promise<void> {
  const stops: (() => Promise<void>)[] = [];
  const running: Promise<void>[] = [];

  if (roles.includes('worker')) {
    const { createEchoWorker } = await import('../workers/worker.js');
    const worker = await createEchoWorker(config);
    running.push(worker.run());
    stops.push(() => Promise.resolve(worker.shutdown()));
    log(
      `run: worker ${config.workerId} on task queue "${config.temporal.taskQueue}" of namespace ` +
        `"${config.temporal.namespace}" at ${config.temporal.address}`,
    );
  }

  if (roles.includes('listener')) {
    const connection = await Connection.connect({ address: config.temporal.address });
    const postgres = createPostgresPool(config.postgres, `echodb-listener:${config.workerId}`);
    const leadership = new Leadership(leaderLease(config), { workerId: config.workerId, ...config.leaderElection, log });
    const listener = new DdlListener({
      config,
      postgres,
      temporal: new Client({ connection, namespace: config.temporal.namespace }),
      leadership,
      log,
    });
    await listener.start();
    let stopped = () => {};
    running.push(Promise.race([listener.failed, new Promise<void>((resolve) => (stopped = resolve))]));
    stops.push(async () => {
      await listener.stop();
      await Promise.allSettled([postgres.end(), connection.close()]);
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
  }
}
