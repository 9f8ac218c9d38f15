import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/logger.js';

/** A lease that at most one replica holds at a time (listener/redis-lease.ts, listener/advisory-lock-lease.ts). */
export interface LeaderLease {
  readonly backend: 'redis' | 'postgres';
  /** Takes the lease if nobody holds it. Throws when the backend cannot be reached. */
  acquire(): Promise<boolean>;
  /** Extends the lease if this replica still holds it; false when it does not. Throws when unreachable. */
  renew(): Promise<boolean>;
  /** Gives the lease up if this replica holds it. */
  release(): Promise<void>;
  close(): Promise<void>;
}

/** The replica holding a lease, as anyone can look it up (`echodb status`). */
export interface LeaseHolder {
  workerId: string;
  backend: LeaderLease['backend'];
  /** How long the lease lasts without renewal; null for the advisory lock, which lasts as long as its session. */
  expiresInMs: number | null;
}

export interface LeadershipState {
  isLeader: boolean;
  /** When this replica became leader; null while it is a follower. */
  since: Date | null;
  workerId: string;
  backend: LeaderLease['backend'];
}

export interface LeadershipOptions {
  workerId: string;
  ttlMs: number;
  intervalMs: number;
  logger: Logger;
}

/**
 * This replica's side of leader election: a follower tries to take the lease every interval, a leader renews
 * it every interval and before each batch (`confirm`). A leader that cannot renew steps down when its lease
 * would have run out by its own clock, so it never acts on a lease another replica may hold by then.
 */
export class Leadership {
  private leader = false;
  private since: Date | null = null;
  /** performance.now() until which the lease is surely still ours. */
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Lease calls run one at a time. */
  private chain: Promise<unknown> = Promise.resolve();
  private lastProblem: string | undefined;
  private readonly listeners: ((state: LeadershipState) => void)[] = [];

  constructor(
    private readonly lease: LeaderLease,
    private readonly options: LeadershipOptions,
  ) {}

  state(): LeadershipState {
    return { isLeader: this.leader, since: this.since, workerId: this.options.workerId, backend: this.lease.backend };
  }

  onChange(listener: (state: LeadershipState) => void): void {
    this.listeners.push(listener);
  }

  start(): void {
    this.campaign();
    this.timer = setInterval(() => this.campaign(), this.options.intervalMs);
  }

  /** Tries for the lease now (a follower told that the leader let go), or renews it. */
  campaign(): void {
    void this.serialized(async () => {
      if (this.stopped) return;
      if (this.leader) await this.renew();
      else await this.tryAcquire();
    });
  }

  /** True when this replica is leader and has just renewed its lease: the check before each batch. */
  confirm(): Promise<boolean> {
    return this.serialized(async () => this.leader && (await this.renew()));
  }

  /** True while the lease surely holds by this replica's clock: cheap, for checks in the middle of a batch. */
  holds(): boolean {
    return this.leader && performance.now() < this.validUntil;
  }

  /** Stops campaigning and gives the lease up, so that a follower can take over at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.serialized(async () => {
      if (this.leader) {
        await this.lease.release().catch((error: unknown) => this.problem('could not release the lease', error));
        this.change(false, 'released the lease');
      }
      await this.lease.close();
    });
  }

  private async tryAcquire(): Promise<void> {
    const startedAt = performance.now();
    try {
      if (await this.lease.acquire()) {
        this.validUntil = startedAt + this.options.ttlMs;
        this.change(true, `took the lease (${this.lease.backend})`);
      }
      this.lastProblem = undefined;
    } catch (error) {
      this.problem('cannot reach the lease', error);
    }
  }

  private async renew(): Promise<boolean> {
    const startedAt = performance.now();
    try {
      const renewed = await this.lease.renew();
      this.lastProblem = undefined;
      if (renewed) {
        this.validUntil = startedAt + this.options.ttlMs;
        return true;
      }
      this.change(false, 'no longer holds the lease');
    } catch (error) {
      this.problem('cannot renew the lease', error);
      if (performance.now() >= this.validUntil) this.change(false, 'lease ran out while its backend was unreachable');
    }
    return false;
  }

  private change(leader: boolean, why: string): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.since = leader ? new Date() : null;
    this.options.logger.info({ is_leader: leader }, `leader election: ${this.options.workerId} is ${leader ? 'leader' : 'follower'}: ${why}`);
    for (const listener of this.listeners) listener(this.state());
  }

  /** Logs a backend problem once, not on every attempt while it lasts. */
  private problem(what: string, error: unknown): void {
    const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
    if (message !== this.lastProblem) this.options.logger.warn(`leader election: ${message}`);
    this.lastProblem = message;
  }

  private serialized<T>(step: () => Promise<T>): Promise<T> {
    const result = this.chain.then(step);
    this.chain = result.catch(() => undefined);
    return result;
  }
}
