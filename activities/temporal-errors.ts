import { ApplicationFailure } from '@temporalio/activity';
import { CircuitOpen } from '../lib/workflow-safe/peerdb-errors.js';

/**
 * Runs an activity body, turning an open breaker into a retryable failure whose next retry waits until the
 * breaker lets calls through again, instead of burning retries against it.
 */
export async function withBreakerAwareRetries<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof CircuitOpen) {
      throw ApplicationFailure.create({
        type: 'CircuitOpen',
        message: error.message,
        nextRetryDelay: Math.max(error.retryAfterMs, 100),
      });
    }
    throw error;
  }
}
