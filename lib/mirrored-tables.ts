import type pg from 'pg';
import type { MirrorTable } from '../workflows/model.js';
import { parseSourceTableIdentifier } from './workflow-safe/workflow-ids.js';

/** Runs one parameterized statement on the source database (a pool, or the breaker-guarded activity query). */
export type SourceQuery = <R extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[],
) => Promise<pg.QueryResult<R>>;

export interface MirroredTable extends MirrorTable {
  mirror: string;
}

/**
 * The tables EchoDB's mirrors hold, from durable state: a table's destination is claimed in
 * echodb.destination_claims before it is added to its mirror and released when it leaves. `source` narrows the
 * answer to one schema.table identifier (a parameter: request input never becomes SQL).
 */
export async function mirroredTables(query: SourceQuery, source?: string): Promise<MirroredTable[]> {
  const { rows } = await query<{ mirror: string; source: string; destination: string }>(
    `SELECT mirror, source, destination FROM echodb.destination_claims
      WHERE $1::text IS NULL OR source = $1::text
      ORDER BY mirror, source`,
    [source ?? null],
  );
  return rows.map(({ mirror, source: identifier, destination }) => ({
    mirror,
    ...parseSourceTableIdentifier(identifier),
    source: identifier,
    destination,
  }));
}
