import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen, isBrokenCircuitError } from 'cockatiel';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { isPeerDbOutage } from './peerdb/client.js';
import { CircuitOpen } from './workflow-safe/peerdb-errors.js';
import { isPostgresOutage } from './postgres.js';

export interface BreakerSettings {
  failureThreshold: number;
  successThreshold: number;
  /** How long the breaker stays open before it lets a trial call through. */
  timeoutMs: number;
}

export type BreakerStateName = 'closed' | 'open' | 'half_open';

export interface BreakerSnapshot {
  state: BreakerStateName;
  /** Consecutive failures counted towards opening (reset by a success). */
  failures: number;
}

const stateNames: Record<CircuitState, BreakerStateName> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half_open',
  [CircuitState.Isolated]: 'open',
};

/**
 * A circuit breaker (cockatiel) in front of one dependency. Only errors that `isOutage` accepts count as
 * failures: a 400 or a 404 says nothing about the dependency's health. While open, calls fail at once with
 * CircuitOpen, which says when the breaker will let the next call through.
 */
export class CircuitBreaker {
  private readonly policy;
  private openedAt = 0;
  private consecutiveFailures = 0;

  constructor(
    readonly dependency: string,
    private readonly settings: BreakerSettings,
    isOutage: (error: unknown) => boolean,
  ) {
    this.policy = circuitBreaker(handleWhen(isOutage), {
      breaker: new ConsecutiveBreaker(settings.failureThreshold),
      halfOpenAfter: settings.timeoutMs,
      halfOpenSampling: { calls: settings.successThreshold, threshold: 0 },
    });
    this.policy.onBreak(() => (this.openedAt = Date.now()));
    this.policy.onFailure(({ handled }) => {
      if (handled) this.consecutiveFailures++;
    });
    this.policy.onSuccess(() => (this.consecutiveFailures = 0));
  }

  async execute<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await this.policy.execute(work);
    } catch (error) {
      if (isBrokenCircuitError(error)) {
        throw new CircuitOpen(this.dependency, Math.max(0, this.openedAt + this.settings.timeoutMs - Date.now()));
      }
      throw error;
    }
  }

  /** Calls `listener` with the new state whenever the breaker opens, half-opens or closes. */
  onStateChange(listener: (state: BreakerStateName) => void): void {
    this.policy.onStateChange((state) => listener(stateNames[state]));
  }

  snapshot(): BreakerSnapshot {
    return { state: stateNames[this.policy.state], failures: this.consecutiveFailures };
  }
}

/**
 * The process's two breakers, shared by every role in it: PeerDB's Flow API and the source PostgreSQL. Each
 * change of state is logged.
 */
export function createBreakers(config: Config, logger: Logger) {
  const breakers = {
    peerdb: new CircuitBreaker('peerdb_api', config.circuitBreaker.peerdb, isPeerDbOutage),
    postgres: new CircuitBreaker('postgres_connection', config.circuitBreaker.postgres, isPostgresOutage),
  };
  for (const breaker of Object.values(breakers)) {
    breaker.onStateChange((state) => {
      logger[state === 'closed' ? 'info' : 'warn']({ breaker: breaker.dependency, state }, `circuit breaker ${breaker.dependency} is ${state}`);
    });
  }
  return breakers;
}

export type Breakers = ReturnType<typeof createBreakers>;
