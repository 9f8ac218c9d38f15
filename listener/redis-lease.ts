import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Config } from '../lib/config.js';
import type { LeaderLease, LeaseHolder } from './leader-election.js';

/** The key of the original manual, so that `redis-cli GET echodb:auto_mirror:leader_lock` still shows the leader. */
export const LEADER_KEY = 'echodb:auto_mirror:leader_lock';

// Renewal and release compare the token first, in one atomic step: a leader whose lease ran out and was taken
// can neither extend nor delete its successor's lease.
const RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/**
 * The lease as a Redis key holding this replica's token (`<worker id>:<uuid>`), set with NX and a TTL. Commands
 * fail at once while Redis is away instead of queueing, so that nobody acts on a lease nobody can check.
 */
export class RedisLease implements LeaderLease {
  readonly backend = 'redis';
  private readonly redis: Redis;
  private token: string | undefined;

  constructor(
    settings: NonNullable<Config['redis']>,
    private readonly workerId: string,
    private readonly ttlMs: number,
  ) {
    this.redis = new Redis({
      ...settings,
      connectionName: `echodb-listener:${workerId}`,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: Math.max(1000, Math.floor(ttlMs / 3)),
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    // Connection errors surface as failed commands; ioredis reconnects by itself.
    this.redis.on('error', () => undefined);
  }

  async acquire(): Promise<boolean> {
    await this.connected();
    const token = `${this.workerId}:${randomUUID()}`;
    const result = await this.redis.set(LEADER_KEY, token, 'PX', this.ttlMs, 'NX');
    if (result !== 'OK') return false;
    this.token = token;
    return true;
  }

  async renew(): Promise<boolean> {
    if (this.token === undefined) return false;
    return (await this.redis.eval(RENEW, 1, LEADER_KEY, this.token, this.ttlMs)) === 1;
  }

  async release(): Promise<void> {
    if (this.token === undefined) return;
    await this.redis.eval(RELEASE, 1, LEADER_KEY, this.token);
    this.token = undefined;
  }

  /** The first connection (and a reconnection in progress) is waited for, briefly; an outage fails at once. */
  private async connected(): Promise<void> {
    if (this.redis.status !== 'connecting' && this.redis.status !== 'connect') return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      this.redis.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** Who holds the Redis lease now (the worker id of its token) and for how much longer; null when nobody does. */
export async function redisLeaseHolder(settings: NonNullable<Config['redis']>): Promise<LeaseHolder | null> {
  const redis = new Redis({ ...settings, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const [token, ttlMs] = await Promise.all([redis.get(LEADER_KEY), redis.pttl(LEADER_KEY)]);
    if (token === null) return null;
    return { workerId: token.slice(0, token.lastIndexOf(':')), backend: 'redis', expiresInMs: Math.max(0, ttlMs) };
  } finally {
    redis.disconnect();
  }
}
