import type pg from 'pg';
import type { ActivityDependencies } from './index.js';
import { withBreakerAwareRetries } from './temporal-errors.js';

/**
 * Queries on the source database (its catalog and EchoDB's own tables), through the PostgreSQL circuit breaker:
 * an open breaker fails the activity at once and defers its next retry until the breaker lets calls through.
 */
export function sourceQueries({ postgres, postgresBreaker }: Pick<ActivityDependencies, 'postgres' | 'postgresBreaker'>) {
  return <R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[]) =>
    withBreakerAwareRetries(() => postgresBreaker.execute(() => postgres.query<R>(text, values)));
}
