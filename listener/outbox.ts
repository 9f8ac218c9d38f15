import type pg from 'pg';
import type { DdlEventRow } from '../sql/ddl-events.js';
import type { RowOutcome } from './dispatch.js';

type Queryable = Pick<pg.Pool, 'query'>;

/** The oldest undispatched rows of echodb.ddl_events, in id order (the order their DDL committed in). */
export async function pendingEvents(db: Queryable, limit: number): Promise<DdlEventRow[]> {
  const { rows } = await db.query<DdlEventRow>(
    "SELECT * FROM echodb.ddl_events WHERE status = 'pending' ORDER BY id LIMIT $1",
    [limit],
  );
  return rows;
}

/**
 * Records what dispatch did with each row, in one statement. A failed row stays pending with its error and a
 * count of failed attempts. Only pending rows change, so a second leader that handled the same rows for a
 * moment leaves the first one's record as it was.
 */
export async function recordOutcomes(db: Queryable, outcomes: readonly RowOutcome[], handledBy: string, at: Date) {
  if (outcomes.length === 0) return;
  const column = (value: (o: RowOutcome) => string | null) => outcomes.map(value);
  await db.query(
    `UPDATE echodb.ddl_events e
        SET status          = CASE WHEN d.status = 'failed' THEN e.status ELSE d.status END,
            dispatched_at   = CASE WHEN d.status = 'failed' THEN NULL ELSE $6::timestamptz END,
            handled_by      = CASE WHEN d.status = 'failed' THEN NULL ELSE $7 END,
            workflow_id     = d.workflow_id,
            skip_reason     = d.reason,
            error           = d.error,
            failed_attempts = e.failed_attempts + (d.status = 'failed')::int
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
            AS d(id, status, workflow_id, reason, error)
      WHERE e.id = d.id AND e.status = 'pending'`,
    [
      column((o) => o.id),
      column((o) => o.status),
      column((o) => (o.status === 'dispatched' ? o.workflowIds.join(',') : null)),
      column((o) => (o.status === 'skipped' ? o.reason : null)),
      column((o) => (o.status === 'failed' ? o.error : null)),
      at,
      handledBy,
    ],
  );
}
